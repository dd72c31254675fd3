"""Durations as operators type and read them: "90s", "15m", "12h", "7d" in, "4 min 12 s" out."""

from __future__ import annotations

import re
from typing import Final

from pgworker.errors import ConfigError

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(s|m|h|d|w)?")
_UNIT_SECONDS: Final = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 604_800.0}


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in "90", "90s", "15m", "12h", "7d" or "2w"; ConfigError for anything else."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ConfigError(
            f"invalid {what} {text[:40]!r}: use a number of seconds or a number with s, m, h,"
            " d or w (e.g. 90s, 12h, 7d)"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2) or "s"]


def format_duration(seconds: float) -> str:
    """A short human duration: "350 ms", "4.2 s", "12 s", "4 min 12 s", "2 h 5 min", "3 d 4 h"."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    for unit, size, sub_unit, sub_size in (
        ("d", 86_400, "h", 3600),
        ("h", 3600, "min", 60),
        ("min", 60, "s", 1),
    ):
        if whole >= size:
            major, rest = divmod(whole, size)
            minor = rest // sub_size
            return f"{major} {unit} {minor} {sub_unit}" if minor else f"{major} {unit}"
    return f"{whole} s"
