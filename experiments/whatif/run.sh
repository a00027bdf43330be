#!/usr/bin/env bash
# The bandwidth what-if's one measurement of its own: this machine's loopback link (the projections
# themselves read the CIFAR-10 study's runs and the communication study's benchmarks).
# Usage (from the repository root): bash experiments/whatif/run.sh [RUNS_DIR]
set -euo pipefail
runs=${1:-experiments/whatif/runs}
python -m experiments.whatif.probe --out "$runs/loopback.json"
