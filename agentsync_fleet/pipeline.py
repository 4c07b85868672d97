"""sync-all's stages, in the order they run, and the run itself: preflight, plan, stages, finish.

A new stage is one file (a `engine.stage.Stage` in its feature's package)
plus one line in `STAGES`. Stages run one after another; inside a stage,
hosts run in parallel (bounded pool) unless the stage is serial (publish).
"""

from __future__ import annotations

import time

from .artifacts.stage import ArtifactsDownStage, ArtifactsUpStage
from .claims.stage import ClaimsStage
from .engine.context import RunContext
from .engine.stage import Stage, run_stage
from .health import probe_host
from .records import SyncReport
from .relay.stage import RelayInStage, RelayOutStage
from .sync.preflight import finish, preflight
from .sync.stages import ConvergeStage, PublishStage
from .sync.worktrees import WorktreeStage
from .transfer.stages import CodePushStage, ResultsStage


def default_stages() -> list[Stage]:
    """sync-all's stages in the order they run: a new stage is one line here."""
    return [
        RelayInStage(),  # relayed hosts' commits come to the hub as patches
        PublishStage(),  # hosts with local commits rebase and push, one at a time
        ConvergeStage(),  # every host moves onto origin's branch
        RelayOutStage(),  # relayed hosts get the converged branch as a bundle
        CodePushStage(),  # push-code routes: the laptop's tree to hosts
        WorktreeStage(),  # worktrees merge or rebase their `merge:` branch
        ArtifactsUpStage(),  # every S3 upload ...
        ArtifactsDownStage(),  # ... before any download
        ResultsStage(),  # results come back to the laptop
        ClaimsStage(),  # warn about incoming commits in claimed areas
    ]


def _are(names: list[str]) -> str:
    return f"{names[0]} is" if len(names) == 1 else f"{', '.join(names)} are"


def run_sync(ctx: RunContext, stages: list[Stage] | None = None) -> SyncReport:
    start = time.monotonic()
    stages = [s for s in (stages or default_stages())
              if not ctx.options.only_stages or s.name in ctx.options.only_stages]
    preflight(ctx, probe_host)
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
            result.fail("skipped", f"not run: --strict, and {_are(unreachable)} unreachable")
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
