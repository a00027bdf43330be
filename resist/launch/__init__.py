"""Launching runs: pre-flight checks (:mod:`.preflight`), the start of a run (:mod:`.start`), the
worker process (:mod:`.worker`), its environment (:mod:`.env`, pure) and the local, torchrun and
SLURM launchers."""

from resist.launch.start import free_port, launch

__all__ = ["free_port", "launch"]
