"""Transfers as sync-all stages: code push right after converge, results back at the very end.

Which hosts take part:

* push-code: every host with `push_code: true` gets the laptop's working tree;
  every host with `rsync:` push entries gets those (host-to-host ones relay
  through the laptop's cache unless `direct: true`);
* results: every host with `results:` or `rsync:` pull entries.

A host takes part only while it is still `ok` (a host left alone by an
earlier stage gets nothing). `git_access: false` does not matter here:
pushing code without git is exactly what such a host needs. Bytes and files
moved go into the step's `StepRecord.data` for the run journal.
"""

from __future__ import annotations

from ..engine.context import RunContext
from ..engine.stage import Stage, step
from ..errors import FleetError
from ..models import Host, to_jsonable
from ..records import CommandRecord, PlannedStep, worst_status
from ..settings import state_dir
from ..units import human_bytes
from . import plan as P
from .facts import RsyncTools
from .model import ACTIONS, TransferEvent, TransferResult, totals
from .run import Runner


def _runner(ctx: RunContext, host: Host, stage: str) -> Runner:
    def listen(event: TransferEvent) -> None:
        if event.kind == "progress" and event.progress is not None:
            ctx.listener(host.name, stage, f"{event.key}: {event.progress.percent}% "
                                           f"{human_bytes(event.progress.bytes)}")

    opts = P.LegOptions.for_inventory(ctx.inventory, ctx.run_id, state_dir(ctx.inventory), ctx.options.dry_run)
    with ctx.lock:
        ctx.rsync_tools = ctx.rsync_tools or RsyncTools()
    return Runner(ctx.inventory, opts, listen, rerun="`agentsync sync-all`", allow_running=ctx.options.allow_running,
                  connector=ctx.connector, tools=ctx.rsync_tools)


class TransferStage(Stage):
    """Base for both transfer stages: one step per host, its routes one after another."""

    action = "transfer"

    def routes(self, ctx: RunContext, host: Host) -> list[P.Route]:
        raise NotImplementedError

    def hosts(self, ctx: RunContext) -> list[Host]:
        return [h for h in ctx.active_hosts() if self.routes(ctx, h)]

    @staticmethod
    def runnable(ctx: RunContext, host: Host, routes: list[P.Route]) -> tuple[list[P.Route], list[str]]:
        """The routes that may run, and why the others may not: a transfer never writes into a host this run
        leaves alone (not selected, or stopped by an earlier stage)."""
        selected = {h.name for h in ctx.hosts}
        ready, skipped = [], []
        for route in routes:
            target = route.dest.host
            if target.local or target.name == host.name or ctx.result(target).active and target.name in selected:
                ready.append(route)
                continue
            why = ("is not part of this run (--hosts)" if target.name not in selected else
                   f"ended {ctx.result(target).status} earlier in this run")
            skipped.append(f"{route.entry.name}: not run: {target.name} {why}; it is left as it was")
        return ready, skipped

    def plan(self, ctx: RunContext, host: Host) -> list[PlannedStep]:
        runner = _runner(ctx, host, self.name)
        routes, skipped = self.runnable(ctx, host, self.routes(ctx, host))
        steps = [PlannedStep(self.name, host.name, why.split(":", 1)[0], (), why.split(": ", 1)[1])
                 for why in skipped]
        for route in routes:
            note = {"relay": "relayed through the laptop's cache", "direct": "run on the source host"}.get(route.mode,
                                                                                                          "")
            if route.is_code:
                note = "the file list (git ls-files --cached --others --exclude-standard) goes on stdin"
            try:
                commands = tuple(runner.commands(route))
            except FleetError as exc:
                commands, note = (), f"will fail: {exc.message}"
            steps.append(PlannedStep(self.name, host.name, f"{route.entry.name}: {route.src.display} → "
                                                           f"{route.dest.display}", commands, note))
        return steps

    def run(self, ctx: RunContext, host: Host) -> None:
        with step(ctx, host, self.name, self.action) as (record, log):
            runner = _runner(ctx, host, self.name)
            routes, skipped = self.runnable(ctx, host, self.routes(ctx, host))
            ctx.result(host).warnings.extend(skipped)
            results = [runner.run(route) for route in routes]
            record.data.update(totals(results))
            record.data["transfers"] = [to_jsonable(t) for t in results]
            for t in results:
                log.records.extend(CommandRecord(leg.command, leg.exit_code if leg.exit_code is not None else -1,
                                                 leg.duration_s, t.detail if leg is t.legs[-1] else "")
                                   for leg in t.legs)
            self._conclude(ctx, host, record, results)

    def _conclude(self, ctx: RunContext, host: Host, record, results: list[TransferResult]) -> None:
        t = totals(results)
        record.detail = (f"{t['files']} file(s), {human_bytes(t['bytes'])}, {t['backed_up']} backed up, "
                         f"{t['held_back']} held back")
        result = ctx.result(host)
        for transfer in results:
            secrets = [h["path"] for h in transfer.held_back if h["reason"] == "secret"]
            if secrets:
                result.warnings.append(f"{transfer.name}: held back (secrets, never sent): {', '.join(secrets)}")
            if transfer.backed_up:
                result.warnings.append(f"{transfer.name}: {len(transfer.backed_up)} file(s) replaced, old versions "
                                       f"in {transfer.backup_dir} (restore all: {transfer.restore_all})")
            result.warnings.extend(f"{transfer.name}: {w}" for w in transfer.warnings)
        failed = [t for t in results if not t.ok]
        if failed:
            status = worst_status([t.status for t in failed])
            record.status = status
            result.fail(status, "; ".join(f"{self.name} {t.name}: {t.error} ({t.hint})" for t in failed))


class CodePushStage(TransferStage):
    name = "push-code"
    action = ACTIONS[name]

    def routes(self, ctx: RunContext, host: Host) -> list[P.Route]:
        return P.push_routes(ctx.inventory, host, code=host.push_code and not host.local)


class ResultsStage(TransferStage):
    name = "results"
    action = ACTIONS[name]

    def routes(self, ctx: RunContext, host: Host) -> list[P.Route]:
        return P.pull_routes(ctx.inventory, host)
