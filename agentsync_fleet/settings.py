"""Typed access to the fleet-wide inventory settings that are not about one host.

`inventory.settings` keeps top-level keys as YAML gave them (validated by
`schema.py`); the functions here apply defaults and units, so callers never
parse them twice.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Any

DEFAULT_LOCK_TTL = 2 * 3600.0  # a sync or transfer that holds the fleet longer than this is presumed dead
DEFAULT_CLAIM_TTL = 4 * 3600.0  # a claim not checked in for this long shows as stale
DEFAULT_NOTIFY_TIMEOUT = 30.0
DEFAULT_CONTROL_PERSIST = 300.0  # an ssh master stays this long after its last use: the next run is warm

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float | None:
    """Seconds from `90`, `90s`, `15m`, `4h`, `1d`; None if it is not a positive duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value > 0 else None
    match = _DURATION.match(str(value))
    if not match:
        return None
    seconds = float(match.group(1)) * _UNIT[match.group(2)]
    return seconds if seconds > 0 else None


def duration_problem(value: Any) -> str | None:
    """For `schema.Field.check`: why `value` is not a duration, or None."""
    if parse_duration(value) is None:
        return "is not a positive duration (seconds, or a number with s, m, h or d, e.g. 90m or 4h)"
    return None


def command_problem(value: str) -> str | None:
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        return f"cannot be split into arguments ({exc})"
    return None if argv else "is empty"


def state_dir(inv=None) -> str:
    """Where agentsync keeps its own files (journal, locks, caches, ssh sockets) on the controller.

    The inventory's `state_dir` (relative to the inventory file), else
    $AGENTSYNC_STATE_DIR, else ~/.local/state/agentsync.
    """
    configured = inv.settings.get("state_dir") if inv is not None else None
    if configured:
        path = os.path.expanduser(configured)
        return path if os.path.isabs(path) else os.path.join(os.path.dirname(os.path.abspath(inv.path)), path)
    return os.path.expanduser(os.environ.get("AGENTSYNC_STATE_DIR") or "~/.local/state/agentsync")


def control_persist(inv) -> float:
    """`control_persist`: seconds an ssh master outlives its last command; 0 (or `no`) ends it with the run."""
    value = inv.settings.get("control_persist")
    if value is None:
        return DEFAULT_CONTROL_PERSIST
    if value is False or value in (0, "0", "no"):
        return 0.0
    return parse_duration(value) or DEFAULT_CONTROL_PERSIST


def persist_problem(value: Any) -> str | None:
    """For `schema.Field.check`: a duration, or 0/no."""
    if value is False or value in (0, "0", "no"):
        return None
    return duration_problem(value)


def lock_ttl(inv) -> float:
    return parse_duration(inv.settings.get("lock_ttl")) or DEFAULT_LOCK_TTL


def claim_ttl(inv) -> float:
    return parse_duration(inv.settings.get("claim_ttl")) or DEFAULT_CLAIM_TTL


@dataclass(frozen=True)
class Notify:
    """`notify:` — a command run on the controller after each sync-all, the JSON report on its stdin."""

    argv: tuple[str, ...]
    timeout: float = DEFAULT_NOTIFY_TIMEOUT


def notify(inv) -> Notify | None:
    spec = inv.settings.get("notify")
    if not spec:
        return None
    return Notify(tuple(shlex.split(spec["command"])), float(spec.get("timeout", DEFAULT_NOTIFY_TIMEOUT)))
