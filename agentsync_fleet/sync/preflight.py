"""sync-all's preflight and finish: probe every host before the stages, read the final HEADs after.

The probe (`health.probe_host`, passed in by `pipeline`) decides which hosts take part at all and is
what every stage's `plan()` reads (`RunContext.facts`); `pipeline.run_sync`
calls `preflight` first and `finish` last.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ..engine.context import RunContext
from ..engine.moves import checkout, plan_summary, read_plan
from ..engine.stage import step
from ..gitversion import refusal
from ..guard import running_job_warnings
from ..heal import heal
from ..models import Host
from ..moveplan import MovePlan
from ..pool import run_each
from ..records import HostHealth, HostSync, StepLog, StepRecord
from ..steps import git as G
from ..steps.git import origin_ref


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
    elif why := refusal(repo.git_version, not host.git_access):
        result.fail("skipped", f"{why}; left alone")
    elif not host.git_access:
        result.warnings.append("git_access: false: this host cannot reach origin; it is relayed through the local "
                               "host (patches in, a git bundle back)")
    result.warnings.extend(running_job_warnings(facts.running_jobs))
    if facts.guard is not None and facts.guard.unknown:
        result.warnings.append(f"cannot see processes ({facts.guard.detail}): guard.critical_files are not changed "
                               "here unless --allow-running")


def refuse_unlocked(host: Host, why: str | None, result: HostSync) -> None:
    """A host whose fleet lock was not taken is never synced: another run could be changing it right now."""
    if why is not None and result.active:
        result.fail("skipped", f"the fleet lock could not be taken on {host.name} ({why}); not synced")


def preflight(ctx: RunContext, probe_host: Callable[..., HostHealth]) -> None:
    """Probe every host (`probe_host` is `health.probe_host`, given by the pipeline) and judge who takes part."""
    fetch = not ctx.options.dry_run  # a dry run changes nothing, not even remote-tracking refs
    for host in ctx.hosts:
        ctx.listener(host.name, "preflight", "probing")
    probes = run_each(ctx.hosts, lambda h: probe_host(ctx.connector, h, fetch), ctx.options.workers)
    for host, facts in probes.items():
        if isinstance(facts, Exception):
            facts = HostHealth(host.name, host.target, False, "internal error", repr(facts))
        ctx.facts[host.name] = facts
        preflight_verdict(host, facts, ctx.result(host))
        refuse_unlocked(host, ctx.not_locked.get(host.name), ctx.result(host))
        ctx.listener(host.name, "preflight", ctx.result(host).status)
        _journal_preflight(ctx, host, facts, fetch)
    if ctx.options.dry_run:
        ctx.origin_moved = _origin_moved(ctx)
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


