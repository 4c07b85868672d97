"""Typed settings: where agentsync keeps its files, every timeout, and the fleet-wide inventory keys.

`inventory.settings` keeps top-level keys as YAML gave them (validated by
`schema.py`); the functions here apply defaults and units, so callers never
parse them twice. Every default deadline is written once, in `Timeouts`.
This module imports nothing of agentsync's but `secrets`, so every layer
may read it.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from typing import Any

from .secrets import SECRET_PATTERNS, secret_patterns


@dataclass(frozen=True)
class Timeouts:
    """Every deadline and age limit agentsync keeps, in seconds, each default written here and nowhere else."""

    connect: float = 10.0  # TCP + SSH handshake + auth together, per host (`defaults.connect_timeout`)
    command: float = 120.0  # each command on a host (`defaults.command_timeout`)
    rsync_io_floor: int = 30  # rsync's --timeout is the host's command timeout, never less than this
    s3_entry: float = 3600.0  # one S3 sync entry (`s3.timeout`)
    s3_kill_after: int = 5  # after an S3 entry's deadline (TERM), a sync that still runs gets KILL this much later
    notify: float = 30.0  # the `notify` command (`notify.timeout`)
    journal_busy: float = 15.0  # waiting for another agentsync process that is writing the journal
    lock_ttl: float = 2 * 3600.0  # a sync or transfer that holds the fleet longer than this is presumed dead
    lock_release: float = 4.0  # releasing a host's lock after Ctrl-C/SIGTERM/SIGHUP (one tiny script); a host
    # frozen meanwhile keeps its lock, named in a warning, and the next run takes it over as stale
    claim_ttl: float = 4 * 3600.0  # a claim not checked in for this long shows as stale
    check_run: float = 60.0  # a deploy-gate `run:` check (`checks[].timeout`)
    check_http: float = 10.0  # a deploy-gate `http:` check (`checks[].timeout`)
    check_kill_after: int = 5  # after a `run:` check's deadline (TERM), KILL this much later
    control_persist: float = 300.0  # an ssh master stays this long after its last use: the next run is warm


TIMEOUTS = Timeouts()
DEFAULT_WORKERS = 32  # hosts worked on at once when neither --workers nor `defaults.workers` says
REMOTE_BACKUP_ROOT = "~/.local/state/agentsync/backups"  # where receiving hosts keep what rsync replaced

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


def control_persist(inv) -> float:
    """`control_persist`: seconds an ssh master outlives its last command; 0 (or `no`) ends it with the run."""
    value = inv.settings.get("control_persist")
    if value is None:
        return TIMEOUTS.control_persist
    if value is False or value in (0, "0", "no"):
        return 0.0
    return parse_duration(value) or TIMEOUTS.control_persist


def persist_problem(value: Any) -> str | None:
    """For `schema.Field.check`: a duration, or 0/no."""
    if value is False or value in (0, "0", "no"):
        return None
    return duration_problem(value)


def lock_ttl(inv) -> float:
    return parse_duration(inv.settings.get("lock_ttl")) or TIMEOUTS.lock_ttl


def claim_ttl(inv) -> float:
    return parse_duration(inv.settings.get("claim_ttl")) or TIMEOUTS.claim_ttl


@dataclass(frozen=True)
class Notify:
    """`notify:` — a command run on the controller after each sync-all, the JSON report on its stdin."""

    argv: tuple[str, ...]
    timeout: float = TIMEOUTS.notify


def notify(inv) -> Notify | None:
    spec = inv.settings.get("notify")
    if not spec:
        return None
    return Notify(tuple(shlex.split(spec["command"])), float(spec.get("timeout", TIMEOUTS.notify)))


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


@dataclass(frozen=True)
class TransferSettings:
    """The inventory's top-level `transfers:` key, with defaults."""

    secrets: tuple[str, ...] = SECRET_PATTERNS
    bwlimit: int | None = None
    backup_dir: str = REMOTE_BACKUP_ROOT  # on remote receivers; the laptop keeps its backups in the state dir

    @classmethod
    def from_inventory(cls, inv) -> TransferSettings:
        raw = inv.settings.get("transfers") or {}
        root = raw.get("backup_dir", REMOTE_BACKUP_ROOT)
        if not root.startswith(("/", "~")):
            root = "~/" + root  # rsync would read a relative --backup-dir against the destination dir
        return cls(secrets=secret_patterns(inv.settings),
                   bwlimit=raw.get("bwlimit"), backup_dir=root)

