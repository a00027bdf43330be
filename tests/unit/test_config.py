"""Config composition and validation: every option composes, every rule rejects what it should."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from resist.config import (
    Config,
    ConfigError,
    DatasetName,
    ProtocolName,
    ScheduleName,
    image_size,
    register_schemas,
    to_typed_config,
    validate,
)
from resist.models.spec import ARCHITECTURES

CONF = Path(__file__).resolve().parents[2] / "conf"
GROUPS = ["model", "dataset", "protocol", "decomposition", "optim", "logger", "launcher"]


def _compose(*overrides: str) -> Config:
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return to_typed_config(compose("config", overrides=list(overrides)))


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_default_composes_to_the_embedded_digits_run():
    cfg = _compose()
    validate(cfg)
    assert cfg.dataset.name == DatasetName.digits and cfg.model.arch == "preact_resnet_mini"
    assert cfg.num_workers == 2 and cfg.protocol.name == ProtocolName.resist and cfg.protocol.local_steps == 10
    assert cfg.optim.schedule == ScheduleName.step


@pytest.mark.parametrize(("group", "option"), [(g, o) for g in GROUPS for o in _options(g)])
def test_every_group_option_composes_and_validates(group, option):
    overrides = [f"{group}={option}"]
    if option == "none":
        overrides.append("num_workers=1")
    if option == "imagefolder":
        overrides.append("dataset.root=some/where")
    if group == "model" and len(ARCHITECTURES[option].partitionable_blocks(2)) < 2:
        overrides.append("protocol.decomposition.min_depth=1")  # 2 ResIST workers, 1 partitionable block
    if group == "model" and option.startswith("imagenet"):
        overrides.append("dataset.image_size=64")
    cfg = _compose(*overrides)
    validate(cfg)


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_experiment_composes_and_validates(experiment):
    cfg = _compose(f"+experiment={experiment}")
    validate(cfg)
    assert cfg.name == experiment


def test_paper_experiment_carries_the_paper_recipe():
    cfg = _compose("+experiment=cifar10_single")
    recipe = (cfg.model.arch, cfg.train.epochs, cfg.train.batch_size, cfg.optim.lr)
    assert recipe == ("preact_resnet101", 160, 128, 0.03)
    assert (cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.milestones) == (0.9, 5e-4, [0.5, 0.75])


@pytest.mark.parametrize(("workers", "min_depth"), [(2, 0), (4, 0), (8, 4)])
def test_paper_experiments_set_the_minimum_depth_for_eight_workers(workers, min_depth):
    for dataset in ("cifar10", "cifar100"):
        cfg = _compose(f"+experiment={dataset}_resist", f"num_workers={workers}")
        validate(cfg)
        assert (cfg.protocol.decomposition.min_depth, cfg.protocol.local_steps, cfg.train.epochs) == (
            min_depth,
            50,
            160,
        )


def test_appended_key_on_a_typed_node_is_rejected_not_dropped():
    with pytest.raises(ConfigError, match=r"^model\.foo: is not a config key"):
        _compose("+model.foo=1")


def _valid(**changes) -> Config:
    cfg = _compose()
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = cfg
        for part in path:
            node = getattr(node, part)
        setattr(node, last, value)
    return cfg


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"model__arch": "resnet9"}, "model.arch"),
        ({"optim__lr": 0.0}, "optim.lr"),
        ({"optim__lr": float("nan")}, "optim.lr"),
        ({"optim__momentum": 1.0}, "optim.momentum"),
        ({"optim__weight_decay": -1e-4}, "optim.weight_decay"),
        ({"optim__momentum": 0.0, "optim__nesterov": True}, "optim.nesterov"),
        ({"optim__milestones": [0.75, 0.5]}, "optim.milestones"),
        ({"optim__milestones": [0.5, 1.0]}, "optim.milestones"),
        ({"optim__gamma": 0.0}, "optim.gamma"),
        ({"train__epochs": 0}, "train.epochs"),
        ({"train__max_steps": 0}, "train.max_steps"),
        ({"train__batch_size": 0}, "train.batch_size"),
        ({"train__eval_batch_size": 0}, "train.eval_batch_size"),
        ({"train__eval_every": 0}, "train.eval_every"),
        ({"train__log_every_steps": 0}, "train.log_every_steps"),
        ({"num_workers": 0}, "num_workers"),
        ({"num_workers": 2, "protocol__name": ProtocolName.none}, "num_workers"),
        ({"num_workers": 8}, "protocol.decomposition.min_depth"),  # 4 partitionable blocks for 8 workers
        ({"protocol__decomposition__min_depth": 5}, "protocol.decomposition.min_depth"),
        ({"protocol__decomposition__stage": 7}, "protocol.decomposition.stage"),
        ({"protocol__decomposition__stage": 0}, "protocol.decomposition.stage"),  # stage 0 of the mini: 1 block
        ({"protocol__decomposition__policy": "nope"}, "protocol.decomposition.policy"),
        ({"protocol__warmup_epochs": -1}, "protocol.warmup_epochs"),
        ({"protocol__name": ProtocolName.ddp}, "protocol.name"),  # a ResIST config renamed, not chosen
        ({"protocol__local_steps": 0}, "protocol.local_steps"),
        ({"launcher__master_port": 80}, "launcher.master_port"),
        ({"dataset__name": DatasetName.cifar10, "dataset__root": None, "dataset__image_size": None}, "dataset.root"),
        ({"dataset__name": DatasetName.cifar10, "dataset__root": "x"}, "dataset.image_size"),
        ({"dataset__num_classes": 3}, "dataset.num_classes"),
        ({"dataset__name": DatasetName.synthetic, "dataset__num_classes": None}, "dataset.num_classes"),
        (
            {"dataset__name": DatasetName.synthetic, "dataset__num_classes": 10, "dataset__num_train_samples": 0},
            "dataset.num_train_samples",
        ),
        ({"dataset__loader_workers": -1}, "dataset.loader_workers"),
        ({"model__arch": "imagenet_preact_resnet50"}, "dataset.image_size"),
    ],
)
def test_validation_rejects(changes, key):
    with pytest.raises(ConfigError) as info:
        validate(_valid(**changes))
    assert info.value.key == key
    assert "\n" not in str(info.value) and str(info.value).startswith(f"{key}: ") and "(fix: " in str(info.value)


def test_image_size_is_native_for_cifar_and_imagenet():
    cfg = _compose("dataset=cifar10")
    assert image_size(cfg.dataset) == 32
    assert image_size(_compose("dataset=imagenet").dataset) == 224
    assert image_size(_compose("dataset.image_size=24").dataset) == 24


def test_the_typed_config_is_the_one_form_past_the_door(tmp_path):
    """What a worker trains with is exactly what was composed: the typed config written as
    ``resolved_config.yaml`` is the YAML of Hydra's resolved composition, and every non-default value
    (enums, lists, nested dicts, nulls) comes back equal through the worker entry's loader."""
    from resist.config import load_run_config, save_resolved_config
    from resist.run_dir import RunDir

    overrides = (
        "+experiment=cifar10_resist",
        "num_workers=8",
        "launcher.threads_per_worker=3",
        "optim.milestones=[0.3,0.6,0.9]",
        "logger.tags=[a,b]",
        "dataset.root=/data/cifar10",
    )
    cfg = _compose(*overrides)
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        composed = OmegaConf.to_container(compose("config", overrides=list(overrides)), resolve=True)
    save_resolved_config(RunDir(tmp_path), cfg)
    assert RunDir(tmp_path).resolved_config.read_text() == OmegaConf.to_yaml(OmegaConf.create(composed))
    again = load_run_config(RunDir(tmp_path))
    assert again == cfg and dataclasses.asdict(again) != dataclasses.asdict(Config())
    assert again.protocol.decomposition.min_depth == 4  # resolved from ${paper_min_depth:${num_workers}}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["protocol=ddp", "protocol.local_steps=3"],
            "protocol.local_steps: protocol=ddp has no such key (its keys: name, compress, powersgd_rank, "
            "powersgd_start_step)",
        ),
        (
            ["protocol=local_sgd", "protocol.warmup_epochs=1"],
            "protocol.warmup_epochs: protocol=local_sgd has no such key (its keys: name, local_steps, optimizer_state, "
            "paper_style, paper_style_stage, compress)",
        ),
        (
            ["protocol=none", "num_workers=1", "protocol.decomposition.min_depth=2"],
            "protocol.decomposition: protocol=none has no such key (its keys: name)",
        ),
    ],
)
def test_a_key_of_another_protocol_is_a_one_line_error(overrides, message):
    from resist.config.hydra_door import one_line

    with pytest.raises(Exception) as info:
        _compose(*overrides)
    assert one_line(info.value) == f"{message} (fix: remove {message.split(':')[0]}, or choose a protocol that has it)"
