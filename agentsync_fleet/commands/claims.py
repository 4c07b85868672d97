"""`claim`, `checkin`, `release`, `claims`: who is working on which area, kept on a ref in origin.

The git plumbing runs on one host (`--host`, default the controller's own
checkout), through its session; any host that reaches origin sees the same
claims. Who: `--who`, else `user@host` of that host.
"""

from __future__ import annotations

import time

from ..errors import UsageError
from . import FleetArgs


def _target(inv, name: str | None):
    if name:
        if name not in inv.hosts:
            raise UsageError(f"--host names {name!r}, not in {inv.path}", hint=f"hosts: {', '.join(inv.order)}")
        host = inv.hosts[name]
    else:
        local = [h for h in inv.hosts.values() if h.local and h.git_access]
        others = [inv.hosts[n] for n in inv.order if inv.hosts[n].git_access]
        if not (local or others):
            raise UsageError("no host with git_access to read claims from origin")
        host = (local or others)[0]
    if not host.git_access:
        raise UsageError(f"host {host.name!r} has git_access: false; it cannot reach origin's claims",
                         hint="pick another host with --host")
    return host


def _update(args: FleetArgs, host_name: str | None, who: str | None, operation) -> int:
    from ..claims import store
    from ..claims.model import listing
    from ..remote import Connector
    from ..settings import claim_ttl

    inv = args.load()
    host = _target(inv, host_name)

    def me(snap) -> str:
        return who or f"{snap.user}@{host.name}"

    connector = Connector(inv)
    try:
        session = connector.session(host)
        change = store.update(session, host, lambda snap: operation(snap, me(snap), host, claim_ttl(inv)), me)
    finally:
        connector.close_all()
    rows = listing(change.claims or {}, now=time.time(), ttl=claim_ttl(inv))
    _show(args, {"host": host.name, "message": change.message, "warning": change.warning, "claims": rows})
    return 0


def claim(args: FleetArgs, area: str, note: str = "", host: str | None = None, who: str | None = None) -> int:
    from ..claims import model

    area = model.normalize_area(area)

    def operation(snap, me, target, ttl):
        now = time.time()
        new = model.Claim(area, me, target.name, snap.email, note or "", now, now)
        return model.claim(snap.claims, new, now=now, ttl=ttl), f"agentsync: claim '{area}' ({me})"

    return _update(args, host, who, operation)


def checkin(args: FleetArgs, area: str, host: str | None = None, who: str | None = None) -> int:
    from ..claims import model

    area = model.normalize_area(area)
    return _update(args, host, who, lambda snap, me, target, ttl: (
        model.checkin(snap.claims, area, me, now=time.time()), f"agentsync: check in '{area}' ({me})"))


def release(args: FleetArgs, area: str, host: str | None = None, who: str | None = None, force: bool = False) -> int:
    from ..claims import model

    area = model.normalize_area(area)
    return _update(args, host, who, lambda snap, me, target, ttl: (
        model.release(snap.claims, area, me, force=force), f"agentsync: release '{area}' ({me})"))


def listing(args: FleetArgs, host: str | None = None) -> int:
    from ..claims import store
    from ..claims.model import listing as rows_of
    from ..remote import Connector
    from ..settings import claim_ttl

    inv = args.load()
    target = _target(inv, host)
    connector = Connector(inv)
    try:
        snap = store.read(connector.session(target), target)
    finally:
        connector.close_all()
    rows = rows_of(snap.claims, now=time.time(), ttl=claim_ttl(inv))
    _show(args, {"host": target.name, "commit": snap.commit, "claims": rows}, listing=True)
    return 0


def _show(args: FleetArgs, data: dict, listing: bool = False) -> None:
    if args.json:
        from ..output import emit_json

        emit_json(data)
        return
    from ..output.claims import render_change, render_claims

    if not listing:
        render_change(data)
    render_claims(data["claims"], data["host"])
