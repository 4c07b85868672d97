"""sync-all for hosts with `git_access: false`: relayed through the local host, both ways.

relay-in (first, one host at a time): a relayed host's new commits come to
the local host (the hub) as patches (`relay.core`), so the publish stage
pushes them with the hub's own. relay-out (after converge): the relayed host
receives the converged branch as a git bundle over SFTP (`relay.bundle`) and
moves onto it like every converging host (scratch rebase drops the originals
of commits it relayed, then stash / reset --keep / pop), so it ends on the
same HEAD as everyone else.
"""

from __future__ import annotations

import dataclasses
import time

from ..engine.context import RunContext
from ..engine.moves import apply_move, checkout
from ..engine.stage import Stage, step
from ..errors import FleetError
from ..models import Host, to_jsonable
from ..moves import move_commands
from ..records import PlannedStep, StepLog, StepRecord
from ..secrets import secret_patterns
from ..steps import git as G
from ..steps import relay as R
from ..steps.git import origin_ref
from .bundle import deliver_branch
from .core import End, RelayOptions, relay
from .runner import relay_hub as default_hub

HOST_STATUS = {"refused": "failed", "validation-failed": "failed", "conflict": "conflict", "guarded": "guarded",
               "failed": "failed", "skipped": "skipped", "unreachable": "failed"}


def relay_hub(ctx: RunContext, host: Host) -> tuple[Host | None, str]:
    """The local host this host is relayed through, or why there is none in this run."""
    hub = default_hub(ctx.inventory)
    if hub is None:
        return None, "git_access: false: relaying needs a `local: true` host with git access; the inventory has none"
    if hub not in ctx.hosts:
        return None, f"git_access: false: relayed through {hub.name}, which is not in this run (add it to --hosts)"
    if not ctx.result(hub).active:
        return None, f"git_access: false: relayed through {hub.name}, which is {ctx.result(hub).status}; left alone"
    if hub.branch != host.branch:
        return None, (f"git_access: false: {host.name} keeps '{host.branch}' but {hub.name} keeps '{hub.branch}'; "
                      "a relay needs the same branch on both")
    return hub, ""


def _relayed_hosts(ctx: RunContext) -> list[Host]:
    return [h for h in ctx.active_hosts() if not h.git_access]


def note_incoming(ctx: RunContext, hub: Host, source: Host, count: int) -> None:
    """Tell later stages that the hub now has `count` more local commits (publish picks hosts by `ahead`)."""
    incoming = ctx.relay_incoming.setdefault(hub.name, {})
    base = ctx.relay_hub_ahead
    facts = ctx.facts[hub.name]
    base.setdefault(hub.name, facts.repo.ahead or 0)
    incoming[source.name] = count
    ahead = base[hub.name] + sum(incoming.values())
    ctx.facts[hub.name] = dataclasses.replace(facts, repo=dataclasses.replace(facts.repo, ahead=ahead))


class RelayInStage(Stage):
    """Relayed hosts' new commits → the hub, as patches; one host at a time (they all land on the hub)."""

    name = "relay-in"
    parallel = False

    def hosts(self, ctx: RunContext) -> list[Host]:
        """A `push: false` host's commits are never published, so they are not relayed either."""
        return [h for h in _relayed_hosts(ctx) if h.push]

    def plan(self, ctx: RunContext, host: Host) -> list[PlannedStep]:
        hub, reason = relay_hub(ctx, host)
        if hub is None:
            return [PlannedStep(self.name, host.name, "left alone", (), reason)]
        log = StepLog()
        try:
            result = relay(End(host, checkout(ctx, host, log)), End(hub, checkout(ctx, hub, log)),
                           RelayOptions(ctx.run_id, dry_run=True, secrets=secret_patterns(ctx.inventory.settings)))
        except FleetError as exc:  # unreachable, a failing command: the plan says so, the run reports it
            return [PlannedStep(self.name, host.name, f"relay commits to {hub.name}", (), f"cannot plan: {exc}")]
        if result.status == "nothing":
            return [PlannedStep(self.name, host.name, "nothing to relay", (), result.base_how)]
        if result.status != "planned":
            return [PlannedStep(self.name, host.name, f"relay to {hub.name}: {result.status}", (), result.message)]
        note_incoming(ctx, hub, host, len(result.commits))
        return [PlannedStep(self.name, host.name, f"relay {len(result.commits)} commit(s) to {hub.name} as patches",
                            tuple(result.plan), result.base_how)]

    def run(self, ctx: RunContext, host: Host) -> None:
        hub, reason = relay_hub(ctx, host)
        if hub is None:
            ctx.result(host).fail("skipped", reason)
            return
        with step(ctx, host, self.name, f"relay commits to {hub.name}") as (record, log):
            hub_record = StepRecord(self.name, f"apply patches from {host.name}")
            ctx.result(hub).steps.append(hub_record)  # the hub's own commands, on the hub's record
            hub_log = StepLog(hub_record.commands, lambda text: ctx.listener(hub.name, self.name, text))
            start = time.monotonic()
            try:
                result = relay(End(host, checkout(ctx, host, log)), End(hub, checkout(ctx, hub, hub_log)),
                               RelayOptions(f"{ctx.run_id}-{host.name}", allow_running=ctx.options.allow_running,
                                            secrets=secret_patterns(ctx.inventory.settings)))
            except FleetError:  # reported on the relayed host by step(); the hub's checkout did not move
                hub_record.status, hub_record.detail = "failed", f"relay from {host.name} failed; see {host.name}"
                raise
            finally:
                hub_record.duration_s = round(time.monotonic() - start, 3)
            data = {k: v for k, v in to_jsonable(result).items() if k not in ("plan", "commands")}
            record.data["relay"] = hub_record.data["relay"] = data
            hub_record.detail = f"relay from {host.name}: {result.status}"
            self._settle(ctx, host, hub, result, record)
            hub_record.status = ctx.result(hub).status

    @staticmethod
    def _settle(ctx: RunContext, host: Host, hub: Host, result, record: StepRecord) -> None:
        ctx.result(hub).stash_used |= result.stash_used
        if result.ok:
            ctx.relayed[host.name] = result.applied
            note_incoming(ctx, hub, host, result.applied)
            record.detail = (f"relayed {result.applied} commit(s) to {hub.name} ({result.method})"
                             if result.applied else "nothing new to relay")
            return
        note_incoming(ctx, hub, host, 0)
        status = HOST_STATUS.get(result.status, "failed")
        record.status = status
        ctx.result(host).fail(status, f"relay to {hub.name}: {result.message}", result.protected or result.conflicts)
        if result.status == "failed" and result.head_after != result.head_before:
            ctx.result(hub).fail("failed", f"relay from {host.name} left {hub.name} unsettled: {result.message}")


class RelayOutStage(Stage):
    """Relayed hosts receive the converged branch from the hub as a git bundle, then move onto it."""

    name = "relay-out"

    def hosts(self, ctx: RunContext) -> list[Host]:
        return _relayed_hosts(ctx)

    def plan(self, ctx: RunContext, host: Host) -> list[PlannedStep]:
        hub, reason = relay_hub(ctx, host)
        if hub is None:
            return [PlannedStep(self.name, host.name, "left alone", (), reason)]
        bundle = R.relay_dir(f"<{hub.name}:.git>", "<id>") + "/converged.bundle"
        there = R.relay_dir(f"<{host.name}:.git>", "<id>") + "/converged.bundle"
        commands = (f"# on {hub.name}", R.bundle_create(hub.repo, bundle, origin_ref(hub), ["<commits it has>"]),
                    f"# sftp: {hub.name} → {host.name}: {there}", f"# on {host.name}",
                    R.bundle_verify(host.repo, there),
                    R.fetch_bundle(host.repo, there, origin_ref(hub), origin_ref(host)),
                    *move_commands(host, None, origin_ref(host)))
        return [PlannedStep(self.name, host.name, f"receive {hub.branch} from {hub.name} as a git bundle", commands,
                            "its own relayed commits are already in it; the scratch rebase drops their originals")]

    def run(self, ctx: RunContext, host: Host) -> None:
        hub, reason = relay_hub(ctx, host)
        if hub is None:
            ctx.result(host).fail("skipped", reason)
            return
        with step(ctx, host, self.name, f"receive {host.branch} from {hub.name}") as (record, log):
            co = checkout(ctx, host, log)
            record.data["bundle"] = deliver_branch(checkout(ctx, hub, log), hub, co, host, f"{ctx.run_id}-{host.name}")
            self._converge(ctx, host, co, record)

    @staticmethod
    def _converge(ctx: RunContext, host: Host, co, record: StepRecord) -> None:
        """Like the converge stage: fast-forward, or replay own commits in a scratch worktree, then move."""
        result = ctx.result(host)
        facts = co.facts(host.remote, host.branch, fetch=False)
        head, target = facts.head, facts.target
        plan = apply_move(ctx, host, co, facts, record)
        if plan is None:
            return
        if plan.action == "nothing":
            result.unpushed = facts.ahead
        else:
            pulled = co.run(G.git(co.path, "rev-list", "--count", "--cherry-pick", "--right-only",
                                  f"{head}...{target}")).stdout.strip()
            result.pulled += int(pulled or 0)
            result.unpushed = co.count(f"{target}..{plan.new}")
        relayed = ctx.relayed.get(host.name, 0)
        if relayed and not result.unpushed:
            result.pushed += relayed  # every commit it relayed is now in origin's branch
        record.detail = f"on {target[:8]}" + (f", {result.unpushed} local commit(s) kept" if result.unpushed else "")
