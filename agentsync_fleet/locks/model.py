"""Lock holders as data, and when a lock may be taken over. Pure: no files, no hosts.

The same holder record (one line of JSON) is written to the controller's lock
file and to `.git/agentsync.lock` on every host a run touches, so whoever
meets a lock can say who holds it, since when, from where, and for which run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields

from ..units import human_duration

REMOTE_NAME = "agentsync.lock"  # in the repo's git dir (the common dir, for worktrees)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: person and machine, the process (pid + start time), since when, for which run."""

    who: str
    controller: str
    pid: int
    pid_start: str
    since: float
    run_id: str
    task: str
    inventory: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Holder | None:
        """Parse a lock file's content; None if it is not a holder record (truncated, hand-written...)."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        try:
            values = {f.name: data[f.name] for f in fields(cls)}
            values["pid"], values["since"] = int(values["pid"]), float(values["since"])
        except (KeyError, TypeError, ValueError):
            return None
        return cls(**values)

    def describe(self, now: float | None = None) -> str:
        """`root@laptop (sync-all run 2026…, pid 4242 on laptop) since 2026-05-01 10:02:03 UTC (42s ago)`."""
        ago = max(0.0, (now if now is not None else time.time()) - self.since)
        return (f"{self.who} ({self.task} run {self.run_id}, pid {self.pid} on {self.controller}) "
                f"since {utc(self.since)} ({human_duration(ago)} ago)")


def utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))



Alive = Callable[[int, str], bool | None]  # (pid, pid_start) -> running here? None: cannot be checked here


def stale_reason(holder: Holder | None, *, now: float, ttl: float, here: str, alive: Alive,
                 age: float | None = None) -> str | None:
    """Why a lock may be taken over, or None while its holder may still be at work.

    The holder's process can only be checked on its own controller: there a
    lock is stale exactly when its process is gone, however long it has run
    (a long upload keeps its lock). From anywhere else a lock goes stale
    after `lock_ttl`, measured by the clock of the machine that keeps the lock:
    `age` is the lock file's age read on its host (the file's mtime and "now",
    both by that host's clock). Controllers' clocks may differ by hours; a
    controller whose clock runs ahead must not see a live run's lock as old.
    Only without `age` (a lock on this controller) does `now - since` count.
    """
    if holder is None:
        return "its holder record is unreadable"
    if holder.controller == here:
        running = alive(holder.pid, holder.pid_start)
        if running is False:
            return f"its process {holder.pid} on {here} is gone"
        if running:
            return None
    if (age if age is not None else now - holder.since) > ttl:
        return f"it is older than lock_ttl ({human_duration(ttl)})"
    return None
