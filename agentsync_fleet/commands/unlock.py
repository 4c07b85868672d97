"""`unlock`: remove stale fleet locks (any lock with --force) on the controller and the selected hosts."""

from __future__ import annotations

from . import FleetArgs


def run(args: FleetArgs, force: bool = False) -> int:
    from ..locks import unlock
    from ..remote import Connector

    inv = args.load()
    hosts = args.selected(inv)
    connector = Connector(inv)
    try:
        rows = unlock(inv, hosts, connector, force=force, workers=args.worker_limit(inv))
    finally:
        connector.close_all()
    if args.json:
        from ..output import emit_json

        emit_json({"inventory": str(inv.path), "force": force, "locks": rows})
    else:
        from ..output.locks import render_unlock

        render_unlock(rows, force)
    return 1 if any(r.status in ("kept", "unreachable", "error") for r in rows) else 0
