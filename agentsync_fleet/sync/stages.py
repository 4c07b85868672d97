"""The git stages of sync-all: publish (one host at a time, in order) and converge (all at once).

A stage says which hosts it concerns, what it *would* run (for the plan) and
runs it. Each host's work is wrapped in `step()`, which times it, records its
commands and turns a `FleetError` into that host's status instead of
stopping the run.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from ..errors import CommandTimeout, FleetError, HostUnreachable, StepFailed
from ..gitfacts import CheckoutFacts
from ..gitops import Checkout, StepLog
from ..models import Host
from ..moveplan import MovePlan, plan_move
from ..moves import execute, read_move_facts
from ..records import PlannedStep, StepRecord
from ..steps import git as G
from .guard import guard_notes, guard_reader
from .model import RunContext


class Stage:
    """Base: a named stage; `parallel` says whether its hosts run at once or one by one in order."""

    name = "stage"
    parallel = True

    def hosts(self, ctx: RunContext) -> list[Host]:
        return [h for h in ctx.active_hosts() if h.git_access]

    def plan(self, ctx: RunContext, host: Host) -> list[PlannedStep]:
        return []

    def run(self, ctx: RunContext, host: Host) -> None:
        raise NotImplementedError


@contextmanager
def step(ctx: RunContext, host: Host, stage: str, action: str):
    """Record one step for a host; host-level trouble becomes the host's status, not an exception."""
    record = StepRecord(stage, action)
    result = ctx.result(host)
    result.steps.append(record)
    log = StepLog(record.commands, lambda text: ctx.listener(host.name, stage, text))
    ctx.listener(host.name, stage, action)
    start = time.monotonic()
    try:
        yield record, log
    except HostUnreachable as exc:
        record.status = "unreachable"
        result.fail("unreachable", f"{stage}: {exc.message}")
    except StepFailed as exc:
        record.status = "failed"
        result.fail("failed", f"{stage}: {exc.message}: `{exc.command}` exited {exc.exit_code}\n{exc.output_tail}")
    except (CommandTimeout, FleetError) as exc:
        record.status = "failed"
        result.fail("failed", f"{stage}: {exc.message}")
    except KeyboardInterrupt:  # Ctrl-C in a step that runs in the main thread: the journal must not say ok
        record.status = "interrupted"
        raise
    finally:
        record.duration_s = round(time.monotonic() - start, 3)
        if record.status == "ok" and not result.active:
            record.status = result.status
        ctx.listener(host.name, stage, f"{action}: {record.status}")
        ctx.observer.step_done(host.name, record, result)  # journaled now, so a killed run keeps it


def checkout(ctx: RunContext, host: Host, log: StepLog, path: str | None = None) -> Checkout:
    return Checkout(ctx.connector.session(host), path or host.repo, host.command_timeout, log, host.name)


def origin_ref(host: Host) -> str:
    return f"refs/remotes/{host.remote}/{host.branch}"


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
        result.fail("skipped", "interrupted before this host's move started; nothing was changed")
        return False
    outcome = execute(co, plan, ctx.run_id, git_dir)
    record.data["guard"] = guard_notes(outcome.plan or plan)
    record.data.update(head_before=plan.head, head_after=outcome.head)
    result.stash_used |= outcome.stash_used
    for note in record.data["guard"]:
        if note["allowed"]:
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
            "stash_paths": list(plan.stash_paths), "incoming": [vars(c) for c in plan.incoming],
            "diffstat": plan.diffstat, "files": list(plan.files), "reason": plan.reason}


def move_commands(host: Host, plan: MovePlan | None, target: str = "<new HEAD>", replay: bool = True) -> tuple[str, ...]:
    """The commands `moves.execute` runs for `plan` (None: a move decided only at run time, to `target`).

    Bookkeeping is summarised: the scratch worktree around a rebase, the intent record's text."""
    if plan is not None and not plan.moves:
        return (f"# no move: {plan.predicted}",)
    git_dir, record = "<.git>", "<intent record>"
    head = (plan.head if plan else None) or "<HEAD>"
    new = (plan.new if plan else None) or target
    commands: list[str] = []
    if (plan is None and replay) or (plan is not None and plan.action in ("rebase", "merge")):
        scratch = "<.git>/agentsync-scratch-<id>"
        commands += [G.scratch_add(host.repo, scratch, head), G.rebase(scratch, origin_ref(host)),
                     G.scratch_remove(host.repo, scratch)]
    paths = plan.stash_paths if plan else ()
    if plan is None:
        commands.append("# staged paths and edits the update overlaps are stashed (those paths only) around it:")
        paths = ("<paths>",)
    if not paths:
        return (*commands, G.with_intent(git_dir, record, G.reset_keep(host.repo, new, expect=head), True))
    return (*commands, G.with_intent(git_dir, record, G.stash_push_paths(host.repo, "agentsync <run>: autostash",
                                                                         paths)),
            G.reset_keep(host.repo, new, expect=head), G.clear_intent(git_dir, G.stash_pop_ours(host.repo, "<stash>")))


class PublishStage(Stage):
    """Hosts with local commits rebase onto origin and push, one at a time in inventory order."""

    name = "publish"
    parallel = False

    def hosts(self, ctx: RunContext) -> list[Host]:
        """Only hosts that had local commits after the preflight fetch; the others have nothing to publish."""
        return [h for h in super().hosts(ctx) if ctx.facts[h.name].repo.ahead]

    def plan(self, ctx: RunContext, host: Host) -> list[PlannedStep]:
        repo = ctx.facts[host.name].repo
        if not repo.ahead:
            return []
        if not host.push:
            return [PlannedStep(self.name, host.name, "report local commits", (),
                                f"{repo.ahead} local commit(s) stay here (push: false)")]
        commands = [G.fetch(host.repo, host.remote, host.branch)]
        plan = ctx.move_plans.get(host.name)
        if plan is not None and plan.moves:
            commands += move_commands(host, plan)
        elif ctx.facts.get("_origin_moved") or _publishes_before(ctx, host):
            commands += ["# if origin has moved on by then, own commits are replayed onto it first:",
                         *move_commands(host, None)]
        commands.append(G.push(host.repo, host.remote, "HEAD", host.branch))
        return [PlannedStep(self.name, host.name, f"publish {repo.ahead} commit(s)", tuple(commands))]

    def run(self, ctx: RunContext, host: Host) -> None:
        with step(ctx, host, self.name, "publish local commits") as (record, log):
            co = checkout(ctx, host, log)
            for attempt in (1, 2):  # a second try if someone pushed between our fetch and our push
                if self._publish_once(ctx, host, co, record) != "retry" or attempt == 2:
                    return
            ctx.result(host).fail("failed", "push rejected twice: origin keeps moving; run sync-all again")

    def _publish_once(self, ctx: RunContext, host: Host, co: Checkout, record: StepRecord) -> str:
        result = ctx.result(host)
        facts = fetched_facts(co, host, result)
        if facts is None:
            return "done"
        head, onto = facts.head, facts.target
        result.origin_head = onto
        if not facts.ahead:
            record.detail = "nothing to publish"
            return "done"
        if not host.push:
            result.unpushed = facts.ahead
            record.detail = f"{facts.ahead} local commit(s) kept, not pushed (push: false)"
            return "done"
        new = head
        if not facts.target_in_head:  # origin moved on: replay our commits on top of it first
            plan = apply_move(ctx, host, co, facts, record)
            if plan is None:
                return "done"
            new = plan.new or head
            result.pulled += facts.behind
        result.head_after = new
        pushed = co.try_run(G.push(host.repo, host.remote, new, host.branch), f"push {facts.ahead} commit(s)")
        if pushed.ok:
            result.pushed += facts.ahead
            result.origin_head = new
            record.detail = f"pushed {facts.ahead} commit(s)"
            return "done"
        if "[rejected]" in pushed.stdout or "non-fast-forward" in pushed.stderr + pushed.stdout:
            return "retry"
        raise StepFailed("push failed", command=G.push(host.repo, host.remote, new, host.branch),
                         exit_code=pushed.exit_code, output_tail=pushed.tail(), host=host.name)


def _publishes_before(ctx: RunContext, host: Host) -> bool:
    """Does another host publish earlier in this run (so origin moves before this host's turn)?"""
    for other in ctx.active_hosts():
        if other.name == host.name:
            return False
        if other.push and other.git_access and ctx.facts[other.name].repo.ahead:
            return True
    return False


def fetched_facts(co: Checkout, host: Host, result) -> CheckoutFacts | None:
    """Fetch and read the checkout's state in one round trip; None (host marked) if that failed."""
    facts = co.facts(host.remote, host.branch, fetch=True)
    if not facts.present:
        result.fail("failed", f"repo {host.repo} does not exist")
    elif facts.fetch_rc:
        result.fail("failed", f"git fetch {host.remote} {host.branch} failed: {facts.fetch_error or 'no output'}")
    elif facts.target is None:
        result.fail("failed", f"{host.remote}/{host.branch} does not exist (is the branch pushed?)")
    elif facts.head is None:
        result.fail("failed", "the checkout has no commit yet")
    elif facts.branch != f"refs/heads/{host.branch}":  # switched since preflight: not ours to move or publish
        now = facts.branch.removeprefix("refs/heads/") or "(detached)"
        result.fail("skipped", f"checked out on '{now}' now, inventory expects '{host.branch}'; left alone")
    else:
        return facts
    return None


class ConvergeStage(Stage):
    """Every host fetches and moves its branch onto origin's, in parallel."""

    name = "converge"

    def plan(self, ctx: RunContext, host: Host) -> list[PlannedStep]:
        publishers = [h for h in ctx.active_hosts() if h.push and ctx.facts[h.name].repo.ahead]
        others_publish = any(h.name != host.name for h in publishers)
        fetch = G.fetch(host.repo, host.remote, host.branch)
        plan = ctx.move_plans.get(host.name)
        if plan is not None and plan.outcome != "ok":
            return [PlannedStep(self.name, host.name, "no move", (fetch,), plan.predicted)]
        if plan is not None and plan.moves:
            return [PlannedStep(self.name, host.name, f"{plan.action} to origin", (fetch, *move_commands(host, plan)),
                                plan.predicted)]
        if others_publish or ctx.facts.get("_origin_moved"):
            return [PlannedStep(self.name, host.name, "move to what the others publish", (fetch, *move_commands(
                host, None)), "origin moves during this run; decided then, by the same rules")]
        return [PlannedStep(self.name, host.name, "already on origin", (fetch,))]

    def run(self, ctx: RunContext, host: Host) -> None:
        with step(ctx, host, self.name, "converge on origin") as (record, log):
            co = checkout(ctx, host, log)
            result = ctx.result(host)
            facts = fetched_facts(co, host, result)
            if facts is None:
                return
            head, target = facts.head, facts.target
            result.origin_head = target
            plan = apply_move(ctx, host, co, facts, record)
            if plan is None:
                return
            if plan.action == "nothing":
                result.unpushed, result.head_after = facts.ahead, head
                record.detail = "up to date" if not facts.ahead else f"{facts.ahead} local commit(s) kept"
                return
            new = plan.new or head
            result.pulled += facts.behind
            result.unpushed = co.count(f"{target}..{new}") if new != target else 0
            result.head_after = new
            record.detail = f"pulled {facts.behind} commit(s)"
