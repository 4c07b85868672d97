"""The checkout a stage works in, and moving it to a new commit with the guards on.

Shared by every stage that moves a checkout (publish, converge, relay-out):
`gitops.move` does the moving, this records how it went on the host.
"""

from __future__ import annotations

from ..gitfacts import CheckoutFacts
from ..gitops import Checkout, StepLog, move
from ..guard import make_guard
from ..models import Host
from ..records import StepRecord
from .context import RunContext


def checkout(ctx: RunContext, host: Host, log: StepLog, path: str | None = None) -> Checkout:
    return Checkout(ctx.connector.session(host), path or host.repo, host.command_timeout, log, host.name)


def apply_move(ctx: RunContext, host: Host, co: Checkout, head: str, new: str, record: StepRecord,
               known: CheckoutFacts | None = None) -> bool:
    """Move the main checkout with guards on; on refusal/conflict mark the host and return False."""
    refusals: list[dict] = []
    guard = make_guard(co.session, host, ctx.options.allow_running, refusals)
    outcome = move(co, head, new, guard, ctx.run_id, known)
    record.data["guard"] = refusals
    record.data.update(head_before=head, head_after=outcome.head)
    result = ctx.result(host)
    result.stash_used |= outcome.stash_used
    for refusal in refusals:
        if refusal["allowed"] and "unknown" in refusal:
            result.warnings.append(f"--allow-running: changed {', '.join(refusal['files'])} though processes "
                                   f"cannot be seen ({refusal['unknown']})")
        elif refusal["allowed"]:
            result.warnings.append(f"--allow-running: changed {', '.join(refusal['files'])} while pid "
                                   f"{refusal['pid']} ({refusal['command']}) runs")
    if outcome.status != "ok":
        record.status = outcome.status
        result.fail(outcome.status, outcome.message, outcome.files)
        return False
    return True
