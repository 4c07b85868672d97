"""One module per command; `cli.py` only parses arguments and calls `run` here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError


@dataclass(frozen=True)
class FleetArgs:
    """The options every fleet task shares, as typed on the command line."""

    inventory: str | None = None
    hosts: str | None = None
    json: bool = False
    workers: str | int | None = None
    recorder: Any = field(default_factory=lambda: _unrecorded())  # the run's journal recorder, from the CLI
    early: tuple = ()  # ssh masters begun before the command line was parsed (launch.py): the Connector adopts them

    def load(self):
        """The validated inventory (raises InventoryError with every problem).

        Loading it is also where the run journal learns which fleet this run
        is about: the run is recorded from here on (see `journal`).
        """
        from .. import inventory

        inv = inventory.load(self.inventory)
        self.recorder.attach(inv)
        return inv

    def selected(self, inv) -> list:
        """Hosts named by --hosts (comma-separated), in sync order; all hosts if none given."""
        return inv.select(inv.host_names(self.hosts))

    def worker_limit(self, inv) -> int | None:
        value = self.workers if self.workers not in (None, "", 0) else inv.settings["defaults"].get("workers")
        if value is None:
            return None
        try:
            count = int(value)
        except (TypeError, ValueError):
            count = 0
        if count < 1:
            raise UsageError(f"--workers expects a whole number of at least 1, got {value!r}")
        return count


def _unrecorded():
    from ..journal import NullRecorder

    return NullRecorder()


@contextmanager
def fleet_locked(inv, hosts: list, connector, *, task: str, recorder, workers: int | None = None,
                 also=None) -> Iterator:
    """`locks.fleet_lock` for a task that changes the fleet; the stale locks it took over, and the locks it could not
    release at the end, are printed as warnings. `also`: see `locks.fleet_lock`."""
    from ..locks import fleet_lock
    from ..output import warn

    state = None
    try:
        with fleet_lock(inv, hosts, connector, task=task, workers=workers, recorder=recorder, also=also) as state:
            for warning in state.warnings:
                warn(warning)
            yield state
    finally:  # also on Ctrl-C: say which lock a frozen or lost host kept
        for warning in state.release_warnings if state is not None else ():
            warn(warning)
