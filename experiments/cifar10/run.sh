#!/usr/bin/env bash
# The CIFAR-10 accuracy study's runs: ddp, local_sgd and resist (the cifar10_cpu_* experiments:
# PreActResNet "mini deep", 2 epochs, batch 64 per worker, lr 0.05, l = 20) at S = 2 and 4 workers,
# seeds 0 and 1, evaluated every half epoch. One Hydra multirun per (seed, S); run again, the script
# resumes the runs that were stopped (from their last checkpoint) and keeps those that finished
# (experiments/sweeps.sh).
# Usage (from the repository root): bash experiments/cifar10/run.sh [RUNS_DIR]
set -euo pipefail
source "$(dirname "$0")/../sweeps.sh"
runs=${1:-experiments/cifar10/runs}
for seed in 0 1; do
  for workers in 2 4; do
    half_epoch=$(( 50000 / workers / 64 / 2 ))   # optimizer steps per half epoch and worker
    sweep "$runs/S$workers-seed$seed" 3 "+experiment=cifar10_cpu_ddp,cifar10_cpu_local_sgd,cifar10_cpu_resist" \
      num_workers="$workers" seed="$seed" train.eval_unit=steps train.eval_every="$half_epoch"
  done
done
