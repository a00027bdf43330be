"""The loopback probe as the what-if study runs it: two gloo processes time all-reduces through
``Comm``, and its ``loopback.json`` is what the what-if analysis reads."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_the_probe_measures_each_payload_and_fits_the_link(tmp_path):
    out = tmp_path / "loopback.json"
    result = subprocess.run(
        [sys.executable, "-m", "experiments.whatif.probe", "--out", str(out), "--payloads", "4096,400000,4000000",
         "--repeats", "2"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["workers"] == 2
    # a 2-worker ring all-reduce sends its payload once (2(S-1)/S = 1) in 2 messages
    assert [(wire, messages) for wire, messages, _ in report["measured"]] == [(4096, 2), (400000, 2), (4000000, 2)]
    assert all(seconds > 0 for _, _, seconds in report["measured"])
    assert report["fit"]["bandwidth_bits_per_s"] > 0 and set(report["fit"]) == {"latency_s", "bandwidth_bits_per_s"}
