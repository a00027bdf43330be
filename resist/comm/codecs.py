"""Codecs for compressed transfers (pure: tensors in, bytes out; no communication).

A codec turns a 1-D float32 tensor into one flat ``uint8`` tensor, the exact bytes that go on the
wire, and back:

* :class:`BF16` — each value rounded to bfloat16 (round to nearest even): 2 bytes per value; a
  value that is already a bfloat16 value round-trips exactly.
* :class:`Int8` — per-chunk absmax scaling: each run of ``chunk`` values (the last may be shorter)
  shares one float32 scale ``absmax / 127``; a value becomes the int8 ``x / scale`` rounded to
  nearest (error at most ``scale / 2``) or stochastically (``floor(x / scale + u)``, ``u`` uniform
  on [0, 1) from a given generator: error below ``scale``, unbiased). Unbiased is not drift-free:
  encoding the same weights again at every hop adds a fresh error each time, a random walk that
  outgrows small updates, so the protocols encode only changes since a value both ends hold
  (:mod:`resist.protocols.compressed`). Bytes: one per value plus four per chunk, the scales
  (written after the values).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

INT8_LEVELS = 127  # int8 values used: -127 .. 127 (symmetric)


def _reinterpret(data: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The bytes of ``data`` (uint8) as ``dtype`` values; copied, as a slice of a larger buffer
    (what a transfer delivers) may start at an offset that ``dtype`` cannot be viewed from."""
    return data.clone().view(dtype)


@dataclass(frozen=True)
class BF16:
    """bfloat16: 2 bytes per value."""

    name = "bf16"

    def encoded_bytes(self, numel: int) -> int:
        return 2 * numel

    def encode(self, values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return values.to(torch.bfloat16).view(torch.uint8)

    def decode(self, data: torch.Tensor, numel: int) -> torch.Tensor:
        return _reinterpret(data[: 2 * numel], torch.bfloat16).float()


@dataclass(frozen=True)
class Int8:
    """Per-chunk absmax int8 with float32 scales; ``stochastic`` rounding draws from the generator
    given to :meth:`encode` (required then)."""

    chunk: int = 256
    stochastic: bool = True
    name = "int8"

    def chunks(self, numel: int) -> int:
        return math.ceil(numel / self.chunk)

    def encoded_bytes(self, numel: int) -> int:
        return numel + 4 * self.chunks(numel)

    def scales(self, values: torch.Tensor) -> torch.Tensor:
        """Each chunk's ``absmax / 127`` (float32)."""
        padded = torch.nn.functional.pad(values.abs(), (0, self.chunks(values.numel()) * self.chunk - values.numel()))
        return padded.view(-1, self.chunk).amax(dim=1) / INT8_LEVELS

    def encode(self, values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if values.dtype != torch.float32 or values.dim() != 1:
            raise ValueError(f"Int8.encode: a 1-D float32 tensor, got {values.dtype} of shape {tuple(values.shape)}")
        scales = self.scales(values)
        per_value = scales.repeat_interleave(self.chunk)[: values.numel()]
        ratio = torch.where(per_value > 0, values / torch.where(per_value > 0, per_value, 1.0), 0.0)
        if self.stochastic:
            if generator is None:
                raise ValueError("Int8.encode: stochastic rounding needs a generator (seeded, the same on a resume)")
            noise = torch.rand(values.numel(), generator=generator, device="cpu").to(values.device)
            quantized = torch.floor(ratio + noise)
        else:
            quantized = torch.round(ratio)
        quantized = quantized.clamp_(-INT8_LEVELS, INT8_LEVELS).to(torch.int8)
        return torch.cat([quantized.view(torch.uint8), scales.view(torch.uint8)])

    def decode(self, data: torch.Tensor, numel: int) -> torch.Tensor:
        quantized = data[:numel].view(torch.int8).float()
        scales = _reinterpret(data[numel : numel + 4 * self.chunks(numel)], torch.float32)
        return quantized * scales.repeat_interleave(self.chunk)[:numel]


Codec = BF16 | Int8


def shard_bounds(numel: int, parts: int, align: int = 1) -> list[tuple[int, int]]:
    """``parts`` contiguous ``(start, end)`` shards of ``numel`` values, as equal as possible in
    units of ``align`` values (a codec's chunk, so no chunk straddles two shards); the first
    shards take the extra units, and shards past the end are empty."""
    units = math.ceil(numel / align)
    base, extra = divmod(units, parts)
    bounds, start = [], 0
    for part in range(parts):
        end = min(numel, start + (base + (part < extra)) * align)
        bounds.append((start, end))
        start = end
    return bounds


def alignment(codec: Codec) -> int:
    """The shard alignment ``codec`` needs: its chunk (int8) or one value."""
    return codec.chunk if isinstance(codec, Int8) else 1


def compressed_all_reduce_wire_bytes(codec: Codec, numel: int, workers: int) -> float:
    """Wire bytes per rank (mean over ranks) of :meth:`Comm.all_reduce_compressed` on ``numel``
    values: each shard's encoding is sent S − 1 times in each of its two phases,
    ``2(S − 1)/S × Σ_shards encoded bytes``."""
    shards = shard_bounds(numel, workers, alignment(codec))
    return 2 * (workers - 1) / workers * sum(codec.encoded_bytes(end - start) for start, end in shards if end > start)
