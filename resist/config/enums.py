"""The configuration's vocabularies: str Enums (the form OmegaConf types accept). Pure."""

from __future__ import annotations

from enum import Enum


class DatasetName(str, Enum):
    digits = "digits"
    cifar10 = "cifar10"
    cifar100 = "cifar100"
    imagenet = "imagenet"
    imagefolder = "imagefolder"
    synthetic = "synthetic"


class AugmentPolicy(str, Enum):
    """Training-set augmentation (evaluation is never augmented). ``none``; ``crop_flip`` (small
    images, as for CIFAR): a random crop of the image zero-padded by 1/8 of its side (4 px at 32) and
    a random horizontal flip; ``resized_crop_flip`` (ImageNet-sized images): RandomResizedCrop and a
    random horizontal flip; ``auto``: ``crop_flip`` below 96 px image size, else
    ``resized_crop_flip``. Digits are never flipped (a mirrored digit is another symbol); synthetic
    data is never augmented."""

    auto = "auto"
    none = "none"
    crop_flip = "crop_flip"
    resized_crop_flip = "resized_crop_flip"


class ShardingMode(str, Enum):
    """``disjoint``: each worker reads its own equal-size shard of the training set per epoch;
    ``full_shuffle``: each worker reads the whole training set with its own shuffle (the paper's code)."""

    disjoint = "disjoint"
    full_shuffle = "full_shuffle"


class ProtocolName(str, Enum):
    """How workers cooperate. ``none``: one worker, no communication; ``ddp``: data-parallel SGD
    (gradients all-reduced every step); ``local_sgd``: every worker trains the whole model for
    ``local_steps`` steps, then parameters are averaged; ``diloco``: local SGD whose average change
    (the pseudo-gradient) is applied by an outer Nesterov optimizer; ``resist``: every worker trains its own
    random sub-ResNet for ``local_steps`` steps, then shared layers are averaged and blocks move to
    their next holders."""

    none = "none"
    ddp = "ddp"
    local_sgd = "local_sgd"
    diloco = "diloco"
    resist = "resist"


class Compression(str, Enum):
    """How local SGD and ResIST encode what they send (:mod:`resist.comm.codecs`): ``none`` (float32),
    ``bf16`` (2 bytes per value), ``int8`` (1 byte per value and a float32 scale per 256 values,
    stochastic rounding), ``int4`` (half a byte per value and a float32 scale per 256 values,
    stochastic rounding; averaging keeps an error-feedback residual). Averaging sends each value's
    change since the last synchronisation."""

    none = "none"
    bf16 = "bf16"
    int8 = "int8"
    int4 = "int4"


class GradientCompression(str, Enum):
    """How DDP's gradient all-reduces travel, through torch's communication hooks
    (:mod:`resist.comm.gradient_hooks`): ``none`` (float32), ``bf16`` (torch's ``bf16_compress_hook``:
    2 bytes per value), ``powersgd`` (torch's ``powerSGD_hook``: rank-r factors of each weight
    matrix, error feedback and warm start; vectors and matrices too small to gain travel in float32)."""

    none = "none"
    bf16 = "bf16"
    powersgd = "powersgd"


class OptimizerName(str, Enum):
    """The optimizer every worker trains with (the inner optimizer of local SGD, DiLoCo and ResIST):
    ``sgd`` (momentum, optional Nesterov) or ``adamw`` (decoupled weight decay; DiLoCo's inner
    optimizer)."""

    sgd = "sgd"
    adamw = "adamw"


class OuterOptimizerName(str, Enum):
    """ResIST's optimizer of the round's averaged change: ``none`` (the average is the next round's
    start, the paper) or ``nesterov`` (DiLoCo's outer Nesterov SGD on the pseudo-gradient)."""

    none = "none"
    nesterov = "nesterov"


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
