#!/usr/bin/env bash
# The compression study's accuracy runs, on the CIFAR-10 study's budget (the cifar10_cpu_*
# experiments: PreActResNet "mini deep", 2 epochs, batch 64 per worker, lr 0.05, l = 20) at S = 4,
# evaluated every half epoch: local SGD and ResIST at protocol.compress = bf16, int8 and none, DDP
# at powersgd (rank 2) and none, seeds 0 and 1. One Hydra multirun per sweep, in the order below
# (compressed runs first, then their float32 references); run again, the script resumes the runs that were stopped and keeps those
# that finished, so it can be stopped between sweeps and continued.
# Usage (from the repository root): bash experiments/compression/run.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-experiments/compression/runs/accuracy}
workers=4
half_epoch=$(( 50000 / workers / 64 / 2 ))   # optimizer steps per half epoch and worker
averaging="+experiment=cifar10_cpu_local_sgd,cifar10_cpu_resist"
sweep() {  # sweep NAME SEED JOBS OVERRIDES...: one multirun into $runs/NAME-seedSEED
  local dir="$runs/$1-seed$2" seed=$2 jobs=$3; shift 3
  if [[ -d "$dir" ]]; then   # ran before: finish what was stopped, keep what finished
    if (( $(find "$dir" -mindepth 2 -maxdepth 2 -name resolved_config.yaml | wc -l) < jobs )); then
      echo "compression: $dir holds fewer than its $jobs runs (stopped before they all started); move it away to rerun it" >&2
      exit 1
    fi
    for job in "$dir"/*/; do
      grep -q '"event": "summary"' "$job/metrics.jsonl" 2>/dev/null || python -m resist.run resume="${job%/}"
    done
    return
  fi
  python -m resist.run -m "$@" num_workers="$workers" seed="$seed" train.eval_unit=steps \
    train.eval_every="$half_epoch" hydra.sweep.dir="$dir"
}
for seed in 0 1; do
  sweep bf16 "$seed" 2 "$averaging" protocol.compress=bf16
  sweep int8 "$seed" 2 "$averaging" protocol.compress=int8
  sweep ddp-powersgd "$seed" 1 +experiment=cifar10_cpu_ddp protocol.compress=powersgd
done
for seed in 0 1; do   # the float32 references (the CIFAR-10 study's runs, bitwise the same)
  sweep none "$seed" 2 "$averaging" protocol.compress=none
  sweep ddp-none "$seed" 1 +experiment=cifar10_cpu_ddp
done
