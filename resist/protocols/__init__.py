"""Training protocols behind one interface (:class:`resist.protocols.base.TrainingProtocol`), built
from a table keyed by the protocol's name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from resist.comm import Comm
from resist.config import Config, ProtocolName
from resist.models.catalog import layout_of
from resist.protocols.base import TrainingProtocol
from resist.protocols.ddp import DataParallel
from resist.protocols.diloco import DiLoCo
from resist.protocols.local_sgd import LocalSGD
from resist.protocols.resist import ResIST
from resist.protocols.single import SingleWorker

# name -> (its config, the worker's Comm, the run's config) -> the protocol
BUILDERS: dict[ProtocolName, Callable[[Any, Comm, Config], TrainingProtocol]] = {
    ProtocolName.none: lambda _, comm, __: SingleWorker(comm),
    ProtocolName.ddp: lambda protocol, comm, cfg: DataParallel(comm, protocol, seed=cfg.seed),
    ProtocolName.local_sgd: lambda protocol, comm, cfg: LocalSGD(comm, protocol, seed=cfg.seed),
    ProtocolName.diloco: lambda protocol, comm, cfg: DiLoCo(comm, protocol, seed=cfg.seed),
    ProtocolName.resist: lambda protocol, comm, cfg: ResIST(
        comm, protocol, layout=layout_of(cfg.model.arch), seed=cfg.seed
    ),
}


def build_protocol(cfg: Config, comm: Comm) -> TrainingProtocol:
    """The protocol ``cfg.protocol`` configures, for the worker that owns ``comm``."""
    return BUILDERS[cfg.protocol.name](cfg.protocol, comm, cfg)
