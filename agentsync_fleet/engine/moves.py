"""The checkout a stage works in, and moving it to a new commit: decide, then carry the decision out.

Shared by every stage that moves a checkout (publish, converge, relay-out):
`read_plan` reads the facts and decides with `moveplan.plan_move` (the same
decision `plan`/`--dry-run` prints), `carry_out` executes it with
`moves.execute` and records how it went on the host.
"""

from __future__ import annotations

from ..gitfacts import CheckoutFacts
from ..gitops import Checkout
from ..guard import guard_notes, guard_reader
from ..models import Host
from ..moveplan import MovePlan, plan_move
from ..moves import execute, read_move_facts
from ..records import StepLog, StepRecord
from .context import RunContext


def checkout(ctx: RunContext, host: Host, log: StepLog, path: str | None = None) -> Checkout:
    return Checkout(ctx.connector.session(host), path or host.repo, host.command_timeout, log, host.name)


def read_plan(ctx: RunContext, host: Host, co: Checkout, facts: CheckoutFacts) -> MovePlan:
    """The move this host would make now (rehearsals included): the one decision both the plan and the run use."""
    mf = read_move_facts(co, facts, host.branch, guard=guard_reader(co.session, host),
                         allow_running=ctx.options.allow_running)
    return plan_move(mf)


def carry_out(ctx: RunContext, host: Host, co: Checkout, plan: MovePlan, record: StepRecord, git_dir: str) -> bool:
    """Execute a plan that moves; on refusal/conflict/failure mark the host and return False."""
    result = ctx.result(host)
    if ctx.stopping.is_set():  # interrupted: a move not started yet is not started
        record.status = "interrupted"
        result.fail("skipped", "not run: interrupted before this host's move started; nothing was changed")
        return False
    outcome = execute(co, plan, ctx.run_id, git_dir)
    record.data["guard"] = guard_notes(outcome.plan or plan)
    record.data.update(head_before=plan.head, head_after=outcome.head)
    result.stash_used |= outcome.stash_used
    for note in record.data["guard"]:
        if note["allowed"] and "unknown" in note:
            result.warnings.append(f"--allow-running: changed {', '.join(note['files'])} though processes "
                                   f"cannot be seen ({note['unknown']})")
        elif note["allowed"]:
            result.warnings.append(f"--allow-running: changed {', '.join(note['files'])} while pid "
                                   f"{note['pid']} ({note['command']}) runs")
    if outcome.status != "ok":
        record.status = outcome.status
        result.fail(outcome.status, outcome.message, outcome.files)
        return False
    return True


def apply_move(ctx: RunContext, host: Host, co: Checkout, facts: CheckoutFacts, record: StepRecord) -> MovePlan | None:
    """Decide and carry out the move of the main checkout onto `facts.target`; the plan if it ended ok."""
    plan = read_plan(ctx, host, co, facts)
    record.data["plan"] = plan_summary(plan)
    if plan.action == "nothing":
        return plan
    if not plan.moves:
        record.status = plan.outcome
        ctx.result(host).fail(plan.outcome, plan.reason, plan.files)
        return None
    return plan if carry_out(ctx, host, co, plan, record, facts.git_dir) else None


def plan_summary(plan: MovePlan) -> dict:
    """A plan as the journal and `--json` carry it."""
    return {"action": plan.action, "outcome": plan.outcome, "predicted": plan.predicted, "new": plan.new,
            "stash_paths": list(plan.stash_paths), "replaced": list(plan.replaced), "incoming": [vars(c) for c in plan.incoming],
            "diffstat": plan.diffstat, "files": list(plan.files), "reason": plan.reason}
