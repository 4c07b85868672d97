"""All terminal output lives in this package: rich for people, JSON for scripts.

Commands compute frozen report objects; the functions here decide how they
look. With `--json`, stdout carries the JSON report and nothing else; every
human message goes to stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from ..models import to_jsonable
from ..units import human_bytes, human_duration  # noqa: F401 - re-exported for the renderers


def once_per_run(pairs: Iterable[tuple[str, str]]) -> list[tuple[list[str], str]]:
    """(host, warning) pairs → each distinct warning once, with every host that had it, in first-seen order: a
    claim that incoming commits touch, a secret held back, a note about the inventory print once per run."""
    grouped: dict[str, list[str]] = {}
    for host, warning in pairs:
        hosts = grouped.setdefault(warning, [])
        if host not in hosts:
            hosts.append(host)
    return [(hosts, warning) for warning, hosts in grouped.items()]


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


def emit_error_json(exc: Exception) -> None:
    """The one JSON document of a run that failed before (or instead of) its report."""
    emit_json({"ok": False, "error": {"message": getattr(exc, "message", str(exc)),
                                      "hint": getattr(exc, "hint", None), "host": getattr(exc, "host", None)}})


def error(message: str) -> None:
    """A user-facing error on stderr, no traceback."""
    from rich.markup import escape

    console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def warn(message: str) -> None:
    from rich.markup import escape

    console(stderr=True).print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)
