"""Training protocols behind one interface (:class:`resist.protocols.base.Protocol`)."""

from __future__ import annotations

from resist.config import Config, ProtocolName
from resist.protocols.base import Protocol
from resist.protocols.single import SingleWorker


def build_protocol(cfg: Config) -> Protocol:
    """The protocol ``cfg.protocol.name`` selects."""
    protocols = {ProtocolName.none: SingleWorker}
    return protocols[cfg.protocol.name]()
