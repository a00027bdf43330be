"""Where a worker process sits, read from its environment (pure).

Supported sources: torchrun (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``,
``MASTER_PORT``) and SLURM (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID`` and the node
list; ``MASTER_ADDR``/``MASTER_PORT`` override the rendezvous derived from the job).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from resist.errors import UserError

TORCHRUN_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
SLURM_KEYS = ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
SLURM_NODELIST_KEYS = ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST", "SLURM_NODELIST")
SLURM_PORT_BASE, SLURM_PORT_SPAN = 20_000, 20_000


class DistEnvError(UserError):
    pass


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int
    source: str  # "torchrun" or "slurm"


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: ``"gpu[03-05,9],cpu1"`` -> ``"gpu03"``."""
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if match is None or not match.group(1):
        raise DistEnvError(f"SLURM node list: cannot parse '{nodelist}' (fix: set MASTER_ADDR explicitly)")
    prefix, ranges = match.group(1), match.group(2)
    return prefix + ranges.split(",")[0].split("-")[0] if ranges else prefix


def _int(environ: Mapping[str, str], key: str) -> int:
    try:
        return int(environ[key])
    except ValueError:
        raise DistEnvError(f"{key}: '{environ[key]}' is not an integer (fix: unset it or give a number)") from None


def parse_dist_env(environ: Mapping[str, str]) -> DistEnv | None:
    """The distributed position this environment describes, or None outside torchrun and SLURM.

    A partially set torchrun environment is an error naming the missing variables; torchrun
    variables take precedence over SLURM's (torchrun inside a SLURM job). ``MASTER_ADDR`` and
    ``MASTER_PORT`` alone only override SLURM's derived rendezvous.
    """
    present = [key for key in TORCHRUN_KEYS if key in environ]
    if any(key in environ for key in TORCHRUN_KEYS[:3]):  # MASTER_* alone may come with SLURM
        missing = [key for key in TORCHRUN_KEYS if key not in environ]
        if missing:
            raise DistEnvError(
                f"{', '.join(missing)}: missing while {', '.join(present)} are set (fix: launch with torchrun, "
                "which sets all of RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, or unset them)"
            )
        env = DistEnv(
            _int(environ, "RANK"),
            _int(environ, "WORLD_SIZE"),
            _int(environ, "LOCAL_RANK"),
            environ["MASTER_ADDR"],
            _int(environ, "MASTER_PORT"),
            "torchrun",
        )
    elif "SLURM_PROCID" in environ:
        missing = [key for key in SLURM_KEYS if key not in environ]
        nodelist = next((environ[key] for key in SLURM_NODELIST_KEYS if key in environ), None)
        if nodelist is None and "MASTER_ADDR" not in environ:
            missing.append("SLURM_JOB_NODELIST or MASTER_ADDR")
        if "MASTER_PORT" not in environ and "SLURM_JOB_ID" not in environ:
            missing.append("SLURM_JOB_ID or MASTER_PORT")
        if missing:
            raise DistEnvError(
                f"{', '.join(missing)}: missing in a SLURM task (fix: start the workers with srun "
                "inside an allocation, one task per worker)"
            )
        addr = environ.get("MASTER_ADDR") or first_host(nodelist or "")
        port = (
            _int(environ, "MASTER_PORT")
            if "MASTER_PORT" in environ
            else SLURM_PORT_BASE + _int(environ, "SLURM_JOB_ID") % SLURM_PORT_SPAN
        )
        env = DistEnv(
            _int(environ, "SLURM_PROCID"),
            _int(environ, "SLURM_NTASKS"),
            _int(environ, "SLURM_LOCALID"),
            addr,
            port,
            "slurm",
        )
    else:
        return None
    if not 0 <= env.rank < env.world_size or env.local_rank < 0:
        raise DistEnvError(
            f"rank {env.rank} of world size {env.world_size} (local rank {env.local_rank}) from "
            f"{env.source} is impossible (fix: check the launcher's environment)"
        )
    return env


def cpu_threads_per_worker(environ: Mapping[str, str], cpu_count: int, local_workers: int) -> int:
    """CPU threads one worker should use so that co-located workers do not oversubscribe the cores:
    ``SLURM_CPUS_PER_TASK`` when SLURM allots cores, else the cores divided among ``local_workers``."""
    if "SLURM_CPUS_PER_TASK" in environ:
        return max(1, _int(environ, "SLURM_CPUS_PER_TASK"))
    local = _int(environ, "LOCAL_WORLD_SIZE") if "LOCAL_WORLD_SIZE" in environ else local_workers
    return max(1, cpu_count // max(1, local))
