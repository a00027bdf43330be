#!/usr/bin/env bash
# The step-and-round-time study reads the communication study's benchmarks (one benchmark measures
# bytes and seconds side by side): run that study.
# Usage (from the repository root): bash experiments/speed/run.sh [RUNS_DIR]
set -euo pipefail
exec bash experiments/comm/run.sh "${1:-experiments/comm/runs}"
