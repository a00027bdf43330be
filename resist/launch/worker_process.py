"""The worker entry every launcher runs: join the process group, train, write (rank 0) the records."""

from __future__ import annotations

import contextlib
import logging
import os
import warnings

import torch

from resist.checkpoints import CheckpointError, CheckpointStore
from resist.comm.backends import init_process_comm, shutdown_process_comm
from resist.config import Config, DeviceKind
from resist.errors import UserError
from resist.launch.env import DistEnv, cpu_threads_per_worker
from resist.launch.resuming import continue_metrics
from resist.launch.run_lock import holding_run
from resist.logging import FanOut, Record
from resist.logging.console import worker_logging
from resist.logging.sinks import run_name, run_sinks
from resist.run_dir import RunDir
from resist.train.stop import StopRequest

log = logging.getLogger("resist")


class DeviceError(UserError):
    pass


# What a run that asks for device=cuda is told where no GPU is visible (here, or in pre-flight).
NO_CUDA_GPU = "device: device=cuda but no CUDA GPU is visible (fix: use device=cpu or device=auto)"


class WorldSizeError(UserError):
    pass


def check_world(cfg: Config, env: DistEnv) -> None:
    """The launcher started the world the config was validated for (a hand-written torchrun or srun
    line may not have)."""
    if env.world_size != cfg.num_workers:
        raise WorldSizeError(
            f"num_workers: the run was prepared for {cfg.num_workers} workers, but {env.source} started "
            f"{env.world_size} (fix: start {cfg.num_workers} workers, e.g. torchrun --nproc-per-node="
            f"{cfg.num_workers} or srun --ntasks={cfg.num_workers}, or prepare the run with "
            f"num_workers={env.world_size})"
        )


def worker_device(kind: DeviceKind, local_rank: int) -> torch.device:
    """``cuda:<local_rank>`` when CUDA is used (``auto`` with a GPU, or ``cuda``), else CPU."""
    if kind == DeviceKind.cuda and not torch.cuda.is_available():
        raise DeviceError(NO_CUDA_GPU)
    if kind == DeviceKind.cpu or not torch.cuda.is_available():
        return torch.device("cpu")
    if local_rank >= torch.cuda.device_count():
        raise DeviceError(
            f"device: worker with local rank {local_rank} needs GPU {local_rank}, but only "
            f"{torch.cuda.device_count()} are visible (fix: fewer workers per node, or device=cpu)"
        )
    return torch.device("cuda", local_rank)


def run_worker(
    cfg: Config,
    run_dir: RunDir,
    env: DistEnv,
    *,
    resume: bool = False,
    local_workers: int = 1,
    stop: StopRequest | None = None,
) -> Record:
    """Train as the worker ``env`` describes; rank 0 writes the run's records. With ``resume`` the
    run continues from its newest checkpoint (rank 0 first cuts ``metrics.jsonl`` back to it). Returns
    the summary, or a ``stopped`` record when ``stop`` was agreed on (after a checkpoint)."""
    from resist.train.loop import train

    check_world(cfg, env)
    device = worker_device(cfg.device, env.local_rank)
    if device.type == "cuda":  # before the process group: NCCL, pinned memory and copies use it
        torch.cuda.set_device(device)
    # The launcher warned once about more threads and loader processes than cores (launch/preflight.py);
    # torch would warn again in every worker, for every DataLoader.
    warnings.filterwarnings("ignore", message="This DataLoader will create", category=UserWarning)
    threads = cfg.launcher.threads_per_worker
    torch.set_num_threads(threads or cpu_threads_per_worker(os.environ, os.cpu_count() or 1, local_workers))
    comm = init_process_comm(
        rank=env.rank,
        world_size=env.world_size,
        master_addr=env.master_addr,
        master_port=env.master_port,
        device=device,
        timeout_s=cfg.launcher.collective_timeout_s,
    )
    with contextlib.ExitStack() as held:
        if env.rank == 0:  # one live process per run directory (a second resume is refused)
            held.enter_context(holding_run(run_dir))
        checkpoint = None
        if resume:
            checkpoint = CheckpointStore(run_dir).newest()
            if checkpoint is None:
                raise CheckpointError(f"resume: {run_dir} has no checkpoint (fix: start the run again)")
            if env.rank == 0:
                continue_metrics(run_dir, checkpoint)
        # Rank 0's lines (progress, evaluations) go to stderr and run.log, whichever process it runs in.
        held.enter_context(worker_logging(run_dir.run_log, rank=env.rank))
        sink = run_sinks(cfg, run_dir, resuming=checkpoint is not None) if env.rank == 0 else FanOut([])
        try:
            if env.rank == 0:
                log.info("run %s: %d worker(s) on %s; run directory %s", run_name(cfg), env.world_size, device, run_dir)
            summary = train(cfg, comm, sink, run_dir=run_dir, resume=checkpoint, stop=stop)
        finally:
            sink.close()
    # Only after a success: a failing worker keeps its connections until its process ends, after the
    # launcher has its error, so that a peer's "connection closed" is not reported as the cause.
    shutdown_process_comm()
    return summary
