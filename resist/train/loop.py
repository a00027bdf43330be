"""The one training loop every protocol runs through."""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F

from resist.checkpoints import Checkpoint
from resist.comm import Comm
from resist.config import AmpMode, Config, image_size
from resist.errors import UserError
from resist.logging import MetricSink, Record
from resist.logging.progress import ProgressLine
from resist.models.checkpoint import save_inference_checkpoint
from resist.run_dir import RunDir
from resist.train.build import build_run
from resist.train.checkpointing import save_checkpoint
from resist.train.evaluate import evaluate
from resist.train.memory import held_bytes, peak_memory_bytes
from resist.train.run_state import Run
from resist.train.stop import StopRequest
from resist.train.trainable import trainable


def _autocast(amp: AmpMode, device: torch.device) -> contextlib.AbstractContextManager:
    if amp == AmpMode.off:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == AmpMode.bf16 else torch.float16
    return torch.autocast(device.type, dtype=dtype)


def synchronized_clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the work queued on ``device`` has finished (CUDA kernels run
    asynchronously: a clock read without this would time their launch, not their execution)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class NonFiniteLossError(UserError):
    pass


def train(
    cfg: Config,
    comm: Comm,
    sink: MetricSink,
    *,
    run_dir: RunDir | None = None,
    resume: Checkpoint | None = None,
    stop: StopRequest | None = None,
) -> Record:
    """Build the run (:func:`build_run`, from ``resume``'s shards when given) and train it
    (:func:`run_loop`); returns the summary, or a ``stopped`` record when ``stop`` was agreed on.

    Randomness is derived from ``cfg.seed``, never drawn from torch's global generator: model
    initialisation (then rank 0's weights are broadcast), data order (per the sharding mode) and
    augmentation (per sample). So evaluation, which builds models too, cannot change training.
    Deterministic on CPU for a given torch build, thread count and CPU, across resumes too.
    """
    return run_loop(build_run(cfg, comm, sink, resume=resume), run_dir, stop=stop or StopRequest())


def _nonfinite_error(run: Run, step: int, loss: float) -> NonFiniteLossError:
    last = run.checkpoint
    where = f"the last good checkpoint is {last.directory} (step {last.step})" if last else "no checkpoint was saved"
    resume = f"; resume with python -m resist.run resume={last.directory.parent.parent}" if last else ""
    amp = ", or train.amp=off" if run.cfg.train.amp != AmpMode.off else ""
    return NonFiniteLossError(
        f"train: the loss became {loss} at step {step} on rank {run.comm.rank}; the run stopped and {where} "
        f"(fix: lower optim.lr{amp}{resume})"
    )


def run_loop(run: Run, run_dir: RunDir | None = None, *, stop: StopRequest) -> Record:
    """Train ``run`` as its worker from ``run.step``, keeping ``run.step`` (at round ends) and
    ``run.last_eval`` current. At round ends it checkpoints to ``run_dir`` (every
    ``checkpoint.every_rounds`` rounds and at the end) and stops early, after a checkpoint, when
    ``stop`` is agreed on; a non-finite loss stops it at once with :class:`NonFiniteLossError`. Rank 0 writes
    the records and saves the final global model as ``final_model.pt`` (an ordinary state dict of the
    plain network). Returns the summary, or a ``stopped`` record naming the checkpoint."""
    cfg, comm, data, protocol, plan, reporter = run.cfg, run.comm, run.data, run.protocol, run.plan, run.reporter
    device, stream, module, optimizer, scaler = comm.device, run.stream, run.module, run.optimizer, run.scaler

    evaluated: torch.nn.Module | None = None
    progress = ProgressLine.for_run(cfg, comm, plan, start_step=run.step)
    checkpoints = run_dir is not None and cfg.checkpoint.enabled
    round_start = synchronized_clock(device)
    for step in range(run.step, plan.total_steps):
        steps_done = step + 1
        if plan.starts_round(step):
            comm.ledger.start_round(plan.rounds_done(step))
        images, labels = next(stream)
        if cfg.train.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        lr = plan.lr_at(step, cfg.optim)
        for group in optimizer.param_groups:
            group["lr"] = lr
        optimizer.zero_grad(set_to_none=True)
        with _autocast(cfg.train.amp, device):
            logits = module(images)
            loss = F.cross_entropy(logits, labels)
        if not torch.isfinite(loss.detach()).item():  # (one device synchronisation per step)
            raise _nonfinite_error(run, steps_done, loss.item())
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        reporter.add_batch(loss.detach(), logits.detach(), labels)
        progress.step(steps_done, loss.detach())
        if not plan.ends_round(steps_done):
            continue

        run.step = steps_done
        held = (*held_bytes(module, optimizer), protocol.held_state_bytes())  # before a sync that may reset state
        sync_start = synchronized_clock(device)
        replacement = protocol.end_round(optimizer, last_round=steps_done == plan.total_steps)
        if replacement is not None:  # e.g. ResIST leaving its local-SGD warm-up
            module, optimizer = trainable(replacement, cfg.optim, compile=cfg.train.compile)
            run.module, run.optimizer = module, optimizer
        sync_end = synchronized_clock(device)
        reporter.add_seconds(compute_s=sync_start - round_start, sync_s=sync_end - sync_start)
        epoch = steps_done / plan.steps_per_epoch
        evaluation, eval_seconds = None, 0.0
        if plan.evaluates_after(steps_done):
            evaluated = protocol.eval_model()
            evaluation = evaluate(
                evaluated,
                data.test,
                batch_size=cfg.train.eval_batch_size,
                comm=comm,
                loader_workers=cfg.dataset.loader_workers,
            )
            eval_seconds, run.last_eval = synchronized_clock(device) - sync_end, evaluation
            if steps_done < plan.total_steps:
                evaluated = None  # the global model exists only while it is evaluated
        if evaluation is not None or plan.logs_after(steps_done):
            reporter.report(
                steps_done,
                epoch=epoch,
                lr=lr,
                peak_bytes=peak_memory_bytes(device),
                held=held,
                evaluation=evaluation,
                eval_seconds=eval_seconds,
            )
        if steps_done == plan.total_steps:
            break  # the final checkpoint comes after the final model and the summary
        stopping = checkpoints and stop.agreed(comm)
        if checkpoints and (stopping or plan.checkpoints_after(steps_done, cfg.checkpoint.every_rounds)):
            run.checkpoint = save_checkpoint(run, run_dir)
        if stopping:
            return {"event": "stopped", "step": steps_done, "signal": stop.signal_name}
        round_start = synchronized_clock(device)
    return _finish(run, run_dir, evaluated=evaluated)


def _finish(run: Run, run_dir: RunDir | None, *, evaluated: torch.nn.Module | None) -> Record:
    """The end of the run (``run.step`` is ``run.plan.total_steps``): rank 0 saves ``final_model.pt``
    and writes the summary, then the workers save the final checkpoint, whose manifest places the
    metrics before the summary (a run resumed from it, to extend it, replaces the summary). A crash
    before the checkpoint is committed leaves the previous one, from which a resume redoes the last
    rounds and writes the same files."""
    plan, data, rank = run.plan, run.data, run.comm.rank
    if run_dir is not None and rank == 0 and evaluated is not None:
        save_inference_checkpoint(
            evaluated,
            run_dir.final_model,
            options=run.cfg.model,
            num_classes=data.num_classes,
            in_channels=data.in_channels,
            image_size=image_size(run.cfg.dataset),
        )
    before_summary = run_dir.metrics_bytes() if run_dir is not None and rank == 0 else None
    summary = run.reporter.summary(
        plan.total_steps, plan.total_steps / plan.steps_per_epoch, run.last_eval, final_model=run.protocol.final_model
    )
    if run_dir is not None and run.cfg.checkpoint.enabled:
        run.checkpoint = save_checkpoint(run, run_dir, metrics_bytes=before_summary)
    return summary
