"""torch's DistributedDataParallel on a :class:`Comm`'s group, its gradient traffic billed."""

from __future__ import annotations

import warnings

from torch import nn
from torch.nn.parallel import DistributedDataParallel

from resist.comm.comm import Comm
from resist.comm.gradient_hooks import Float32Hook

# broadcast_buffers=False is the only way to keep DDP from moving buffers itself (unbilled); its
# announced replacement, forward_sync_buffers=False, still syncs them at construction. (A module-level
# filter: warnings.catch_warnings is not thread-safe, and thread workers build DDP concurrently.)
warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)


def data_parallel(model: nn.Module, comm: Comm, hook: Float32Hook | None = None) -> nn.Module:
    """``model`` wrapped in DDP over ``comm``'s group: gradients are all-reduced in DDP's buckets
    during backward by ``hook`` (default: float32, :class:`Float32Hook`), which bills them.

    DDP's own initial broadcast and its per-forward buffer broadcast are off: they would move bytes
    outside the ledger. Initial weights and BatchNorm statistics are the caller's to move via ``comm``.
    A hook whose state is per bucket (``freezes_buckets``) gets DDP's first bucket layout for the
    whole run (``find_unused_parameters=True``: DDP then never rebuilds its buckets, and all-reduces
    its used-parameter map every step, which the hook bills).
    """
    hook = Float32Hook(comm) if hook is None else hook
    hook.bind(model)
    device_ids = [comm.device] if comm.device.type == "cuda" else None
    ddp = DistributedDataParallel(
        model,
        device_ids=device_ids,
        process_group=comm.process_group,
        init_sync=False,
        broadcast_buffers=False,
        find_unused_parameters=hook.freezes_buckets,
    )
    ddp.register_comm_hook(state=None, hook=hook.communicate)
    return ddp
