"""Launching runs: pre-flight checks (:mod:`.preflight`), the start of a run (:mod:`.start`), the
worker process (:mod:`.worker_process`), its environment (:mod:`.env`, pure) and the local, torchrun and
SLURM launchers."""

from resist.launch.start import launch

__all__ = ["launch"]
