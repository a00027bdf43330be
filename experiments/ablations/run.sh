#!/usr/bin/env bash
# The ablations' runs: ResIST at S = 4, seed 0, on the CIFAR-10 study's budget (its reference run
# is the study's `cifar10_cpu_resist` S = 4 seed 0 run), each changing one thing: no test-time
# scaling, minimum depth 3 (of 8 blocks: each block then has 1 or 2 holders), l = 10, 50, 100,
# momentum kept (travelling with its block), 1 epoch of local-SGD warm-up.
# Usage (from the repository root): bash experiments/ablations/run.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-experiments/ablations/runs}
base=(+experiment=cifar10_cpu_resist num_workers=4 seed=0 train.eval_unit=steps train.eval_every=97)
declare -A variants=(
  [no_scaling]="protocol.test_time_scaling=false"
  [min_depth_3]="protocol.decomposition.min_depth=3"
  [l10]="protocol.local_steps=10"
  [l50]="protocol.local_steps=50"
  [l100]="protocol.local_steps=100"
  [momentum_kept]="protocol.optimizer_state=keep"
  [warmup_1]="protocol.warmup_epochs=1"
)
for name in no_scaling min_depth_3 l10 l50 l100 momentum_kept warmup_1; do
  if [[ -f "$runs/$name/metrics.jsonl" ]]; then
    if grep -q '"event": "summary"' "$runs/$name/metrics.jsonl"; then
      echo "ablations: $name is done ($runs/$name)"
    else
      python -m resist.run resume="$runs/$name"   # stopped earlier: continue from its last checkpoint
    fi
    continue
  fi
  # shellcheck disable=SC2086  # a variant is one override
  python -m resist.run "${base[@]}" ${variants[$name]} hydra.run.dir="$runs/$name"
done
