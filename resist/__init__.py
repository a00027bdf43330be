"""resist: ResIST (layer-wise decomposition of pre-activation ResNets) with data-parallel and
local-SGD baselines, on one torch.distributed engine."""

__version__ = "0.1.0"
