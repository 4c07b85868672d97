"""`patch-relay`: carry a host's new commits to another host as patches (for hosts without git access)."""

from __future__ import annotations

import contextlib
import difflib

from ..errors import UsageError
from ..secrets import secret_patterns
from . import FleetArgs, fleet_locked
from .journaling import journal_relay


def _host(inv, name: str | None, flag: str):
    if not name:
        raise UsageError(f"{flag} needs a host name", hint=f"hosts in {inv.path}: {', '.join(inv.order)}")
    if name not in inv.hosts:
        close = difflib.get_close_matches(name, list(inv.hosts), n=1)
        raise UsageError(f"{flag} names {name!r}, which is not a host in {inv.path}",
                         hint=f"did you mean {close[0]!r}?" if close else f"hosts there: {', '.join(inv.order)}")
    return inv.hosts[name]


def pick_hosts(inv, source: str | None, target: str | None):
    from ..relay.runner import relay_hub

    src = _host(inv, source, "--from")
    if target:
        dst = _host(inv, target, "--to")
    else:
        dst = relay_hub(inv)
        if dst is None:
            raise UsageError("no --to given and the inventory has no `local: true` host with git access to relay to",
                             hint="name the target: --to HOST")
    if dst.name == src.name:
        raise UsageError(f"--from and --to are both {src.name!r}; a relay needs two different hosts")
    return src, dst


def run(args: FleetArgs, source: str | None, target: str | None, *, push: bool = False, dry_run: bool = False,
        allow_running: bool = False) -> int:
    from ..identity import new_run_id
    from ..relay.core import RelayOptions
    from ..relay.runner import run_relay
    from ..remote import Connector

    inv = args.load()
    src, dst = pick_hosts(inv, source, target)
    if push and not dst.git_access:
        raise UsageError(f"--push: {dst.name} has git_access: false, it cannot push to {dst.remote}",
                         hint="relay to a host that can reach origin (the default is the local host)")
    connector = Connector(inv)
    try:
        with _lock(args, dry_run, inv, [src, dst], connector) as lock:
            result = run_relay(connector, src, dst, RelayOptions(new_run_id(), dry_run, push, allow_running,
                                                                     secret_patterns(inv.settings)),
                               lock.refusal if lock is not None else None)
    finally:
        connector.close_all()
    journal_relay(args.recorder, result, dry_run)
    if args.json:
        from ..output import emit_json

        emit_json(result, {"ok": result.ok, "dry_run": dry_run})
    else:
        from ..output.relay import render_relay

        render_relay(result, dry_run)
    return 0 if result.ok else 1


def _lock(args: FleetArgs, dry_run: bool, inv, hosts, connector):
    """A relay moves the target's checkout (and may push): it holds the fleet lock; a dry run only looks."""
    if dry_run:
        return contextlib.nullcontext()
    return fleet_locked(inv, hosts, connector, task="patch-relay", recorder=args.recorder)


