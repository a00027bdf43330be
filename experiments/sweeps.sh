# Shared by the studies' run scripts (source it): one Hydra multirun of a study, made resumable.
#
#   sweep DIR JOBS OVERRIDES...
#
# runs `python -m resist.run -m OVERRIDES... hydra.sweep.dir=DIR` (JOBS runs); when DIR is there
# already, it resumes each run that has not finished (from its last checkpoint) and keeps those that
# have, and refuses a DIR holding fewer than its JOBS runs (stopped before they all started).
sweep() {
  local dir=$1 jobs=$2
  shift 2
  if [[ -d "$dir" ]]; then
    if (( $(find "$dir" -mindepth 2 -maxdepth 2 -name resolved_config.yaml | wc -l) < jobs )); then
      echo "sweep: $dir holds fewer than its $jobs runs (stopped before they all started); move it away to rerun it" >&2
      exit 1
    fi
    for job in "$dir"/*/; do
      grep -q '"event": "summary"' "$job/metrics.jsonl" 2>/dev/null || python -m resist.run resume="${job%/}"
    done
    return
  fi
  python -m resist.run -m "$@" hydra.sweep.dir="$dir"
}
