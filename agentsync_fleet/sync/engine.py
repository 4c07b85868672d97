"""Run sync-all: preflight every host, build the plan, then run the stages in order.

Stages run one after another; inside a stage, hosts run in parallel (bounded
pool) unless the stage is serial (publish). A host that ends a stage in any
state but `ok` takes no part in later stages; the others go on.
"""

from __future__ import annotations

import time
from collections import Counter

from ..claims.stage import ClaimsStage
from ..gitops import StepLog
from ..heal import heal
from ..health import probe_host
from ..models import Host
from ..moveplan import MovePlan
from ..pool import run_each
from ..records import HostHealth, HostSync, StepRecord, SyncReport
from ..steps import git as G
from ..transfer.stages import CodePushStage, ResultsStage
from .artifacts import ArtifactsDownStage, ArtifactsUpStage
from .model import RunContext
from .relay import RelayInStage, RelayOutStage
from .stages import ConvergeStage, PublishStage, Stage, checkout, origin_ref, plan_summary, read_plan, step
from .worktrees import WorktreeStage


def default_stages() -> list[Stage]:
    return [RelayInStage(), PublishStage(), ConvergeStage(), RelayOutStage(), CodePushStage(), WorktreeStage(),
            ArtifactsUpStage(), ArtifactsDownStage(), ResultsStage(), ClaimsStage()]


def preflight_verdict(host: Host, facts: HostHealth, result: HostSync) -> None:
    """Decide from the probes whether a host may take part; leave the others alone with a reason."""
    if not facts.reachable:
        result.fail("unreachable", f"{facts.reason}: {facts.error}")
        return
    repo = facts.repo
    result.head_before = repo.head if repo else ""
    if repo is None:
        result.fail("failed", f"preflight probe: {facts.error or 'no answer'}")
    elif not repo.present:
        result.fail("failed", f"repo {host.repo}: {repo.error}")
    elif repo.in_progress:
        result.fail("skipped", f"{', '.join(repo.in_progress)} already in progress; left alone (finish or abort "
                               "it by hand)")
    elif repo.branch != host.branch:
        result.fail("skipped", f"checked out on '{repo.branch}', inventory expects '{host.branch}'; left alone")
    elif not host.git_access:
        result.warnings.append("git_access: false: this host cannot reach origin; it is relayed through the local "
                               "host (patches in, a git bundle back)")


def preflight(ctx: RunContext) -> None:
    fetch = not ctx.options.dry_run  # a dry run changes nothing, not even remote-tracking refs
    for host in ctx.hosts:
        ctx.listener(host.name, "preflight", "probing")
    probes = run_each(ctx.hosts, lambda h: probe_host(ctx.connector, h, fetch), ctx.options.workers)
    for host, facts in probes.items():
        if isinstance(facts, Exception):
            facts = HostHealth(host.name, host.target, False, "internal error", repr(facts))
        ctx.facts[host.name] = facts
        preflight_verdict(host, facts, ctx.result(host))
        ctx.listener(host.name, "preflight", ctx.result(host).status)
        _journal_preflight(ctx, host, facts, fetch)
    if ctx.options.dry_run:
        ctx.facts["_origin_moved"] = _origin_moved(ctx)
        read_move_plans(ctx)
    heal_leftovers(ctx)


def heal_leftovers(ctx: RunContext) -> None:
    """Before any stage: put right what an earlier, cut-off move left on a host (`heal.py`). A dry run says
    what it would heal; a host that cannot be healed safely takes no part in this run."""
    hosts = [h for h in ctx.active_hosts() if ctx.facts[h.name].repo and ctx.facts[h.name].repo.leftover]
    if ctx.options.dry_run:
        for host in hosts:
            ctx.result(host).warnings.append(f"a cut-off move left {ctx.facts[host.name].repo.leftover}: a real "
                                             "run heals it first (restores its stash, removes scratch worktrees)")
        return

    def heal_one(host: Host) -> None:
        with step(ctx, host, "heal", "heal a cut-off move") as (record, log):
            co = checkout(ctx, host, log)
            healed = heal(co, co.facts(host.remote, host.branch, fetch=False))
            ctx.result(host).healed = list(healed.actions)
            record.detail = "; ".join(healed.actions)
            if not healed.ok:
                record.status = "failed"
                ctx.result(host).fail("failed", f"heal: {healed.problem}")

    run_each(hosts, heal_one, ctx.options.workers, stop=ctx.stopping)


def read_move_plans(ctx: RunContext) -> None:
    """Dry run: each host's move, decided by the very function the run uses (`moveplan.plan_move`), on the
    facts as they are now (no fetch) with the rehearsals done in scratch worktrees."""
    hosts = [h for h in ctx.active_hosts() if h.git_access]

    def read(host: Host) -> MovePlan:
        co = checkout(ctx, host, StepLog())
        return read_plan(ctx, host, co, co.facts(host.remote, host.branch, fetch=False))

    for host, plan in run_each(hosts, read, ctx.options.workers).items():
        if isinstance(plan, Exception):
            ctx.result(host).warnings.append(f"plan: could not read the move: {plan}")
            continue
        ctx.move_plans[host.name] = plan
        ctx.result(host).plan = plan_summary(plan)


def _journal_preflight(ctx: RunContext, host: Host, facts: HostHealth, fetch: bool) -> None:
    """The probe as a journal step (not part of the report's steps: it is the same for every stage)."""
    result = ctx.result(host)
    record = StepRecord("preflight", "probe + fetch" if fetch else "probe", status=result.status,
                        duration_s=round(facts.duration_s, 3), detail=result.message,
                        data={"head_before": result.head_before})
    ctx.observer.step_done(host.name, record, result)


def _origin_moved(ctx: RunContext) -> bool:
    """Without fetching: has origin's branch moved past what the hosts last fetched? (`git ls-remote`)"""
    for host in ctx.active_hosts():
        if not host.git_access:
            continue
        session = ctx.connector.session(host)
        remote = session.run(G.git(host.repo, "ls-remote", host.remote, f"refs/heads/{host.branch}"),
                             timeout=host.command_timeout)
        known = session.run(G.rev_parse(host.repo, origin_ref(host)), timeout=host.command_timeout)
        if remote.ok and remote.stdout.split()[:1] != known.stdout.split()[:1]:
            return True
    return False


def run_stage(ctx: RunContext, stage: Stage) -> None:
    hosts = stage.hosts(ctx)
    if stage.parallel:
        outcomes = run_each(hosts, lambda h: stage.run(ctx, h), ctx.options.workers, stop=ctx.stopping)
    else:
        outcomes = {h: _serial(stage, ctx, h) for h in hosts}
    for host, outcome in outcomes.items():
        if isinstance(outcome, Exception):  # a bug: keep the others going, say so on this host
            ctx.result(host).fail("failed", f"{stage.name}: internal error: {outcome!r}")


def _serial(stage: Stage, ctx: RunContext, host: Host):
    try:
        return stage.run(ctx, host)
    except Exception as exc:  # noqa: BLE001 - reported on the host like run_each does
        return exc


def finish(ctx: RunContext) -> str:
    """Fill in the final HEAD of hosts no stage reported; return origin's head as most hosts last saw it."""

    def final(host: Host) -> None:
        result = ctx.result(host)
        if result.head_after or result.status == "unreachable" or not result.head_before:
            return
        out = ctx.connector.session(host).run(G.git(host.repo, "rev-parse", "HEAD"), timeout=host.command_timeout)
        result.head_after = out.stdout.strip() if out.ok else ""

    run_each(ctx.hosts, final, ctx.options.workers)
    seen = Counter(ctx.result(h).origin_head for h in ctx.hosts if ctx.result(h).origin_head)
    return seen.most_common(1)[0][0] if seen else ""


def run_sync(ctx: RunContext, stages: list[Stage] | None = None) -> SyncReport:
    start = time.monotonic()
    stages = [s for s in (stages or default_stages())
              if not ctx.options.only_stages or s.name in ctx.options.only_stages]
    preflight(ctx)
    aborted = ""
    unreachable = [h.name for h in ctx.hosts if ctx.result(h).status == "unreachable"]
    if ctx.options.strict and unreachable:
        aborted = f"--strict: {', '.join(unreachable)} unreachable; nothing was changed on any host"
    plan = tuple(p for stage in stages for h in stage.hosts(ctx) for p in stage.plan(ctx, h))
    if not ctx.options.dry_run and not aborted:
        for stage in stages:
            run_stage(ctx, stage)
    for host in ctx.hosts:
        result = ctx.result(host)
        if aborted and result.status == "ok":
            result.fail("skipped", "not run: --strict abort")
    origin_head = finish(ctx) if not ctx.options.dry_run else ""
    for host in ctx.hosts:
        result = ctx.result(host)
        result.duration_s = round(sum(s.duration_s for s in result.steps), 3)
        if ctx.options.dry_run and result.status == "ok":
            result.head_after = result.head_before
        ctx.observer.host_done(result)
    return SyncReport(ctx.run_id, str(ctx.inventory.path), ctx.options.dry_run,
                      tuple(ctx.result(h) for h in ctx.hosts), plan, round(time.monotonic() - start, 3),
                      origin_head, aborted)
