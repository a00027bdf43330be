"""Command-line entry: ``python -m resist.run [group=option ...] [key=value ...] [+experiment=NAME]``.

Hydra composes ``conf/`` once, here; the result is converted to the typed :class:`Config`,
validated, saved as ``resolved_config.yaml`` in the run directory and handed to the launcher.
"""

from __future__ import annotations

import shutil

from resist.config import Config
from resist.config.hydra_door import dry_run_dir, run_main
from resist.run_dir import RunDir


def _run_job(typed: Config, run_dir: RunDir, resume: bool) -> float | None:
    if typed.dry_run:
        from resist.launch.dry_run import dry_run_report

        print(dry_run_report(typed))
        shutil.rmtree(dry_run_dir(), ignore_errors=True)
        return None
    from resist.launch import launch  # torch and the data stack load only for a valid config

    summary = launch(typed, run_dir, resume=resume)
    accuracy = summary.get("test/acc1")
    lines = []
    if accuracy is not None:
        lines.append(
            f"final test accuracy: {accuracy:.2%} ({summary['step']} steps, {summary['time/elapsed_s']:.1f} s)"
        )
    if typed.num_workers > 1 and summary:  # (a submitted or dry-run SLURM job has no summary yet)
        lines.append(bytes_report(run_dir, typed))
    lines.append(f"run directory: {run_dir}")
    print("\n".join(lines))
    with run_dir.run_log.open("a", encoding="utf-8") as log:  # run.log holds what the console showed
        log.write("".join(line + "\n" for line in lines))
    return accuracy


def bytes_report(run_dir: RunDir, cfg: Config) -> str:
    """Bytes the run sent (measured) next to the cost model's figure for a like-for-like reference:
    float32 local SGD over the same rounds for protocols that synchronise once per round, every
    step's gradient all-reduces (compressed as ``cfg`` says) for data-parallel training."""
    from resist.comm.cost import Op, ring_all_reduce_bytes_per_worker, wire_bytes
    from resist.comm.ledger import TRAINING_PURPOSES
    from resist.logging.jsonl import read_jsonl
    from resist.protocols.base import DIGEST_BYTES
    from resist.protocols.expected_bytes import expected_wire_bytes
    from resist.train.step_plan import rounds_in

    records = read_jsonl(run_dir.metrics)
    start, summary = records[0], records[-1]
    workers, params = start["num_workers"], start["model/params"]
    rounds = rounds_in(summary["step"], start["steps_per_round"])  # (a resume may have extended the run)
    initial = workers * wire_bytes(Op.all_gather, DIGEST_BYTES, workers)  # the workers' digests of their weights
    training = sum(summary[f"comm/cum_wire_bytes/{purpose.value}"] for purpose in TRAINING_PURPOSES)
    if start["protocol"] == "ddp":
        reference = initial + rounds * workers * expected_wire_bytes(cfg, range(rounds))
        compress = getattr(cfg.protocol, "compress", "none")
        gradients = "" if compress == "none" else f" ({compress.value})"
        what = f"the cost model expects {reference / 1e6:.2f} MB for its {rounds} gradient all-reduces{gradients}"
    else:
        reference = initial + rounds * workers * ring_all_reduce_bytes_per_worker(params, workers)
        what = f"float32 local SGD would send {reference / 1e6:.2f} MB for the same {rounds} rounds"
    return (
        f"bytes sent by all workers (measured, modeled wire): {training / 1e6:.2f} MB to train (initial "
        f"weights included; {what}, cost model) and {summary['comm/cum_wire_bytes'] / 1e6:.2f} MB in all "
        "(evaluation and metrics included)"
    )


def main() -> None:
    run_main("config", Config, _run_job)


if __name__ == "__main__":
    main()
