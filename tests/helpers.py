"""Small helpers shared by tests. Test modules import shared helpers from here (or from the other
shared modules: conftest, generated_runs, wandb_records), never from another test module."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from resist.config import (
    PROTOCOL_CONFIGS,
    Config,
    DatasetName,
    DecompositionConfig,
    EvalUnit,
    OptimizerStatePolicy,
    ProtocolName,
    ResISTConfig,
)
from resist.data.sources import DatasetError
from resist.models.catalog import layout_of
from resist.models.preact import build_model
from resist.models.spec import ARCHITECTURES
from resist.protocols.resist import ResIST


def fixed(model):
    """A model factory (``held_blocks``, ``initialize``, ``meta``) that always returns ``model``: for
    protocols that hold the whole model, driven directly by a test."""

    def make_model(held_blocks=None, initialize=True, meta=False):
        assert held_blocks is None and not meta
        return model

    return make_model


class ListSink:
    """A metric sink that keeps every record, in order, in :attr:`records`."""

    def __init__(self) -> None:
        self.records: list[dict] = []

    def log(self, record: dict) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass


def one_line_error(call: Callable[..., Any], *args: Any) -> str:
    """The message of the :class:`DatasetError` that ``call(*args)`` raises, checked to be one line
    that names ``dataset.root`` and says how to fix it."""
    with pytest.raises(DatasetError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message and message.startswith("dataset.root: ") and "(fix: " in message
    return message


# -- the real loop on thread workers (tests/sim) -------------------------------------------------

LOOP_WORKERS = 2


def loop_config(protocol: ProtocolName, eval_every: int, **protocol_changes) -> Config:
    """A :data:`LOOP_WORKERS`-worker run of ``protocol`` on 8×8 digits with the 8-block mini network:
    2 epochs of 6 steps, rounds of 3 local steps (unless ``protocol_changes`` say otherwise; keys
    the protocol lacks are ignored), evaluation every ``eval_every`` rounds, a train record every 3
    steps."""
    cfg = Config()
    cfg.dataset.name, cfg.dataset.image_size = DatasetName.digits, 8
    cfg.model.arch, cfg.num_workers, cfg.seed = "preact_resnet_mini_deep", LOOP_WORKERS, 3
    cfg.protocol = PROTOCOL_CONFIGS[protocol]()
    for key, value in {"local_steps": 3, **protocol_changes}.items():
        if hasattr(cfg.protocol, key):
            setattr(cfg.protocol, key, value)
    cfg.train.batch_size, cfg.train.epochs, cfg.train.max_steps = 128, 2, 12  # 6 steps per epoch
    cfg.train.eval_every, cfg.train.eval_unit, cfg.train.log_every_steps = eval_every, EvalUnit.rounds, 3
    return cfg


# -- ResIST driven directly on thread workers (tests/sim) ----------------------------------------

RESIST_ARCH = "preact_resnet_mini_deep"  # 8 partitionable blocks in stage 2
RESIST_STAGE = 2
RESIST_BLOCKS = layout_of(RESIST_ARCH).partitioned_units(None)  # unit numbers: stage 2's blocks 1-8 are units 3-10


def unit_block(model, unit: int):
    """The module of the block that unit number ``unit`` names in ``model`` (a ResidualUnits network)."""
    return model.block(*model.layout.locate(unit))


def stage_index(unit: int) -> int:
    """The index within its stage of unit ``unit`` of :data:`RESIST_ARCH`."""
    return layout_of(RESIST_ARCH).locate(unit)[1]


def resist_config(workers: int, min_depth: int, policy: OptimizerStatePolicy = OptimizerStatePolicy.reset) -> Config:
    """ResIST on :data:`RESIST_ARCH` among ``workers``: rounds of 2 local steps, sub-networks of at
    least ``min_depth`` blocks, optimizer state across a hand-off by ``policy``; seed 5."""
    cfg = Config()
    cfg.model.arch, cfg.num_workers, cfg.seed = RESIST_ARCH, workers, 5
    cfg.protocol = ResISTConfig(
        local_steps=2, optimizer_state=policy, decomposition=DecompositionConfig(min_depth=min_depth)
    )
    return cfg


def resist_protocol(comm, cfg: Config) -> ResIST:
    """``cfg``'s ResIST protocol on ``comm``."""
    return ResIST(comm, cfg.protocol, layout=layout_of(cfg.model.arch), seed=cfg.seed)


def imported_names(path: Path) -> set[str]:
    """Every module (and ``module.name``) the Python file ``path`` imports absolutely, at module level or
    inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def float32_network(held_blocks=None, initialize=True, meta=False):
    """:data:`RESIST_ARCH` in float32 for 3 classes of 8×8 one-channel images (a ModelFactory;
    initialised from seed 0), for protocols driven directly on thread workers."""
    return build_model(
        ARCHITECTURES[RESIST_ARCH],
        3,
        in_channels=1,
        held_blocks=held_blocks,
        init_seed=0 if initialize and not meta else None,
        device="meta" if meta else None,
    )


def train_two_steps(model, optimizer, rank: int) -> None:
    """Two optimizer steps of ``model`` on 6 random 8×8 images drawn from the rank's own seed."""
    for step in range(2):
        g = torch.Generator().manual_seed(10 * step + rank)
        images, labels = torch.randn(6, 1, 8, 8, generator=g), torch.randint(3, (6,), generator=g)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(images), labels).backward()
        optimizer.step()
