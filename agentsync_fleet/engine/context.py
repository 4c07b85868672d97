"""The state of one sync run, typed: the options, the per-host records, and what stages tell later stages.

`HostSync` (in `records`) is the one mutable record per host; only the
thread working on that host writes it (stages are serial or per-host
parallel, never both on one host), and it is frozen into the report at the
end. What one stage leaves for a later one is a named field here, never a
key in a dict.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..identity import new_run_id
from ..models import Host, Inventory
from ..records import HostHealth, HostSync


@dataclass(frozen=True)
class SyncOptions:
    dry_run: bool = False
    strict: bool = False
    allow_running: bool = False
    workers: int | None = None
    only_stages: tuple[str, ...] = ()  # e.g. ("publish",) for `push`, ("converge",) for `pull`
    resume: bool = False


Listener = Callable[[str, str, str], None]  # (host, stage, text)


class NullObserver:
    """What the engine talks to when nothing is being recorded (library use, unit tests): `journal.RunRecorder`'s calls."""

    def step_done(self, host: str, record: Any, result: Any = None) -> None:
        pass

    def host_done(self, result: Any) -> None:
        pass


@dataclass
class RunContext:
    """Everything a stage needs: the inventory, connections, options, and the per-host records."""

    inventory: Inventory
    hosts: list[Host]
    connector: Any
    options: SyncOptions
    listener: Listener = lambda host, stage, text: None
    run_id: str = field(default_factory=new_run_id)  # the journal's run id when a recorder is given
    results: dict[str, HostSync] = field(default_factory=dict)
    facts: dict[str, HostHealth] = field(default_factory=dict)  # the preflight probe, per host name
    origin_moved: bool = False  # dry run: origin's branch moved past what the hosts last fetched (ls-remote)
    relay_incoming: dict[str, dict[str, int]] = field(default_factory=dict)  # hub -> relayed host -> commits
    relay_hub_ahead: dict[str, int] = field(default_factory=dict)  # hub -> its own local commits, before relays
    relayed: dict[str, int] = field(default_factory=dict)  # relayed host -> commits relay-in applied on the hub
    artifacts_failed: set[str] = field(default_factory=set)  # hosts whose only trouble is a failed S3 entry
    move_plans: dict[str, Any] = field(default_factory=dict)  # dry run: each host's MovePlan, read after preflight
    stopping: threading.Event = field(default_factory=threading.Event)  # set on an interrupt: no new move starts
    rsync_tools: Any = None  # transfer/facts.RsyncTools: both transfer stages share it (rsync checked once a run)
    lock: threading.Lock = field(default_factory=threading.Lock)
    observer: Any = field(default_factory=NullObserver)  # told about every step as it ends: the run's recorder
    not_locked: dict[str, str] = field(default_factory=dict)  # host -> why the fleet lock was not taken there

    def result(self, host: Host) -> HostSync:
        return self.results.setdefault(host.name, HostSync(host.name))

    def active_hosts(self) -> list[Host]:
        return [h for h in self.hosts if self.result(h).active]
