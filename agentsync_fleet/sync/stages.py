"""The git stages of sync-all: publish (one host at a time, in order) and converge (all at once).

Each is an `engine.stage.Stage`; a host's work is wrapped in `step()`, and
the checkout moves through `engine.moves.apply_move`: one decision (`moveplan.plan_move`),
which the dry run prints and the run carries out.
"""

from __future__ import annotations

from ..engine.context import RunContext
from ..engine.moves import apply_move, checkout
from ..engine.stage import Stage, step
from ..errors import StepFailed
from ..gitfacts import CheckoutFacts
from ..gitops import Checkout
from ..models import Host
from ..moves import move_commands
from ..records import PlannedStep, StepRecord
from ..steps import git as G


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
        elif ctx.origin_moved or _publishes_before(ctx, host):
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
        if others_publish or ctx.origin_moved:
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
