"""Config composition and validation: every option composes, every rule rejects what it should."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from resist.config import (
    BatchNormMode,
    Config,
    ConfigError,
    DatasetName,
    DeviceKind,
    DiLoCoConfig,
    OptimizerName,
    OptimizerStatePolicy,
    OuterOptimizerName,
    ProtocolName,
    ScheduleName,
    image_size,
    register_schemas,
    to_typed_config,
    validate,
)
from resist.models.catalog import layout_of

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
    if group == "model" and len(layout_of(option).partitioned_units(None)) < 2:
        overrides.append("protocol.decomposition.min_depth=1")  # 2 ResIST workers, 1 partitionable block
    if group == "model" and option.startswith(("imagenet", "tv_")):
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
        ({"model__arch": "vit_tiny", "model__cifar_stem": True}, "model.cifar_stem"),
        ({"model__arch": "preact_resnet_mini", "model__width": 16}, "model.width"),
        ({"model__arch": "tv_resnet34", "model__patch_size": 8}, "model.patch_size"),
        ({"model__arch": "tv_resnet34", "model__cifar_stem": True}, "model.batchnorm"),  # batch_stats
        ({"model__arch": "vit_tiny", "model__patch_size": 5}, "model.patch_size"),  # 16 px images
        ({"model__arch": "vit_tiny", "protocol__decomposition__stage": 1}, "protocol.decomposition.stage"),
        (
            {
                "model__arch": "tv_resnet18",
                "model__batchnorm": BatchNormMode.running_stats,
                "model__cifar_stem": True,
                "protocol__optimizer_state": OptimizerStatePolicy.keep,
            },
            "protocol.optimizer_state",  # four stages partitioned: sub-networks are rebuilt
        ),  # fmt: skip
        ({"model__arch": "tv_resnet34", "model__batchnorm": BatchNormMode.running_stats}, "dataset.image_size"),
        ({"optim__name": OptimizerName.adamw, "optim__nesterov": True}, "optim.nesterov"),
        ({"optim__name": OptimizerName.adamw, "optim__betas": [0.9]}, "optim.betas"),
        ({"optim__name": OptimizerName.adamw, "optim__betas": [0.9, 1.0]}, "optim.betas"),
        ({"optim__name": OptimizerName.adamw, "optim__eps": 0.0}, "optim.eps"),
        (
            {"optim__name": OptimizerName.adamw, "protocol__optimizer_state": OptimizerStatePolicy.keep},
            "protocol.optimizer_state",  # only SGD's momentum travels with a block
        ),
        ({"protocol__outer_optimizer": OuterOptimizerName.nesterov, "protocol__outer_lr": 0.0}, "protocol.outer_lr"),
        (
            {"protocol__outer_optimizer": OuterOptimizerName.nesterov, "protocol__outer_momentum": 1.0},
            "protocol.outer_momentum",
        ),
        (
            {"protocol__outer_optimizer": OuterOptimizerName.nesterov, "protocol__warmup_epochs": 1},
            "protocol.warmup_epochs",
        ),
        ({"protocol": DiLoCoConfig(outer_lr=float("inf"))}, "protocol.outer_lr"),
        ({"protocol": DiLoCoConfig(outer_momentum=-0.1)}, "protocol.outer_momentum"),
        ({"protocol": DiLoCoConfig(local_steps=0)}, "protocol.local_steps"),
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


def test_debug_applies_last_wherever_it_stands():
    from resist.config.hydra_door import debug_last

    assert debug_last(["+debug=fast", "+experiment=cifar10_cpu_resist", "seed=1"]) == [
        "+experiment=cifar10_cpu_resist",
        "seed=1",
        "+debug=fast",
    ]
    assert debug_last(["seed=1", "debug.x=2"]) == ["seed=1", "debug.x=2"]  # (not the group: a key under it)
    before, after = (
        _compose(*debug_last(["+debug=fast", "+experiment=cifar10_cpu_resist"])),
        _compose("+experiment=cifar10_cpu_resist", "+debug=fast"),
    )
    validate(before)
    assert before == after


def test_a_refused_command_leaves_nothing_behind(tmp_path):
    from resist.config.command_line import discard_refused_command

    earlier = tmp_path / "runs" / "default" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "metrics.jsonl").write_text("{}\n")
    for name in ("refused", "another"):  # Hydra's record of the command and its log, nothing else
        (tmp_path / "runs" / "fresh" / name / ".hydra").mkdir(parents=True)
        (tmp_path / "runs" / "fresh" / name / ".hydra" / "config.yaml").write_text("seed: 0\n")
        (tmp_path / "runs" / "fresh" / name / "run.log").write_text("")
    discard_refused_command(tmp_path / "runs" / "fresh" / "refused", ".hydra", cwd=tmp_path)
    assert not (tmp_path / "runs" / "fresh" / "refused").exists() and (tmp_path / "runs" / "fresh" / "another").is_dir()
    discard_refused_command(tmp_path / "runs" / "fresh" / "another", ".hydra", cwd=tmp_path)
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["default"]  # empty parents go, up to cwd
    (earlier / ".hydra" / "resume-1").mkdir(parents=True)  # a refused resume of a run: only its record goes
    (earlier / "run.log").write_text("the run's log\n")
    discard_refused_command(earlier, ".hydra/resume-1", cwd=tmp_path)
    assert sorted(p.name for p in earlier.iterdir()) == [".hydra", "metrics.jsonl", "run.log"]
    assert list((earlier / ".hydra").iterdir()) == []


def test_help_lists_the_groups_a_user_chooses_from():
    from resist.config.command_line import command_help

    text = command_help("/repo/resist/run.py")
    assert text.startswith("resist: ResIST, local SGD, DiLoCo and data-parallel training. Usage: python -m resist.run ")
    for group in ("dataset", "debug", "experiment", "launcher", "logger", "model", "optim", "protocol"):
        assert f"\n  {group}: " in text
    assert "schema_" not in text and "recipe" not in text and "bench_rounds" not in text
    assert "  protocol: ddp, diloco, local_sgd, none, resist" in text


def test_a_home_directory_in_a_value_is_expanded(monkeypatch):
    from resist.config.command_line import home_expanded
    from resist.config.hydra_door import to_typed_config

    monkeypatch.setenv("HOME", "/home/user")
    assert home_expanded(["dataset.root=~/data/cifar10", "~logger", "name=a~b", "seed=1"]) == [
        "dataset.root=/home/user/data/cifar10",
        "~logger",
        "name=a~b",
        "seed=1",
    ]
    register_schemas()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        composed = compose("config", overrides=["dataset.root='$HOME/data'", "dataset.cache_dir='~/cache'"])
    typed = to_typed_config(composed)
    assert (typed.dataset.root, typed.dataset.cache_dir) == ("/home/user/data", "/home/user/cache")


def test_more_threads_and_loader_processes_than_cores_is_one_warning_with_the_numbers():
    from resist.launch.preflight import oversubscription

    cfg = Config()
    cfg.num_workers, cfg.device = 2, DeviceKind.cpu
    assert oversubscription(cfg, {}, cpu_count=2) is None  # 1 thread each
    cfg.num_workers = 16
    assert oversubscription(cfg, {}, cpu_count=2).startswith(
        "16 workers x (1 thread(s) + 0 loader process(es)) = 16 busy processes and threads on 2 CPU core(s)"
    )
    cfg.num_workers, cfg.dataset.loader_workers = 2, 8
    assert oversubscription(cfg, {}, cpu_count=2).startswith("2 workers x (1 thread(s) + 8 loader process(es)) = 18")
    cfg.device = DeviceKind.cuda  # a GPU run's threads feed its GPU
    assert oversubscription(cfg, {}, cpu_count=2) is None
