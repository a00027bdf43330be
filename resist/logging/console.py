"""Console output: a progress bar over optimizer steps on a terminal, one log line per evaluation,
and rank 0's log set-up, which sends the ``resist`` logger's lines to stderr and ``run.log``."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from resist.logging import Record

log = logging.getLogger("resist")

LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"  # Hydra's job logging format


def shows_bar(progress: bool | None) -> bool:
    """Whether the progress bar is shown: ``logger.progress``, or (None) whether stderr is a terminal.
    Without a bar, progress goes to log lines instead (:class:`resist.logging.progress.ProgressLine`)."""
    if progress is not None:
        return progress
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


class ConsoleSink:
    """A progress bar (when :func:`shows_bar`), its length from the ``start`` record, one ``resist``
    log line per evaluation, and for a ``resume`` record where the run continues and, when it does
    not continue bit for bit (another device type or platform), a warning saying so."""

    def __init__(self, progress: bool | None) -> None:
        self.bar = tqdm(unit="step", dynamic_ncols=True, disable=not shows_bar(progress))
        self._step = 0

    def log(self, record: Record) -> None:
        if record["event"] == "start":
            self.bar.reset(total=record["total_steps"])
            return
        if record["event"] == "resume":
            _log_resume(record)
        step = record["step"]
        if step > self._step:
            self.bar.update(step - self._step)
            self._step = step
        if record["event"] == "train":
            self.bar.set_postfix(loss=f"{record['train/loss']:.3f}", lr=f"{record['lr']:.3g}", refresh=False)
        elif record["event"] == "eval":
            log.info(
                f"step {step} (epoch {record['epoch']:.2f}): test acc {record['test/acc1']:.2%}, "
                f"top-5 {record['test/acc5']:.2%}, loss {record['test/loss']:.4f}"
            )

    def close(self) -> None:
        self.bar.close()


def _log_resume(record: Record) -> None:
    """The ``resume`` record as log lines: where the run continues, its schedule when a resume
    extended it past its schedule's end, and a warning when it is no longer bit for bit."""
    step, total, horizon = record["step"], record["total_steps"], record["schedule_steps"]
    extended = f"; steps past {horizon} keep the learning rate of step {horizon}" if horizon < total else ""
    log.info(f"resumed at step {step} of {total} from {record['checkpoint']}{extended}")
    if not record["bitwise"]:
        log.warning(
            "this resume is no longer bitwise equal to an uninterrupted run; what differs from the checkpoint's "
            f"host: {'; '.join(record['platform_changes'])}"
        )


class _StderrHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` through ``tqdm.write``, so a progress bar stays intact."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
            sys.stderr.flush()
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def worker_logging(run_log: Path, *, rank: int) -> Iterator[None]:
    """While open, rank 0's ``resist`` INFO lines (its child loggers' too) go exactly once to stderr
    and once to ``run_log`` (appended), in Hydra's format, in whatever process the worker runs. The
    logger stops propagating meanwhile, so handlers already on the root logger (Hydra's stdout and
    ``run.log`` handlers when the worker runs in the launching process, ``logging.basicConfig`` under
    torchrun) do not repeat them. Other ranks log warnings only. On exit the logger is as before."""
    handlers: list[logging.Handler] = []
    if rank == 0:
        handlers = [_StderrHandler(), logging.FileHandler(run_log, mode="a", encoding="utf-8")]
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        log.addHandler(handler)
    saved = log.level, log.propagate
    log.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    log.propagate = rank != 0
    try:
        yield
    finally:
        log.setLevel(saved[0])
        log.propagate = saved[1]
        for handler in handlers:
            log.removeHandler(handler)
            handler.close()
