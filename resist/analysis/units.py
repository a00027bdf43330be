"""Byte counts as text: the one place that fixes how reports write megabytes (pure)."""

from __future__ import annotations


def megabytes(value_bytes: float, *, decimals: int = 1, unit: bool = True) -> str:
    """``value_bytes`` in decimal megabytes (1 MB = 10^6 bytes), with thousands separators and
    ``decimals`` decimals: ``"1,234.5 MB"``; without the ``" MB"`` when not ``unit`` (a table column
    whose heading names the unit)."""
    text = f"{value_bytes / 1e6:,.{decimals}f}"
    return f"{text} MB" if unit else text
