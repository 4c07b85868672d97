"""All terminal output lives in this package: rich for people, JSON for scripts.

Commands compute frozen report objects; the functions here decide how they
look. With `--json`, stdout carries the JSON report and nothing else; every
human message goes to stderr.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from ..models import to_jsonable


def console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def emit_json(report: Any, extra: dict[str, Any] | None = None) -> None:
    data = to_jsonable(report)
    if extra:
        data.update(extra)
    json.dump(data, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    sys.stdout.flush()


def error(message: str) -> None:
    """A user-facing error on stderr, no traceback."""
    from rich.markup import escape

    console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def warn(message: str) -> None:
    from rich.markup import escape

    console(stderr=True).print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def human_bytes(value: float | None) -> str:
    if value is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def human_duration(seconds: float | int | None) -> str:
    """12s, 4m05s, 3h07m, 2d5h: process uptimes and step times at a glance."""
    if seconds is None:
        return "?"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"
