"""Config rules of the network and of ResIST's decomposition of it (pure: no torch): which
options apply to which model family, the image sizes a network takes, and which blocks ResIST
may partition among how many workers."""

from __future__ import annotations

from resist.config.rules import MIN_IMAGE_SIZE, NATIVE_IMAGE_SIZE, at_least, image_size, require
from resist.config.schema import BatchNormMode, Config, ModelConfig, OptimizerStatePolicy, ResISTConfig
from resist.decomposition import POLICIES, site_sizes
from resist.models.catalog import MODEL_FAMILIES, Family, built_for_small_images, layout_of
from resist.models.spec import Stem


def validate_model(cfg: Config) -> None:
    model = cfg.model
    arch = model.arch
    require(
        arch in MODEL_FAMILIES,
        "model.arch",
        problem=f"unknown architecture '{arch}'",
        fix=f"use one of {', '.join(MODEL_FAMILIES)} (or model=<name>)",
    )
    family, size = MODEL_FAMILIES[arch], image_size(cfg.dataset)
    default = ModelConfig()
    if family != Family.torchvision_resnet:
        for key in ("cifar_stem", "width"):
            require(
                getattr(model, key) == getattr(default, key),
                f"model.{key}",
                problem=f"applies to torchvision's ResNets (tv_resnet*), not {arch}",
                fix=f"remove model.{key} or choose model=tv_resnet18",
            )
    if family != Family.vision_transformer:
        require(
            model.patch_size == default.patch_size,
            "model.patch_size",
            problem=f"applies to Vision Transformers (vit_*), not {arch}",
            fix="remove model.patch_size or choose model=vit_tiny",
        )
    if family == Family.torchvision_resnet:
        require(
            model.batchnorm == BatchNormMode.running_stats,
            "model.batchnorm",
            problem=f"{arch} is torchvision's ResNet, whose BatchNorm keeps running statistics",
            fix="set model.batchnorm=running_stats (model=tv_* sets it)",
        )
        at_least(model.width, 1, "model.width", fix="set model.width=64 (torchvision's) or e.g. 16")
    if family == Family.vision_transformer:
        patch = model.patch_size
        require(
            patch >= 1 and size % patch == 0,
            "model.patch_size",
            problem=f"{size}px images do not divide into {patch}px patches",
            fix=f"set model.patch_size to a divisor of {size} (4 for 32px images, 16 for 224px)",
        )
    if cfg.dataset.name in NATIVE_IMAGE_SIZE or family == Family.vision_transformer:
        return
    small = built_for_small_images(arch, cifar_stem=model.cifar_stem)
    minimum = MIN_IMAGE_SIZE[Stem.cifar if small else Stem.imagenet]
    require(
        size >= minimum,
        "dataset.image_size",
        problem=f"{size}px is too small for the {'CIFAR' if small else 'ImageNet'} stem of {arch}",
        fix=f"set dataset.image_size>={minimum}",
    )


def partitioned_blocks(cfg: Config, stage: int | None, key: str) -> tuple[int, ...]:
    """The partitioned units of ``stage`` (None: the model's default stages) of the configured model."""
    layout = layout_of(cfg.model.arch)
    require(
        stage is None or 0 <= stage < layout.num_stages,
        key,
        problem=f"{cfg.model.arch} has stages 0..{layout.num_stages - 1}, not {stage}",
        fix=f"set {key}=null (the stages the paper's rule picks: {', '.join(map(str, layout.default_stages))})",
    )
    blocks = layout.partitioned_units(stage)
    require(
        len(blocks) >= 1,
        key,
        problem=f"stage {stage} of {cfg.model.arch} has no partitionable blocks (only its first block)",
        fix="choose a longer stage or a deeper model",
    )
    return blocks


def validate_decomposition(cfg: Config, protocol: ResISTConfig) -> None:
    d = protocol.decomposition
    require(
        d.policy in POLICIES,
        "protocol.decomposition.policy",
        problem=f"unknown policy '{d.policy}'",
        fix=f"use one of {', '.join(POLICIES)}",
    )
    blocks = partitioned_blocks(cfg, d.stage, "protocol.decomposition.stage")
    layout = layout_of(cfg.model.arch)
    require(
        len(layout.by_stage(blocks)) == 1 or protocol.optimizer_state == OptimizerStatePolicy.reset,
        "protocol.optimizer_state",
        problem=f"keep with blocks of several stages partitioned ({cfg.model.arch}): a sub-network rebuilt when "
        "its count of blocks per stage changes starts a new optimizer",
        fix="set protocol.optimizer_state=reset or protocol.decomposition.stage=<one stage>",
    )
    require(
        0 <= d.min_depth <= len(blocks),
        "protocol.decomposition.min_depth",
        problem=f"must be in 0..{len(blocks)} (the blocks ResIST partitions in {cfg.model.arch}), got {d.min_depth}",
        fix=f"set protocol.decomposition.min_depth to at most {len(blocks)}",
    )
    smallest = min(site_sizes(len(blocks), cfg.num_workers, d.min_depth))
    require(
        smallest >= 1,
        "protocol.decomposition.min_depth",
        problem=f"{cfg.num_workers} workers share {len(blocks)} blocks, so some would hold none",
        fix="set protocol.decomposition.min_depth=1 or more, or use fewer workers",
    )
    require(
        protocol.warmup_epochs >= 0,
        "protocol.warmup_epochs",
        problem=f"must be >= 0, got {protocol.warmup_epochs}",
        fix="set protocol.warmup_epochs=0",
    )
