"""`history`, `history.show`, `history.stats`, `history.export`: reading the run journal.

Read-only and local: no host is contacted and no lock is taken. The journal
is the one in the inventory's state dir (when an inventory is given or found),
else in $AGENTSYNC_STATE_DIR or ~/.local/state/agentsync.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import UsageError
from ..settings import state_dir
from . import FleetArgs

STATUSES = ("running", "ok", "failed", "error", "refused", "interrupted")


def journal_path(args: FleetArgs) -> Path:
    from .. import inventory
    from ..journal.store import FILE_NAME

    inv = None
    if args.inventory or inventory.resolve_path(None).is_file():
        inv = args.load()
    return Path(state_dir(inv)) / FILE_NAME


@contextlib.contextmanager
def opened(args: FleetArgs) -> Iterator:
    """The journal, reconciled (dead `running` runs become `interrupted`); None if nothing was recorded yet."""
    from ..journal.store import Journal

    path = journal_path(args)
    if not path.is_file():
        yield None, path
        return
    store = Journal(path)
    try:
        store.reconcile()
        yield store, path
    finally:
        store.close()


def whole_number(value: str | int | None, default: int, flag: str) -> int:
    """A count typed on the command line (Invoke hands it over as text), or a clear error."""
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise UsageError(f"{flag} expects a whole number of at least 1, got {value!r}")
    return number


def listing(args: FleetArgs, limit: str | int | None = None, host: str | None = None, status: str | None = None,
            task: str | None = None) -> int:
    from ..journal.query import summaries

    if status and status not in STATUSES:
        raise UsageError(f"--status {status!r} is not a run status", hint=f"one of: {', '.join(STATUSES)}")
    count = whole_number(limit, 20, "--limit")
    with opened(args) as (store, path):
        rows = []
        if store is not None:
            runs = store.runs(limit=count, host=host, status=status, task=task)
            ids = [r["id"] for r in runs]
            rows = summaries(runs, store.hosts_of(ids), store.steps_of(ids))
    if args.json:
        from ..output import emit_json

        emit_json({"journal": str(path), "runs": rows})
    else:
        from ..output.history import render_runs

        render_runs(rows, str(path))
    return 0


def show(args: FleetArgs, ref: str) -> int:
    from ..journal.query import duration, host_statuses

    with opened(args) as (store, path):
        run = store.find(ref) if store is not None else None
        if run is None:
            raise UsageError(f"no single run matches {ref!r} in {path}",
                             hint="`agentsync history` lists run ids; a unique prefix or `last` works too")
        detail = store.detail(run)
    detail["duration_s"] = duration(detail)
    detail["host_status"] = host_statuses(detail, detail["hosts"], detail["steps"])  # `not run` included
    if args.json:
        from ..output import emit_json

        emit_json(detail)
    else:
        from ..output.history import render_run

        render_run(detail)
    return 0


def stats(args: FleetArgs, task: str | None = None) -> int:
    from ..journal.query import stats as aggregate

    with opened(args) as (store, path):
        runs = store.runs(task=task) if store is not None else []
        ids = [r["id"] for r in runs]
        data = aggregate(runs, store.hosts_of(ids) if store else [], store.steps_of(ids) if store else [])
    if args.json:
        from ..output import emit_json

        emit_json({"journal": str(path), **data})
    else:
        from ..output.history import render_stats

        render_stats(data, str(path))
    return 0


def export(args: FleetArgs, file: str) -> int:
    from ..journal.query import export_document

    with opened(args) as (store, path):
        runs = list(reversed(store.runs())) if store is not None else []
        details = [store.detail(r) for r in runs]
    text = json.dumps(export_document(details, str(path), time.time()), indent=2, default=str) + "\n"
    if file == "-":
        import sys

        sys.stdout.write(text)
        return 0
    _write_atomically(Path(file).expanduser(), text)
    from ..output.history import render_export

    render_export(file, len(details))
    return 0


def _write_atomically(target: Path, text: str) -> None:
    """A reader never sees half an export: write beside the target, then rename over it."""
    if target.is_dir():
        raise UsageError(f"{target} is a directory", hint="give a file name, e.g. history.json")
    if not target.parent.is_dir():
        raise UsageError(f"directory {target.parent} does not exist", hint="create it first or pick another path")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
