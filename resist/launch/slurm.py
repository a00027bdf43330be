"""The SLURM launcher: submit one job (submitit) whose tasks run the worker entry."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from resist.config import Config, load_run_config
from resist.errors import WorkerFailedError
from resist.launch.env import DistEnvError, parse_dist_env
from resist.launch.slurm_plan import slurm_plan
from resist.launch.worker import run_worker
from resist.run_dir import RunDir

log = logging.getLogger("resist")


class SlurmWorkerTask:
    """What each SLURM task runs: the worker entry for ``run_dir``, its position from SLURM's
    environment (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, node list, job id)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def __call__(self) -> dict[str, Any] | None:
        env = parse_dist_env(os.environ)
        if env is None:
            raise DistEnvError("SLURM_PROCID: not inside a SLURM task (fix: submit with launcher=slurm)")
        cfg = load_run_config(self.run_dir)
        local_workers = int(os.environ.get("SLURM_NTASKS_PER_NODE", "1").split("(")[0])
        summary = run_worker(cfg, self.run_dir, env, local_workers=local_workers)
        return summary if env.rank == 0 else None


def _sbatch_script(executor: Any) -> str:  # a submitit.AutoExecutor (imported lazily)
    """The script submitit would hand to sbatch, for a dry run.

    Private shim, checked against submitit 1.5.4 (pyproject caps submitit below 1.6): submitit
    renders the script with ``SlurmExecutor._make_submission_file_text``. A release without it gets
    a note instead; the plan printed before it is what would be submitted either way.
    """
    render = getattr(getattr(executor, "_executor", None), "_make_submission_file_text", None)
    if render is None:
        return "(this submitit release does not expose its sbatch script; the plan above is what would be submitted)"
    return render("<worker entry>", "%j")


def submit(cfg: Config, run_dir: Path) -> Any:
    """Submit the prepared ``run_dir`` (or, with ``launcher.dry_run``, only print the plan). Returns
    the submitit job (None for a dry run)."""
    import submitit

    plan = slurm_plan(cfg)
    executor = submitit.AutoExecutor(folder=RunDir(run_dir).slurm / "%j", cluster="slurm")
    executor.update_parameters(**plan)  # submitit validates the parameters here
    if cfg.launcher.dry_run:
        print("sbatch plan (submitit parameters): " + json.dumps(plan, sort_keys=True))
        print(_sbatch_script(executor))
        print(RunDir(run_dir).resolved_config.read_text(encoding="utf-8"), end="")
        return None
    job = executor.submit(SlurmWorkerTask(run_dir))
    print(
        f"submitted SLURM job {job.job_id} ({plan['nodes']} node(s) x {plan['tasks_per_node']} task(s)); "
        f"logs: {job.paths.stdout} and {job.paths.stderr} (one per task: %t); run directory: {run_dir}"
    )
    if cfg.launcher.wait:
        try:
            job.results()
        except submitit.core.utils.FailedJobError as exc:
            raise WorkerFailedError(-1, str(exc)) from None
    return job
