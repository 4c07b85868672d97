"""Connections begun before the program has loaded: a cold `run` overlaps ssh's handshake with Python's start-up.

A cold `agentsync run gpu …` spends ~0.4 s in ssh's handshake, and used to
spend ~0.1 s before it could even begin it: loading Python, Invoke and the
inventory, asking `ssh -G`. So, after each master `run`'s Connector opens
for a host it reaches directly (no jump hop), it writes down here what it ran:
the inventory's sha256, `ssh -G`'s whole answer, and the `ssh -M -N -f` argv
(only `run` does: it is the one command that begins early).
The next `run` for that host (launch.py, before anything else is imported)
reads it back and, only if the inventory file still has the same bytes and
`ssh -G` still answers the same, begins that very argv at once. The run's
Connector adopts the attempt only if it is exactly the argv it would run
itself, and then reads its exit status and stderr as its own; otherwise the
attempt is abandoned and the run connects as it always did. Anything
missing, different or unreadable: nothing begins early.

An attempt that nobody adopted, still under way when the process exits
(bad input after all, Ctrl-C), is killed: no handshake outlives the run.
A master it already made stays, as after any run (ControlPersist).

The record is a cache, one file per inventory path, in
${XDG_CACHE_HOME:-~/.cache}/agentsync/early/ (0700, files 0600, ours only).
`AGENTSYNC_EARLY=0` turns all of this off.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import stat
import subprocess

from .master import SSH_ENV, MasterAttempt, StartLockBusy, begin_master, master_alive

VERSION = 1
RESOLVE_TIMEOUT = 5.0  # an `ssh -G` slower than this (a slow `Match exec`) is not worth beginning early
SWITCH = "AGENTSYNC_EARLY"


def enabled() -> bool:
    return os.environ.get(SWITCH, "1") != "0"


def cache_file(inventory: str | os.PathLike) -> str:
    """(os.path, not pathlib: this runs before the program loads, and pathlib alone costs 5 ms to import)"""
    base = os.path.expanduser(os.environ.get("XDG_CACHE_HOME") or "~/.cache")
    key = hashlib.sha256(os.path.abspath(inventory).encode()).hexdigest()[:16]
    return os.path.join(base, "agentsync", "early", f"{key}.json")


def remember(inventory: str | os.PathLike, inventory_sha: str, host: str, *, resolve_argv: list[str], resolved: str,
             master_argv: list[str], sock: str) -> None:
    """Write down how `host` was reached. Best effort: a failure only means no early start next time."""
    if not enabled() or not inventory_sha:
        return
    path = cache_file(inventory)
    data = _read(path) or {}
    if data.get("version") != VERSION or data.get("inventory_sha") != inventory_sha:
        data = {"version": VERSION, "inventory": os.path.abspath(inventory), "inventory_sha": inventory_sha,
                "hosts": {}}
    entry = {"resolve": resolve_argv, "resolved": resolved, "master": master_argv, "sock": sock}
    if data["hosts"].get(host) == entry:
        return
    data["hosts"][host] = entry
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        os.replace(tmp, path)
    except OSError:
        pass


def begin(inventory: str | os.PathLike, host: str) -> MasterAttempt | None:
    """Begin `host`'s master exactly as the last run did, if nothing it depends on has changed; else None."""
    if not enabled():
        return None
    try:
        data = _read(cache_file(inventory))
        if not data or data.get("version") != VERSION:
            return None
        entry = data["hosts"].get(host)
        if not _well_formed(entry) or data["inventory_sha"] != _sha256(inventory):
            return None
        if master_alive(entry["sock"]):
            return None  # warm: nothing to begin (and no `ssh -G` to ask)
        answer = subprocess.run(entry["resolve"], capture_output=True, text=True, timeout=RESOLVE_TIMEOUT,
                                stdin=subprocess.DEVNULL, errors="replace")
        if answer.returncode != 0 or answer.stdout != entry["resolved"]:
            return None
        attempt = begin_master(entry["master"], entry["sock"], {**os.environ, **SSH_ENV}, wait=0)
    except StartLockBusy:  # another run is opening it: this run waits for that one, later
        return None
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
        return None
    if attempt is None:
        return None
    atexit.register(attempt.abandon)
    return attempt


def _sha256(file: str | os.PathLike) -> str:
    with open(file, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _read(path: str) -> dict | None:
    """The cache file, if it is a regular file of ours that nobody else can write."""
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            return None
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("hosts"), dict) else None


def _well_formed(entry: object) -> bool:
    """An entry whose commands are both `ssh` argv lists of strings."""
    if not isinstance(entry, dict) or not isinstance(entry.get("sock"), str) or not isinstance(entry.get("resolved"), str):
        return False
    return all(isinstance(entry.get(k), list) and entry[k][:1] == ["ssh"] and all(isinstance(a, str) for a in entry[k])
               for k in ("resolve", "master"))
