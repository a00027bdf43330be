#!/usr/bin/env bash
# The convergence study's runs: CIFAR-10, PreActResNet "mini deep", S = 4 workers, the cifar10_cpu
# recipe (batch 64 per worker, lr 0.05 ×0.1 at 50 % and 75 %, l = 20) for 20 epochs instead of 2,
# evaluated every epoch. One Hydra multirun per group of protocols and seed; run again, the script
# resumes the runs that were stopped (from their last checkpoint) and keeps those that finished
# (experiments/sweeps.sh). A run takes about 50 minutes alone on 2 cores.
# Usage (from the repository root): bash experiments/convergence/run.sh [RUNS_DIR] [SEEDS]
set -euo pipefail
source "$(dirname "$0")/../sweeps.sh"
runs=${1:-experiments/convergence/runs}
seeds=${2:-0}
common=(num_workers=4 train.epochs=20 train.eval_unit=epochs train.eval_every=1)
for seed in $seeds; do
  sweep "$runs/float32-seed$seed" 2 "+experiment=cifar10_cpu_local_sgd,cifar10_cpu_resist" seed="$seed" "${common[@]}"
done
