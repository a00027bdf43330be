"""The SLURM job layout of a run (pure): one task per worker, the sbatch parameters submitit gets."""

from __future__ import annotations

import math
from typing import Any

from resist.config import Config, ConfigError


def slurm_plan(cfg: Config) -> dict[str, Any]:
    """``submitit.AutoExecutor.update_parameters`` keywords for ``cfg``: ``nodes`` ×
    ``tasks_per_node`` = ``num_workers`` tasks, one per GPU when ``gpus_per_node`` > 0."""
    launcher, workers = cfg.launcher, cfg.num_workers
    if launcher.gpus_per_node < 0 or launcher.cpus_per_task < 1 or launcher.time_min < 1:
        raise ConfigError(
            "launcher",
            "gpus_per_node must be >= 0, cpus_per_task and time_min >= 1",
            "set e.g. launcher.gpus_per_node=4 launcher.cpus_per_task=8 launcher.time_min=240",
        )
    if launcher.gpus_per_node > 0 and launcher.tasks_per_node not in (None, launcher.gpus_per_node):
        raise ConfigError(
            "launcher.tasks_per_node",
            f"{launcher.tasks_per_node} differs from gpus_per_node={launcher.gpus_per_node}: one task drives one GPU",
            "remove launcher.tasks_per_node",
        )
    per_node = launcher.gpus_per_node or launcher.tasks_per_node or workers
    if per_node < 1 or workers % min(per_node, workers):
        raise ConfigError(
            "num_workers",
            f"{workers} workers do not fill nodes of {per_node} tasks",
            "choose num_workers as a multiple of the tasks (GPUs) per node",
        )
    per_node = min(per_node, workers)
    plan: dict[str, Any] = {
        "nodes": math.ceil(workers / per_node),
        "tasks_per_node": per_node,
        "cpus_per_task": launcher.cpus_per_task,
        "timeout_min": launcher.time_min,
        "slurm_signal_delay_s": launcher.signal_delay_s,
        "slurm_srun_args": ["--kill-on-bad-exit=1"],  # a task that fails ends the others at once
        "name": cfg.name,
    }
    if launcher.gpus_per_node:
        plan["gpus_per_node"] = launcher.gpus_per_node
    if launcher.mem_gb is not None:
        plan["mem_gb"] = launcher.mem_gb
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(launcher, key):
            plan[f"slurm_{key}"] = getattr(launcher, key)
    if launcher.sbatch_extra:
        plan["slurm_additional_parameters"] = dict(launcher.sbatch_extra)
    return plan
