#!/usr/bin/env bash
# The communication-and-memory study's runs (also the step-time study's, experiments/speed/):
# python -m resist.bench (ddp, local_sgd, resist side by side) on the paper's CIFAR-100
# PreActResNet-101 (synthetic CIFAR-shaped data with 100 classes: the bytes do not depend on the
# pixels) at S = 2, 4, 8 with 16 images per step over all workers and l = 2, minimum depth 4 at S = 8
# as the paper's runs (conf/bench.yaml), and without it (the cost model's 0.41 target is for that);
# 1 warm-up round, the measured rounds, and one unmeasured round after them (so every measured round
# hands its blocks on); ResIST at S = 4 with minimum depth 6 (the paper's count of
# 24 block slots at S = 4, PAPER.md §2.2); PreActResNet-152 and -200 at S = 4.
# Usage (from the repository root): bash experiments/comm/run.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-experiments/comm/runs}
common=(dataset=synthetic dataset.num_classes=100 dataset.num_train_samples=2048 protocol.local_steps=2 bench.warmup_rounds=1)
bench() {  # bench NAME OVERRIDES...: one benchmark into $runs/NAME, skipped when it is there already
  local name=$1; shift
  if [[ -f "$runs/$name/bench.json" ]]; then echo "comm: $name is done ($runs/$name)"; return; fi
  python -m resist.bench "${common[@]}" "$@" hydra.run.dir="$runs/$name"
}
bench resnet101-S2 model=preact_resnet101 num_workers=2 train.batch_size=8 bench.rounds=6
bench resnet101-S4 model=preact_resnet101 num_workers=4 train.batch_size=4 bench.rounds=6
bench resnet101-S8 model=preact_resnet101 num_workers=8 train.batch_size=2 bench.rounds=4
bench resnet101-S8-m0 model=preact_resnet101 num_workers=8 train.batch_size=2 bench.rounds=4 \
  protocol.decomposition.min_depth=0 "bench.protocols=[local_sgd,resist]"
bench resnet101-S4-m6 model=preact_resnet101 num_workers=4 train.batch_size=4 bench.rounds=6 \
  protocol.decomposition.min_depth=6 "bench.protocols=[resist]"
# ResIST alone over 20 measured rounds: the hand-off's spread from round to round (random partitions)
bench resnet101-S2-20rounds model=preact_resnet101 num_workers=2 train.batch_size=8 bench.rounds=20 "bench.protocols=[resist]"
bench resnet101-S4-20rounds model=preact_resnet101 num_workers=4 train.batch_size=4 bench.rounds=20 "bench.protocols=[resist]"
bench resnet152-S4 model=preact_resnet152 num_workers=4 train.batch_size=4 bench.rounds=3
bench resnet200-S4 model=preact_resnet200 num_workers=4 train.batch_size=4 bench.rounds=3
