#!/usr/bin/env bash
# Compressed transfers on the paper's network, bytes measured side by side: python -m resist.bench
# with protocol.compress=int8 and int4 (local SGD and ResIST; DiLoCo with int4 at S = 4) at S = 2, 4,
# 8 (minimum depth 4 at S = 8 as the paper's runs, and 0 for int8), bf16 DDP (torch's hook) and
# local SGD, and PowerSGD DDP at S = 4; the
# CIFAR-100 PreActResNet-101 on synthetic data (bytes do not depend on pixels), settings as
# experiments/comm/run.sh.
# Usage (from the repository root): bash experiments/compression/bench.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-experiments/compression/runs}
common=(model=preact_resnet101 dataset=synthetic dataset.num_classes=100 dataset.num_train_samples=2048)
both=(protocol.local_steps=2 bench.warmup_rounds=1 "bench.protocols=[local_sgd,resist]")
bench() {  # bench NAME OVERRIDES...: one benchmark into $runs/NAME, skipped when it is there already
  local name=$1; shift
  if [[ -f "$runs/$name/bench.json" ]]; then echo "compression: $name is done ($runs/$name)"; return; fi
  python -m resist.bench "${common[@]}" "$@" hydra.run.dir="$runs/$name"
}
bench int8-S2 "${both[@]}" num_workers=2 train.batch_size=8 bench.rounds=6 protocol.compress=int8
bench int8-S4 "${both[@]}" num_workers=4 train.batch_size=4 bench.rounds=6 protocol.compress=int8
bench int8-S8 "${both[@]}" num_workers=8 train.batch_size=2 bench.rounds=4 protocol.compress=int8
bench int8-S8-m0 "${both[@]}" num_workers=8 train.batch_size=2 bench.rounds=4 protocol.compress=int8 protocol.decomposition.min_depth=0
bench int4-S2 "${both[@]}" num_workers=2 train.batch_size=8 bench.rounds=6 protocol.compress=int4
bench int4-S4 protocol.local_steps=2 bench.warmup_rounds=1 "bench.protocols=[local_sgd,diloco,resist]" \
  num_workers=4 train.batch_size=4 bench.rounds=6 protocol.compress=int4
bench int4-S8 "${both[@]}" num_workers=8 train.batch_size=2 bench.rounds=4 protocol.compress=int4
bench bf16-S4 protocol.local_steps=2 bench.warmup_rounds=1 num_workers=4 train.batch_size=4 bench.rounds=6 \
  protocol.compress=bf16 "bench.protocols=[ddp,local_sgd]"
# DDP with PowerSGD alone (its first powersgd_start_step = 2 steps are float32: the warm-up covers them)
bench powersgd-S4 protocol=ddp num_workers=4 train.batch_size=4 bench.warmup_rounds=2 bench.rounds=6 \
  protocol.compress=powersgd "bench.protocols=[ddp]"
