"""Typed configuration: the schema every Hydra option is checked against, and its validation.

Hydra composes ``conf/`` on top of these dataclasses (registered in the ConfigStore as
``base_config``), so an unknown key or a wrongly typed value fails during composition. What
composition cannot see — keys added with ``+key=...`` that ``OmegaConf.to_object`` would silently
drop, and cross-field rules — is checked by :func:`to_typed_config` and :func:`validate`, which
raise :class:`ConfigError` with a one-line message naming the key and the fix.

This module imports neither torch nor anything that touches devices: validation is pure.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import DictConfig, OmegaConf

from resist.errors import UserError
from resist.models.spec import ARCHITECTURES, Stem


class ConfigError(UserError, ValueError):
    """An invalid configuration value; ``str()`` is one line: key, problem, fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"{key}: {problem} (fix: {fix})")


class BatchNormMode(str, Enum):
    """``batch_stats``: normalise with batch statistics in train and eval (the paper's code,
    ``track_running_stats=False``, no buffers); ``running_stats``: standard running averages."""

    batch_stats = "batch_stats"
    running_stats = "running_stats"


class DatasetName(str, Enum):
    digits = "digits"
    cifar10 = "cifar10"
    cifar100 = "cifar100"
    imagenet = "imagenet"
    imagefolder = "imagefolder"
    synthetic = "synthetic"


class ShardingMode(str, Enum):
    """``disjoint``: each worker reads its own equal-size shard of the training set per epoch;
    ``full_shuffle``: each worker reads the whole training set with its own shuffle (the paper's code)."""

    disjoint = "disjoint"
    full_shuffle = "full_shuffle"


class ProtocolName(str, Enum):
    """How workers cooperate. ``none``: one worker, no communication; ``ddp``: data-parallel SGD
    (gradients all-reduced every step); ``local_sgd``: every worker trains the whole model for
    ``local_steps`` steps, then parameters are averaged; ``resist``: every worker trains its own
    random sub-ResNet for ``local_steps`` steps, then shared layers are averaged and blocks move to
    their next holders."""

    none = "none"
    ddp = "ddp"
    local_sgd = "local_sgd"
    resist = "resist"


class OptimizerStatePolicy(str, Enum):
    """At each synchronisation: ``reset`` the optimizer state (momentum; the paper's code builds a new
    SGD every round) or ``keep`` it (local SGD: each worker its own; ResIST: momentum travels with its
    block, billed)."""

    reset = "reset"
    keep = "keep"


class AmpMode(str, Enum):
    """Mixed precision for forward/backward: ``off``, ``bf16`` (autocast) or ``fp16`` (autocast +
    gradient scaling; CUDA only)."""

    off = "off"
    bf16 = "bf16"
    fp16 = "fp16"


class ScheduleName(str, Enum):
    """``step``: lr × gamma^k after each milestone fraction of training; ``cosine``: cosine decay to 0;
    ``constant``: fixed lr."""

    step = "step"
    cosine = "cosine"
    constant = "constant"


class EvalUnit(str, Enum):
    """Evaluation cadence unit; evaluation happens at the first synchronisation point at or after
    each multiple of ``train.eval_every`` units."""

    steps = "steps"
    epochs = "epochs"
    rounds = "rounds"


class DeviceKind(str, Enum):
    """``auto``: CUDA when available, else CPU."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class LauncherName(str, Enum):
    """``local``: spawn the workers as processes of this machine (one per GPU on CUDA);
    ``torchrun``: hand the prepared run to ``torchrun --standalone`` on this machine;
    ``slurm``: submit one SLURM job with one task per worker (submitit)."""

    local = "local"
    torchrun = "torchrun"
    slurm = "slurm"


class WandbMode(str, Enum):
    online = "online"
    offline = "offline"
    disabled = "disabled"


@dataclass
class ModelConfig:
    """``arch`` names an entry of :data:`resist.models.spec.ARCHITECTURES`."""

    arch: str = "preact_resnet_mini"
    batchnorm: BatchNormMode = BatchNormMode.batch_stats


@dataclass
class DatasetConfig:
    """Where the data lives and how it is read. ``root`` is relative to the working directory.

    ``image_size`` (pixels, square) applies to digits (resized), imagefolder and synthetic; CIFAR is
    32 and ImageNet 224 by definition. ``num_classes``, ``channels`` and ``num_*_samples`` describe
    synthetic data only.
    """

    name: DatasetName = DatasetName.digits
    root: str | None = None
    download: bool = False
    image_size: int | None = None
    augment: bool = True
    sharding: ShardingMode = ShardingMode.disjoint
    loader_workers: int = 0
    num_classes: int | None = None
    channels: int = 3
    num_train_samples: int = 50_000
    num_test_samples: int = 10_000


@dataclass
class ProtocolConfig:
    """``local_steps``: the paper's l, optimizer steps between synchronisations (local_sgd, resist; ddp
    synchronises every step). ``paper_style`` (local_sgd): move the partitionable blocks through a
    reduce to rank 0 and a broadcast from it, as the paper's code does, instead of one all-reduce.
    ``warmup_epochs`` (resist): epochs of local SGD on the whole model before ResIST starts."""

    name: ProtocolName = ProtocolName.none
    local_steps: int = 50
    optimizer_state: OptimizerStatePolicy = OptimizerStatePolicy.reset
    paper_style: bool = False
    warmup_epochs: int = 0


@dataclass
class DecompositionConfig:
    """ResIST's decomposition (``protocol=resist``). ``policy``: a name in
    :data:`resist.decomposition.POLICIES`; ``stage``: 0-based index of the stage whose non-first blocks
    are partitioned (None: derived from the model, the third of four); ``min_depth``: at least this
    many partitioned blocks per sub-network (some blocks then have several holders)."""

    policy: str = "paper"
    stage: int | None = None
    min_depth: int = 0


@dataclass
class OptimConfig:
    """SGD. ``lr`` is the peak learning rate per worker; ``milestones`` are fractions of the total
    steps after which the step schedule multiplies the lr by ``gamma``."""

    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    schedule: ScheduleName = ScheduleName.step
    milestones: list[float] = field(default_factory=lambda: [0.5, 0.75])
    gamma: float = 0.1


@dataclass
class TrainConfig:
    """``batch_size`` is per worker. ``max_steps`` caps the run (None: ``epochs`` full epochs).
    ``amp``, ``channels_last`` and ``compile`` (``torch.compile`` of the trained module) are speed
    options valid for every protocol."""

    epochs: int = 30
    max_steps: int | None = None
    batch_size: int = 128
    eval_batch_size: int = 100
    eval_every: int = 1
    eval_unit: EvalUnit = EvalUnit.epochs
    log_every_steps: int = 10
    amp: AmpMode = AmpMode.off
    channels_last: bool = False
    compile: bool = False


@dataclass
class LoggerConfig:
    """Metrics always go to ``metrics.jsonl`` in the run directory; ``wandb=true`` adds W&B.

    ``wandb_mode`` None leaves the choice to W&B (``WANDB_MODE`` in the environment, else online).
    ``progress`` None: a progress bar only when stderr is a terminal.
    """

    wandb: bool = False
    project: str = "resist"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    wandb_mode: WandbMode | None = None
    progress: bool | None = None


@dataclass
class LauncherConfig:
    """``master_port``: rendezvous port of the local launcher (None: a free port).
    ``threads_per_worker``: CPU threads of each worker (None: ``SLURM_CPUS_PER_TASK`` in a SLURM
    task, else this machine's cores divided among its workers). CPU results depend on it in the last
    bits, so pin it to compare runs bit for bit across launchers or machines.

    SLURM (``launcher=slurm``): one task per worker, ``gpus_per_node`` tasks per node on GPUs (else
    ``tasks_per_node``, default all workers on one node), ``nodes = ceil(num_workers / tasks per
    node)``; ``partition``, ``account``, ``qos``, ``constraint``, ``time_min``, ``mem_gb`` (per node),
    ``cpus_per_task`` and ``sbatch_extra`` (more ``#SBATCH`` options, e.g. ``{exclusive: ""}``) go to
    sbatch; ``dry_run`` prints the plan and the resolved config without submitting; ``wait`` blocks
    until the job ends (the default returns once it is submitted).
    """

    name: LauncherName = LauncherName.local
    master_port: int | None = None
    threads_per_worker: int | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    time_min: int = 60
    mem_gb: int | None = None
    gpus_per_node: int = 0
    tasks_per_node: int | None = None
    cpus_per_task: int = 1
    sbatch_extra: dict[str, str] = field(default_factory=dict)
    dry_run: bool = False
    wait: bool = False


@dataclass
class Config:
    """The whole run. ``num_workers`` is the number of workers S (processes, one per device)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    decomposition: DecompositionConfig = field(default_factory=DecompositionConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    name: str = "default"
    num_workers: int = 1
    seed: int = 0
    device: DeviceKind = DeviceKind.auto


@dataclass
class BenchSettings:
    """``python -m resist.bench``: the protocols to compare, one after another, each for
    ``warmup_rounds`` unmeasured and ``rounds`` measured rounds of ``protocol.local_steps`` steps
    (data-parallel runs the same number of steps)."""

    protocols: list[ProtocolName] = field(
        default_factory=lambda: [ProtocolName.ddp, ProtocolName.local_sgd, ProtocolName.resist]
    )
    warmup_rounds: int = 1
    rounds: int = 3


@dataclass
class BenchConfig(Config):
    bench: BenchSettings = field(default_factory=BenchSettings)


def paper_min_depth(num_workers: int) -> int:
    """The minimum depth the paper's runs imply (its Table 1: 4 blocks per sub-ResNet at S = 8), none
    below 8 workers. Used in configs as ``${paper_min_depth:${num_workers}}``."""
    return 4 if int(num_workers) >= 8 else 0


def lr_per_256_images(lr: float, batch_size: int, num_workers: int) -> float:
    """The linear scaling rule: ``lr`` per 256 images of the batch one optimizer step averages over
    (``batch_size × num_workers``: pass 1 worker for protocols whose workers step on their own
    batches). Used in configs as ``${lr_per_256_images:0.1,${train.batch_size},${num_workers}}``."""
    return float(lr) * int(batch_size) * int(num_workers) / 256


def register_schemas() -> None:
    """Register the schemas ``conf/config.yaml`` (``base_config``) and ``conf/bench.yaml``
    (``base_bench``) compose onto, and the config resolvers."""
    from hydra.core.config_store import ConfigStore

    OmegaConf.register_new_resolver("paper_min_depth", paper_min_depth, replace=True)
    OmegaConf.register_new_resolver("lr_per_256_images", lr_per_256_images, replace=True)

    ConfigStore.instance().store(name="base_config", node=Config)
    ConfigStore.instance().store(name="base_bench", node=BenchConfig)


def to_typed_config(cfg: DictConfig, schema: type[Config] = Config) -> Config:
    """Convert a composed config to ``schema``, rejecting keys the schema does not have.

    ``OmegaConf.to_object`` silently drops keys appended to a typed node (``+model.foo=1``);
    they are reported here instead.
    """
    _reject_unknown_keys(cfg, schema, prefix="")
    typed = OmegaConf.to_object(cfg)
    assert isinstance(typed, schema)
    return typed


def _reject_unknown_keys(node: Any, schema: type, prefix: str) -> None:
    fields = {f.name: f for f in dataclasses.fields(schema)}
    for key in node:
        full_key = f"{prefix}{key}"
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise ConfigError(
                full_key,
                f"is not a config key (known here: {known})",
                f"remove '+{full_key}=...' or correct its spelling",
            )
        child = node[key] if not OmegaConf.is_missing(node, key) else None
        child_type = _dataclass_type(fields[key].type)
        if child_type is not None and isinstance(child, DictConfig):
            _reject_unknown_keys(child, child_type, prefix=f"{full_key}.")


def _dataclass_type(annotation: Any) -> type | None:
    """The dataclass a field annotation names, or None (annotations are strings here)."""
    candidate = globals().get(annotation) if isinstance(annotation, str) else annotation
    return candidate if dataclasses.is_dataclass(candidate) else None


# ---------------------------------------------------------------------------------------------
# Cross-field validation (pure)
# ---------------------------------------------------------------------------------------------

_NATIVE_IMAGE_SIZE = {DatasetName.cifar10: 32, DatasetName.cifar100: 32, DatasetName.imagenet: 224}
_DEFAULT_IMAGE_SIZE = {DatasetName.digits: 32, DatasetName.imagefolder: 224, DatasetName.synthetic: 32}
_MIN_IMAGE_SIZE = {Stem.cifar: 8, Stem.imagenet: 32}


def image_size(dataset: DatasetConfig) -> int:
    """Side length in pixels of the images the model sees."""
    if dataset.name in _NATIVE_IMAGE_SIZE:
        return _NATIVE_IMAGE_SIZE[dataset.name]
    return dataset.image_size or _DEFAULT_IMAGE_SIZE[dataset.name]


def validate(cfg: Config) -> None:
    """Check every cross-field rule; raise :class:`ConfigError` on the first violation."""
    if isinstance(cfg, BenchConfig):
        _validate_bench(cfg.bench)
    _validate_workers(cfg)
    _validate_model(cfg)
    _validate_decomposition(cfg)
    _validate_dataset(cfg.dataset)
    _validate_optim(cfg.optim)
    _validate_train(cfg.train)


def _require(condition: bool, key: str, problem: str, fix: str) -> None:
    if not condition:
        raise ConfigError(key, problem, fix)


def _validate_model(cfg: Config) -> None:
    arch = cfg.model.arch
    _require(
        arch in ARCHITECTURES,
        "model.arch",
        f"unknown architecture '{arch}'",
        f"use one of {', '.join(ARCHITECTURES)} (or model=<name>)",
    )
    if cfg.dataset.name in _NATIVE_IMAGE_SIZE:
        return
    size, stem = image_size(cfg.dataset), ARCHITECTURES[arch].stem
    _require(
        size >= _MIN_IMAGE_SIZE[stem],
        "dataset.image_size",
        f"{size}px is too small for the {stem.value} stem of {arch}",
        f"set dataset.image_size>={_MIN_IMAGE_SIZE[stem]}",
    )


def _validate_dataset(dataset: DatasetConfig) -> None:
    if dataset.image_size is not None:
        _require(
            dataset.name not in _NATIVE_IMAGE_SIZE,
            "dataset.image_size",
            f"{dataset.name.value} images have a fixed size",
            "remove dataset.image_size",
        )
        _require(dataset.image_size >= 1, "dataset.image_size", "must be >= 1", "set a positive size")
    _require(
        dataset.loader_workers >= 0,
        "dataset.loader_workers",
        "must be >= 0",
        "set dataset.loader_workers=0 (load in the training process) or more",
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
        f"dataset {dataset.name.value} needs a root directory",
        "set dataset.root=/path/to/data",
    )
    if dataset.name == DatasetName.synthetic:
        _require(
            dataset.num_classes is not None and dataset.num_classes >= 2,
            "dataset.num_classes",
            "synthetic data needs at least 2 classes",
            "set dataset.num_classes=10",
        )
        _require(dataset.channels >= 1, "dataset.channels", "must be >= 1", "set dataset.channels=3")
        _require(
            dataset.num_train_samples >= 1 and dataset.num_test_samples >= 1,
            "dataset.num_train_samples",
            "synthetic splits must not be empty",
            "set dataset.num_train_samples and dataset.num_test_samples >= 1",
        )
    else:
        _require(
            dataset.num_classes is None,
            "dataset.num_classes",
            f"the number of classes of {dataset.name.value} comes from the data",
            "remove dataset.num_classes",
        )


def _validate_optim(optim: OptimConfig) -> None:
    _require(
        math.isfinite(optim.lr) and optim.lr > 0,
        "optim.lr",
        f"must be a positive number, got {optim.lr}",
        "set e.g. optim.lr=0.05",
    )
    _require(
        0 <= optim.momentum < 1,
        "optim.momentum",
        f"must be in [0, 1), got {optim.momentum}",
        "set e.g. optim.momentum=0.9",
    )
    _require(
        optim.weight_decay >= 0,
        "optim.weight_decay",
        f"must be >= 0, got {optim.weight_decay}",
        "set e.g. optim.weight_decay=5e-4",
    )
    _require(
        not optim.nesterov or optim.momentum > 0,
        "optim.nesterov",
        "Nesterov needs momentum > 0",
        "set optim.momentum=0.9 or optim.nesterov=false",
    )
    if optim.schedule == ScheduleName.step:
        ms = optim.milestones
        _require(
            all(0 < m < 1 for m in ms) and all(a < b for a, b in zip(ms, ms[1:], strict=False)),
            "optim.milestones",
            f"must be increasing fractions of training in (0, 1), got {ms}",
            "set e.g. optim.milestones=[0.5,0.75]",
        )
        _require(
            0 < optim.gamma <= 1, "optim.gamma", f"must be in (0, 1], got {optim.gamma}", "set e.g. optim.gamma=0.1"
        )


def _validate_train(train: TrainConfig) -> None:
    _require(train.epochs >= 1, "train.epochs", f"must be >= 1, got {train.epochs}", "set train.epochs=1 or more")
    _require(
        train.max_steps is None or train.max_steps >= 1,
        "train.max_steps",
        f"must be >= 1 or null, got {train.max_steps}",
        "set train.max_steps=null to train all epochs",
    )
    _require(
        train.batch_size >= 1,
        "train.batch_size",
        f"must be >= 1, got {train.batch_size}",
        "set e.g. train.batch_size=128",
    )
    _require(
        train.eval_batch_size >= 1,
        "train.eval_batch_size",
        f"must be >= 1, got {train.eval_batch_size}",
        "set e.g. train.eval_batch_size=100",
    )
    _require(
        train.eval_every >= 1,
        "train.eval_every",
        f"must be >= 1, got {train.eval_every}",
        "set train.eval_every=1 (every train.eval_unit)",
    )
    _require(
        train.log_every_steps >= 1,
        "train.log_every_steps",
        f"must be >= 1, got {train.log_every_steps}",
        "set e.g. train.log_every_steps=10",
    )


def _validate_bench(bench: BenchSettings) -> None:
    _require(
        bool(bench.protocols) and len(set(bench.protocols)) == len(bench.protocols),
        "bench.protocols",
        f"must name distinct protocols, got {[p.value for p in bench.protocols]}",
        "set e.g. bench.protocols=[ddp,local_sgd]",
    )
    _require(
        bench.rounds >= 1 and bench.warmup_rounds >= 0,
        "bench.rounds",
        f"need rounds >= 1 and warmup_rounds >= 0, got {bench.rounds} and {bench.warmup_rounds}",
        "set e.g. bench.rounds=3 bench.warmup_rounds=1",
    )


def _validate_decomposition(cfg: Config) -> None:
    from resist.decomposition import POLICIES, site_sizes

    d, spec = cfg.decomposition, ARCHITECTURES[cfg.model.arch]
    _require(
        d.policy in POLICIES,
        "decomposition.policy",
        f"unknown policy '{d.policy}'",
        f"use one of {', '.join(POLICIES)}",
    )
    stage = spec.default_partition_stage if d.stage is None else d.stage
    _require(
        0 <= stage < spec.num_stages,
        "decomposition.stage",
        f"{cfg.model.arch} has stages 0..{spec.num_stages - 1}, not {stage}",
        "set decomposition.stage=null",
    )
    blocks = spec.partitionable_blocks(stage)
    _require(
        len(blocks) >= 1,
        "decomposition.stage",
        f"stage {stage} of {cfg.model.arch} has no partitionable blocks (only its first block)",
        "choose a longer stage or a deeper model",
    )
    _require(
        0 <= d.min_depth <= len(blocks),
        "decomposition.min_depth",
        f"must be in 0..{len(blocks)} (the partitionable blocks of stage {stage}), got {d.min_depth}",
        f"set decomposition.min_depth to at most {len(blocks)}",
    )
    if cfg.protocol.name == ProtocolName.resist:
        smallest = min(site_sizes(len(blocks), cfg.num_workers, d.min_depth))
        _require(
            smallest >= 1,
            "decomposition.min_depth",
            f"{cfg.num_workers} workers share {len(blocks)} blocks, so some would hold none",
            "set decomposition.min_depth=1 or more, or use fewer workers",
        )
    _require(
        cfg.protocol.warmup_epochs >= 0,
        "protocol.warmup_epochs",
        f"must be >= 0, got {cfg.protocol.warmup_epochs}",
        "set protocol.warmup_epochs=0",
    )
    _require(
        cfg.protocol.warmup_epochs == 0 or cfg.protocol.name == ProtocolName.resist,
        "protocol.warmup_epochs",
        f"applies to protocol=resist only, not {cfg.protocol.name.value}",
        "remove protocol.warmup_epochs",
    )


def _validate_workers(cfg: Config) -> None:
    _require(cfg.num_workers >= 1, "num_workers", f"must be >= 1, got {cfg.num_workers}", "set num_workers=1")
    _require(
        cfg.protocol.name != ProtocolName.none or cfg.num_workers == 1,
        "num_workers",
        f"protocol=none trains one worker, got num_workers={cfg.num_workers}",
        "set num_workers=1 or choose a multi-worker protocol (protocol=resist, local_sgd or ddp)",
    )
    _require(
        cfg.protocol.local_steps >= 1,
        "protocol.local_steps",
        f"must be >= 1, got {cfg.protocol.local_steps}",
        "set e.g. protocol.local_steps=50",
    )
    _require(
        not cfg.protocol.paper_style or cfg.protocol.name == ProtocolName.local_sgd,
        "protocol.paper_style",
        f"applies to protocol=local_sgd only, not {cfg.protocol.name.value}",
        "remove protocol.paper_style",
    )
    if cfg.launcher.name == LauncherName.slurm:
        from resist.launch.slurm_plan import slurm_plan

        slurm_plan(cfg)  # raises ConfigError for an impossible layout
    _require(
        cfg.launcher.threads_per_worker is None or cfg.launcher.threads_per_worker >= 1,
        "launcher.threads_per_worker",
        f"must be >= 1 or null, got {cfg.launcher.threads_per_worker}",
        "set launcher.threads_per_worker=null to derive it from the cores",
    )
    _require(
        cfg.launcher.master_port is None or 1024 <= cfg.launcher.master_port <= 65535,
        "launcher.master_port",
        f"must be a port in 1024..65535, got {cfg.launcher.master_port}",
        "set launcher.master_port=null",
    )
