"""Every study's analysis script (``experiments/<study>/analyze.py``) on small generated run
directories: it rewrites its README's generated section (and only it) with the figures of those
runs, writes its plots, and refuses a missing input with one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from resist.analysis.whatif import GBIT, LinkFit, RoundCost, dedicated_compute, fit_link, ring_messages, round_seconds
from resist.paper import TABLE1_GB
from tests.conftest import REPO
from tests.generated_runs import write_bench, write_run

PNG = b"\x89PNG\r\n\x1a\n"


def _analyze(study: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"experiments.{study}.analyze", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _out(tmp_path: Path, study: str) -> Path:
    """A copy of the study's README (its markers and hand-written text) to write into."""
    out = tmp_path / f"{study}-out"
    out.mkdir()
    shutil.copy(REPO / "experiments" / study / "README.md", out / "README.md")
    return out


def _section(readme: Path) -> str:
    text = readme.read_text()
    return text.split("<!-- BEGIN results -->")[1].split("<!-- END results -->")[0]


def _cifar10_runs(root: Path) -> Path:
    """The CIFAR-10 study's layout: one multirun per (S, seed), jobs ddp / local_sgd / resist."""
    accuracy = {"ddp": 0.60, "local_sgd": 0.55, "resist": 0.50}
    megabytes = {"ddp": 100e6, "local_sgd": 10e6, "resist": 4e6}
    for workers in (2, 4):
        for seed in (0, 1):
            for job, protocol in enumerate(("ddp", "local_sgd", "resist")):
                final = accuracy[protocol] + 0.02 * seed
                write_run(
                    root / f"S{workers}-seed{seed}" / str(job),
                    protocol=protocol,
                    seed=seed,
                    workers=workers,
                    local_steps=1 if protocol == "ddp" else 20,
                    accuracies=[final - 0.2, final],
                    bytes_per_eval=megabytes[protocol],
                    seconds_per_eval=100.0 if protocol == "resist" else 200.0,
                )
    return root


def test_cifar10_analysis_writes_the_table_the_comparison_and_the_plots(tmp_path):
    out = _out(tmp_path, "cifar10")
    before = (out / "README.md").read_text().split("<!-- BEGIN results -->")[0]
    result = _analyze("cifar10", "--runs", _cifar10_runs(tmp_path / "runs"), "--out", out)
    assert result.returncode == 0, result.stderr
    section = _section(out / "README.md")
    assert "| resist | 4 | 20 | preact_resnet_mini | digits | 0,1 | 51.00 % ± 1.41 % |" in section
    # ResIST − local SGD: 5 points below; bytes to train (all but the 1 MB of evaluation and
    # metrics) (2 × 4 MB − 1 MB) / (2 × 10 MB − 1 MB); wall-clock 0.5
    assert f"| 2 | 2 / 2 | -5.00 points | {7 / 19:.3f} | 0.500 |" in section
    assert "Measured: 12 runs, finished" in section
    assert (out / "README.md").read_text().startswith(before)  # the hand-written part is kept
    for name in ("accuracy_vs_bytes.png", "accuracy_vs_time.png", "accuracy_vs_epochs.png"):
        assert (out / name).read_bytes()[:8] == PNG


def test_convergence_analysis_compares_each_setting_with_local_sgd_at_several_lengths(tmp_path):
    """Records as run.sh keeps them (one folder per setting and seed): ResIST's gap to local SGD
    shrinks from -10 points at epoch 2 to -1 at epoch 20 in the generated curves; DiLoCo and ResIST
    with the outer optimizer and int4 are told apart by their settings."""
    records = tmp_path / "records"
    epochs = range(1, 21)
    local = [0.3 + 0.025 * e for e in epochs]  # 0.8 at epoch 20, +2.5 points per epoch
    curves = [
        ("local_sgd", "local_sgd", {}, local),
        ("resist", "resist", {}, [a - 0.1 + 0.09 * (e - 2) / 18 for a, e in zip(local, epochs, strict=True)]),
        ("diloco", "diloco", {}, [a + 0.01 for a in local]),
        ("resist_outer_int4", "resist", {"protocol": {"outer_optimizer": "nesterov", "compress": "int4"}}, local),
    ]
    for name, protocol, config, accuracies in curves:
        write_run(
            records / f"{name}-seed0" / "0",
            protocol=protocol,
            seed=0,
            workers=4,
            local_steps=20,
            accuracies=accuracies,
            bytes_per_eval=4e6 if protocol == "resist" else 10e6,
            config={"protocol": {"outer_optimizer": "none", "compress": "none"}} | config,
        )
    out = _out(tmp_path, "convergence")
    result = _analyze("convergence", "--runs", records, "--out", out)
    assert result.returncode == 0, result.stderr
    section = _section(out / "README.md")
    # ResIST: -10.00 points at epoch 2, -1.00 at 20; bytes to train (20 × 4 MB − 1 MB) / (20 × 10 MB − 1 MB)
    assert f"| resist | 0 | -10.00 | -8.50 | -6.00 | -1.00 | {79 / 199:.3f} | 1.000 |" in section
    assert "| diloco | 0 | +1.00 | +1.00 | +1.00 | +1.00 | 1.000 | 1.000 |" in section
    assert "| resist+outer int4 | 0 | +0.00 |" in section
    assert "Local SGD's gain over each of its last 5 epochs (points): +2.50, +2.50, +2.50, +2.50, +2.50." in section
    assert (out / "accuracy_vs_epochs.png").read_bytes()[:8] == PNG


def test_ablation_analysis_names_what_each_run_changes_against_the_reference(tmp_path):
    reference_runs = _cifar10_runs(tmp_path / "cifar10")
    runs = tmp_path / "ablations"
    defaults = {"protocol": {"test_time_scaling": True, "decomposition": {"min_depth": 0}}}
    reference = reference_runs / "S4-seed0" / "2"  # resist, S = 4, seed 0: given the variants' keys
    config = (reference / "resolved_config.yaml").read_text()
    (reference / "resolved_config.yaml").write_text(
        config.replace("local_steps: 20", "local_steps: 20\n  test_time_scaling: true\n  decomposition: {min_depth: 0}")
    )
    write_run(
        runs / "no_scaling",
        protocol="resist",
        seed=0,
        workers=4,
        local_steps=20,
        accuracies=[0.3, 0.4],
        bytes_per_eval=4e6,
        config={"protocol": {**defaults["protocol"], "test_time_scaling": False}},
    )
    write_run(
        runs / "l50",
        protocol="resist",
        seed=0,
        workers=4,
        local_steps=50,
        accuracies=[0.3, 0.53],
        bytes_per_eval=2e6,
        config=defaults,
    )
    out = _out(tmp_path, "ablations")
    result = _analyze("ablations", "--runs", runs, "--reference-runs", reference_runs, "--out", out)
    assert result.returncode == 0, result.stderr
    section = _section(out / "README.md")
    assert "| reference (defaults) |" in section and "| +0.00 points |" in section
    assert "| protocol.test_time_scaling=False |" in section and "| -10.00 points |" in section
    assert "| protocol.local_steps=50 |" in section and "| +3.00 points |" in section
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = _analyze("ablations", "--runs", runs, "--reference-runs", empty, "--out", out)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "no runs under" in refused.stderr


@pytest.fixture
def benches(tmp_path: Path) -> Path:
    root = tmp_path / "comm-runs"
    for workers, depth in ((2, 0), (4, 0), (8, 4)):
        write_bench(root / f"resnet101-S{workers}", model="preact_resnet101", workers=workers, min_depth=depth)
    write_bench(root / "resnet101-S4-m6", model="preact_resnet101", workers=4, min_depth=6, protocols=("resist",))
    write_bench(root / "resnet101-S8-m0", model="preact_resnet101", workers=8, protocols=("local_sgd", "resist"))
    return root


def test_comm_analysis_reports_bytes_ratios_and_the_papers_table(benches, tmp_path):
    out = _out(tmp_path, "comm")
    result = _analyze("comm", "--runs", benches, "--out", out)
    assert result.returncode == 0, result.stderr
    section = _section(out / "README.md")
    row = "| preact_resnet101 | 8 | resist, m = 4 | 40.0 | 40.0 | 1.000 | 1.0000 | - | 20.0 | 1.600 | 200.0 | 500.0 |"
    assert row in section
    assert "| preact_resnet101 | 2 | 0 | 0.400 | 0.400 | 0.500 | 0.500 |" in section  # ResIST / local SGD
    # Table 1: local SGD 2 × S × 200 MB; ResIST from the paper's depth (m = 6 at S = 4)
    paper = TABLE1_GB[4]
    assert f"| 4 | 1.600 GB | {paper.local_sgd:.3f} GB | 0.800 GB (m = 6) | {paper.resist:.3f} GB |" in section
    assert (out / "wire_bytes_per_round.png").read_bytes()[:8] == PNG


def test_speed_analysis_splits_rounds_and_compares_with_the_compute_ceiling(benches, tmp_path):
    out = _out(tmp_path, "speed")
    result = _analyze("speed", "--runs", benches, "--out", out)
    assert result.returncode == 0, result.stderr
    section = _section(out / "README.md")
    # s/step, images/s, s/round, compute, shared sync, hand-off, other sync (0.5 - 0.3 - 0.1), evaluation
    assert "| resist | 0.500 | 16.0 | 1.500 | 1.000 | 0.300 | 0.100 | 0.100 | 0.25 |" in section
    # sub-net step / full step 0.5 against (33 - 22 + 22/4) / 33 = 0.5
    assert "| preact_resnet101 | 4 | 0 | 0.500 | 0.500 | 1.00 |" in section
    assert (out / "round_time_split.png").read_bytes()[:8] == PNG


def test_compression_analysis_sets_measured_bytes_against_float32_ring_local_sgd(tmp_path):
    runs = tmp_path / "compression-runs"
    write_bench(
        runs / "int8-S4", model="preact_resnet101", workers=4, protocols=("local_sgd", "resist"), compress="int8"
    )
    write_bench(
        runs / "int8-S8", model="preact_resnet101", workers=8, min_depth=4, protocols=("resist",), compress="int8"
    )
    write_bench(
        runs / "powersgd-S4", model="preact_resnet101", workers=4, protocols=("ddp",), compress="powersgd", group="ddp"
    )
    out = _out(tmp_path, "compression")
    result = _analyze("compression", "--runs", runs, "--out", out, "--only", "bytes")
    assert result.returncode == 0, result.stderr
    section = (out / "README.md").read_text().split("<!-- BEGIN bytes -->")[1].split("<!-- END bytes -->")[0]
    # ResIST sends 40 MB against the 400 MB float32 reference: 0.1, within 0.12 at S = 4, 0.11 at S = 8
    assert "| 4 | resist, m = 0 | int8 | 40.000 | 40.000 | 400.000 | 0.1000 | ≤ 0.12: met |" in section
    assert "| 8 | resist, m = 4 | int8 | 40.000 | 40.000 | 400.000 | 0.1000 | ≤ 0.11: met |" in section
    assert "| 4 | local_sgd | int8 | 100.000 | 100.000 | 400.000 | 0.2500 | - |" in section
    assert "| 4 | ddp (per step) | powersgd | 100.000 | 100.000 | 400.000 | 0.2500 | - |" in section  # DDP alone


def test_compression_analysis_sets_each_compressed_group_against_its_float32_runs(tmp_path):
    runs = tmp_path / "compression-runs"
    # final accuracy, bytes per evaluation (two evaluations per run)
    figures = {
        ("resist", "none"): (0.50, 40e6),
        ("resist", "int8"): (0.497, 11e6),
        ("resist", "bf16"): (0.49, 21e6),
        ("local_sgd", "none"): (0.55, 100e6),
        ("local_sgd", "int8"): (0.54, 26e6),
    }
    for seed in (0, 1):
        for job, ((protocol, compress), (final, megabytes)) in enumerate(figures.items()):
            write_run(
                runs / "accuracy" / f"sweep-seed{seed}" / str(job),
                protocol=protocol,
                seed=seed,
                workers=4,
                accuracies=[final - 0.2, final],
                bytes_per_eval=megabytes,
                config={"protocol": {"compress": compress}},
            )
    write_run(  # a seed without a float32 twin: in its group's row, not in the comparison
        runs / "accuracy" / "sweep-seed2" / "0",
        protocol="resist",
        seed=2,
        workers=4,
        accuracies=[0.1, 0.1],
        bytes_per_eval=11e6,
        config={"protocol": {"compress": "int8"}},
    )
    out = _out(tmp_path, "compression")
    result = _analyze("compression", "--runs", runs, "--out", out, "--only", "accuracy")
    assert result.returncode == 0, result.stderr
    section = (out / "README.md").read_text().split("<!-- BEGIN accuracy -->")[1].split("<!-- END accuracy -->")[0]
    group = "| resist | 4 | 10 | preact_resnet_mini | digits | protocol.compress=int8 | 0,1,2 | 36.47 % ± 22.92 % |"
    assert group in section
    # bytes to train: 2 evaluations' bytes less the 1 MB of evaluation and metrics
    int8 = f"| resist | 4 | int8 | 0,1 | -0.30 points | {21 / 79:.4f} | {21 / 199:.4f} | 1.000 |"
    assert f"{int8} within 0.5 point: met |" in section
    assert f"| resist | 4 | bf16 | 0,1 | -1.00 points | {41 / 79:.4f} | {41 / 199:.4f} | 1.000 | - |" in section
    assert "| local_sgd | 4 | int8 | 0,1 | -1.00 points |" in section
    for name in ("final_accuracy_vs_bytes.png", "accuracy_vs_bytes.png", "accuracy_vs_epochs.png"):
        assert (out / name).read_bytes()[:8] == PNG
    missing = _analyze("compression", "--runs", tmp_path / "nothing", "--out", out, "--only", "accuracy")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_the_what_if_model_and_its_link_fit():
    cost = RoundCost(compute_s=2.0, wire_bytes=125e6, messages=6)
    assert round_seconds(cost, bandwidth_bits_per_s=10 * GBIT, latency_s=1e-3) == 2.0 + 0.1 + 0.006
    assert ring_messages(3, 4) == 18
    link = LinkFit(latency_s=2e-4, bandwidth_bits_per_s=5 * GBIT)

    def measured(wire: float) -> tuple[float, float, float]:
        return (wire, 2.0, round_seconds(RoundCost(0.0, wire, 2.0), bandwidth_bits_per_s=5 * GBIT, latency_s=2e-4))

    fitted = fit_link(measured(4096.0), measured(64e6))
    assert dedicated_compute(8.0, workers=4, threads_per_worker=1, host_cpus=2) == 4.0  # time-sliced in half
    assert dedicated_compute(8.0, workers=2, threads_per_worker=1, host_cpus=16) == 8.0
    assert fitted.latency_s == pytest.approx(link.latency_s, rel=1e-9)
    assert fitted.bandwidth_bits_per_s == pytest.approx(link.bandwidth_bits_per_s, rel=1e-9)


def test_whatif_analysis_projects_runs_and_checks_the_loopback(benches, tmp_path):
    loopback = tmp_path / "loopback.json"
    link = {"latency_s": 1e-4, "bandwidth_bits_per_s": 8e9}
    loopback.write_text(
        json.dumps(
            {
                "workers": 2,
                "measured": [[4096.0, 2.0, 0.0002041], [64e6, 2.0, 0.0642]],
                "fit": link,
                "finished": "2026-11-25 19:00 UTC",
            }
        )
    )
    out = _out(tmp_path, "whatif")
    result = _analyze(
        "whatif",
        "--cifar10-runs",
        _cifar10_runs(tmp_path / "runs"),
        "--comm-runs",
        benches,
        "--loopback",
        loopback,
        "--out",
        out,
    )
    assert result.returncode == 0, result.stderr
    section = _section(out / "README.md")
    # resist S = 2, seed 0 and 1 alike: 20 rounds; compute 0.5 × 200 s / 20 = 5 s per round; wire
    # (train_sync + handoff) = (2 × 4 MB − 3 MB + 1 MB) / 2 workers / 20 rounds = 0.15 MB per round;
    # messages 1 all-reduce (2 messages) + 1 send; evaluations 0.2 s; 2 epochs.
    per_round = round_seconds(RoundCost(5.0, 0.15e6, 3.0), bandwidth_bits_per_s=1 * GBIT, latency_s=10e-6)
    assert f"| resist | 2 | 2 | 0.15 | 5.00 | {(20 * per_round + 0.2) / 2:.1f} |" in section
    # the probe's large transfer under the fit: 1e-4 × 2 + 64e6 × 8 / 8e9 = 0.0642 s
    assert "| probe all-reduce, 64 MB on the wire (fitted) | 0.0642 | 0.0642 | 1.00 |" in section
    # local SGD's S = 2 round: 100 MB: 2e-4 + 0.1 = 0.1002 s against the measured 0.3 s
    assert (
        "| preact_resnet101 S = 2 local SGD: the round's all-reduce of the model | 0.1002 | 0.3000 | 0.33 |" in section
    )
    # PreActResNet-101 at S = 8 (8 one-thread workers on 2 CPUs: a quarter of the measured compute);
    # DDP computes as local SGD's step (1 s) and sends its 100 MB per step
    assert "| 8 | ddp | 0.25 |" in section and "| 8 | local_sgd | 0.50 |" in section
    assert "| 8 | resist, m = 4 | 0.25 |" in section
    assert (out / "epoch_time_vs_bandwidth.png").read_bytes()[:8] == PNG
    older = tmp_path / "older"
    shutil.copytree(tmp_path / "runs", older)
    summary_of = older / "S2-seed0" / "0" / "metrics.jsonl"
    summary_of.write_text(summary_of.read_text().replace('"comm/cum_ops/train_sync"', '"unknown"'))
    refused = _analyze("whatif", "--cifar10-runs", older, "--comm-runs", benches, "--loopback", loopback, "--out", out)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "records no comm/cum_ops/train_sync (fix: rerun it with this version)" in refused.stderr
    loopback.unlink()
    refused = _analyze("whatif", "--loopback", loopback, "--out", out)
    assert refused.returncode == 2 and "run bash experiments/whatif/run.sh" in refused.stderr


def test_defaults_analysis_records_its_figures_and_renders_the_readme_table_from_them(tmp_path):
    runs = tmp_path / "runs"
    write_run(runs / "1-resist", protocol="resist", seed=0, accuracies=[0.5, 0.9917], bytes_per_eval=20e6)
    write_run(runs / "2-ddp", protocol="ddp", seed=0, local_steps=1, accuracies=[0.9833], bytes_per_eval=400e6)
    write_run(runs / "3-none", protocol="none", seed=1, workers=1, accuracies=[0.99], bytes_per_eval=3e6)
    out, figures = tmp_path / "out", tmp_path / "figures.json"
    out.mkdir()
    (out / "README.md").write_text("# hand-written\n<!-- BEGIN measured -->\nold\n<!-- END measured -->\nkept\n")
    result = _analyze("defaults", "--runs", runs, "--out", out, "--figures", figures)
    assert result.returncode == 0, result.stderr
    readme = (out / "README.md").read_text()
    assert readme.startswith("# hand-written\n") and readme.endswith("<!-- END measured -->\nkept\n")
    rows = [line for line in readme.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `python -m resist.run` | 99.17 % | 24 | 39.00 MB | 40.00 MB (handoff 1.00 MB, init 1.00 MB, train_sync "
        "37.00 MB) |",
        "| `python -m resist.run protocol=ddp` | 98.33 % | 12 | 399.00 MB | 400.00 MB (handoff 1.00 MB, init 1.00 MB, "
        "train_sync 397.00 MB) |",
        "| `python -m resist.run protocol=none num_workers=1 seed=1` | 99.00 % | 12 | 2.00 MB | 3.00 MB (handoff "
        "1.00 MB, init 1.00 MB) |",
    ]
    assert "platform: " in readme and json.loads(figures.read_text())["runs"][0]["steps"] == 24


def test_the_readme_holds_the_table_rendered_from_the_recorded_figures():
    """The top-level README's measured table is what ``experiments/defaults/analyze.py`` renders from
    the figures it recorded (``figures.json``), never typed."""
    from experiments.defaults.analyze import FIGURES, render

    readme = (REPO / "README.md").read_text()
    section = readme.split("<!-- BEGIN measured -->\n")[1].split("\n<!-- END measured -->")[0]
    assert section == render(json.loads(FIGURES.read_text()))


def test_models_analysis_sets_resist_against_local_sgd_per_network(tmp_path):
    """Bytes: one row per benchmark with the network's partitioned share (from the cost model's
    sizes), measured ratios and the generated reading; accuracy: ResIST against local SGD per network."""
    runs = tmp_path / "runs"
    for model in ("tv_resnet50", "vit_tiny"):
        for workers, depth in ((2, 0), (8, 4)):
            config_model = {"arch": model, **({"batchnorm": "running_stats"} if model.startswith("tv_") else {})}
            bench = write_bench(
                runs / "bytes" / f"{model}-S{workers}", model=model, workers=workers, min_depth=depth,
                protocols=("local_sgd", "resist"),
            )  # fmt: skip
            report = json.loads((bench / "bench.json").read_text())
            report["config"]["model"] = config_model
            (bench / "bench.json").write_text(json.dumps(report))
        for job, (protocol, seed) in enumerate([(p, s) for s in (0, 1) for p in ("local_sgd", "resist")]):
            final = (0.5 if protocol == "local_sgd" else 0.45) + 0.01 * seed
            write_run(
                runs / "accuracy" / model / str(job), protocol=protocol, seed=seed, workers=4,
                accuracies=[final - 0.1, final], bytes_per_eval=10e6 if protocol == "local_sgd" else 5e6,
                config={"model": config_model},
            )  # fmt: skip
    out = _out(tmp_path, "models")
    result = _analyze("models", "--runs", runs, "--out", out)
    assert result.returncode == 0, result.stderr
    text = (out / "README.md").read_text()
    bytes_section = text.split("<!-- BEGIN bytes -->")[1].split("<!-- END bytes -->")[0]
    # 100 MB local SGD, 40 MB ResIST (measured and expected), 200 MB and 400 MB held
    assert (
        "| vit_tiny | 8 | 4 | 5.4 M | 91.2 % | 100.0 | 40.0 | 40.0 | 1.0000 | 0.400 | 0.400 | 0.500 |" in bytes_section
    )
    assert "`tv_resnet50` (23.5 M parameters, 23.7 % of them in the partitioned blocks)" in bytes_section
    accuracy = text.split("<!-- BEGIN accuracy -->")[1].split("<!-- END accuracy -->")[0]
    assert "ResIST against local SGD on `vit_tiny`" in accuracy and "| 4 | 2 / 2 | -5.00 points | 0.474 |" in accuracy
    for plot in ("bytes_ratio.png", "held_ratio.png", "accuracy_vs_epochs.png"):
        assert (out / plot).read_bytes()[:8] == PNG
