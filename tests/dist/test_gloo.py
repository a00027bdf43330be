"""Real torch.distributed (gloo, one process per worker): the same tensors and the same ledger as the
in-process backend, and a failing worker ends a run quickly with a clear message."""

from __future__ import annotations

import copy
import pickle
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from resist.comm import Purpose
from resist.comm.backends import init_process_comm, run_in_threads, shutdown_process_comm
from resist.config import BatchNormMode, Config, DDPConfig, DecompositionConfig, LocalSGDConfig, ResISTConfig
from resist.comm.ports import free_port
from resist.models.preact import build_model
from resist.models.spec import ARCHITECTURES
from resist.protocols.ddp import DataParallel
from tests.helpers import fixed
from resist.protocols.local_sgd import LocalSGD
from resist.models.catalog import layout_of
from resist.protocols.resist import ResIST
from tests.conftest import run_cli

WORKERS = 3


def _initial_model():
    return build_model(ARCHITECTURES["preact_resnet_mini"], 4, in_channels=1, batchnorm=BatchNormMode.running_stats, init_seed=0)


def scenario(comm, initial):
    """Collectives, one local-SGD round and two DDP steps; returns tensors and the ledger."""
    r = comm.rank
    out = {}
    values = [torch.arange(6, dtype=torch.float64) * (r + 1), torch.full((3,), 0.5 * r)]
    comm.all_reduce(values, Purpose.train_sync)
    shared = [torch.full((4,), float(r))]
    comm.broadcast(shared, src=WORKERS - 1, purpose=Purpose.init)
    reduced = [torch.full((2,), float(r + 1))]
    comm.reduce(reduced, dst=1, purpose=Purpose.train_sync)
    inbox = torch.zeros(3)
    comm.exchange([((r + 1) % WORKERS, [torch.full((3,), float(r))])], [((r - 1) % WORKERS, [inbox])],
                  Purpose.handoff)
    out["collectives"] = [*values, *shared, *reduced, inbox, *comm.all_gather(torch.tensor([r]), Purpose.metrics)]
    for name, protocol in (("local_sgd", LocalSGD(comm, LocalSGDConfig(), seed=0)),
                           ("ddp", DataParallel(comm, DDPConfig(), seed=0))):
        model = protocol.setup(fixed(copy.deepcopy(initial)), steps_per_epoch=100)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for step in range(2):
            g = torch.Generator().manual_seed(100 * step + r)
            images, labels = torch.randn(4, 1, 8, 8, generator=g), torch.randint(4, (4,), generator=g)
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
        protocol.end_round(optimizer)
        out[name] = [t.detach().clone() for t in protocol.eval_model().state_dict().values()]
    cfg = Config()
    cfg.model.arch, cfg.num_workers = "preact_resnet_mini_deep", WORKERS
    cfg.protocol = ResISTConfig(local_steps=2, decomposition=DecompositionConfig(min_depth=3))  # 9 slots, 8 blocks
    resist = ResIST(comm, cfg.protocol, layout=layout_of(cfg.model.arch), seed=cfg.seed)

    def make_model(held_blocks=None, initialize=True, meta=False):
        spec = ARCHITECTURES["preact_resnet_mini_deep"]
        return build_model(
            spec, 4, in_channels=1, held_blocks=held_blocks, init_seed=0 if initialize and not meta else None,
            device="meta" if meta else None,
        )

    model = resist.setup(make_model, steps_per_epoch=100)
    for round_index in range(3):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for step in range(2):
            g = torch.Generator().manual_seed(1000 * round_index + 10 * step + r)
            images, labels = torch.randn(4, 1, 8, 8, generator=g), torch.randint(4, (4,), generator=g)
            optimizer.zero_grad()
            F.cross_entropy(model(images), labels).backward()
            optimizer.step()
        comm.ledger.start_round(round_index + 1)
        resist.end_round(optimizer)
    out["resist"] = [t.detach().clone() for t in resist.eval_model().state_dict().values()]
    out["ledger"] = [(e.op, e.purpose, e.payload_bytes, e.wire_bytes, e.group_size, e.peer)
                     for e in comm.ledger.round_entries]
    return out


def _process(rank: int, port: int, initial, result_dir: Path) -> None:
    comm = init_process_comm(
        rank=rank, world_size=WORKERS, master_addr="127.0.0.1", master_port=port, device=torch.device("cpu")
    )
    try:
        (result_dir / f"{rank}.pkl").write_bytes(pickle.dumps(scenario(comm, initial)))
    finally:
        shutdown_process_comm()


def test_torch_distributed_backend_matches_the_in_process_backend(tmp_path):
    initial = _initial_model()
    mp.start_processes(_process, args=(free_port(), initial, tmp_path), nprocs=WORKERS, start_method="spawn")
    processes = [pickle.loads((tmp_path / f"{rank}.pkl").read_bytes()) for rank in range(WORKERS)]
    threads = run_in_threads(WORKERS, lambda comm: scenario(comm, initial))
    for rank, (real, simulated) in enumerate(zip(processes, threads, strict=True)):
        assert real["ledger"] == simulated["ledger"], rank
        for key in ("collectives", "local_sgd", "ddp", "resist"):
            for a, b in zip(real[key], simulated[key], strict=True):
                assert torch.equal(a, b), (rank, key)
    for key in ("ddp", "resist"):  # every worker ends with the same global model
        assert all(torch.equal(a, b) for a, b in zip(processes[0][key], processes[2][key], strict=True))


def test_a_failing_worker_ends_the_run_with_its_rank_and_error(tmp_path):
    """A corrupt image that only one worker reads: that worker raises while the other waits in DDP's
    all-reduce; the run must end within 60 s, naming the worker and the error."""
    from PIL import Image

    root = tmp_path / "data"
    for split in ("train", "val"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(4):
                Image.new("RGB", (16, 16), (60 * i, 30, 200 if label == "a" else 10)).save(root / split / label / f"{i}.png")
    # A PNG signature passes the launcher's pre-flight look at the files; decoding it fails.
    (root / "train" / "b" / "3.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not an image")
    start = time.monotonic()
    result = run_cli("protocol=ddp", "num_workers=2", "dataset=imagefolder", f"dataset.root={root}",
                     "dataset.image_size=16", "dataset.loader_workers=0", "train.batch_size=4", "train.epochs=1",
                     f"hydra.run.dir={tmp_path}/run", timeout=120)
    assert time.monotonic() - start < 60
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("resist: error: worker ") and "failed: " in last and "cannot identify image file" in last


@pytest.mark.parametrize("protocol", ["local_sgd", "ddp"])
def test_two_worker_protocols_train_the_embedded_default(protocol, tmp_path):
    result = run_cli(f"protocol={protocol}", "num_workers=2", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    summary, start = records[-1], records[0]
    assert summary["test/acc1"] >= 0.90 and start["num_workers"] == 2 and start["protocol"] == protocol
    train = [r for r in records if r["event"] == "train"]
    # ddp: one gradient all-reduce per step (a round); local SGD: one parameter all-reduce per round.
    ring_bytes = 2 * (2 - 1) / 2 * start["model/params"] * 4
    assert summary["comm/cum_wire_bytes/train_sync"] == start["num_rounds"] * 2 * ring_bytes
    assert len(train[-1]["memory/peak_bytes_per_worker"]) == 2


def test_torchrun_launcher_runs_the_worker_entry(tmp_path):
    result = run_cli("launcher=torchrun", "protocol=local_sgd", "num_workers=2", "protocol.local_steps=6",
                     "train.max_steps=12", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["num_workers"] == 2 and records[0]["num_rounds"] == 2
    params = records[0]["model/params"]
    assert records[-1]["step"] == 12 and records[-1]["comm/cum_wire_bytes/init"] == 2 * 32  # digests
    assert records[-1]["comm/cum_wire_bytes/train_sync"] == 2 * 2 * params * 4  # 2 rounds x 2 workers x ring


def test_worker_entry_outside_a_launcher_is_a_clear_error(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK"))}
    result = subprocess.run([sys.executable, "-m", "resist.worker", str(tmp_path)], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("resist: error: RANK/SLURM_PROCID: no torchrun or SLURM environment")


def test_worker_in_a_world_of_the_wrong_size_stops_before_training(tmp_path):
    """A hand-written torchrun line that starts 3 workers for a run prepared for 2."""
    import os
    import subprocess
    import sys

    from omegaconf import OmegaConf

    from resist.config import Config, LocalSGDConfig
    from resist.run_dir import RunDir

    cfg = Config(num_workers=2, protocol=LocalSGDConfig())
    OmegaConf.save(OmegaConf.structured(cfg), RunDir(tmp_path).resolved_config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env.update(RANK="0", WORLD_SIZE="3", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29511")
    result = subprocess.run(
        [sys.executable, "-m", "resist.worker", str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "resist: error: num_workers: the run was prepared for 2 workers, but torchrun started 3 (fix: start 2 "
        "workers, e.g. torchrun --nproc-per-node=2 or srun --ntasks=2, or prepare the run with num_workers=3)"
    )
    assert not (tmp_path / "metrics.jsonl").exists()
