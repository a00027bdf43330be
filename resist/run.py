"""Command-line entry: ``python -m resist.run [group=option ...] [key=value ...] [+experiment=NAME]``.

Hydra composes ``conf/`` once, here; the result is converted to the typed :class:`Config`,
validated, saved as ``resolved_config.yaml`` in the run directory and handed to the launcher.
Configuration and data errors are printed as one line and exit with status 2 before training
starts (set ``HYDRA_FULL_ERROR=1`` for the full traceback).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from resist.config import register_schemas, to_typed_config, validate
from resist.errors import UserError, WorkerFailedError, one_line

register_schemas()


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def _run(cfg: DictConfig) -> float | None:
    try:
        return _run_job(cfg)
    except UserError as exc:  # raised inside a Hydra job: report it here, in one line
        _exit_with(str(exc))


def _run_job(cfg: DictConfig) -> float | None:
    typed = to_typed_config(cfg)
    validate(typed)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    run_dir = Path(HydraConfig.get().runtime.output_dir)

    from resist.launch import launch  # torch and the data stack load only for a valid config

    summary = launch(typed, resolved, run_dir)
    accuracy = summary.get("test/acc1")
    if accuracy is not None:
        print(f"final test accuracy: {accuracy:.2%} ({summary['step']} steps, {summary['time/elapsed_s']:.1f} s)")
    print(f"run directory: {run_dir}")
    return accuracy


def main() -> None:
    user_wants_traceback = "HYDRA_FULL_ERROR" in os.environ
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's multi-line report
    try:
        _run()
    except WorkerFailedError as exc:
        print(exc.details, file=sys.stderr)
        print(f"resist: error: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:
        message = None if user_wants_traceback else one_line(exc)
        if message is None:
            raise
        _exit_with(message)


def _exit_with(message: str) -> NoReturn:
    print(f"resist: error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
