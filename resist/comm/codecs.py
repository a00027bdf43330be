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
* :class:`Int4` — the same per-chunk absmax scheme at 4 bits: levels −7 … 7 (``absmax / 7`` per
  chunk of 256), two values per byte (the first in the low nibble), stochastic rounding; bytes:
  ``ceil(numel / 2)`` plus four per chunk. Its error is 18× int8's, too large to leave to chance
  when the same tensors are averaged round after round, so averaging with int4 keeps an
  error-feedback residual (:meth:`resist.comm.Comm.all_reduce_compressed`, ``residual``): what one
  round's encoding lost is added to what the next round sends (``error_feedback`` says a codec
  wants one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

INT8_LEVELS = 127  # int8 values used: -127 .. 127 (symmetric)
INT4_LEVELS = 7  # int4 values used: -7 .. 7 (symmetric; -8 is never written)


def _reinterpret(data: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The bytes of ``data`` (uint8) as ``dtype`` values; copied, as a slice of a larger buffer
    (what a transfer delivers) may start at an offset that ``dtype`` cannot be viewed from."""
    return data.clone().view(dtype)


@dataclass(frozen=True)
class BF16:
    """bfloat16: 2 bytes per value."""

    name = "bf16"
    error_feedback = False

    def encoded_bytes(self, numel: int) -> int:
        return 2 * numel

    def encode(self, values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return values.to(torch.bfloat16).view(torch.uint8)

    def decode(self, data: torch.Tensor, numel: int) -> torch.Tensor:
        return _reinterpret(data[: 2 * numel], torch.bfloat16).float()


@dataclass(frozen=True)
class _ChunkScaled:
    """Per-chunk absmax quantisation to the integers ``-levels … levels`` with float32 scales
    ``absmax / levels``; ``stochastic`` rounding draws from the generator given to :meth:`encode`
    (required then). Subclasses fix ``levels`` and how the integers are packed into bytes."""

    chunk: int = 256
    stochastic: bool = True
    levels = 0
    name = ""
    error_feedback = False

    def chunks(self, numel: int) -> int:
        return math.ceil(numel / self.chunk)

    def value_bytes(self, numel: int) -> int:
        """Bytes of the packed integers of ``numel`` values (the scales follow them)."""
        raise NotImplementedError

    def encoded_bytes(self, numel: int) -> int:
        return self.value_bytes(numel) + 4 * self.chunks(numel)

    def scales(self, values: torch.Tensor) -> torch.Tensor:
        """Each chunk's ``absmax / levels`` (float32)."""
        padded = torch.nn.functional.pad(values.abs(), (0, self.chunks(values.numel()) * self.chunk - values.numel()))
        return padded.view(-1, self.chunk).amax(dim=1) / self.levels

    def quantize(self, values: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(integers as int8 in -levels … levels, scales)`` of 1-D float32 ``values``."""
        if values.dtype != torch.float32 or values.dim() != 1:
            raise ValueError(
                f"{type(self).__name__}.encode: a 1-D float32 tensor, got {values.dtype} of shape {tuple(values.shape)}"
            )
        scales = self.scales(values)
        per_value = scales.repeat_interleave(self.chunk)[: values.numel()]
        ratio = torch.where(per_value > 0, values / torch.where(per_value > 0, per_value, 1.0), 0.0)
        if self.stochastic:
            if generator is None:
                name = type(self).__name__
                raise ValueError(f"{name}.encode: stochastic rounding needs a generator (seeded, the same on a resume)")
            noise = torch.rand(values.numel(), generator=generator, device="cpu").to(values.device)
            quantized = torch.floor(ratio + noise)
        else:
            quantized = torch.round(ratio)
        return quantized.clamp_(-self.levels, self.levels).to(torch.int8), scales

    def dequantize(self, quantized: torch.Tensor, data: torch.Tensor, numel: int) -> torch.Tensor:
        """Values from the integers ``quantized`` and the scales stored after them in ``data``."""
        scales = _reinterpret(data[self.value_bytes(numel) : self.encoded_bytes(numel)], torch.float32)
        return quantized.float() * scales.repeat_interleave(self.chunk)[:numel]


@dataclass(frozen=True)
class Int8(_ChunkScaled):
    """Per-chunk absmax int8 with float32 scales: one byte per value."""

    levels = INT8_LEVELS
    name = "int8"

    def value_bytes(self, numel: int) -> int:
        return numel

    def encode(self, values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        quantized, scales = self.quantize(values, generator)
        return torch.cat([quantized.view(torch.uint8), scales.view(torch.uint8)])

    def decode(self, data: torch.Tensor, numel: int) -> torch.Tensor:
        return self.dequantize(data[:numel].view(torch.int8), data, numel)


@dataclass(frozen=True)
class Int4(_ChunkScaled):
    """Per-chunk absmax int4 with float32 scales: two values per byte, value ``2k`` in the low
    nibble of byte ``k`` and ``2k + 1`` in its high nibble (two's complement), a zero nibble
    padding an odd count. Averaging with it keeps an error-feedback residual."""

    levels = INT4_LEVELS
    name = "int4"
    error_feedback = True

    def __post_init__(self) -> None:
        if self.chunk % 2:
            raise ValueError(f"Int4: the chunk must be even (a byte holds two values of one shard), got {self.chunk}")

    def value_bytes(self, numel: int) -> int:
        return math.ceil(numel / 2)

    def encode(self, values: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        quantized, scales = self.quantize(values, generator)
        nibbles = torch.nn.functional.pad(quantized, (0, values.numel() % 2)).view(torch.uint8) & 0x0F
        packed = nibbles[0::2] | (nibbles[1::2] << 4)
        return torch.cat([packed, scales.view(torch.uint8)])

    def decode(self, data: torch.Tensor, numel: int) -> torch.Tensor:
        packed = data[: self.value_bytes(numel)].to(torch.int16)
        nibbles = torch.stack([packed & 0x0F, packed >> 4], dim=1).reshape(-1)[:numel]
        quantized = torch.where(nibbles > 7, nibbles - 16, nibbles)  # two's complement nibbles
        return self.dequantize(quantized, data, numel)


Codec = BF16 | Int8 | Int4


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
    """The shard alignment ``codec`` needs: its chunk (int8, int4: an even number, so no byte holds
    values of two shards) or one value."""
    return codec.chunk if isinstance(codec, _ChunkScaled) else 1


def compressed_all_reduce_wire_bytes(codec: Codec, numel: int, workers: int) -> float:
    """Wire bytes per rank (mean over ranks) of :meth:`Comm.all_reduce_compressed` on ``numel``
    values: each shard's encoding is sent S − 1 times in each of its two phases,
    ``2(S − 1)/S × Σ_shards encoded bytes``."""
    shards = shard_bounds(numel, workers, alignment(codec))
    return 2 * (workers - 1) / workers * sum(codec.encoded_bytes(end - start) for start, end in shards if end > start)
