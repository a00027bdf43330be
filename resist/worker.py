"""Worker entry for external launchers: ``python -m resist.worker [--resume] RUN_DIR``.

Runs one worker of a run directory prepared by ``python -m resist.run`` (its
``resolved_config.yaml``), at the position torchrun or SLURM gives it through the environment;
``--resume`` continues the run from its newest checkpoint. SIGTERM or SIGINT stop it at the next
round end, after a checkpoint all workers write together.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from resist.config import load_run_config
from resist.errors import UserError
from resist.launch.env import DistEnvError, parse_dist_env
from resist.launch.stops import round_end_stop
from resist.launch.worker_process import run_worker
from resist.run_dir import RunDir


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    resume = argv[:1] == ["--resume"]
    argv = argv[1:] if resume else argv
    if len(argv) != 1:
        sys.exit("usage: python -m resist.worker [--resume] RUN_DIR  (under torchrun or srun)")
    try:
        env = parse_dist_env(os.environ)
        if env is None:
            raise DistEnvError(
                "RANK/SLURM_PROCID: no torchrun or SLURM environment (fix: start this module with "
                "torchrun or srun, or use python -m resist.run for a local run)"
            )
        run_dir = RunDir(Path(argv[0]))
        cfg = load_run_config(run_dir)
        run_worker(cfg, run_dir, env, resume=resume, stop=round_end_stop(cfg))
    except UserError as exc:
        print(f"resist: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main(sys.argv[1:])
