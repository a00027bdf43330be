"""The SLURM launcher: submit one job (submitit) whose tasks run the worker entry."""

from __future__ import annotations

import logging
import os
import signal
import tempfile
from pathlib import Path
from typing import Any

from resist.config import Config, load_run_config
from resist.errors import WorkerFailedError
from resist.launch.env import DistEnvError, parse_dist_env
from resist.launch.slurm_plan import slurm_plan
from resist.launch.worker_process import run_worker
from resist.run_dir import RunDir
from resist.train.stop import StopRequest

log = logging.getLogger("resist")


def preempt_signal() -> signal.Signals:
    """What SLURM sends before the time limit and on preemption: submitit's ``--signal`` (USR2 unless
    ``SUBMITIT_PREEMPT_SIGNAL`` says otherwise)."""
    import submitit

    return signal.Signals[f"SIG{submitit.JobEnvironment.USR_SIG}"]


class SlurmWorkerTask:
    """What each SLURM task runs: the worker entry for ``run_dir``, its position from SLURM's
    environment (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_LOCALID``, node list, job id).

    Preemption and time limits: SLURM sends SIGUSR2 ``launcher.signal_delay_s`` seconds before the
    time limit, and on preemption (submitit's ``--signal``; USR2, not USR1, because NCCL may catch
    USR1: submitit#1697). submitit's handler would checkpoint from inside the signal handler, in the
    middle of a training step, and exit at once; here the signal only requests a stop. All workers
    agree on it at the next round end, write a checkpoint together, and then rank 0 hands over to
    submitit's handler, which calls :meth:`checkpoint` (a task that resumes), requeues the job and
    exits. submitit ignores the signal on the other ranks (submitit#1780: it must not exit them
    before rank 0 requeued); here they return once the checkpoint is committed. The requeued job
    resumes from that checkpoint by itself.
    """

    def __init__(self, run_dir: RunDir, *, resume: bool = False) -> None:
        self.run_dir, self.resume = run_dir, resume

    def __call__(self) -> dict[str, Any] | None:
        env = parse_dist_env(os.environ)
        if env is None:
            raise DistEnvError("SLURM_PROCID: not inside a SLURM task (fix: submit with launcher=slurm)")
        cfg = load_run_config(self.run_dir)
        local_workers = int(os.environ.get("SLURM_NTASKS_PER_NODE", "1").split("(")[0])
        preempt = preempt_signal()
        submitit_handler = signal.getsignal(preempt)
        stop = StopRequest()
        stop.watch(preempt)
        result = run_worker(cfg, self.run_dir, env, resume=self.resume, local_workers=local_workers, stop=stop)
        if result.get("event") == "stopped":
            log.info("rank %d stopped at step %d on %s", env.rank, result["step"], result["signal"])
            if env.rank == 0 and callable(submitit_handler):
                submitit_handler(preempt, None)  # checkpoint() + requeue + exit
            return None
        return result if env.rank == 0 else None

    def checkpoint(self) -> Any:
        """submitit's hook on preemption or time-out: the task that resumes this run (its checkpoint
        was written before submitit calls this)."""
        import submitit

        return submitit.helpers.DelayedSubmission(SlurmWorkerTask(self.run_dir, resume=True))


def sbatch_preview(cfg: Config) -> str:
    """The sbatch script submitit would submit for ``cfg`` (a dry run's), or, on a host without SLURM
    (submitit needs ``srun`` to build its executor), a line saying so."""
    import submitit

    with tempfile.TemporaryDirectory(prefix="resist-sbatch-") as folder:
        try:
            executor = submitit.AutoExecutor(folder=Path(folder) / "%j", cluster="slurm")
        except RuntimeError as exc:  # submitit: 'Could not detect "srun", are you indeed on a slurm cluster?'
            return f"(no SLURM on this host ({exc}): the sbatch script is rendered where SLURM is; the plan is above)"
        executor.update_parameters(**slurm_plan(cfg))  # submitit validates the parameters here
        return _sbatch_script(executor)


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


def submit(cfg: Config, run_dir: RunDir, *, resume: bool = False) -> Any:
    """Submit the prepared ``run_dir`` (``resume``: to continue from its newest checkpoint); returns
    the submitit job."""
    import submitit

    plan = slurm_plan(cfg)
    executor = submitit.AutoExecutor(folder=run_dir.slurm / "%j", cluster="slurm")
    executor.update_parameters(**plan)  # submitit validates the parameters here
    job = executor.submit(SlurmWorkerTask(run_dir, resume=resume))
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
