"""The standalone transfer tasks, `push-code` and `results`: choose hosts, run their routes, report.

Hosts run in parallel (bounded pool); one host's routes run one after
another, so two transfers never write into the same tree at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import FleetError, HostUnreachable, UsageError
from ..identity import new_run_id
from ..models import Host, Inventory
from ..pool import run_each
from . import plan as P
from .model import TransferEvent, TransferReport, TransferResult
from .run import Listener, Runner

RoutesFor = Callable[[Inventory, Host, bool], list[P.Route]]  # (inventory, host, named explicitly) → routes
HostDone = Callable[[Host, list[TransferResult]], None]  # told as each host's transfers end (the run journal)
Refusal = Callable[[str], FleetError | None]  # host name → why it must not be touched (`locks.FleetLock.refusal`)


def code_routes(inv: Inventory, host: Host, explicit: bool) -> list[P.Route]:
    """push-code: the working tree when the host was named (or says push_code: true), plus its push entries."""
    return P.push_routes(inv, host, code=not host.local and (explicit or host.push_code))


def result_routes(inv: Inventory, host: Host, explicit: bool) -> list[P.Route]:
    return P.pull_routes(inv, host)


def choose_hosts(inv: Inventory, names: str | None, task: str, routes_for: RoutesFor) -> list[Host]:
    """--host names (comma-separated), checked; without it, every host that has something to transfer."""
    wanted = inv.host_names(names, "--host")
    if not wanted:
        hosts = [h for h in inv.select(None) if routes_for(inv, h, False)]
        if not hosts:
            raise UsageError(f"no host in {inv.path} has anything for {task}", hint=_nothing_hint(task))
        return hosts
    hosts = inv.select(wanted)
    for host in hosts:
        if routes_for(inv, host, True):
            continue
        if task == "push-code":
            raise UsageError(f"push-code --host {host.name}: {host.name} is the laptop itself, where the code "
                             "comes from", hint="name the host to push to, e.g. --host gpu")
        raise UsageError(f"{host.name} has no results: or rsync pull entries in {inv.path}", hint=_nothing_hint(task))
    return hosts


def _nothing_hint(task: str) -> str:
    if task == "push-code":
        return "name a host with --host, or set push_code: true / add rsync: push entries to a host"
    return "add results: [{remote: results/, local: results/gpu/}] to a host (see inventory/example.yaml)"


def run_task(inv: Inventory, hosts: list[Host], task: str, routes_for: RoutesFor, *, state_dir: str,
             dry_run: bool, workers: int | None, explicit: bool, listener: Listener,
             allow_running: bool = False, on_host_done: HostDone | None = None, connector=None,
             run_id: str | None = None, refusal: Refusal | None = None, tools=None) -> TransferReport:
    """Every route of `hosts`, hosts in parallel; `tools`: the rsync already found at each end (else asked)."""
    start = time.monotonic()
    run_id = run_id or new_run_id()  # the history's id, so backups/<run>/ and `history.show <run>` name the same run
    opts = P.LegOptions.for_inventory(inv, run_id, state_dir, dry_run)
    names = ",".join(h.name for h in hosts) if explicit else ""
    rerun = f"`agentsync {task}{' --host ' + names if names else ''}`"
    runner = Runner(inv, opts, listener, rerun=rerun, allow_running=allow_running, connector=connector, tools=tools)

    def one_host(host: Host) -> list[TransferResult]:
        results = [refused(route, refusal, dry_run, listener) or runner.run(route)
                   for route in routes_for(inv, host, explicit)]
        if on_host_done is not None:
            on_host_done(host, results)
        return results

    outcomes = run_each(hosts, one_host, workers)
    transfers: list[TransferResult] = []
    problems: list[str] = []
    for host, outcome in outcomes.items():
        if isinstance(outcome, Exception):
            problems.append(f"{host.name}: {outcome}")
        else:
            transfers += outcome
    return TransferReport(task, run_id, dry_run, tuple(transfers), round(time.monotonic() - start, 3),
                          tuple(problems))


def refused(route: P.Route, refusal: Refusal | None, dry_run: bool, listener: Listener) -> TransferResult | None:
    """A route with an end on a host whose fleet lock was not taken does not run; its result says why."""
    errors = [refusal(place.host.name) for place in (route.src, route.dest)] if refusal else []
    error = next((e for e in errors if e is not None), None)
    if error is None:
        return None
    result = TransferResult(route.owner.name, route.entry.name, route.entry.kind, route.src.display,
                            route.dest.display, route.mode, dry_run)
    result.fail("unreachable" if isinstance(error, HostUnreachable) else "skipped", error.message, error.hint or "")
    listener(TransferEvent(result.key, "start", f"{route.src.display} → {route.dest.display}"))
    listener(TransferEvent(result.key, "end", result=result))
    return result
