"""The codecs of compressed transfers: exact byte counts, round-trip error bounds, determinism of
stochastic rounding, and its unbiasedness."""

from __future__ import annotations

import pytest
import torch

from resist.comm.codecs import BF16, INT4_LEVELS, INT8_LEVELS, Int4, Int8


def _values(numel: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(numel, generator=g) * torch.logspace(-3, 2, numel)  # chunks of very different ranges


@pytest.mark.parametrize("numel", [1, 255, 256, 257, 1000])
def test_int8_bytes_are_one_per_value_and_four_per_chunk(numel):
    codec = Int8(chunk=256, stochastic=False)
    data = codec.encode(_values(numel))
    assert data.dtype == torch.uint8 and data.numel() == codec.encoded_bytes(numel) == numel + 4 * -(-numel // 256)


def test_int8_round_to_nearest_errs_by_at_most_half_a_step_per_chunk():
    codec, values = Int8(chunk=64, stochastic=False), _values(1000)
    decoded = codec.decode(codec.encode(values), 1000)
    step = codec.scales(values).repeat_interleave(64)[:1000]  # absmax / 127 per chunk
    assert torch.all((decoded - values).abs() <= step / 2 * (1 + 1e-6))
    # each chunk's largest magnitude is exact (it maps to ±127)
    for start in range(0, 1000, 64):
        k = values[start : start + 64].abs().argmax() + start
        assert decoded[k] == pytest.approx(values[k].item(), rel=1e-6)


def test_int8_stochastic_rounding_is_deterministic_bounded_and_unbiased():
    codec, values = Int8(chunk=64), _values(512)
    first = codec.encode(values, torch.Generator().manual_seed(7))
    assert torch.equal(first, codec.encode(values, torch.Generator().manual_seed(7)))  # the same on every rank
    assert not torch.equal(first, codec.encode(values, torch.Generator().manual_seed(8)))
    step = codec.scales(values).repeat_interleave(64)[:512]
    assert torch.all((codec.decode(first, 512) - values).abs() < step * (1 + 1e-6))
    g = torch.Generator().manual_seed(0)
    mean = torch.stack([codec.decode(codec.encode(values, g), 512) for _ in range(2000)]).mean(dim=0)
    assert torch.all((mean - values).abs() <= 0.05 * step)  # 2000 draws: within 0.05 of a step


def test_int8_zero_chunks_and_extremes():
    codec = Int8(chunk=4, stochastic=False)
    values = torch.tensor([0.0, 0.0, 0.0, 0.0, -3.0, 1.5, 0.0, 3.0])
    data = codec.encode(values)
    assert data[:8].view(torch.int8).tolist() == [0, 0, 0, 0, -INT8_LEVELS, 64, 0, INT8_LEVELS]  # 63.5 -> 64
    assert codec.decode(data, 8).tolist()[:4] == [0.0] * 4
    with pytest.raises(ValueError, match="needs a generator"):
        Int8().encode(values)


def test_bf16_is_two_bytes_per_value_and_exact_on_bf16_values():
    codec, values = BF16(), _values(300)
    data = codec.encode(values)
    assert data.numel() == codec.encoded_bytes(300) == 600
    representable = values.to(torch.bfloat16).float()
    assert torch.equal(codec.decode(codec.encode(representable), 300), representable)
    assert torch.equal(codec.decode(data, 300), representable)  # round to nearest even, as torch's cast


@pytest.mark.parametrize("numel", [1, 2, 255, 256, 257, 1001])
def test_int4_bytes_are_half_a_byte_per_value_and_four_per_chunk(numel):
    codec = Int4(chunk=256, stochastic=False)
    data = codec.encode(_values(numel))
    assert data.numel() == codec.encoded_bytes(numel) == -(-numel // 2) + 4 * -(-numel // 256)


def test_int4_packs_two_values_per_byte_low_nibble_first_and_errs_by_half_a_step():
    codec = Int4(chunk=4, stochastic=False)
    values = torch.tensor([0.0, 0.0, 0.0, 0.0, -7.0, 1.4, 0.0, 7.0, 2.0])
    data = codec.encode(values)
    # quantised: 0 0 0 0 | -7 1 0 7 | 7 (the last chunk's absmax is 2.0): low nibble first, two's complement
    assert data[:5].tolist() == [0x00, 0x00, (1 << 4) | 0x9, (7 << 4) | 0x0, 0x07]
    assert codec.decode(data, 9).tolist() == [0.0, 0.0, 0.0, 0.0, -7.0, 1.0, 0.0, 7.0, 2.0]
    values = _values(1000)
    decoded = Int4(chunk=64, stochastic=False).decode(Int4(chunk=64, stochastic=False).encode(values), 1000)
    step = Int4(chunk=64).scales(values).repeat_interleave(64)[:1000]  # absmax / 7 per chunk
    assert torch.all((decoded - values).abs() <= step / 2 * (1 + 1e-6))
    assert (decoded / step).round().abs().max() == INT4_LEVELS


def test_int4_stochastic_rounding_is_deterministic_bounded_and_unbiased():
    codec, values = Int4(chunk=64), _values(512)
    first = codec.encode(values, torch.Generator().manual_seed(7))
    assert torch.equal(first, codec.encode(values, torch.Generator().manual_seed(7)))
    step = codec.scales(values).repeat_interleave(64)[:512]
    assert torch.all((codec.decode(first, 512) - values).abs() < step * (1 + 1e-6))
    g = torch.Generator().manual_seed(0)
    mean = torch.stack([codec.decode(codec.encode(values, g), 512) for _ in range(2000)]).mean(dim=0)
    assert torch.all((mean - values).abs() <= 0.05 * step)
    with pytest.raises(ValueError, match="chunk must be even"):
        Int4(chunk=7)


@pytest.mark.parametrize("codec", [BF16(), Int8(chunk=8, stochastic=False), Int4(chunk=8, stochastic=False)], ids=str)
def test_decoding_reads_bytes_at_any_offset_of_a_received_buffer(codec):
    """A transfer delivers several encodings back to back: a decode may start at an odd byte."""
    values = _values(13)
    data = codec.encode(values)
    buffer = torch.cat([torch.zeros(3, dtype=torch.uint8), data])
    assert torch.equal(codec.decode(buffer[3:], 13), codec.decode(data, 13))
