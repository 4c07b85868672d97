"""`disconnect`: close the ssh master connections agentsync keeps open between runs (ControlPersist)."""

from __future__ import annotations

from . import FleetArgs


def run(args: FleetArgs) -> int:
    from ..remote import control_dir, disconnect_all
    from ..settings import state_dir

    inv = args.load()
    directory = control_dir(state_dir(inv))
    closed = disconnect_all(directory)
    if args.json:
        from ..output import emit_json

        emit_json({"inventory": str(inv.path), "closed": len(closed), "control_dir": str(directory)})
    else:
        from ..output import console

        console().print(f"closed {len(closed)} ssh master connection(s) ({directory})")
    return 0
