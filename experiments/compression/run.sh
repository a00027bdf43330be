#!/usr/bin/env bash
# The compression study's accuracy runs, on the CIFAR-10 study's budget (the cifar10_cpu_*
# experiments: PreActResNet "mini deep", 2 epochs, batch 64 per worker, lr 0.05, l = 20) at S = 4,
# evaluated every half epoch: local SGD and ResIST at protocol.compress = bf16, int8 and none, DDP
# at powersgd (rank 2) and none, seeds 0 and 1. One Hydra multirun per sweep, in the order below
# (compressed runs first, then their float32 references); run again, it resumes the runs that were
# stopped and keeps those that finished (experiments/sweeps.sh), so it can be stopped and continued.
# Usage (from the repository root): bash experiments/compression/run.sh [RUNS_DIR]
set -euo pipefail
source "$(dirname "$0")/../sweeps.sh"
runs=${1:-experiments/compression/runs/accuracy}
workers=4
half_epoch=$(( 50000 / workers / 64 / 2 ))   # optimizer steps per half epoch and worker
averaging="+experiment=cifar10_cpu_local_sgd,cifar10_cpu_resist"
each=(num_workers="$workers" train.eval_unit=steps train.eval_every="$half_epoch")
for seed in 0 1; do
  sweep "$runs/bf16-seed$seed" 2 "$averaging" protocol.compress=bf16 seed="$seed" "${each[@]}"
  sweep "$runs/int8-seed$seed" 2 "$averaging" protocol.compress=int8 seed="$seed" "${each[@]}"
  sweep "$runs/ddp-powersgd-seed$seed" 1 +experiment=cifar10_cpu_ddp protocol.compress=powersgd seed="$seed" "${each[@]}"
done
for seed in 0 1; do   # the float32 references (the CIFAR-10 study's S = 4 runs, the same settings)
  sweep "$runs/none-seed$seed" 2 "$averaging" protocol.compress=none seed="$seed" "${each[@]}"
  sweep "$runs/ddp-none-seed$seed" 1 +experiment=cifar10_cpu_ddp seed="$seed" "${each[@]}"
done
