"""What a run's results depend on beyond its config, and what a resume on another host changes."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch

BITWISE_FACTS = (
    "platform/device",
    "platform/torch",
    "platform/cpu_capability",
    "platform/threads_per_worker",
    "platform/gpu",
)
"""The facts a bit-for-bit result depends on (the host's logical CPU count is not one of them)."""


def platform_facts(device: torch.device) -> dict[str, Any]:
    """What a result depends on beyond the config: the device type, the torch build, this worker's
    threads, the CPU instruction set its kernels use (float sums differ across them in the last bits),
    the host's logical CPUs, and the GPU's name when the worker runs on one."""
    facts = {
        "platform/device": device.type,
        "platform/torch": torch.__version__,
        "platform/threads_per_worker": torch.get_num_threads(),
        "platform/cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "platform/host_cpus": os.cpu_count(),
    }
    if device.type == "cuda":
        facts["platform/gpu"] = torch.cuda.get_device_name(device)
    return facts


def platform_changes(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """The :data:`BITWISE_FACTS` that differ between a checkpoint's host (``saved``, as it recorded
    them) and the host resuming it (``now``), each as ``"<fact>: <saved> -> <now>"`` (a fact one side
    lacks reads ``None``). Empty: a resumed run continues bit for bit."""
    return [f"{key}: {saved.get(key)} -> {now.get(key)}" for key in BITWISE_FACTS if saved.get(key) != now.get(key)]
