"""Sizes and durations for people: pure, shared by the renderers and by error messages."""

from __future__ import annotations


def human_bytes(value: float | None) -> str:
    """1.5 KiB, 3.2 GiB: powers of 1024, named as such."""
    if value is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def human_duration(seconds: float | int | None) -> str:
    """12s, 4m05s, 2m, 3h07m, 4h, 2d5h: process uptimes, step times and lock ages at a glance."""
    if seconds is None:
        return "?"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    for size, unit, sub, sub_unit, width in ((86400, "d", 3600, "h", 1), (3600, "h", 60, "m", 2), (60, "m", 1, "s", 2)):
        if s >= size:
            rest = s % size // sub
            return f"{s // size}{unit}" + (f"{rest:0{width}d}{sub_unit}" if rest else "")
    return f"{s}s"
