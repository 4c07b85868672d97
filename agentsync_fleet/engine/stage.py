"""A stage of sync-all, how one step on one host is recorded, and how a stage's hosts are run.

A stage says which hosts it concerns, what it *would* run (for the plan) and
runs it. Each host's work is wrapped in `step()`, which times it, records its
commands and turns a `FleetError` into that host's status instead of
stopping the run. A host that ends a stage in any state but `ok` takes no
part in later stages; the others go on.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from ..errors import CommandTimeout, FleetError, HostUnreachable, StepFailed
from ..models import Host
from ..pool import run_each
from ..records import PlannedStep, StepLog, StepRecord
from .context import RunContext


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
