#!/usr/bin/env bash
# The convergence study's runs: CIFAR-10, PreActResNet "mini deep", S = 4 workers, the cifar10_cpu
# recipe (batch 64 per worker, lr 0.05 ×0.1 at 50 % and 75 %, l = 20) for 20 epochs instead of 2,
# evaluated every epoch: local SGD, ResIST, DiLoCo (outer Nesterov lr 0.7, momentum 0.9) and ResIST
# with that outer optimizer in float32, then ResIST and DiLoCo with int4 transfers (error feedback).
# One Hydra multirun per (setting, seed); run again, the script resumes the runs that were stopped
# (from their last checkpoint) and keeps those that finished (experiments/sweeps.sh). A run takes
# about 50 minutes alone on 2 cores, so a session runs a few: name them in SETTINGS.
# Each finished run's records (metrics.jsonl, resolved_config.yaml) are copied to records/ (kept in
# git: the analysis reads them, so runs finished in different sessions are analysed together).
# Usage (from the repository root): bash experiments/convergence/run.sh [RUNS_DIR] [SEEDS] [SETTINGS]
#   e.g. bash experiments/convergence/run.sh experiments/convergence/runs "0" "resist diloco"
set -euo pipefail
source "$(dirname "$0")/../sweeps.sh"
runs=${1:-experiments/convergence/runs}
seeds=${2:-0}
settings=${3:-local_sgd resist diloco resist_outer resist_int4 diloco_int4}
declare -A overrides=(
  [local_sgd]="+experiment=cifar10_cpu_local_sgd"
  [resist]="+experiment=cifar10_cpu_resist"
  [diloco]="+experiment=cifar10_cpu_diloco"
  [resist_outer]="+experiment=cifar10_cpu_resist protocol.outer_optimizer=nesterov"
  [resist_int4]="+experiment=cifar10_cpu_resist protocol.compress=int4"
  [diloco_int4]="+experiment=cifar10_cpu_diloco protocol.compress=int4"
)
common=(num_workers=4 train.epochs=20 train.eval_unit=epochs train.eval_every=1)
for seed in $seeds; do
  for setting in $settings; do
    [[ -v "overrides[$setting]" ]] || { echo "convergence: unknown setting $setting" >&2; exit 1; }
    # shellcheck disable=SC2086  # the overrides are words
    sweep "$runs/$setting-seed$seed" 1 ${overrides[$setting]} seed="$seed" "${common[@]}"
  done
done
records="$(dirname "$0")/records"
for job in "$runs"/*/*/; do
  name=$(basename "$(dirname "$job")")
  if grep -q '"event": "summary"' "$job/metrics.jsonl" 2>/dev/null && [[ ! -d "$records/$name" ]]; then
    mkdir -p "$records/$name" && cp "$job/metrics.jsonl" "$job/resolved_config.yaml" "$records/$name/"
  fi
done
