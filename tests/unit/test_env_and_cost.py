"""Pure pieces of the engine: environment parsing and the byte cost model."""

from __future__ import annotations

import pytest

from resist.comm.cost import (
    Op,
    PowerSGDSizes,
    powersgd_sizes,
    ring_all_reduce_bytes_per_worker,
    wire_bytes,
)
from resist.launch.env import DistEnv, DistEnvError, cpu_threads_per_worker, first_host, parse_dist_env
from resist.paper import TABLE1_GB, table1_bytes_per_round

TORCHRUN = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
SLURM = {
    "SLURM_PROCID": "5",
    "SLURM_NTASKS": "8",
    "SLURM_LOCALID": "1",
    "SLURM_JOB_NODELIST": "gpu[07-10]",
    "SLURM_JOB_ID": "4242",
}


def test_torchrun_environment():
    assert parse_dist_env(TORCHRUN) == DistEnv(3, 4, 1, "10.0.0.1", 29500, "torchrun")


def test_slurm_environment_derives_the_rendezvous():
    assert parse_dist_env(SLURM) == DistEnv(5, 8, 1, "gpu07", 20000 + 4242, "slurm")
    explicit = {**SLURM, "MASTER_ADDR": "head", "MASTER_PORT": "1234"}
    assert parse_dist_env(explicit) == DistEnv(5, 8, 1, "head", 1234, "slurm")


def test_torchrun_wins_inside_a_slurm_job():
    assert parse_dist_env({**SLURM, **TORCHRUN}).source == "torchrun"


def test_no_launcher_environment():
    assert parse_dist_env({"PATH": "/bin"}) is None


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"RANK": "0", "WORLD_SIZE": "2"}, "LOCAL_RANK, MASTER_ADDR, MASTER_PORT: missing while RANK, WORLD_SIZE"),
        ({"SLURM_PROCID": "0"}, "SLURM_NTASKS, SLURM_LOCALID, SLURM_JOB_NODELIST or MASTER_ADDR, SLURM_JOB_ID"),
        ({**TORCHRUN, "RANK": "x"}, "RANK: 'x' is not an integer"),
        ({**TORCHRUN, "RANK": "4"}, "rank 4 of world size 4"),
    ],
)
def test_half_set_environments_are_clear_errors(environ, names):
    with pytest.raises(DistEnvError) as info:
        parse_dist_env(environ)
    assert names in str(info.value) and "\n" not in str(info.value) and "(fix: " in str(info.value)


@pytest.mark.parametrize(
    ("nodelist", "host"), [("n1", "n1"), ("gpu[03-05,9]", "gpu03"), ("a[1,2],b3", "a1"), ("node-x[12]", "node-x12")]
)
def test_first_host(nodelist, host):
    assert first_host(nodelist) == host


def test_cpu_threads_per_worker():
    assert cpu_threads_per_worker({}, 16, 4) == 4
    assert cpu_threads_per_worker({}, 2, 4) == 1
    assert cpu_threads_per_worker({"SLURM_CPUS_PER_TASK": "3"}, 16, 4) == 3
    assert cpu_threads_per_worker({"LOCAL_WORLD_SIZE": "8"}, 16, 1) == 2


def test_wire_byte_model():
    assert wire_bytes(Op.all_reduce, 1000, 4) == 1500
    assert wire_bytes(Op.all_reduce, 1000, 1) == 0
    # pipelined broadcast: every rank but the chain's last forwards the payload once
    assert [wire_bytes(Op.broadcast, 1000, 4, position=k) for k in range(4)] == [1000, 1000, 1000, 0]
    assert [wire_bytes(Op.reduce, 1000, 4, position=k) for k in range(4)] == [0, 1000, 1000, 1000]
    assert wire_bytes(Op.broadcast, 1000, 1) == 0
    with pytest.raises(ValueError, match="position 4"):
        wire_bytes(Op.broadcast, 1000, 4, position=4)
    assert wire_bytes(Op.all_gather, 8, 5) == 32
    assert (wire_bytes(Op.send, 7, 2), wire_bytes(Op.recv, 7, 2)) == (7, 0)
    with pytest.raises(ValueError):
        wire_bytes(Op.all_reduce, 10, 0)


@pytest.mark.parametrize(("workers", "megabytes"), [(2, 165.40292), (4, 248.10438), (8, 289.45511)])
def test_full_model_ring_all_reduce_of_the_paper_network(workers, megabytes):
    assert ring_all_reduce_bytes_per_worker(41_350_730, workers) == pytest.approx(megabytes * 1e6, abs=1)


def test_powersgd_sizes():
    """Vectors and matrices too small to gain (at least 2x) travel as they are; the others send
    an n x r and an m x r factor, r = min(n, m, rank), m the product of the other dimensions."""
    shapes = [(16,), (16, 3, 3, 3), (4, 4), (10, 128), (3, 200)]
    # (16, 27): 43 x 2 x 2 = 172 < 432; (4, 4): 8 x 2 x 2 = 32 >= 16; (10, 128): 552 < 1280;
    # (3, 200): 203 x 2 x 2 = 812 >= 600
    assert powersgd_sizes(shapes, rank=2) == PowerSGDSizes(uncompressed=16 + 16 + 600, p=32 + 20, q=54 + 256)
    assert powersgd_sizes(shapes, rank=1).p == 16 + 10 + 3  # (3, 200) compresses at rank 1


def test_powersgd_sizes_follow_torchs_rule():
    """The rule the ledger bills by is the one torch's hook compresses by (its private helper)."""
    from torch.distributed.algorithms.ddp_comm_hooks.powerSGD_hook import _should_compress

    for n in (1, 2, 3, 8, 64):
        for m in (1, 2, 5, 9, 64, 300):
            for rank in (1, 2, 4):
                r = min(n, m, rank)
                compressed = powersgd_sizes([(n, m)], rank).uncompressed == 0
                assert compressed == _should_compress(n, m, r, 2)[0], (n, m, rank)


def test_table1_convention_for_local_sgd_matches_the_paper():
    """Paper Table 1, local SGD, CIFAR-100 PreActResNet-101: the GB per round of every worker holding
    the whole model."""
    for workers, paper in TABLE1_GB.items():
        assert round(table1_bytes_per_round([41_396_900 * 4] * workers) / 1e9, 3) == paper.local_sgd


def test_run_names_carry_workers_seed_and_slurm_array_ids():
    from resist.config import Config
    from resist.logging.sinks import run_name

    cfg = Config()
    cfg.name, cfg.num_workers, cfg.seed = "cifar10_resist", 4, 2
    assert run_name(cfg, {}) == "cifar10_resist-none-S4-seed2"
    array = {"SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "3"}
    assert run_name(cfg, array) == "cifar10_resist-none-S4-seed2-77_3"


def test_a_benchmark_gives_each_protocol_the_compression_it_has():
    from resist.bench import protocol_settings
    from resist.config import (
        Compression,
        ConfigError,
        DDPConfig,
        GradientCompression,
        LocalSGDConfig,
        ProtocolName,
        ResISTConfig,
    )

    ddp = protocol_settings(ResISTConfig(compress=Compression.bf16), ProtocolName.ddp)
    assert isinstance(ddp, DDPConfig) and ddp.compress is GradientCompression.bf16
    local = protocol_settings(DDPConfig(compress=GradientCompression.bf16), ProtocolName.local_sgd)
    assert isinstance(local, LocalSGDConfig) and local.compress is Compression.bf16
    with pytest.raises(ConfigError, match="protocol.compress=int8 does not apply to ddp"):
        protocol_settings(LocalSGDConfig(compress=Compression.int8), ProtocolName.ddp)
    with pytest.raises(ConfigError, match="protocol.compress=powersgd does not apply to resist"):
        protocol_settings(DDPConfig(compress=GradientCompression.powersgd), ProtocolName.resist)


@pytest.mark.parametrize(
    ("overrides", "local_steps", "min_depth"),
    [
        (["num_workers=8"], 5, 4),  # protocol=resist: short rounds, the paper's minimum depth
        (["protocol=local_sgd"], 5, None),
        (["protocol=ddp", "protocol.compress=powersgd", "bench.protocols=[ddp]"], None, None),
    ],
)
def test_the_benchmark_config_takes_the_settings_of_its_protocol_group(overrides, local_steps, min_depth):
    """conf/bench.yaml picks conf/bench_rounds/<protocol>.yaml: DDP, which has neither key, benchmarks alone."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from resist.config import BenchConfig, GradientCompression, register_schemas, to_typed_config

    register_schemas()
    conf = Path(__file__).resolve().parents[2] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = to_typed_config(compose("bench", overrides=overrides), BenchConfig)
    assert getattr(cfg.protocol, "local_steps", None) == local_steps
    has_decomposition = hasattr(cfg.protocol, "decomposition")
    assert (cfg.protocol.decomposition.min_depth if has_decomposition else None) == min_depth
    if "protocol=ddp" in overrides:
        assert cfg.protocol.compress is GradientCompression.powersgd


def test_a_benchmark_refuses_a_protocol_whose_rounds_are_not_its_own():
    """Under protocol=ddp (rounds of one step) local SGD would train 4 steps of a 50-step round."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir

    from resist.bench import protocol_run_config
    from resist.config import BenchConfig, ConfigError, ProtocolName, register_schemas, to_typed_config

    register_schemas()
    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[2] / "conf"), version_base="1.3"):
        cfg = to_typed_config(compose("bench", overrides=["protocol=ddp"]), BenchConfig)
    # 1 warm-up + 3 measured rounds of 1 step + 1 unmeasured (the measured rounds are not the run's last)
    assert protocol_run_config(cfg, ProtocolName.ddp).train.max_steps == 5
    with pytest.raises(ConfigError) as info:
        protocol_run_config(cfg, ProtocolName.local_sgd)
    assert str(info.value) == (
        "bench.protocols: local_sgd trains in rounds of 50 steps, the benchmark measures rounds of 1 (those of "
        "protocol=ddp) (fix: benchmark it with protocol=resist or protocol=local_sgd, or leave it out of "
        "bench.protocols)"
    )
