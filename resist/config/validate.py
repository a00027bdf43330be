"""Cross-field validation of a typed :class:`Config` (pure: neither torch nor Hydra is imported).

:func:`validate` raises :class:`ConfigError`, whose message is one line naming the key, the problem
and the fix.
"""

from __future__ import annotations

import math

from resist.config.network_rules import partitioned_blocks, validate_decomposition, validate_model
from resist.config.rules import NATIVE_IMAGE_SIZE
from resist.config.rules import at_least as _at_least
from resist.config.rules import require as _require
from resist.config.schema import (
    PROTOCOL_CONFIGS,
    AmpMode,
    BenchConfig,
    BenchSettings,
    Compression,
    Config,
    DatasetConfig,
    DatasetName,
    DDPConfig,
    DiLoCoConfig,
    GradientCompression,
    LocalSGDConfig,
    OptimConfig,
    OptimizerName,
    OptimizerStatePolicy,
    OuterOptimizerName,
    ProtocolName,
    ResISTConfig,
    ScheduleName,
    TrainConfig,
)


def validate(cfg: Config) -> None:
    """Check every cross-field rule; raise :class:`ConfigError` on the first violation."""
    if isinstance(cfg, BenchConfig):
        _validate_bench(cfg.bench)
    _validate_workers(cfg)
    validate_model(cfg)
    _validate_protocol(cfg)
    _validate_dataset(cfg.dataset)
    _validate_optim(cfg.optim)
    _validate_train(cfg.train)
    _validate_checkpoint(cfg)


def _validate_checkpoint(cfg: Config) -> None:
    every, keep = cfg.checkpoint.every_rounds, cfg.checkpoint.keep
    every_fix = "set checkpoint.every_rounds=10 (0: only at the end and when stopped)"
    _at_least(every, 0, "checkpoint.every_rounds", fix=every_fix)
    _at_least(keep, 1, "checkpoint.keep", why=" (a resume needs a checkpoint)", fix="set checkpoint.keep=2")
    _require(
        cfg.launcher.collective_timeout_s > 0,
        "launcher.collective_timeout_s",
        problem=f"must be > 0 seconds, got {cfg.launcher.collective_timeout_s}",
        fix="set launcher.collective_timeout_s=60 (more on slow filesystems: checkpoint writes count)",
    )
    _require(
        cfg.launcher.signal_delay_s > 0,
        "launcher.signal_delay_s",
        problem=f"must be > 0 seconds, got {cfg.launcher.signal_delay_s}",
        fix="set launcher.signal_delay_s=120 (above one round plus one checkpoint write)",
    )


def _validate_dataset(dataset: DatasetConfig) -> None:
    if dataset.image_size is not None:
        _require(
            dataset.name not in NATIVE_IMAGE_SIZE,
            "dataset.image_size",
            problem=f"{dataset.name.value} images have a fixed size",
            fix="remove dataset.image_size",
        )
        _require(dataset.image_size >= 1, "dataset.image_size", problem="must be >= 1", fix="set a positive size")
    _require(
        dataset.loader_workers >= 0,
        "dataset.loader_workers",
        problem="must be >= 0",
        fix="set dataset.loader_workers=0 (load in the training process) or more",
    )
    needs_root = dataset.name in (
        DatasetName.cifar10,
        DatasetName.cifar100,
        DatasetName.imagenet,
        DatasetName.imagefolder,
    )
    _require(
        not needs_root or bool(dataset.root),
        "dataset.root",
        problem=f"dataset {dataset.name.value} needs a root directory",
        fix="set dataset.root=/path/to/data",
    )
    if dataset.name == DatasetName.synthetic:
        _require(
            dataset.num_classes is not None and dataset.num_classes >= 2,
            "dataset.num_classes",
            problem="synthetic data needs at least 2 classes",
            fix="set dataset.num_classes=10",
        )
        _require(dataset.channels >= 1, "dataset.channels", problem="must be >= 1", fix="set dataset.channels=3")
        _require(
            dataset.num_train_samples >= 1 and dataset.num_test_samples >= 1,
            "dataset.num_train_samples",
            problem="synthetic splits must not be empty",
            fix="set dataset.num_train_samples and dataset.num_test_samples >= 1",
        )
    else:
        _require(
            dataset.num_classes is None,
            "dataset.num_classes",
            problem=f"the number of classes of {dataset.name.value} comes from the data",
            fix="remove dataset.num_classes",
        )


def _validate_optim(optim: OptimConfig) -> None:
    _require(
        math.isfinite(optim.lr) and optim.lr > 0,
        "optim.lr",
        problem=f"must be a positive number, got {optim.lr}",
        fix="set e.g. optim.lr=0.05",
    )
    _require(
        0 <= optim.momentum < 1,
        "optim.momentum",
        problem=f"must be in [0, 1), got {optim.momentum}",
        fix="set e.g. optim.momentum=0.9",
    )
    _require(
        optim.weight_decay >= 0,
        "optim.weight_decay",
        problem=f"must be >= 0, got {optim.weight_decay}",
        fix="set e.g. optim.weight_decay=5e-4",
    )
    if optim.name == OptimizerName.adamw:
        _require(
            not optim.nesterov,
            "optim.nesterov",
            problem="Nesterov momentum is SGD's, not AdamW's",
            fix="set optim.nesterov=false or optim.name=sgd",
        )
        _require(
            len(optim.betas) == 2 and all(0 <= b < 1 for b in optim.betas),
            "optim.betas",
            problem=f"must be two numbers in [0, 1), got {optim.betas}",
            fix="set optim.betas=[0.9,0.999]",
        )
        _require(optim.eps > 0, "optim.eps", problem=f"must be > 0, got {optim.eps}", fix="set optim.eps=1e-8")
    _require(
        not optim.nesterov or optim.momentum > 0,
        "optim.nesterov",
        problem="Nesterov needs momentum > 0",
        fix="set optim.momentum=0.9 or optim.nesterov=false",
    )
    if optim.schedule == ScheduleName.step:
        ms = optim.milestones
        _require(
            all(0 < m < 1 for m in ms) and all(a < b for a, b in zip(ms, ms[1:], strict=False)),
            "optim.milestones",
            problem=f"must be increasing fractions of training in (0, 1), got {ms}",
            fix="set e.g. optim.milestones=[0.5,0.75]",
        )
        _require(
            0 < optim.gamma <= 1,
            "optim.gamma",
            problem=f"must be in (0, 1], got {optim.gamma}",
            fix="set e.g. optim.gamma=0.1",
        )


def _validate_train(train: TrainConfig) -> None:
    _require(
        train.epochs >= 1, "train.epochs", problem=f"must be >= 1, got {train.epochs}", fix="set train.epochs=1 or more"
    )
    _require(
        train.max_steps is None or train.max_steps >= 1,
        "train.max_steps",
        problem=f"must be >= 1 or null, got {train.max_steps}",
        fix="set train.max_steps=null to train all epochs",
    )
    _at_least(train.batch_size, 1, "train.batch_size", fix="set e.g. train.batch_size=128")
    _at_least(train.eval_batch_size, 1, "train.eval_batch_size", fix="set e.g. train.eval_batch_size=100")
    _at_least(train.eval_every, 1, "train.eval_every", fix="set train.eval_every=1 (every train.eval_unit)")
    _at_least(train.log_every_steps, 1, "train.log_every_steps", fix="set e.g. train.log_every_steps=10")


def _validate_bench(bench: BenchSettings) -> None:
    _require(
        bool(bench.protocols) and len(set(bench.protocols)) == len(bench.protocols),
        "bench.protocols",
        problem=f"must name distinct protocols, got {[p.value for p in bench.protocols]}",
        fix="set e.g. bench.protocols=[ddp,local_sgd]",
    )
    _require(
        bench.rounds >= 1 and bench.warmup_rounds >= 0,
        "bench.rounds",
        problem=f"need rounds >= 1 and warmup_rounds >= 0, got {bench.rounds} and {bench.warmup_rounds}",
        fix="set e.g. bench.rounds=3 bench.warmup_rounds=1",
    )


def _validate_protocol(cfg: Config) -> None:
    protocol = cfg.protocol
    _require(
        type(protocol) is PROTOCOL_CONFIGS[protocol.name],
        "protocol.name",
        problem=f"protocol.name={protocol.name.value} in a {type(protocol).__name__}",
        fix=f"select the protocol with protocol={protocol.name.value}, not protocol.name",
    )
    if isinstance(protocol, LocalSGDConfig | DiLoCoConfig | ResISTConfig):
        _at_least(protocol.local_steps, 1, "protocol.local_steps", fix="set e.g. protocol.local_steps=50")
    if isinstance(protocol, DiLoCoConfig) or (
        isinstance(protocol, ResISTConfig) and protocol.outer_optimizer != OuterOptimizerName.none
    ):
        _validate_outer(cfg, protocol)
    if isinstance(protocol, LocalSGDConfig) and protocol.paper_style_stage is not None:
        partitioned_blocks(cfg, protocol.paper_style_stage, "protocol.paper_style_stage")
    if isinstance(protocol, LocalSGDConfig):
        _require(
            not (protocol.paper_style and protocol.compress != Compression.none),
            "protocol.compress",
            problem=f"compress={protocol.compress.value} with paper_style=true (the paper code's pattern is float32)",
            fix="set protocol.paper_style=false or protocol.compress=none",
        )
    if isinstance(protocol, ResISTConfig):
        validate_decomposition(cfg, protocol)
        _require(
            not (protocol.optimizer_state == OptimizerStatePolicy.keep and cfg.optim.name == OptimizerName.adamw),
            "protocol.optimizer_state",
            problem="keep with optim.name=adamw: only SGD's momentum travels with a block",
            fix="set protocol.optimizer_state=reset or optim.name=sgd",
        )
    if isinstance(protocol, DDPConfig):
        _require(
            not (protocol.compress == GradientCompression.powersgd and cfg.train.amp == AmpMode.fp16),
            "protocol.compress",
            problem="powersgd with train.amp=fp16: its residuals would keep scaled (or overflowed) gradients",
            fix="set train.amp=bf16 or off, or protocol.compress=bf16",
        )
        _at_least(protocol.powersgd_rank, 1, "protocol.powersgd_rank", fix="set e.g. protocol.powersgd_rank=2")
        start, why = protocol.powersgd_start_step, " (torch's PowerSGD hook with error feedback)"
        _at_least(start, 2, "protocol.powersgd_start_step", why=why, fix="set e.g. protocol.powersgd_start_step=2")


def _validate_outer(cfg: Config, protocol: DiLoCoConfig | ResISTConfig) -> None:
    """The outer optimizer's keys (DiLoCo, and ResIST with ``outer_optimizer``)."""
    _require(
        math.isfinite(protocol.outer_lr) and protocol.outer_lr > 0,
        "protocol.outer_lr",
        problem=f"must be a positive number, got {protocol.outer_lr}",
        fix="set protocol.outer_lr=0.7 (DiLoCo's; 1 with outer_momentum=0 is plain averaging)",
    )
    _require(
        0 <= protocol.outer_momentum < 1,
        "protocol.outer_momentum",
        problem=f"must be in [0, 1), got {protocol.outer_momentum}",
        fix="set protocol.outer_momentum=0.9 (DiLoCo's)",
    )
    if isinstance(protocol, ResISTConfig):
        _require(
            protocol.warmup_epochs == 0,
            "protocol.warmup_epochs",
            problem="a local-SGD warm-up with protocol.outer_optimizer=nesterov is not supported",
            fix="set protocol.warmup_epochs=0 or protocol.outer_optimizer=none",
        )


def _validate_workers(cfg: Config) -> None:
    _require(
        cfg.num_workers >= 1, "num_workers", problem=f"must be >= 1, got {cfg.num_workers}", fix="set num_workers=1"
    )
    _require(
        cfg.protocol.name != ProtocolName.none or cfg.num_workers == 1,
        "num_workers",
        problem=f"protocol=none trains one worker, got num_workers={cfg.num_workers}",
        fix="set num_workers=1 or choose a multi-worker protocol (protocol=resist, local_sgd, diloco or ddp)",
    )
    _require(
        cfg.launcher.threads_per_worker is None or cfg.launcher.threads_per_worker >= 1,
        "launcher.threads_per_worker",
        problem=f"must be >= 1 or null, got {cfg.launcher.threads_per_worker}",
        fix="set launcher.threads_per_worker=null to derive it from the cores",
    )
    _require(
        cfg.launcher.master_port is None or 1024 <= cfg.launcher.master_port <= 65535,
        "launcher.master_port",
        problem=f"must be a port in 1024..65535, got {cfg.launcher.master_port}",
        fix="set launcher.master_port=null",
    )
