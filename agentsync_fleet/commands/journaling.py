"""What every task that runs no sync stages tells the run journal: its results as steps and host outcomes.

sync-all's stages are journaled by `engine.stage.step()` as each step ends;
the other tasks (health, status, push-code, results, artifacts, patch-relay)
turn their own results into the same `StepRecord` / `HostOutcome` records
here, one function per task, and hand them to the run's recorder (passed in:
`FleetArgs.recorder`). The recorder turns records into rows
(`journal.recorder.step_row` / `host_row`).
"""

from __future__ import annotations


def journal_transfers(recorder, task: str, host, results) -> None:
    """A host's transfers into the run journal as they end: one step (what moved, every rsync command), as
    the sync-all stage of the same name records it, and how the host ended."""
    from ..models import to_jsonable
    from ..records import CommandRecord, HostOutcome, StepRecord, worst_status
    from ..transfer.model import ACTIONS, totals  # not transfer.stages: that would import the sync engine

    action = ACTIONS[task]
    action += " (dry run)" if any(t.dry_run for t in results) else ""
    failed = [t for t in results if not t.ok]
    status = worst_status([t.status for t in failed])
    record = StepRecord(task, action, status, round(sum(t.duration_s for t in results), 3),
                        "; ".join(f"{t.name}: {t.error} ({t.hint})" for t in failed),
                        [CommandRecord(leg.command, leg.exit_code if leg.exit_code is not None else -1, leg.duration_s,
                                       t.detail if leg is t.legs[-1] else "") for t in results for leg in t.legs],
                        {**totals(results), "transfers": [to_jsonable(t) for t in results]})
    recorder.step_done(host.name, record)
    recorder.host_done(HostOutcome(host.name, status, duration_s=record.duration_s, message=record.detail))


def journal_relay(recorder, result, dry_run: bool) -> None:
    """Both ends into the run journal: one step each with the commands run there, and how the relay ended."""
    from ..records import CommandRecord, HostOutcome, StepRecord

    status = "ok" if result.ok else result.status
    for name, action in ((result.source, f"export commits for {result.target}"),
                         (result.target, f"apply commits from {result.source}")):
        commands = [CommandRecord(c["command"], c["exit_code"], c["duration_s"]) for c in result.commands
                    if c["host"] == name]
        data = {"relay": result.status, "applied": result.applied, "dry_run": dry_run}
        if name == result.target:
            data.update(head_before=result.head_before, head_after=result.head_after)
        recorder.step_done(name, StepRecord("patch-relay", action, status, round(sum(c.duration_s for c in commands), 3),
                                            result.message if status != "ok" else "", commands, data))
        recorder.host_done(HostOutcome(name, status, message=result.message if status != "ok" else ""))


def journal_artifact_entry(recorder, outcome) -> None:
    """Each entry into the run journal the moment it finishes (files, bytes, time, the AWS error)."""
    from ..artifacts.stage import step_record

    recorder.step_done(outcome.host, step_record(f"artifacts-{outcome.direction}", outcome))


def journal_artifact_hosts(recorder, results) -> None:
    from ..records import HostOutcome, worst_status

    for name in dict.fromkeys(r.host for r in results):
        mine = [r for r in results if r.host == name]
        bad = [r for r in mine if not r.ok]
        status = worst_status([r.status for r in bad])
        recorder.host_done(HostOutcome(name, status, duration_s=round(sum(r.duration_s for r in mine), 3),
                                       message="\n".join(r.message for r in bad)))


def journal_health(recorder, report) -> None:
    """A host row per host of a health/status probe: ok if it passed the gate."""
    from ..records import HostOutcome

    for h in report.hosts:
        status = "ok" if h.passed else ("unreachable" if not h.reachable else "failed")
        head = h.repo.head if h.repo else ""
        recorder.host_done(HostOutcome(h.host, status, head, head, duration_s=round(h.duration_s, 3),
                                message="; ".join(h.failures), warnings=tuple(h.warnings)))


def journal_job_start(recorder, host: str, spec, job, duration_s: float, refused: str = "") -> None:
    """`run`: the job's start as a step (its command and pid), or the refusal as the host's outcome."""
    from ..records import CommandRecord, HostOutcome, StepRecord

    duration = round(duration_s, 3)
    if job is None:
        recorder.host_done(HostOutcome(host, "refused", duration_s=duration, message=refused))
        return
    recorder.step_done(host, StepRecord("jobs", f"start job {spec.name} ({spec.id})", "ok", duration, "",
                                        [CommandRecord(spec.command, 0, duration)],
                                        {"job": spec.id, "name": spec.name, "pid": job.pid, "head_before": job.head}))
    recorder.host_done(HostOutcome(host, "ok", job.head, job.head, duration_s=duration,
                                   message=f"started job {spec.id}"))


def journal_job_end(recorder, job, outcome: bool = True, cancelled: bool = False) -> None:
    """How the job ended, as a step with its exit status and last line; with `outcome` (`wait`, `cancel`:
    the job's end is the run's result) also as the host's outcome, not for `jobs`/`health`, which only saw it.
    `cancelled`: `cancel` ended it, as asked: for that run, an end is a success whatever status it left."""
    from ..records import CommandRecord, HostOutcome, StepRecord

    ended_well = job.state == "exited" and job.exit_code == 0 or cancelled and not job.running
    status = "ok" if ended_well else "failed"
    recorder.step_done(job.host, StepRecord("jobs", f"job {job.name} ({job.id}) {job.label}", status,
                                            job.runtime_s or 0.0, "" if status == "ok" else job.label,
                                            [CommandRecord(job.command, job.status_code, job.runtime_s or 0.0,
                                                           job.last_line)],
                                            {"job": job.id, "name": job.name, "state": job.state}))
    if outcome:
        recorder.host_done(HostOutcome(job.host, status, duration_s=job.runtime_s, message=job.label))


def journal_first_ends(recorder, looks, jobs) -> None:
    """`jobs` / `health`: the ends they see that no command of this controller journaled yet, once each."""
    for job in jobs:
        if not job.running and looks.first_end(job):
            journal_job_end(recorder, job, outcome=False)
