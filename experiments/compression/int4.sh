#!/usr/bin/env bash
# int4 with error feedback against float32 on the CIFAR-10 study's budget (the cifar10_cpu_resist
# experiment: PreActResNet "mini deep", 2 epochs, batch 64 per worker, lr 0.05, l = 20) at S = 4,
# evaluated every half epoch, seeds 0 and 1: ResIST with protocol.compress=int4 and its float32
# twin. One Hydra multirun per (compression, seed); run again, it resumes the runs that were stopped
# and keeps those that finished (experiments/sweeps.sh). Its bytes on the paper's network come from
# bench.sh (int4-S2, -S4, -S8).
# Usage (from the repository root): bash experiments/compression/int4.sh [RUNS_DIR]
set -euo pipefail
source "$(dirname "$0")/../sweeps.sh"
runs=${1:-experiments/compression/runs/int4-accuracy}
workers=4
half_epoch=$(( 50000 / workers / 64 / 2 ))   # optimizer steps per half epoch and worker
each=(num_workers="$workers" train.eval_unit=steps train.eval_every="$half_epoch")
for seed in 0 1; do
  for compress in int4 none; do
    sweep "$runs/$compress-seed$seed" 1 +experiment=cifar10_cpu_resist protocol.compress="$compress" seed="$seed" "${each[@]}"
  done
done
