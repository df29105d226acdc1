"""Durations and sizes as people write them in config files: `30s`, `5m`, `64KiB`.

A bare `timeout: 600` leaves the reader guessing the unit, so strings carry
one; bare numbers still work and mean seconds or bytes, which also lets
environment variables like `BATCHRUN_GRACE_PERIOD=30` stay short.
"""
from __future__ import annotations

import math
import re

_DURATION_UNITS = {"": 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SIZE_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_NUMBER_AND_UNIT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*")


def parse_duration(value: object) -> float:
    """Seconds from `500ms`, `30s`, `5m`, `2h`, `1d`, `1.5s` or a bare number of seconds."""
    number, unit = _split(value, "duration", "500ms, 30s, 5m, 2h or 1d")
    factor = _DURATION_UNITS.get(unit)
    if factor is None:
        raise ValueError(f"unknown duration unit {unit!r} in {value!r} (use ms, s, m, h or d)")
    return number * factor


def parse_size(value: object) -> int:
    """Bytes from `512`, `64KiB`, `1MiB`, `2GiB`, or decimal `1KB` (1000), `1MB`, ..."""
    number, unit = _split(value, "size", "512, 64KiB, 1MiB or 2GiB")
    factor = _SIZE_UNITS.get(unit)
    if factor is None:
        raise ValueError(
            f"unknown size unit {unit!r} in {value!r} (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)")
    size = number * factor
    if size != int(size):
        raise ValueError(f"size {value!r} is not a whole number of bytes")
    return int(size)


def _split(value: object, what: str, examples: str) -> tuple[float, str]:
    """Split a number-with-unit into its number and lower-cased unit ('' for bare numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a {what} like {examples}, got {value!r}")
    if not isinstance(value, str):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"a {what} must be a non-negative number, got {value!r}")
        return float(value), ""
    if value.strip().startswith("-"):
        raise ValueError(f"a {what} must not be negative, got {value!r}")
    match = _NUMBER_AND_UNIT.fullmatch(value)
    if match is None:
        raise ValueError(f"invalid {what} {value!r}; expected a number and a unit, like {examples}")
    return float(match[1]), match[2].lower()


def format_size(size: int) -> str:
    """Bytes for people: `612.0 MiB`."""
    if size < 1024:
        return f"{size} B"
    value, unit = size / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{value:.1f} {unit}"
