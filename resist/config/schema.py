"""The configuration schema: enums and dataclasses for every Hydra option (pure: stdlib only).

Hydra composes ``conf/`` on top of these dataclasses (see :mod:`resist.config.hydra_door`), so an
unknown key or a wrongly typed value fails during composition; cross-field rules live in
:mod:`resist.config.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from resist.config.enums import (
    AmpMode,
    AugmentPolicy,
    Compression,
    DatasetName,
    DeviceKind,
    EvalUnit,
    GradientCompression,
    LauncherName,
    OptimizerName,
    OptimizerStatePolicy,
    OuterOptimizerName,
    ProtocolName,
    ScheduleName,
    ShardingMode,
    WandbMode,
)
from resist.config.protocol_schema import (
    PROTOCOL_CONFIGS,
    DDPConfig,
    DecompositionConfig,
    DiLoCoConfig,
    LocalSGDConfig,
    ProtocolConfig,
    ResISTConfig,
)
from resist.errors import UserError
from resist.models.spec import BatchNormMode
from resist.paper import paper_min_depth  # re-exported: configs name it

__all__ = [  # the enums and BatchNormMode (the model's) are re-exported: configs name them
    "BatchNormMode",
    "DatasetName",
    "ShardingMode",
    "AugmentPolicy",
    "ProtocolName",
    "OptimizerName",
    "OptimizerStatePolicy",
    "OuterOptimizerName",
    "Compression",
    "GradientCompression",
    "AmpMode",
    "ScheduleName",
    "EvalUnit",
    "DeviceKind",
    "LauncherName",
    "WandbMode",
    "ConfigError",
    "ModelConfig",
    "DatasetConfig",
    "DecompositionConfig",
    "ProtocolConfig",
    "DDPConfig",
    "LocalSGDConfig",
    "DiLoCoConfig",
    "ResISTConfig",
    "OptimConfig",
    "TrainConfig",
    "LoggerConfig",
    "LauncherConfig",
    "CheckpointConfig",
    "Config",
    "BenchSettings",
    "BenchConfig",
    "paper_min_depth",
    "lr_per_256_images",
    "PROTOCOL_CONFIGS",
]


class ConfigError(UserError, ValueError):
    """An invalid configuration value; ``str()`` is one line: key, problem, fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key, self.problem, self.fix = key, problem, fix
        super().__init__(f"{key}: {problem} (fix: {fix})")


@dataclass
class ModelConfig:
    """``arch``: a network of :data:`resist.models.catalog.MODEL_FAMILIES`; the other keys belong to families."""

    arch: str = "preact_resnet_mini"
    batchnorm: BatchNormMode = BatchNormMode.batch_stats  # preact_*'s BatchNorm; tv_resnet* need running_stats
    cifar_stem: bool = False  # tv_resnet*: one 3×3 stride-1 stem convolution and no max-pool (32-px images)
    width: int = 64  # tv_resnet*: the stem's and first stage's channels (torchvision's 64)
    patch_size: int = 4  # vit_*: pixels per patch side (the image side must be a multiple)


@dataclass
class DatasetConfig:
    """Where the data lives and how it is read. ``root`` is relative to the working directory (``~``
    and ``$VARS`` expanded). ``loader_workers``: DataLoader processes per training worker (0: none).
    ``image_size`` (pixels, square) applies to digits (resized), imagefolder and synthetic; CIFAR is
    32 and ImageNet 224 by definition. ``num_classes``, ``channels`` and ``num_*_samples`` describe
    synthetic data only. ``cache_dir``: where CIFAR class folders are kept decoded, once per machine
    (:mod:`resist.data.decoded_cache`; None: decoded by every worker of every run).

    ``augment`` (:class:`AugmentPolicy`) is the training-set augmentation: ``none``, ``crop_flip``
    (random crop of the image padded by 1/8 of its side + horizontal flip, for small images as
    CIFAR), ``resized_crop_flip`` (RandomResizedCrop + horizontal flip, ImageNet-style) or ``auto``
    (the default): ``crop_flip`` below 96 px image size, else ``resized_crop_flip``. Digits are never
    flipped; synthetic data is never augmented (the policy is ignored)."""

    name: DatasetName = DatasetName.digits
    root: str | None = None
    download: bool = False
    image_size: int | None = None
    augment: AugmentPolicy = AugmentPolicy.auto
    sharding: ShardingMode = ShardingMode.disjoint
    loader_workers: int = 0
    num_classes: int | None = None
    channels: int = 3
    num_train_samples: int = 50_000
    num_test_samples: int = 10_000
    cache_dir: str | None = None


@dataclass
class OptimConfig:
    """The workers' optimizer: ``name`` SGD (``momentum``, ``nesterov``) or AdamW (``betas``,
    ``eps``); ``weight_decay`` for both (AdamW's decoupled). ``lr`` is the peak learning rate per
    worker; ``milestones`` are fractions of the total steps after which the step schedule multiplies
    the lr by ``gamma``."""

    name: OptimizerName = OptimizerName.sgd
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
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
    ``progress`` None: a progress bar only when stderr is a terminal. Without a bar (not a terminal,
    or ``progress=false``), rank 0 logs a progress line (step, epoch, loss, images/s, ETA) at the
    first step and then at most once every ``progress_every_s`` seconds (0: every step), to stderr
    and ``run.log``, next to one line per evaluation.
    """

    wandb: bool = False
    project: str = "resist"
    entity: str | None = None
    group: str | None = None
    tags: list[str] = field(default_factory=list)
    wandb_mode: WandbMode | None = None
    progress: bool | None = None
    progress_every_s: float = 60.0


@dataclass
class CheckpointConfig:
    """Whole-run checkpoints in ``<run dir>/checkpoints/``: after every ``every_rounds`` rounds (at a
    round end, where the protocols have synchronised; 0: only at the end of the run and when a stop
    is requested, e.g. SLURM preemption) and at the end; the newest ``keep`` are kept. Each worker
    writes its own shard (its model, optimizer, data position, RNGs and ledger), so a resume never
    needs more memory per worker than training does. ``enabled`` false writes none (the benchmark's
    measurements: such a run cannot be resumed, and a stop request is ignored)."""

    enabled: bool = True
    every_rounds: int = 10
    keep: int = 2


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
    sbatch (the top-level ``dry_run=true`` prints the plan and the sbatch script without submitting);
    ``wait`` blocks until the job ends (the default returns once it is submitted).

    ``collective_timeout_s``: how long a worker waits in one collective or transfer before it fails
    (a peer that hangs rather than dies); every launcher also stops all workers as soon as one fails.
    ``signal_delay_s``: SLURM sends SIGUSR2 this many seconds before the time limit (and on
    preemption); the job then checkpoints at the next round end and is requeued.
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
    wait: bool = False
    collective_timeout_s: float = 60.0
    signal_delay_s: int = 120


@dataclass
class Config:
    """The whole run. ``num_workers`` is the number of workers S (processes, one per device)."""

    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    name: str = "default"
    num_workers: int = 1
    seed: int = 0
    device: DeviceKind = DeviceKind.auto
    resume: str | None = None
    """A run directory to continue from its newest checkpoint, with its saved config: the command's
    request, handed on as an argument (``resume=True``); None in the config past the entry point."""
    dry_run: bool = False
    """Print what the run would do (config, assignments, expected bytes per round, memory held, the
    sbatch plan) and train nothing; no run directory is kept."""


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


def lr_per_256_images(lr: float, batch_size: int, num_workers: int) -> float:
    """The linear scaling rule: ``lr`` per 256 images of the batch one optimizer step averages over
    (``batch_size × num_workers``: pass 1 worker for protocols whose workers step on their own
    batches). Used in configs as ``${lr_per_256_images:0.1,${train.batch_size},${num_workers}}``."""
    return float(lr) * int(batch_size) * int(num_workers) / 256
