"""`recover`: heal what cut-off moves left on the selected hosts, on purpose, and list agentsync stashes.

The same healing sync-all, pull and push do first (`heal.py`), under the
fleet lock. Every agentsync stash still on a host's list afterwards is shown
with the files it holds, so nothing of anyone's is hidden in one.
"""

from __future__ import annotations

from . import FleetArgs, fleet_locked


def run(args: FleetArgs) -> int:
    from ..pool import run_each
    from ..remote import Connector

    inv = args.load()
    hosts = args.selected(inv)
    connector = Connector(inv)
    workers = args.worker_limit(inv)
    try:
        with fleet_locked(inv, hosts, connector, task="recover", recorder=args.recorder, workers=workers) as lock:
            outcomes = run_each(hosts, lambda h: recover_host(connector, h, lock.refusal(h.name)), workers)
    finally:
        connector.close_all()
    rows = [_row(host.name, outcome) for host, outcome in outcomes.items()]
    _show(args, str(inv.path), rows)
    return 0 if all(r["status"] == "ok" and not r["stashes"] for r in rows) else 1


def recover_host(connector, host, refusal=None):
    """Heal one host; `refusal` (its lock was not taken): another run may be moving it, so nothing is done."""
    from ..gitops import Checkout, StepLog
    from ..heal import agentsync_stashes, heal

    if refusal is not None:
        raise refusal
    co = Checkout(connector.session(host), host.repo, host.command_timeout, StepLog(), host.name)
    healed = heal(co, co.facts(host.remote, host.branch, fetch=False))
    return healed, agentsync_stashes(co)


def _row(name: str, outcome) -> dict:
    if isinstance(outcome, Exception):
        return {"host": name, "status": "failed", "actions": [], "problem": str(outcome), "stashes": []}
    healed, stashes = outcome
    return {"host": name, "status": "ok" if healed.ok else "failed", "actions": list(healed.actions),
            "problem": healed.problem, "stashes": list(stashes)}


def _show(args: FleetArgs, inventory: str, rows: list[dict]) -> None:
    if args.json:
        from ..output import emit_json

        emit_json({"inventory": inventory, "hosts": rows})
        return
    from ..output.recover import render_recover

    render_recover(rows)
