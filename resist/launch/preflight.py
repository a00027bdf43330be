"""Pre-flight checks of a validated run, before any worker starts: the data is there, the devices
are there, the SLURM layout is possible, and the run directory holds no run (never overwritten)."""

from __future__ import annotations

import logging
import netrc
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch

from resist.config import Config, DeviceKind, LauncherName, save_resolved_config
from resist.data.sources import check_available
from resist.errors import UserError
from resist.launch.env import cpu_threads_per_worker
from resist.launch.slurm_plan import slurm_plan
from resist.launch.worker_process import NO_CUDA_GPU, DeviceError
from resist.run_dir import RunDir

log = logging.getLogger("resist")


class RunDirError(UserError):
    pass


def resolved_device(cfg: Config) -> DeviceKind:
    """The device type the run's workers train on, as its config records it: ``cfg.device``, with
    ``auto`` resolved to CUDA when a GPU is visible here (local launchers) or the SLURM job asks for
    GPUs (``launcher.gpus_per_node``), else to the CPU."""
    if cfg.device != DeviceKind.auto:
        return cfg.device
    if cfg.launcher.name == LauncherName.slurm:
        return DeviceKind.cuda if cfg.launcher.gpus_per_node > 0 else DeviceKind.cpu
    return DeviceKind.cuda if torch.cuda.is_available() else DeviceKind.cpu


def check_devices(cfg: Config, resuming: RunDir | None = None) -> None:
    """Fail before any worker starts when the requested devices are not there (``resuming``: the run
    directory being resumed, whose device is the run's own)."""
    if cfg.device == DeviceKind.cuda and not torch.cuda.is_available():
        if resuming is not None:
            raise DeviceError(
                "device: the run being resumed trains on cuda and no CUDA GPU is visible (fix: resume it on a host "
                f"with one, or continue it on the CPU with resume={resuming} device=cpu, after which it is no "
                "longer bitwise equal to an uninterrupted run)"
            )
        raise DeviceError(NO_CUDA_GPU)
    uses_cuda = cfg.device != DeviceKind.cpu and torch.cuda.is_available()
    if uses_cuda and cfg.num_workers > torch.cuda.device_count():
        raise DeviceError(
            f"num_workers: {cfg.num_workers} workers need one GPU each, {torch.cuda.device_count()} "
            "visible (fix: fewer workers, device=cpu, or a cluster launcher)"
        )
    if not uses_cuda and cfg.train.amp.value == "fp16":
        raise DeviceError("train.amp: fp16 needs CUDA (fix: use train.amp=bf16 on CPU, or device=cuda)")


def prepare_run_dir(run_dir: RunDir, cfg: Config) -> None:
    """Create ``run_dir`` and write ``cfg`` as its ``resolved_config.yaml``; refuse a directory that
    holds a run."""
    if run_dir.holds_run():
        raise RunDirError(
            f"hydra.run.dir: {run_dir} already holds a run ({run_dir.metrics.name}); refusing to overwrite it "
            "(fix: choose a new hydra.run.dir or move the old run away)"
        )
    run_dir.path.mkdir(parents=True, exist_ok=True)
    save_resolved_config(run_dir, cfg)


def preflight(cfg: Config, run_dir: RunDir, *, resume: bool = False) -> None:
    """Every check that can fail before anything is written (a ``UserError`` names the problem);
    ``resume``: the command resumes the run in ``run_dir``."""
    on_cluster = cfg.launcher.name == LauncherName.slurm
    if on_cluster:
        slurm_plan(cfg)  # an impossible job layout is a ConfigError
    check_available(cfg.dataset)
    if not on_cluster:  # compute nodes have their own devices; each worker checks its own
        check_devices(cfg, run_dir if resume else None)
        warning = oversubscription(cfg, os.environ, os.cpu_count() or 1)
        if warning is not None:
            log.warning(warning)
    check_wandb_login(cfg, os.environ)


def oversubscription(cfg: Config, environ: Mapping[str, str], cpu_count: int) -> str | None:
    """A warning when this machine's CPU workers would run more threads and DataLoader processes
    than it has cores (each worker: its compute threads and ``dataset.loader_workers``), else None.
    Such a run works, only slower than fewer workers would."""
    if cfg.device == DeviceKind.cuda:
        return None
    threads = cfg.launcher.threads_per_worker or cpu_threads_per_worker(environ, cpu_count, cfg.num_workers)
    busy = cfg.num_workers * (threads + cfg.dataset.loader_workers)
    if busy <= cpu_count:
        return None
    return (
        f"{cfg.num_workers} workers x ({threads} thread(s) + {cfg.dataset.loader_workers} loader process(es)) = "
        f"{busy} busy processes and threads on {cpu_count} CPU core(s): the run works, slower than with fewer "
        "(num_workers is the number of training workers; dataset.loader_workers the DataLoader processes of each)"
    )


def check_wandb_login(cfg: Config, environ: Mapping[str, str]) -> None:
    """W&B online needs credentials: ``WANDB_API_KEY`` or a ``netrc`` entry for its host (what
    ``wandb login`` writes); without them the run would stop at its first record."""
    mode = cfg.logger.wandb_mode.value if cfg.logger.wandb_mode else environ.get("WANDB_MODE", "online")
    if not cfg.logger.wandb or mode in ("offline", "disabled", "dryrun") or environ.get("WANDB_API_KEY"):
        return
    host = urlparse(environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(environ.get("NETRC", Path.home() / ".netrc"))
    try:
        logged_in = netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        logged_in = False
    if not logged_in:
        raise UserError(
            f"logger.wandb_mode: W&B online needs a login, and there is none for {host} (no WANDB_API_KEY, no "
            f"entry in {path}) (fix: run `wandb login`, or log offline with logger.wandb_mode=offline)"
        )
