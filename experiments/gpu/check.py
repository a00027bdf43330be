"""The GPU study: on one CUDA GPU, (1) the project's default run, (2) the training-step throughput
and peak memory of the paper's PreActResNet-101 in float32, bf16 autocast, channels_last and
torch.compile, (3) a ResIST worker's sub-network step against the full step at S = 2 and 4. Writes
``runs/<UTC time>/figures.json`` (the raw figures) and the README's ``results`` section from it.
Stays within ``--budget-s`` seconds (default 450): torch.compile settings that would not finish in
what is left are skipped, and say so.

Without a CUDA GPU it prints one line and exits with status 2, having written nothing.

Units: seconds (``*_s``), milliseconds (``*_ms*``), bytes (``*_bytes``), images per second.

Usage (from the repository root): python -m experiments.gpu.check [--out DIR] [--runs DIR] [--budget-s S]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from experiments.gpu.report import section
from resist.analysis.runs import RunsError, load_run
from resist.analysis.study import publish
from resist.config import OptimConfig
from resist.decomposition import paper_assignment
from resist.errors import exit_with
from resist.models.preact import build_model, count_parameters
from resist.models.spec import ARCHITECTURES
from resist.run_dir import RunDir
from resist.train.trainable import trainable

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
NO_GPU = (
    "experiments.gpu.check needs a CUDA GPU, and torch sees none (torch.cuda.is_available() is False); "
    "nothing was measured or written (fix: run it on a machine with one CUDA GPU)"
)
# The default run (`python -m resist.run device=cuda`: ResIST, 2 local workers), then, when the
# launcher refuses it before starting (it gives each worker its own GPU), one worker on the whole data.
DEFAULT_ATTEMPTS: tuple[tuple[str, ...], ...] = (
    ("device=cuda",),
    ("device=cuda", "num_workers=1", "protocol=none"),
)
DEFAULT_RUN_TIMEOUT_S = 150.0  # per attempt; the run takes well under a minute on a GPU
COMPILE_MIN_S = 60.0  # a torch.compile setting needs at least this much budget left to be tried
FINISH_MARGIN_S = 15.0  # budget kept for writing the figures


@dataclass(frozen=True)
class Plan:
    """What the step measurements run: the network, its input (``image_size`` pixels square,
    ``batch`` images), the steps (``warmup_steps`` untimed, then ``steps`` timed), the worker counts
    S of the sub-networks and the partition's seed."""

    arch: str = "preact_resnet101"
    num_classes: int = 10
    image_size: int = 32
    batch: int = 128
    warmup_steps: int = 10
    steps: int = 50
    workers: tuple[int, ...] = (2, 4)
    seed: int = 0


@dataclass(frozen=True)
class Variant:
    """A training-step setting: bf16 autocast, channels_last memory format, torch.compile."""

    name: str
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False


EAGER = (
    Variant("float32"),
    Variant("bf16 autocast", bf16=True),
    Variant("channels_last", channels_last=True),
    Variant("bf16 + channels_last", bf16=True, channels_last=True),
)
COMPILED = (
    Variant("torch.compile", compile=True),
    Variant("bf16 + channels_last + torch.compile", bf16=True, channels_last=True, compile=True),
)
SUBNET_VARIANTS = ("float32", "bf16 + channels_last")


class _Mark:
    """A point in the device's timeline: a CUDA event (timed on the GPU), or the host clock on CPU."""

    def __init__(self, device: torch.device) -> None:
        self.event = torch.cuda.Event(enable_timing=True) if device.type == "cuda" else None
        self.host_s = 0.0

    def record(self) -> None:
        if self.event is not None:
            self.event.record()
        else:
            self.host_s = time.perf_counter()

    def ms_until(self, later: _Mark) -> float:
        """Milliseconds from this mark to ``later`` (both recorded; on CUDA, both completed)."""
        if self.event is not None and later.event is not None:
            return self.event.elapsed_time(later.event)
        return 1e3 * (later.host_s - self.host_s)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(step: Callable[[], torch.Tensor], device: torch.device, *, warmup: int, steps: int) -> dict[str, Any]:
    """Run ``warmup`` untimed steps, then ``steps`` timed ones, marks between steps and no host sync
    inside the timed loop. Returns ``warmup_s`` (seconds, host clock, synchronized), per-step
    milliseconds (``step_ms_mean``, ``step_ms_median``), ``peak_bytes`` (the CUDA allocator's peak
    over the timed steps; None on CPU) and the last step's loss."""
    start = time.perf_counter()
    loss = torch.zeros(())
    for _ in range(warmup):
        loss = step()
    _synchronize(device)
    warmup_s = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    marks = [_Mark(device) for _ in range(steps + 1)]
    marks[0].record()
    for mark in marks[1:]:
        loss = step()
        mark.record()
    _synchronize(device)
    per_step = [a.ms_until(b) for a, b in zip(marks, marks[1:], strict=False)]
    return {
        "warmup_s": warmup_s,
        "step_ms_mean": marks[0].ms_until(marks[-1]) / steps,
        "step_ms_median": statistics.median(per_step),
        "peak_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
        "final_loss": float(loss),
    }


def measure_step(
    plan: Plan, variant: Variant, device: torch.device, held_blocks: dict[int, list[int]] | None = None
) -> dict[str, Any]:
    """Time SGD training steps of ``plan.arch`` (holding ``held_blocks`` of a stage, or all blocks),
    built by the project's builder and made trainable as a run does (``trainable``: SGD, and
    torch.compile when ``variant.compile``), on fixed random images and labels on ``device``.
    Returns :func:`time_steps`' figures plus ``images_per_s`` (from the mean step)."""
    spec = ARCHITECTURES[plan.arch]
    memory_format = torch.channels_last if variant.channels_last else torch.contiguous_format
    model = build_model(spec, plan.num_classes, held_blocks=held_blocks, device=device, init_seed=plan.seed)
    module, optimizer = trainable(model.to(memory_format=memory_format), OptimConfig(), compile=variant.compile)
    draws = torch.Generator().manual_seed(plan.seed)
    images = torch.randn(plan.batch, 3, plan.image_size, plan.image_size, generator=draws)
    images = images.to(device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, plan.num_classes, (plan.batch,), generator=draws).to(device)

    def step() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=variant.bf16):
            loss = F.cross_entropy(module(images), labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    figures = time_steps(step, device, warmup=plan.warmup_steps, steps=plan.steps)
    return {**figures, "images_per_s": plan.batch / (figures["step_ms_mean"] / 1e3)}


def subnet_blocks(arch: str, workers: int, seed: int) -> tuple[int, list[int], list[int]]:
    """Worker 0's sub-network at ``workers`` = S, as ResIST builds it at round 0 with ``seed``: the
    partitioned stage, worker 0's partitioned blocks (the paper's policy, minimum depth 0) and the
    stage's blocks it holds (the shared first block and its own)."""
    layout = ARCHITECTURES[arch].layout
    (stage,) = layout.default_stages
    partitioned = layout.partitionable_blocks(stage)
    own = paper_assignment(partitioned, num_workers=workers, min_depth=0, seed=seed, round_index=0).blocks[0]
    shared = set(range(layout.blocks_per_stage[stage])) - set(partitioned)
    return stage, list(own), sorted(shared | set(own))


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise ``TimeoutError`` in the main thread after ``seconds`` (SIGALRM)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"not finished within the {seconds:.0f} s left")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _release(device: torch.device) -> None:
    """Free what the last measurement left: compiled graphs, then cached device memory."""
    if "torch._dynamo" in sys.modules:  # (imported by the first torch.compile; slow to import)
        torch._dynamo.reset()
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _attempt(measure: Callable[[], dict[str, Any]], device: torch.device, limit_s: float | None) -> dict[str, Any]:
    """``measure()``'s figures, or ``{"error": ...}`` when it raised (``skipped: ...`` when it ran out
    of ``limit_s`` seconds)."""
    try:
        with time_limit(limit_s) if limit_s is not None else contextlib.nullcontext():
            return measure()
    except TimeoutError as exc:
        return {"error": f"skipped: {exc}"}
    except Exception as exc:  # a failed measurement is a figure too
        return {"error": f"failed: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"}
    finally:
        _release(device)


def measure_all(
    plan: Plan,
    device: torch.device,
    *,
    deadline: float,
    eager: Sequence[Variant] = EAGER,
    compiled: Sequence[Variant] = COMPILED,
    subnet_variants: Sequence[str] = SUBNET_VARIANTS,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The full model in each eager setting, then worker 0's sub-network at each S in
    ``subnet_variants``' settings, then the compiled settings while ``deadline`` (a
    ``time.perf_counter()`` value) leaves at least ``COMPILE_MIN_S`` seconds. Returns the variant
    figures and the sub-network figures (dicts, JSON-ready)."""
    variants: list[dict[str, Any]] = []
    for variant in eager:
        figures = _attempt(lambda v=variant: measure_step(plan, v, device), device, None)
        variants.append({**asdict(variant), **figures})
    subnets: list[dict[str, Any]] = []
    total = sum(ARCHITECTURES[plan.arch].blocks_per_stage)
    for name in subnet_variants:
        variant = next(v for v in eager if v.name == name)
        for workers in plan.workers:
            stage, own, held = subnet_blocks(plan.arch, workers, plan.seed)
            figures = _attempt(lambda v=variant, h={stage: held}: measure_step(plan, v, device, h), device, None)
            partitioned = len(ARCHITECTURES[plan.arch].layout.partitionable_blocks(stage))
            subnets.append(
                {
                    "variant": name,
                    "S": workers,
                    "stage": stage,
                    "own_blocks": own,
                    "blocks_held": total - partitioned + len(own),
                    "blocks_total": total,
                    **figures,
                }
            )
    for variant in compiled:
        left = deadline - time.perf_counter()
        if left < COMPILE_MIN_S:
            figures = {"error": f"skipped: {max(left, 0):.0f} s of the time budget left"}
        else:
            figures = _attempt(lambda v=variant: measure_step(plan, v, device), device, left)
        variants.append({**asdict(variant), **figures})
    return variants, subnets


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def default_run(folder: Path, attempts: Sequence[Sequence[str]] = DEFAULT_ATTEMPTS) -> dict[str, Any]:
    """Run ``python -m resist.run`` with each of ``attempts``' overrides in turn (into
    ``folder/default-run-<i>``, output in ``default-run-<i>.log``) until one is not refused before
    starting (exit 2 with a ``resist: error:`` line); return its figures from ``metrics.jsonl``:
    final test accuracy (fraction), the run's own seconds and the command's wall-clock seconds."""
    refused: list[dict[str, str]] = []
    for index, overrides in enumerate(attempts):
        run_dir = folder / f"default-run-{index}"
        shown = " ".join(["python -m resist.run", *overrides])
        command = [sys.executable, "-m", "resist.run", *overrides, f"hydra.run.dir={run_dir}"]
        start = time.perf_counter()
        try:
            result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=DEFAULT_RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return {"command": shown, "refused": refused, "error": f"not finished in {DEFAULT_RUN_TIMEOUT_S:.0f} s"}
        wall_s = time.perf_counter() - start
        (folder / f"default-run-{index}.log").write_text(result.stdout + result.stderr, encoding="utf-8")
        last = _last_line(result.stderr)
        if result.returncode == 2 and last.startswith("resist: error:"):
            refused.append({"command": shown, "refusal": last})
            continue
        if result.returncode != 0:
            return {"command": shown, "refused": refused, "error": f"exit status {result.returncode}: {last}"}
        try:
            run = load_run(RunDir(run_dir))
        except RunsError as exc:
            return {"command": shown, "refused": refused, "error": str(exc)}
        return {
            "command": shown,
            "refused": refused,
            "protocol": run.protocol,
            "workers": run.workers,
            "final_accuracy": run.final_accuracy,
            "train_seconds": run.seconds,
            "wall_seconds": wall_s,
            "platform": run.platform,
            "run_dir": str(run_dir),
        }
    return {"command": "-", "refused": refused, "error": "every attempt was refused"}


def machine_facts(device: torch.device) -> dict[str, Any]:
    """The GPU (name, memory in bytes, how many are visible), torch, CUDA and cuDNN versions, the
    float32 maths settings in force (TF32 and cudnn.benchmark: torch's defaults, as runs use) and
    the UTC date."""
    return {
        "gpu": torch.cuda.get_device_name(device),
        "gpu_memory_bytes": torch.cuda.get_device_properties(device).total_memory,
        "gpus_visible": torch.cuda.device_count(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "tf32_convolutions": bool(torch.backends.cudnn.allow_tf32),
        "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def run_study(
    out: Path,
    runs: Path,
    *,
    device: torch.device,
    machine: dict[str, Any],
    budget_s: float,
    plan: Plan = Plan(),
    attempts: Sequence[Sequence[str]] = DEFAULT_ATTEMPTS,
) -> dict[str, Any]:
    """The whole study on ``device`` (``machine``: its :func:`machine_facts`) within ``budget_s``
    seconds: writes ``runs/<UTC time>/figures.json`` and ``out/README.md``'s results; returns the
    figures."""
    start = time.perf_counter()
    name = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime())
    folder = runs / name
    folder.mkdir(parents=True)
    figures: dict[str, Any] = {"name": name, "plan": asdict(plan), "machine": machine}
    figures["params"] = count_parameters(build_model(ARCHITECTURES[plan.arch], plan.num_classes, device="meta"))
    print("gpu study: the default run ...", flush=True)
    figures["default_run"] = default_run(folder, attempts)
    print("gpu study: training steps ...", flush=True)
    deadline = start + budget_s - FINISH_MARGIN_S
    figures["variants"], figures["subnets"] = measure_all(plan, device, deadline=deadline)
    figures["script_seconds"] = time.perf_counter() - start
    path = folder / "figures.json"
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")
    publish(out, section(figures))
    return figures


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="the folder of the README.md to write into")
    parser.add_argument("--runs", type=Path, default=HERE / "runs", help="where runs/<time>/ goes")
    parser.add_argument("--budget-s", type=float, default=450.0, help="seconds the whole study may take")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        exit_with(NO_GPU)
    device = torch.device("cuda", torch.cuda.current_device())
    figures = run_study(args.out, args.runs, device=device, machine=machine_facts(device), budget_s=args.budget_s)
    failed = [f["error"] for f in [figures["default_run"], *figures["variants"], *figures["subnets"]] if "error" in f]
    if any(not error.startswith("skipped") for error in failed):
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
