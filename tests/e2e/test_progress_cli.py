"""Progress without a terminal (issue 11, item 7): with stderr captured, as under SLURM, nohup or
CI, rank 0's progress and evaluation lines reach stderr and ``run.log``, each exactly once, whether
rank 0 runs in a spawned process, in the launching process itself or under torchrun."""

from __future__ import annotations

import re

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.slow

PROGRESS = re.compile(
    r"\]\[resist\]\[INFO\] - (step (\d+)/2 \(epoch [\d.]+/[\d.]+\): loss \d+\.\d{3}, [\d,]+ images/s, ETA [\dhms]+)$"
)
EVAL = re.compile(
    r"\]\[resist\]\[INFO\] - (step 2 \(epoch [\d.]+\): test acc [\d.]+%, top-5 [\d.]+%, loss \d+\.\d{4})$"
)


@pytest.mark.parametrize(
    "overrides",
    [["num_workers=2"], ["protocol=none", "num_workers=1"], ["num_workers=2", "launcher=torchrun"]],
    ids=["spawned workers", "in the launching process", "torchrun"],
)
def test_progress_and_eval_lines_reach_stderr_and_run_log_once(overrides, tmp_path):
    result = run_cli("+debug=fast", "logger.progress_every_s=0", *overrides, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    run_log = (tmp_path / "run.log").read_text(encoding="utf-8")
    for name, text in (("stderr", result.stderr), ("run.log", run_log)):
        lines = text.splitlines()
        progress = [m for m in map(PROGRESS.search, lines) if m]
        assert [int(m.group(2)) for m in progress] == [1, 2], f"{name}:\n{text}"  # every step: interval 0
        assert len([m for m in map(EVAL.search, lines) if m]) == 1, f"{name}:\n{text}"
    # run.log holds what the console showed: every line rank 0 logged to stderr, once.
    shown = [line for line in result.stderr.splitlines() if "][resist" in line]
    assert shown and all(run_log.splitlines().count(line) == 1 for line in shown), run_log
    # to stderr only, not also through Hydra's stdout handler (the launching process's own lines use it)
    assert not [line for line in result.stdout.splitlines() if PROGRESS.search(line) or EVAL.search(line)]
