"""sync-all's preflight and finish: probe every host before the stages, read the final HEADs after.

The probe (`health.probe_host`, passed in by `pipeline`) decides which hosts take part at all and is
what every stage's `plan()` reads (`RunContext.facts`); `pipeline.run_sync`
calls `preflight` first and `finish` last.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from ..engine.context import RunContext
from ..gitversion import refusal
from ..models import Host
from ..pool import run_each
from ..records import HostHealth, HostSync, StepRecord
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


