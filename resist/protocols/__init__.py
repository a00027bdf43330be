"""Training protocols behind one interface (:class:`resist.protocols.base.Protocol`)."""

from __future__ import annotations

from resist.comm import Comm
from resist.config import Config, ProtocolName
from resist.protocols.base import Protocol
from resist.protocols.ddp import DataParallel
from resist.protocols.local_sgd import LocalSGD
from resist.protocols.resist import ResIST
from resist.protocols.single import SingleWorker


def build_protocol(cfg: Config, comm: Comm) -> Protocol:
    """The protocol ``cfg.protocol.name`` selects, for the worker that owns ``comm``."""
    if cfg.protocol.name == ProtocolName.ddp:
        return DataParallel(comm)
    if cfg.protocol.name == ProtocolName.local_sgd:
        return LocalSGD(comm, cfg.protocol, cfg.decomposition.stage)
    if cfg.protocol.name == ProtocolName.resist:
        return ResIST(comm, cfg)
    return SingleWorker(comm)
