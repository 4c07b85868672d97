"""The fleet lock: one run at a time per inventory, on the controller and on every host it touches.

    with fleet_lock(inv, hosts, connector, task="results") as lock:
        ...                      # stale locks taken over are journaled and listed in lock.warnings

Tasks that change the fleet (sync-all, pull, push, results, artifacts) wrap
their work in `fleet_lock`; read-only tasks (health, status, plan, history)
take none. The lock is taken on the controller first (a file in the state
dir, keyed by the inventory's path), then as `.git/agentsync.lock` in each
reachable host's repo, so two controllers with inventories sharing a host
are kept apart too. A second run is refused with `LockHeld`, naming the
holder and since when. A stale lock — its process gone on this controller,
or, held from another controller, older than `lock_ttl` by the clock of the
host that keeps it (never the controller's: see `model.stale_reason`) — is
taken over with a warning. While a run holds the lock, a heartbeat keeps its
host locks young (`heartbeat.py`), so a run longer than `lock_ttl` is never
judged stale by another controller while it is alive. Locks are released
when the block ends, normally, by an error or by a signal (then each host
within `Timeouts.lock_release`; signals are held meanwhile: the wind-down is
bounded and needs no second Ctrl-C); a lock a host did not release (frozen,
lost) is named in `FleetLock.release_warnings`. A killed run leaves stale locks the next run
takes over.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..errors import FleetError, HostUnreachable, LockHeld
from ..identity import controller, process_running, process_stamp, who
from ..interrupts import held
from ..journal import NullRecorder
from ..models import Host, Inventory
from ..pool import run_each
from ..settings import TIMEOUTS, lock_ttl, state_dir
from . import remote
from .heartbeat import Heartbeat, interval
from .local import LocalLock
from .model import REMOTE_NAME, Holder, stale_reason

RRSYNC = "rrsync error"  # what rsync's restricted wrapper says to any command that is not rsync
UNLOCK_HINT = ("wait for that run to finish; if it is gone, `agentsync unlock` removes stale locks "
               "(`agentsync unlock --force` removes any lock)")


@dataclass
class FleetLock:
    """What taking the lock found: takeovers to warn about, hosts that could not be locked."""

    holder: Holder
    warnings: list[str] = field(default_factory=list)
    locked_hosts: dict[str, str] = field(default_factory=dict)  # host -> our record's text there
    not_locked: dict[str, str] = field(default_factory=dict)  # host -> why (unreachable, no repo...)
    release_warnings: list[str] = field(default_factory=list)  # locks left behind at the end, and why
    answers: dict[str, tuple[str, str]] = field(default_factory=dict)  # host -> (`also` output, shell noise)
    errors: dict[str, FleetError] = field(default_factory=dict)  # host -> what kept its lock from being taken
    no_repo: set[str] = field(default_factory=set)  # hosts without a repo at `repo`: nowhere to keep a lock

    def refusal(self, host: str) -> FleetError | None:
        """Why this run must not touch `host` at all: its lock was not taken (None: it was).

        Another run may be changing that host right now, so nothing of this run reaches it, not even a host
        that answers again later in the run. An unreachable host is refused with its own error (message, hint,
        `HostUnreachable`), so the report reads as before. A host with no repo at `repo` has nowhere to keep a
        lock; tasks that need no checkout there (`results`, `artifacts`) may still run on it."""
        if host not in self.not_locked or host in self.no_repo:
            return None
        if isinstance(self.errors.get(host), HostUnreachable):
            return self.errors[host]
        own = self.errors.get(host)
        return FleetError(f"the fleet lock could not be taken on {host} ({self.not_locked[host]}); nothing was "
                          "done there", host=host, hint=own.hint if own is not None and own.hint else
                          "`agentsync unlock` shows who holds it; run again once the host can be locked")


def new_holder(inv: Inventory, task: str, run_id: str) -> Holder:
    return Holder(who(), controller(), os.getpid(), process_stamp(os.getpid()), time.time(), run_id, task,
                  os.path.abspath(inv.path))


def _judge(holder: Holder | None, text: str, ttl: float, where: str, age: float | None = None) -> str:
    """A takeover reason for a stale lock; raises LockHeld for a live one. `age`: by the lock host's clock."""
    reason = stale_reason(holder, now=time.time(), ttl=ttl, here=controller(), alive=process_running, age=age)
    if reason is None:
        raise LockHeld(f"the fleet is locked {where} by {holder.describe()}; not starting", hint=UNLOCK_HINT)
    return f"took over a stale lock {where} held by {holder.describe() if holder else repr(text[:80])}: {reason}"


@contextmanager
def fleet_lock(inv: Inventory, hosts: list[Host], connector, *, task: str, run_id: str | None = None,
               workers: int | None = None, recorder=None,
               also: Callable[[Host], str] | None = None) -> Iterator[FleetLock]:
    """Hold the fleet lock for `hosts` of `inv` for the duration of the block (journaled by `recorder`).

    `also(host)`: a read-only script the task would run next anyway (transfers: which rsync the host has),
    sent with the lock itself to save a round trip; what it printed on each host that was locked at the first
    try is in `answers`, with the first line the host's shell startup printed, if any."""
    recorder = recorder if recorder is not None else NullRecorder()
    holder = new_holder(inv, task, run_id or recorder.run_id)
    ttl = lock_ttl(inv)
    state = FleetLock(holder)
    local = LocalLock(state_dir(inv), inv.path)
    taken = local.acquire(holder, lambda existing: _judge(existing, "", ttl, "on this controller"))
    if taken:
        state.warnings.append(taken)
    beating: Heartbeat | None = None
    # A run that ends as planned waits for a slow host's release: a lock left is stale for others only after
    # lock_ttl. An interrupted one does not (`Timeouts.lock_release`).
    deadline = 60.0
    try:
        _lock_hosts(state, hosts, connector, ttl, workers, also)
        recorder.annotate(lock={"warnings": state.warnings, "not_locked": state.not_locked})
        beating = Heartbeat(lambda: _refresh_hosts(state, hosts, connector, workers), interval(ttl)).start()
        yield state  # the caller shows `state.warnings`: this layer prints nothing
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: the wind-down is short, and bounded
        deadline = TIMEOUTS.lock_release
        raise
    finally:
        if beating is not None:
            beating.stop()
        try:
            with held():
                _release_hosts(state, hosts, connector, workers, deadline)
        finally:
            local.release(holder)


def _lock_hosts(state: FleetLock, hosts: list[Host], connector, ttl: float, workers: int | None,
                also: Callable[[Host], str] | None = None) -> None:
    def lock(host: Host) -> remote.RemoteState:
        outcome = _lock_one(connector, host, state.holder, ttl, also(host) if also and not host.local else "")
        if outcome.status == "acquired":  # noted at once: a Ctrl-C before all hosts answer still releases it
            state.locked_hosts[host.name] = state.holder.to_json()
        if outcome.also:
            state.answers[host.name] = (outcome.also, connector.session(host).startup_noise)
        return outcome

    outcomes = run_each(hosts, lock, workers)
    refusals: list[tuple[str, LockHeld]] = []
    for host, outcome in outcomes.items():
        if isinstance(outcome, LockHeld):
            refusals.append((host.name, outcome))
        elif isinstance(outcome, HostUnreachable):
            state.not_locked[host.name] = f"unreachable: {outcome.message}"
            state.errors[host.name] = outcome
        elif isinstance(outcome, Exception):
            state.not_locked[host.name] = f"lock not taken: {outcome}"
            state.warnings.append(f"{host.name}: {state.not_locked[host.name]}")
            if isinstance(outcome, FleetError):
                state.errors[host.name] = outcome
        elif outcome.status == "acquired":
            if outcome.detail:
                state.warnings.append(outcome.detail)
        else:
            state.not_locked[host.name] = outcome.detail or outcome.status
            if outcome.status == "norepo":
                state.no_repo.add(host.name)
    if refusals:
        more = [name for name, _ in refusals[1:]]
        raise LockHeld(refusals[0][1].message + (f" (also locked on {', '.join(more)})" if more else ""),
                       hint=UNLOCK_HINT)


def _lock_one(connector, host: Host, holder: Holder, ttl: float, also: str = "") -> remote.RemoteState:
    """Take `.git/agentsync.lock` on one host; a stale one is taken over (twice at most, if it keeps moving)."""
    session = connector.session(host)
    where = f"on {host.name} ({host.repo}/.git)"
    state = remote.run_script(session, host, remote.acquire_script(host.repo, holder, also))
    for _ in range(2):
        if state.status != "held":
            break
        reason = _judge(state.holder, state.text, ttl, where, state.age_s)  # raises LockHeld while it may live
        state = remote.run_script(session, host, remote.takeover_script(host.repo, holder, state.text))
        if state.status == "acquired":
            return remote.RemoteState("acquired", detail=reason)
        if state.status == "changed":  # someone else took it over first: judge their lock instead
            state = remote.RemoteState("held", state.text, age_s=state.age_s)
    if state.status == "held":
        _judge(state.holder, state.text, ttl, where, state.age_s)
        raise LockHeld(f"the lock {where} keeps changing hands; not starting", hint=UNLOCK_HINT)
    if state.status == "norepo":
        return remote.RemoteState("norepo", detail=f"no git repo at {host.repo}: {state.detail}")
    if state.status != "acquired" and RRSYNC in state.detail:
        raise FleetError(f"could not take the lock {where}: the key ssh uses for {host.name} is restricted to "
                         f"rsync there (authorized_keys `command=\"rrsync …\"`): {state.detail}", host=host.name,
                         hint=f"agentsync needs a shell on {host.name} (its lock, the rsync check): give it a key "
                              "without the rrsync restriction (IdentityFile in ssh_config); nothing was done there")
    if state.status != "acquired":
        raise FleetError(f"could not take the lock {where}: {state.detail or state.status}", host=host.name)
    return state


def _refresh_hosts(state: FleetLock, hosts: list[Host], connector, workers: int | None) -> None:
    """One heartbeat (`heartbeat.py`): every host lock of ours gets a fresh mtime by its host's clock."""
    mine = [h for h in hosts if h.name in state.locked_hosts]
    run_each(mine, lambda h: remote.run_script(connector.session(h), h,
                                               remote.refresh_script(h.repo, state.locked_hosts[h.name])), workers)


def _release_hosts(state: FleetLock, hosts: list[Host], connector, workers: int | None, deadline: float) -> None:
    """Each host's lock, within `deadline` (and the host's command timeout); one a host lost or frozen meanwhile
    keeps is named (the next run from this controller takes it over as stale: its process is gone)."""
    mine = [h for h in hosts if h.name in state.locked_hosts]

    def release(host: Host) -> remote.RemoteState:
        session = connector.session(host)
        return remote.run_script(session, host, remote.release_script(host.repo, state.locked_hosts[host.name]),
                                 timeout=deadline)

    for host, outcome in run_each(mine, release, workers).items():
        if isinstance(outcome, Exception) or outcome.status not in ("removed", "absent"):
            why = outcome if isinstance(outcome, Exception) else (outcome.detail or f"the lock is {outcome.status}")
            state.release_warnings.append(
                f"could not release the fleet lock on {host.name} ({host.repo}/.git/{REMOTE_NAME}): {why}; the "
                "next run takes it over as stale, or `agentsync unlock` removes it")


@dataclass(frozen=True)
class UnlockRow:
    """What `unlock` did at one place: the controller or a host."""

    where: str
    status: str  # none | removed | kept | unreachable | error
    holder: str = ""
    reason: str = ""


def unlock(inv: Inventory, hosts: list[Host], connector, *, force: bool = False,
           workers: int | None = None) -> list[UnlockRow]:
    """Remove stale locks (any lock with `force`) on the controller and on `hosts`; live ones are kept."""
    ttl = lock_ttl(inv)
    local = LocalLock(state_dir(inv), inv.path)
    rows = [_unlock_local(local, ttl, force)]
    outcomes = run_each(hosts, lambda h: _unlock_host(connector, h, ttl, force), workers)
    for host, outcome in outcomes.items():
        if isinstance(outcome, HostUnreachable):
            rows.append(UnlockRow(host.name, "unreachable", reason=outcome.message))
        elif isinstance(outcome, Exception):
            rows.append(UnlockRow(host.name, "error", reason=str(outcome)))
        else:
            rows.append(outcome)
    return rows


def _verdict(holder: Holder | None, ttl: float, force: bool, age: float | None = None) -> tuple[bool, str]:
    reason = stale_reason(holder, now=time.time(), ttl=ttl, here=controller(), alive=process_running, age=age)
    if reason:
        return True, reason
    return force, "--force" if force else "its holder may still be running"


def _unlock_local(local: LocalLock, ttl: float, force: bool) -> UnlockRow:
    exists, holder, text = local.read()
    if not exists:
        return UnlockRow("controller", "none")
    shown = holder.describe() if holder else text[:80]
    remove, reason = _verdict(holder, ttl, force)
    if remove and local.remove_if(text):
        return UnlockRow("controller", "removed", shown, reason)
    return UnlockRow("controller", "kept", shown, reason if not remove else "it changed meanwhile")


def _unlock_host(connector, host: Host, ttl: float, force: bool) -> UnlockRow:
    session = connector.session(host)
    state = remote.run_script(session, host, remote.read_script(host.repo))
    if state.status in ("absent", "norepo"):
        return UnlockRow(host.name, "none", reason=state.detail)
    if state.status != "held":
        return UnlockRow(host.name, "error", reason=state.detail or state.status)
    shown = state.holder.describe() if state.holder else state.text[:80]
    remove, reason = _verdict(state.holder, ttl, force, state.age_s)
    if not remove:
        return UnlockRow(host.name, "kept", shown, reason)
    done = remote.run_script(session, host, remote.release_script(host.repo, state.text))
    if done.status == "removed":
        return UnlockRow(host.name, "removed", shown, reason)
    return UnlockRow(host.name, "kept", shown, "it changed meanwhile")
