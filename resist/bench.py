"""Benchmark entry: ``python -m resist.bench [overrides]`` (Hydra-configured like ``resist.run``,
from ``conf/bench.yaml``).

Runs each protocol of ``bench.protocols`` one after another as an ordinary run (its own
subdirectory of the benchmark's run directory, same model, data, workers and launcher), then turns
their ``metrics.jsonl`` files into one side-by-side table, printed and written to ``bench.json``.
All figures are measured: bytes from the workers' ledgers, times from the loop's clocks, memory
from the allocator or RSS. Rates are per worker and per round of the protocol (data-parallel: a
round is one step), over the measured rounds after the warm-up.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

from resist.config import (
    PROTOCOL_CONFIGS,
    BenchConfig,
    Compression,
    Config,
    ConfigError,
    EvalUnit,
    LocalSGDConfig,
    ProtocolConfig,
    ProtocolName,
    ResISTConfig,
    ScheduleName,
    plain,
    validate,
)
from resist.config.hydra_door import run_main
from resist.paper import PAPER_MODEL_TARGETS, table1_bytes_per_round
from resist.run_dir import RunDir


def protocol_settings(settings: ProtocolConfig, protocol: ProtocolName) -> ProtocolConfig:
    """``protocol``'s config in a benchmark whose ``protocol`` group is ``settings`` (pure): the same
    local steps, optimizer-state policy and compression where the protocol has them, ResIST's decomposition from
    ``settings`` when it is a ResIST config."""
    if type(settings) is PROTOCOL_CONFIGS[protocol]:
        return copy.deepcopy(settings)
    target = PROTOCOL_CONFIGS[protocol]()
    shared = {
        key: getattr(settings, key)
        for key in ("local_steps", "optimizer_state", "compress")
        if hasattr(settings, key) and key in {f.name for f in dataclasses.fields(target)}
    }
    if "compress" in shared:  # each protocol has its own compression enum; bf16 and none are in all
        kind = type(target.compress)  # type: ignore[attr-defined]
        if shared["compress"].value not in {c.value for c in kind}:
            raise ConfigError(
                "bench.protocols",
                problem=f"protocol.compress={shared['compress'].value} does not apply to {protocol.value} "
                f"(its values: {', '.join(c.value for c in kind)})",
                fix=f"leave {protocol.value} out of bench.protocols, or benchmark it on its own",
            )
        shared["compress"] = kind(shared["compress"].value)
    return PROTOCOL_CONFIGS[protocol](**shared)


def protocol_run_config(cfg: BenchConfig, protocol: ProtocolName) -> Config:
    """The training config of ``protocol``'s benchmark run (pure): ``(warmup + rounds + 1) ×
    local_steps`` steps at a constant lr, a train record at every multiple of ``local_steps``, one
    final evaluation. The round after the measured ones is trained but not measured: a run's last
    round hands nothing on (there is no next round), so every measured round is a steady-state one.
    Raises ConfigError for a protocol whose rounds are not the benchmark's (local SGD under
    ``protocol=ddp`` would train in rounds of its default 50 steps)."""
    run = Config(**{f.name: copy.deepcopy(getattr(cfg, f.name)) for f in dataclasses.fields(Config)})
    run.name = f"{cfg.name}-{protocol.value}"
    run.protocol = protocol_settings(cfg.protocol, protocol)
    if protocol == ProtocolName.none:
        run.num_workers = 1
    local_steps, own = cfg.protocol.steps_per_round, run.protocol.steps_per_round
    if own not in (1, local_steps):  # (a protocol without rounds is measured step by step)
        raise ConfigError(
            "bench.protocols",
            problem=f"{protocol.value} trains in rounds of {own} steps, the benchmark measures rounds of "
            f"{local_steps} (those of protocol={cfg.protocol.name.value})",
            fix="benchmark it with protocol=resist or protocol=local_sgd, or leave it out of bench.protocols",
        )
    steps = (cfg.bench.warmup_rounds + cfg.bench.rounds + 1) * local_steps
    run.train.max_steps, run.train.epochs = steps, steps
    run.train.log_every_steps = local_steps
    run.train.eval_every, run.train.eval_unit = steps, EvalUnit.steps
    run.optim.schedule = ScheduleName.constant
    return run


def summarize(
    records: list[dict[str, Any]],
    *,
    model_arch: str,
    local_steps: int,
    warmup_rounds: int,
    rounds: int,
    min_depth: int,
    batch_size: int,
) -> dict[str, Any]:
    """Per-worker, per-round figures of one protocol's run from its records (pure). Seconds of a
    purpose are the ledgers' (mean over workers; a DDP hook's overlap the backward pass); operations
    are per worker (each send and each receive of an exchange counts)."""
    from resist.comm.ledger import SYNC_PURPOSES  # (loads torch: only once a benchmark has run)

    start = records[0]
    by_step = {r["step"]: r for r in records if r["event"] == "train"}
    first_step, last_step = warmup_rounds * local_steps, (warmup_rounds + rounds) * local_steps
    end = by_step[last_step]
    begin = by_step.get(first_step, {})
    workers, steps = start["num_workers"], last_step - first_step
    measured_rounds = steps / start["steps_per_round"]

    def delta(key: str) -> float:
        return end[key] - begin.get(key, 0.0)

    def per_round(convention: str) -> float:
        total = sum(delta(f"comm/cum_{convention}_bytes/{purpose.value}") for purpose in SYNC_PURPOSES)
        return total / workers / measured_rounds

    def synced(record: dict[str, Any]) -> float:
        return sum(record.get(f"comm/cum_wire_bytes/{purpose.value}", 0.0) for purpose in SYNC_PURPOSES)

    # each measured stretch of local_steps steps (a protocol round; DDP: its l steps), per worker
    marks = range(first_step, last_step + 1, local_steps)
    stretches = [
        (synced(by_step[b]) - (synced(by_step[a]) if a in by_step else 0.0)) / workers
        for a, b in zip(marks, marks[1:], strict=False)
    ]
    mean_stretch = sum(stretches) / len(stretches)
    spread = (sum((x - mean_stretch) ** 2 for x in stretches) / max(len(stretches) - 1, 1)) ** 0.5

    return {
        "num_workers": workers,
        "steps_per_round": start["steps_per_round"],
        "measured_steps": steps,
        "wire_bytes_per_round_per_worker": per_round("wire"),
        "wire_bytes_per_local_steps_per_worker": per_round("wire") * local_steps / start["steps_per_round"],
        "wire_bytes_per_local_steps_per_worker_std": spread,
        "measured_stretches": len(stretches),
        "payload_bytes_per_round_per_worker": per_round("payload"),
        "table1_bytes_per_round": table1_bytes_per_round(end["memory/param_bytes_per_worker"]),
        "step_seconds": delta("time/compute_s") / steps,
        "images_per_second_per_worker": batch_size * steps / delta("time/compute_s"),
        "round_seconds": (delta("time/compute_s") + delta("time/sync_s")) / measured_rounds,
        "compute_seconds_per_round": delta("time/compute_s") / measured_rounds,
        "sync_seconds_per_round": delta("time/sync_s") / measured_rounds,
        **{
            f"{purpose.value}_seconds_per_round": delta(f"time/comm_s/{purpose.value}") / measured_rounds
            for purpose in SYNC_PURPOSES
        },
        "operations_per_round_per_worker": sum(delta(f"comm/cum_ops/{purpose.value}") for purpose in SYNC_PURPOSES)
        / workers
        / measured_rounds,
        "eval_seconds": records[-1]["time/eval_s"],
        "param_bytes_per_worker": max(end["memory/param_bytes_per_worker"]),
        "param_bytes_per_worker_mean": sum(end["memory/param_bytes_per_worker"]) / workers,
        "held_bytes_per_worker": max(end["memory/held_bytes_per_worker"]),
        "peak_memory_bytes_per_worker": max(end["memory/peak_bytes_per_worker"]),
        "model_params": start["model/params"],
        "model_arch": model_arch,
        "min_depth": min_depth,
    }


_COLUMNS = [
    ("protocol", None, "{}"),
    ("steps/round", "steps_per_round", "{:d}"),
    ("wire MB/round/worker", "wire_bytes_per_round_per_worker", "{:.3f}"),
    ("wire MB/l steps/worker", "wire_bytes_per_local_steps_per_worker", "{:.3f}"),
    ("payload MB/round/worker", "payload_bytes_per_round_per_worker", "{:.3f}"),
    ("Table-1 MB/round", "table1_bytes_per_round", "{:.3f}"),
    ("s/step", "step_seconds", "{:.4f}"),
    ("s/round", "round_seconds", "{:.4f}"),
    ("held MB/worker", "held_bytes_per_worker", "{:.2f}"),
    ("peak MB/worker", "peak_memory_bytes_per_worker", "{:.1f}"),
]


def format_table(results: dict[str, dict[str, Any]]) -> str:
    """The side-by-side table (bytes in decimal MB), then each protocol's ratios to local SGD."""
    rows = [[title for title, _, _ in _COLUMNS]]
    for name, figures in results.items():
        row = [name]
        for _, key, fmt in _COLUMNS[1:]:
            value = figures[key]
            row.append(fmt.format(value / 1e6 if "bytes" in key else value))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    for name, figures in results.items():
        expected = figures.get("expected_wire_bytes_per_round_per_worker")
        if expected and figures["steps_per_round"] > 1:
            measured, std, n = (
                figures["wire_bytes_per_round_per_worker"],
                figures["wire_bytes_per_local_steps_per_worker_std"],
                figures["measured_stretches"],
            )
            window = figures.get("window_wire_bytes_per_round_per_worker")
            these = "" if window is None else f"; {measured / window:.4f} of the cost model of these rounds' partitions"
            lines.append(
                f"{name}: {measured / 1e6:.3f} MB per round and worker measured, {measured / expected:.4f} of the "
                f"cost model's {expected / 1e6:.3f} MB; over its {n} measured round(s) std {std / 1e6:.3f} MB, "
                f"standard error of the mean {std / n**0.5 / 1e6:.3f} MB{these}"
            )
    if "local_sgd" in results and "resist" in results:
        lines += resist_targets(results["resist"], results["local_sgd"])
    if "local_sgd" in results:
        reference = results["local_sgd"]
        for name, figures in results.items():
            if name == "local_sgd":
                continue
            ratios = ", ".join(
                f"{label} {figures[key] / reference[key]:.3f}"
                for label, key in (
                    ("wire bytes per l steps", "wire_bytes_per_local_steps_per_worker"),
                    ("s/step", "step_seconds"),
                    ("held bytes", "held_bytes_per_worker"),
                )
                if reference[key]
            )
            lines.append(f"{name} / local_sgd: {ratios}")
    return "\n".join(lines)


def resist_targets(resist: dict[str, Any], local_sgd: dict[str, Any]) -> list[str]:
    """Measured ResIST ratios next to the targets (:data:`resist.paper.PAPER_MODEL_TARGETS`, set for
    PreActResNet-101 at S = 2, 4, 8)."""
    measured = {
        "wire bytes/round": resist["wire_bytes_per_local_steps_per_worker"]
        / local_sgd["wire_bytes_per_local_steps_per_worker"],
        "s/step": resist["step_seconds"] / local_sgd["step_seconds"],
        "held parameter bytes (mean over workers)": resist["param_bytes_per_worker_mean"]
        / local_sgd["param_bytes_per_worker_mean"],
    }
    paper_model = resist["model_arch"] == "preact_resnet101" and resist["min_depth"] == 0
    targets = PAPER_MODEL_TARGETS.get(resist["num_workers"]) if paper_model else None
    if targets is None:
        ratios = ", ".join(f"{label} {value:.3f}" for label, value in measured.items())
        return [
            f"resist / local_sgd: {ratios} (targets are set for model=preact_resnet101 with S = 2, 4, 8 "
            "and protocol.decomposition.min_depth=0)"
        ]
    parts = []
    for (label, value), target, bound in zip(measured.items(), targets, ("<=", "<=", "="), strict=True):
        met = value <= target + 1e-9 if bound == "<=" else abs(value - target) < 0.005
        parts.append(f"{label} {value:.3f} (target {bound} {target:.2f}: {'met' if met else 'NOT met'})")
    return ["resist / local_sgd: " + ", ".join(parts)]


def _run_bench(typed: BenchConfig, bench_dir: RunDir, resume: bool) -> None:
    if resume:
        raise ConfigError("resume", "a benchmark cannot be resumed", "run the benchmark again in a new directory")
    runs = {protocol: protocol_run_config(typed, protocol) for protocol in typed.bench.protocols}
    for run in runs.values():
        validate(run)

    from resist.launch import launch
    from resist.logging.jsonl import read_jsonl
    from resist.protocols.expected_bytes import expected_wire_bytes, resist_window_wire_bytes

    local_steps = typed.protocol.steps_per_round
    resist = runs[ProtocolName.resist].protocol if ProtocolName.resist in runs else None
    min_depth = resist.decomposition.min_depth if isinstance(resist, ResISTConfig) else 0
    results: dict[str, dict[str, Any]] = {}
    for protocol, run in runs.items():
        run_dir = bench_dir.bench_protocol_run(protocol.value)
        print(f"bench: {protocol.value} with {run.num_workers} worker(s), {run.train.max_steps} steps -> {run_dir}")
        launch(run, run_dir)
        results[protocol.value] = summarize(
            read_jsonl(run_dir.metrics),
            model_arch=typed.model.arch,
            local_steps=local_steps,
            warmup_rounds=typed.bench.warmup_rounds,
            rounds=typed.bench.rounds,
            min_depth=min_depth,
            batch_size=typed.train.batch_size,
        )
        if protocol != ProtocolName.none:
            measured = range(typed.bench.warmup_rounds, typed.bench.warmup_rounds + typed.bench.rounds)
            results[protocol.value]["expected_wire_bytes_per_round_per_worker"] = expected_wire_bytes(run, measured)
        if protocol == ProtocolName.resist:  # the cost model of the measured rounds' own partitions
            results[protocol.value]["window_wire_bytes_per_round_per_worker"] = resist_window_wire_bytes(run, measured)
    compress = getattr(typed.protocol, "compress", Compression.none)
    float32_ring = None
    if compress != Compression.none:  # the reference the compressed figures are measured against
        float32 = copy.deepcopy(typed)
        float32.protocol = LocalSGDConfig()
        float32_ring = expected_wire_bytes(protocol_run_config(float32, ProtocolName.local_sgd))
    report = {"config": plain(typed), "protocols": results, "float32_ring_local_sgd_wire_bytes": float32_ring}
    bench_dir.bench_report.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    params = next(iter(results.values()))["model_params"]
    print(
        f"\nmodel {typed.model.arch} ({params:,} parameters), {typed.num_workers} workers, batch "
        f"{typed.train.batch_size}/worker, l = {local_steps} local steps, {typed.bench.rounds} "
        f"measured rounds after {typed.bench.warmup_rounds} warm-up; MB = 10^6 bytes"
    )
    print(format_table(results))
    if float32_ring is not None:
        for name, figures in results.items():
            ratio = figures["wire_bytes_per_round_per_worker"] / float32_ring
            print(
                f"{name} with compress={compress.value} / float32 ring local SGD "
                f"({float32_ring / 1e6:.1f} MB per round per worker): wire bytes {ratio:.3f}"
            )
    print(f"written: {bench_dir.bench_report}")


def main() -> None:
    run_main("bench", BenchConfig, _run_bench)


if __name__ == "__main__":
    main()
