#!/usr/bin/env bash
# The top-level README's measured table: the embedded default (ResIST, 2 workers, digits) and its
# protocol variants (local SGD, DiLoCo, DDP, one worker), seed 0, and the default with seed 1, each
# pinned to 1 thread per worker (what the README's reproducibility note compares), then the default
# under AVX2 kernels and with 2 threads per worker. About 3 minutes on 2 cores.
# Usage (from the repository root): bash experiments/defaults/run.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-experiments/defaults/runs}
run() {  # run NAME OVERRIDES...: one run into $runs/NAME, skipped when it has finished already
  local name=$1; shift
  if [[ -f "$runs/$name/final_model.pt" ]]; then echo "defaults: $name is done ($runs/$name)"; return; fi
  python -m resist.run launcher.threads_per_worker=1 "$@" hydra.run.dir="$runs/$name"  # (a later key wins)
}
run 1-resist
run 2-local_sgd protocol=local_sgd
run 3-diloco protocol=diloco
run 4-ddp protocol=ddp
run 5-none protocol=none num_workers=1
run 6-resist-seed1 seed=1
# the same default on other kernels and thread counts: the last bits of float sums differ
if grep -q avx512f /proc/cpuinfo; then  # (on an AVX2 machine the default already runs AVX2 kernels)
  ATEN_CPU_CAPABILITY=avx2 run 7-resist-avx2
fi
run 8-resist-2threads launcher.threads_per_worker=2
