"""Measure this machine's loopback link (ring all-reduces over gloo between 2 processes, through the
workers' ``Comm``) and write ``loopback.json``: each payload's wire bytes, messages and median
seconds per worker, and the latency and bandwidth fitted from the smallest and largest.

Usage (from the repository root): python -m experiments.whatif.probe [--out FILE] [--payloads B,B,...] [--repeats N]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from resist.analysis.whatif import fit_link
from resist.comm.probe import loopback_all_reduce

HERE = Path(__file__).resolve().parent
PAYLOADS = [4096, 1_000_000, 16_000_000, 64_000_000]  # bytes per all-reduce (float32)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "runs" / "loopback.json")
    parser.add_argument(
        "--payloads",
        type=lambda text: [int(v) for v in text.split(",")],
        default=PAYLOADS,
        help="bytes, e.g. 4096,64000000",
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed all-reduces per payload (median)")
    args = parser.parse_args(argv)
    measured = loopback_all_reduce(2, args.payloads, repeats=args.repeats)
    fit = fit_link(measured[0], measured[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "workers": 2,
        "measured": [list(m) for m in measured],
        "fit": dataclasses.asdict(fit),
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"latency {fit.latency_s * 1e6:.1f} µs per message, bandwidth {fit.bandwidth_bits_per_s / 1e9:.2f} Gbit/s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
