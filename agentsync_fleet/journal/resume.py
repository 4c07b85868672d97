"""`sync-all --resume` asks the journal one question: which hosts did not end ok last time?

The answer is `query.resume_across` over this inventory's earlier sync-all
runs, newest first, read from the store only as far as needed.
"""

from __future__ import annotations

import os

from .query import ResumePlan, resume_across, was_sync
from .store import Journal


def resume_plan(state_dir: str, inventory_path: str, hosts: list[str],
                current_run_id: str | None) -> tuple[ResumePlan | None, str]:
    """The plan for resuming `hosts` (None: no earlier sync-all of that inventory), and the journal's path."""
    store = Journal.in_dir(state_dir)

    def syncs():  # newest first, read only as far as needed
        current = current_run_id
        for run in store.runs(task="sync-all", inventory=os.path.abspath(inventory_path)):
            if run["id"] == current:
                continue
            rows, steps = store.hosts_of([run["id"]]), store.steps_of([run["id"]])
            if was_sync(run, rows, steps):
                yield run, rows, steps

    try:
        store.reconcile()
        plan = resume_across(syncs(), hosts)
    finally:
        store.close()
    return plan, str(store.path)
