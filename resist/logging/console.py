"""Console output: a progress bar over optimizer steps on a terminal, and one log line per evaluation."""

from __future__ import annotations

import logging

from tqdm import tqdm

from resist.logging import Record

log = logging.getLogger("resist")


class ConsoleSink:
    """``progress`` None shows the bar only when stderr is a terminal (tqdm's ``disable=None``).
    The bar's length comes from the ``start`` record."""

    def __init__(self, progress: bool | None) -> None:
        self.bar = tqdm(unit="step", dynamic_ncols=True, disable=None if progress is None else not progress)
        self._step = 0

    def log(self, record: Record) -> None:
        if record["event"] == "start":
            self.bar.reset(total=record["total_steps"])
            return
        step = record["step"]
        if step > self._step:
            self.bar.update(step - self._step)
            self._step = step
        if record["event"] == "train":
            self.bar.set_postfix(loss=f"{record['train/loss']:.3f}", lr=f"{record['lr']:.3g}", refresh=False)
        elif record["event"] == "eval":
            line = (
                f"step {step} (epoch {record['epoch']:.2f}): test acc {record['test/acc1']:.2%}, "
                f"top-5 {record['test/acc5']:.2%}, loss {record['test/loss']:.4f}"
            )
            if self.bar.disable:
                log.info(line)
            else:
                tqdm.write(line)

    def close(self) -> None:
        self.bar.close()
