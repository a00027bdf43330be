"""Progress a user can see without a terminal: rank 0's progress lines (injected clock), the
evaluation lines, and the log set-up that sends them once to stderr and once to run.log."""

from __future__ import annotations

import io
import logging
import sys
from types import SimpleNamespace

import pytest
import torch

from resist.config import Config
from resist.logging.console import ConsoleSink, shows_bar, worker_logging
from resist.logging.progress import ProgressLine, duration


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Lines:
    """The ``resist`` logger's messages so far."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog

    def __call__(self) -> list[str]:
        return [r.getMessage() for r in self.caplog.records if r.name.startswith("resist")]


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Lines:
    caplog.set_level(logging.INFO, logger="resist")
    return Lines(caplog)


def _progress(clock: FakeClock, *, enabled: bool = True, every_s: float = 60.0) -> ProgressLine:
    # 960 steps, 120 per epoch (8 epochs), 2 workers x 64 images per step
    return ProgressLine(
        total_steps=960, steps_per_epoch=120, global_batch=128, every_s=every_s, enabled=enabled, clock=clock
    )


def test_first_step_then_at_most_once_per_interval(lines):
    clock = FakeClock()
    progress = _progress(clock)
    clock.now += 0.5
    progress.step(1, torch.tensor(2.5))
    # 1 step x 128 images in 0.5 s; 959 steps left at 2 steps/s: 479.5 s
    assert lines() == ["step 1/960 (epoch 0.01/8): loss 2.500, 256 images/s, ETA 8m00s"]
    for step in range(2, 121):  # 0.5 s per step: 60 s after the first line comes at step 121
        clock.now += 0.5
        progress.step(step, torch.tensor(float(step)))
    assert len(lines()) == 1
    clock.now += 0.5
    progress.step(121, torch.tensor(121.0))
    # loss: the mean over steps 2..121; 120 steps x 128 images in 60 s; 839 steps left at 2 steps/s
    assert lines()[1:] == ["step 121/960 (epoch 1.01/8): loss 61.500, 256 images/s, ETA 7m00s"]


def test_rate_and_eta_from_the_interval_since_the_previous_line(lines):
    clock = FakeClock()
    progress = _progress(clock)
    progress.step(1, torch.tensor(1.0))  # no time has passed: no rate yet
    clock.now += 100.0  # a slow step (e.g. with an evaluation): 1 step in 100 s
    progress.step(2, torch.tensor(0.412))
    for step in range(3, 11):
        clock.now += 1.0
        progress.step(step, torch.tensor(0.4))
    clock.now += 58.0  # 9 steps x 128 images in 66 s since the previous line
    progress.step(11, torch.tensor(0.8))
    assert lines() == [
        "step 1/960 (epoch 0.01/8): loss 1.000",
        "step 2/960 (epoch 0.02/8): loss 0.412, 1 images/s, ETA 26h36m",  # 958 steps x 100 s
        "step 11/960 (epoch 0.09/8): loss 0.444, 17 images/s, ETA 1h55m",  # 949 steps x 66/9 s = 6959 s
    ]


def test_every_step_with_zero_interval_and_fast_rates_with_separators(lines):
    clock = FakeClock()
    progress = ProgressLine(total_steps=3, steps_per_epoch=12, global_batch=1234, every_s=0, enabled=True, clock=clock)
    for step in (1, 2, 3):
        clock.now += 0.1
        progress.step(step, torch.tensor(0.25))
    assert lines() == [
        "step 1/3 (epoch 0.08/0.25): loss 0.250, 12,340 images/s, ETA 0s",
        "step 2/3 (epoch 0.17/0.25): loss 0.250, 12,340 images/s, ETA 0s",
        "step 3/3 (epoch 0.25/0.25): loss 0.250, 12,340 images/s, ETA 0s",
    ]


def test_a_resumed_run_counts_from_its_start_step(lines):
    clock = FakeClock()
    progress = ProgressLine(
        total_steps=960, steps_per_epoch=120, global_batch=128, every_s=60, enabled=True, start_step=480, clock=clock
    )
    clock.now += 2.0
    progress.step(481, torch.tensor(0.3))
    assert lines() == ["step 481/960 (epoch 4.01/8): loss 0.300, 64 images/s, ETA 15m58s"]  # 479 steps x 2 s


def test_disabled_logs_nothing_and_never_reads_the_loss(lines):
    class Unreadable(torch.Tensor):
        def item(self):  # a device sync
            raise AssertionError("read")

    clock = FakeClock()
    progress = _progress(clock, enabled=False)
    for step in range(1, 200):
        clock.now += 10.0
        progress.step(step, torch.tensor(1.0).as_subclass(Unreadable))
    assert lines() == []


def test_the_loss_is_read_only_when_a_line_is_logged(lines, monkeypatch):
    reads = []
    monkeypatch.setattr(torch.Tensor, "item", lambda self: reads.append(1) or float(self.tolist()))
    clock = FakeClock()
    progress = _progress(clock)
    for step in range(1, 50):
        clock.now += 1.0
        progress.step(step, torch.tensor(1.0))
    assert len(reads) == len(lines()) == 1


def test_enabled_on_rank_0_without_a_bar_only(monkeypatch):
    plan = SimpleNamespace(total_steps=96, steps_per_epoch=12)
    monkeypatch.setattr("sys.stderr", Terminal())
    cfg = Config()
    assert shows_bar(None) and not ProgressLine.for_run(cfg, SimpleNamespace(rank=0, size=2), plan).enabled
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not shows_bar(None)
    line = ProgressLine.for_run(cfg, SimpleNamespace(rank=0, size=2), plan)
    assert line.enabled and line.global_batch == 2 * cfg.train.batch_size and line.every_s == 60.0
    assert not ProgressLine.for_run(cfg, SimpleNamespace(rank=1, size=2), plan).enabled
    cfg.logger.progress = True  # a bar forced onto a log file: no lines
    assert not ProgressLine.for_run(cfg, SimpleNamespace(rank=0, size=2), plan).enabled
    monkeypatch.setattr("sys.stderr", Terminal())
    cfg.logger.progress = False  # no bar on a terminal: lines
    assert ProgressLine.for_run(cfg, SimpleNamespace(rank=0, size=2), plan).enabled


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.4, "0s"), (42, "42s"), (59.6, "1m00s"), (312, "5m12s"), (3599, "59m59s"), (7380, "2h03m")]
)
def test_duration(seconds, text):
    assert duration(seconds) == text


EVAL = {"event": "eval", "step": 24, "epoch": 2.0, "test/acc1": 0.9861, "test/acc5": 1.0, "test/loss": 0.05123}


@pytest.mark.parametrize("stderr", [io.StringIO, Terminal], ids=["log file", "terminal"])
def test_lines_reach_stderr_and_run_log_once_each(tmp_path, monkeypatch, stderr):
    """Whatever handlers the process already has (Hydra's on the root logger in the launching
    process, writing run.log too), each line is written once to stderr and once to run.log, and the
    logger is restored afterwards."""
    run_log = tmp_path / "run.log"
    root, resist_log = logging.getLogger(), logging.getLogger("resist")
    hydra_like = [logging.StreamHandler(io.StringIO()), logging.FileHandler(run_log, mode="a")]
    for handler in hydra_like:
        root.addHandler(handler)
    before = resist_log.level, resist_log.propagate, list(resist_log.handlers)
    monkeypatch.setattr("sys.stderr", stderr())
    try:
        with worker_logging(run_log, rank=0):
            sink = ConsoleSink(progress=None)
            sink.log({"event": "start", "step": 0, "total_steps": 96})
            sink.log(EVAL)
            logging.getLogger("resist.data.sources").info("data: digits")
            sink.close()
    finally:
        for handler in hydra_like:
            root.removeHandler(handler)
            handler.close()
    eval_line = "step 24 (epoch 2.00): test acc 98.61%, top-5 100.00%, loss 0.0512"
    for text in (sys.stderr.getvalue(), run_log.read_text()):
        assert text.count(eval_line) == 1 and text.count("data: digits") == 1
        assert "][resist][INFO] - " + eval_line in text
    assert hydra_like[0].stream.getvalue() == ""
    assert (resist_log.level, resist_log.propagate, list(resist_log.handlers)) == before


def test_other_ranks_log_warnings_only(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    resist_log = logging.getLogger("resist")
    before = resist_log.level, resist_log.propagate, list(resist_log.handlers)
    with worker_logging(tmp_path / "run.log", rank=1):
        logging.getLogger("resist.data.sources").info("data: digits")
        resist_log.warning("careful")
    assert caplog.messages == ["careful"] and not (tmp_path / "run.log").exists()
    assert (resist_log.level, resist_log.propagate, list(resist_log.handlers)) == before
