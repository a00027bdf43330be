#!/usr/bin/env bash
# The model-families study's runs (docs/models.md):
# 1. bytes and memory: python -m resist.bench, local SGD and ResIST side by side, on torchvision's
#    ResNet-50/101/152 (CIFAR stem) and the ViTs (patch 4) at S = 2, 4, 8 on synthetic CIFAR-shaped
#    data (10 classes: the bytes do not depend on the pixels), 16 images per step over all workers,
#    l = 2, 1 warm-up round and 3 measured ones; the paper's minimum depth 4 at S = 8 (the bench's
#    default), none below;
# 2. accuracy at the CIFAR-10 study's budget (recipe cifar10_cpu: 2 epochs, batch 64 per worker,
#    lr 0.05, l = 20) at S = 4, ResIST and local SGD, seeds 0 and 1, evaluated every half epoch:
#    torchvision's ResNet-18 with the CIFAR stem at width 16 (its four stages' second blocks are
#    partitioned) and ViT-Tiny with 8-pixel patches (16 patches: a quarter of patch 4's compute, so
#    that 4 runs fit this 2-core machine's budget).
# Run again, it skips finished benchmarks and resumes stopped runs (experiments/sweeps.sh).
# Usage (from the repository root): bash experiments/models/run.sh [RUNS_DIR]
set -euo pipefail
source "$(dirname "$0")/../sweeps.sh"
runs=${1:-experiments/models/runs}
common=(dataset=synthetic dataset.num_train_samples=2048 protocol.local_steps=2 bench.warmup_rounds=1
  bench.rounds=3 "bench.protocols=[local_sgd,resist]")
bench() {  # bench NAME OVERRIDES...: one benchmark into $runs/bytes/NAME, skipped when it is there already
  local name=$1; shift
  if [[ -f "$runs/bytes/$name/bench.json" ]]; then echo "models: $name is done"; return; fi
  python -m resist.bench "${common[@]}" "$@" hydra.run.dir="$runs/bytes/$name"
}
for workers in 2 4 8; do
  batch=$(( 16 / workers ))
  for depth in 50 101 152; do
    bench "tv_resnet$depth-S$workers" model=tv_resnet$depth model.cifar_stem=true num_workers=$workers train.batch_size=$batch
  done
  for vit in vit_tiny vit_small; do
    bench "$vit-S$workers" model=$vit num_workers=$workers train.batch_size=$batch
  done
done
half_epoch=$(( 50000 / 4 / 64 / 2 ))   # optimizer steps per half epoch and worker at S = 4
sweep "$runs/accuracy/tv_resnet18" 4 "+experiment=cifar10_cpu_local_sgd,cifar10_cpu_resist" seed=0,1 num_workers=4 \
  model=tv_resnet18 model.cifar_stem=true model.width=16 train.eval_unit=steps train.eval_every="$half_epoch"
sweep "$runs/accuracy/vit_tiny" 4 "+experiment=cifar10_cpu_local_sgd,cifar10_cpu_resist" seed=0,1 num_workers=4 \
  model=vit_tiny model.patch_size=8 train.eval_unit=steps train.eval_every="$half_epoch"
