"""The artifact stages of sync-all: after git, every `up` entry, then every `down` entry.

Two stages rather than one so the engine's stage barrier gives the order for
free: every upload on every host finishes before any download starts, and
hosts run in parallel inside each stage. A failed entry marks its host
`failed` (the run exits non-zero) but does not stop that host's other
entries, nor its downloads after a failed upload. Each entry is one
`StepRecord` whose `data` holds files, bytes, times and the AWS error code.
"""

from __future__ import annotations

import time

from ..engine.context import RunContext
from ..engine.stage import Stage
from ..errors import FleetError
from ..models import Host
from ..records import CommandRecord, PlannedStep, StepRecord
from ..steps import s3 as S
from ..units import human_bytes
from .runner import EntryResult, entries, failed_entry, run_entry

PROGRESS_EVERY_S = 2.0


def entry_label(result_or_entry) -> str:
    arrow = "→" if result_or_entry.direction == "up" else "←"
    return f"{result_or_entry.path} {arrow} {result_or_entry.url}"


class ArtifactStage(Stage):
    """Base for the two directions; `direction` picks the entries."""

    direction = "up"

    def hosts(self, ctx: RunContext) -> list[Host]:
        """Hosts with entries of this direction that are fine, or whose only failure was an artifact entry."""
        failed_before = ctx.artifacts_failed
        return [h for h in ctx.hosts if entries(h, self.direction)
                and (ctx.result(h).active or h.name in failed_before)]

    def plan(self, ctx: RunContext, host: Host) -> list[PlannedStep]:
        return [PlannedStep(self.name, host.name, f"{self.direction} {entry_label(e)}",
                            (S.sync_command(host, e),), "delete: true" if e.delete else "")
                for _, e in entries(host, self.direction)]

    def run(self, ctx: RunContext, host: Host) -> None:
        try:
            session = ctx.connector.session(host)
        except FleetError as exc:
            session, error = None, exc
        for index, entry in entries(host, self.direction):
            if session is None:
                outcome = failed_entry(host, index, entry, False, error)
            else:
                outcome = run_entry(session, host, index, entry, on_progress=self._reporter(ctx, host, entry))
            self._record(ctx, host, outcome)

    def _reporter(self, ctx: RunContext, host: Host, entry):
        """Progress for the live view, at most every PROGRESS_EVERY_S: a big sync must not flood a log."""
        last = [float("-inf")]

        def report(_host: str, _index: int, files: int, deleted: int, progress: str) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S:
                last[0] = now
                ctx.listener(host.name, self.name, _progress_text(entry, files, deleted, progress))

        return report

    def _record(self, ctx: RunContext, host: Host, outcome: EntryResult) -> None:
        record = step_record(self.name, outcome)
        result = ctx.result(host)
        result.steps.append(record)
        try:
            self._judge(ctx, host, outcome, record)
        finally:
            ctx.observer.step_done(host.name, record, result)  # journaled as each entry finishes

    def _judge(self, ctx: RunContext, host: Host, outcome: EntryResult, record: StepRecord) -> None:
        result = ctx.result(host)
        if outcome.ok:
            ctx.listener(host.name, self.name, f"{entry_label(outcome)}: {record.detail}")
            return
        ctx.listener(host.name, self.name, f"{entry_label(outcome)}: {record.status}")
        line = f"artifacts: {self.direction} {entry_label(outcome)}: {outcome.message}"
        if outcome.hint:
            line += f" (hint: {outcome.hint})"
        if outcome.aws_message:
            line += f"\n  AWS: {outcome.aws_message}"
        with ctx.lock:
            if result.active or host.name in ctx.artifacts_failed:
                ctx.artifacts_failed.add(host.name)
                message = f"{result.message}\n{line}" if result.message else line
                result.fail("unreachable" if outcome.status == "unreachable" else "failed", message)


def step_record(stage: str, outcome: EntryResult) -> StepRecord:
    """One entry as a step: the sync command, files, bytes and time in `data`, the failure in `detail`."""
    record = StepRecord(stage, f"{outcome.direction} {entry_label(outcome)}", duration_s=outcome.duration_s,
                        data=outcome.step_data())
    record.commands.append(CommandRecord(outcome.command, outcome.exit_code if outcome.exit_code is not None
                                         else -1, outcome.duration_s, outcome.aws_message))
    if outcome.ok:
        size = human_bytes(outcome.bytes) if outcome.bytes is not None else "? bytes"
        record.detail = f"{outcome.files} file(s), {size}" + (f", {outcome.deleted} deleted"
                                                              if outcome.deleted else "")
        if outcome.held_back:
            record.detail += f"; held back (secrets, never uploaded): {', '.join(outcome.held_back[:10])}"
    else:
        record.status = "unreachable" if outcome.status == "unreachable" else "failed"
        record.detail = outcome.message
    return record


def _progress_text(entry, files: int, deleted: int, progress: str) -> str:
    text = f"{entry.path}: {files} file(s)"
    if deleted:
        text += f", {deleted} deleted"
    return f"{text} · {progress}" if progress else text


class ArtifactsUpStage(ArtifactStage):
    name = "artifacts-up"
    direction = "up"


class ArtifactsDownStage(ArtifactStage):
    name = "artifacts-down"
    direction = "down"
