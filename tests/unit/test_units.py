"""How reports write byte counts (:mod:`resist.analysis.units`)."""

from __future__ import annotations

from resist.analysis.units import megabytes


def test_megabytes_are_decimal_with_thousands_separators():
    assert megabytes(248_104_380) == "248.1 MB"
    assert megabytes(1_234_567_890, decimals=2) == "1,234.57 MB"
    assert megabytes(40e6, unit=False) == "40.0"
