"""Questions asked of the journal, as pure functions over its rows (dicts): no SQL, no files.

`history` lists runs, `history.stats` aggregates them, `sync-all --resume`
picks the hosts to run again. Rows come from `store.Journal`; everything here
is testable with hand-written rows.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FINISHED = ("ok", "failed", "error", "refused", "interrupted")


def duration(run: dict[str, Any]) -> float | None:
    if run.get("ended") is None or run.get("started") is None:
        return None
    return round(run["ended"] - run["started"], 3)


NOT_RUN = "not run"  # a host the run included but never acted on (interrupted, refused, aborted first)
READ_ONLY_STAGES = ("preflight",)  # steps that only look: a host with nothing else was not run


def host_status(row: dict[str, Any]) -> str:
    """How a host row reads in the history: a host skipped with `not run: ...` (a --strict abort, an interrupt
    before its move) is `not run`, not a skip of something that was tried."""
    if row["status"] == "skipped" and (row.get("message") or "").startswith(NOT_RUN + ":"):
        return NOT_RUN
    return row["status"]


def host_statuses(run: dict[str, Any], hosts: list[dict[str, Any]], steps: list[dict[str, Any]]) -> dict[str, str]:
    """How each host ended: its final row, else its worst step; in a run that ended early (interrupted,
    refused, an error) a host with no final row and only read-only steps — or none at all — is `not run`."""
    per_host: dict[str, str] = {}
    acted: set[str] = set()
    for step in (s for s in steps if s["run_id"] == run["id"]):
        if step["status"] != "ok":
            per_host[step["host"]] = step["status"]
        else:
            per_host.setdefault(step["host"], "ok")
        if step["stage"] not in READ_ONLY_STAGES:
            acted.add(step["host"])
    if run["status"] in FINISHED and run["status"] != "ok":
        for name in (run.get("extra") or {}).get("hosts") or ():
            per_host.setdefault(name, NOT_RUN)
        per_host.update({name: NOT_RUN for name, status in per_host.items() if status == "ok" and name not in acted})
    for row in hosts:
        if row["run_id"] == run["id"]:
            per_host[row["host"]] = host_status(row)
    return per_host


def summarize(run: dict[str, Any], hosts: list[dict[str, Any]], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """One line of `history`: the run and how each host ended (`host_statuses`)."""
    per_host = host_statuses(run, hosts, steps)
    return {**run, "duration_s": duration(run), "hosts": per_host,
            "hosts_ok": sum(1 for s in per_host.values() if s == "ok"), "hosts_total": len(per_host)}


def summaries(runs: list[dict[str, Any]], hosts: list[dict[str, Any]],
              steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_run_hosts: dict[str, list] = defaultdict(list)
    by_run_steps: dict[str, list] = defaultdict(list)
    for row in hosts:
        by_run_hosts[row["run_id"]].append(row)
    for row in steps:
        by_run_steps[row["run_id"]].append(row)
    return [summarize(r, by_run_hosts[r["id"]], by_run_steps[r["id"]]) for r in runs]


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def stats(runs: list[dict[str, Any]], hosts: list[dict[str, Any]], steps: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs and success rate (overall and per task), median step duration per host and step,
    and each host's last success."""
    finished = [r for r in runs if r["status"] in FINISHED]
    ok = [r for r in finished if r["status"] == "ok"]
    by_status: dict[str, int] = defaultdict(int)
    for run in runs:
        by_status[run["status"]] += 1
    tasks: dict[str, dict[str, Any]] = {}
    for task in sorted({r["task"] for r in runs}):
        mine = [r for r in finished if r["task"] == task]
        good = [r for r in mine if r["status"] == "ok"]
        tasks[task] = {"runs": sum(1 for r in runs if r["task"] == task), "ok": len(good),
                       "success_rate": _rate(len(good), len(mine)),
                       "median_duration_s": _median([d for r in mine if (d := duration(r)) is not None])}
    return {
        "runs": len(runs), "finished": len(finished), "ok": len(ok), "success_rate": _rate(len(ok), len(finished)),
        "by_status": dict(sorted(by_status.items())), "tasks": tasks,
        "steps": step_medians(steps), "last_success": last_success(runs, hosts),
    }


def _rate(good: int, total: int) -> float | None:
    return round(good / total, 4) if total else None


def step_medians(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per host and step (stage and action: each artifact entry, worktree or relay is a step of its own, and
    a dry run's probe is not a fetch): how many ran, how many ok, and the median duration."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for step in steps:
        groups[(step["host"], step["stage"], step.get("action", ""))].append(step)
    rows = []
    for (host, stage, action), items in sorted(groups.items()):
        times = [s["duration_s"] for s in items if s.get("duration_s") is not None]
        rows.append({"host": host, "stage": stage, "action": action, "steps": len(items),
                     "ok": sum(1 for s in items if s["status"] == "ok"), "median_duration_s": _median(times)})
    return rows


def last_success(runs: list[dict[str, Any]], hosts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per host: the latest run in which it ended `ok` (when, which run, which task)."""
    tasks = {r["id"]: r["task"] for r in runs}
    best: dict[str, dict[str, Any]] = {}
    for row in hosts:
        if row["status"] != "ok" or row["run_id"] not in tasks:
            continue
        when = row.get("ended") or 0.0
        if row["host"] not in best or when > best[row["host"]]["at"]:
            best[row["host"]] = {"at": when, "run_id": row["run_id"], "task": tasks[row["run_id"]]}
    return dict(sorted(best.items()))


@dataclass(frozen=True)
class ResumePlan:
    """Which hosts `sync-all --resume` runs again, and why; which ended ok and are left alone."""

    run_id: str
    rerun: dict[str, str] = field(default_factory=dict)  # host -> how it ended last time
    done: tuple[str, ...] = ()


def was_sync(run: dict[str, Any], hosts: list[dict[str, Any]], steps: list[dict[str, Any]]) -> bool:
    """A sync-all that did something: not a dry run, not refused, with at least one recorded row."""
    args = run.get("args") or {}
    return (run["task"] == "sync-all" and not args.get("dry_run") and run["status"] != "refused"
            and bool(hosts or steps))


def resume_plan(run: dict[str, Any], hosts: list[dict[str, Any]], steps: list[dict[str, Any]],
                selected: list[str]) -> ResumePlan:
    """Hosts of `run` (limited to `selected`) that did not end `ok`, in selection order.

    A host with no final row (the run was interrupted) did not end ok; a host
    the run did not include is not resumed.
    """
    extra = run.get("extra") or {}
    included = list(extra.get("hosts") or dict.fromkeys([*(r["host"] for r in hosts), *(s["host"] for s in steps)]))
    final = {r["host"]: r for r in hosts}
    last_step: dict[str, dict[str, Any]] = {}
    for step in steps:
        last_step[step["host"]] = step
    rerun, done = {}, []
    for name in selected:
        if name not in included:
            continue
        row = final.get(name)
        if row is not None and row["status"] == "ok":
            done.append(name)
        elif row is not None:
            rerun[name] = f"{row['status']}: {_first_line(row.get('message', ''))}".rstrip(": ")
        else:
            step = last_step.get(name)
            seen = f", last step {step['stage']} {step['status']}" if step else ""
            rerun[name] = f"no result (run {run['status']}{seen})"
    return ResumePlan(run["id"], rerun, tuple(done))


def resume_across(syncs: Iterable[tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]],
                  selected: list[str]) -> ResumePlan | None:
    """Each selected host as the latest sync-all that included it left it; None if there was none.

    `syncs` are (run, host rows, step rows) of real sync-alls, newest first
    (see `was_sync`). A run limited with --hosts says nothing about the hosts
    it left out: an earlier run decides for them. The plan's run is the
    newest one a host is run again from (else the newest run).
    """
    rerun: dict[str, str] = {}
    done: list[str] = []
    left, newest, source = list(selected), None, None
    for run, hosts, steps in syncs:
        newest = newest or run["id"]
        plan = resume_plan(run, hosts, steps, left)
        source = source or (run["id"] if plan.rerun else None)
        rerun.update({h: why if run["id"] == source else f"{why}; in run {run['id']}" for h, why in plan.rerun.items()})
        done += plan.done
        left = [h for h in left if h not in plan.rerun and h not in plan.done]
        if not left:
            break
    if newest is None:
        return None
    return ResumePlan(source or newest, {h: rerun[h] for h in selected if h in rerun},
                      tuple(h for h in selected if h in done))


def _first_line(text: str) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def export_document(details: list[dict[str, Any]], journal_path: str, exported_at: float) -> dict[str, Any]:
    return {"format": "agentsync-history/1", "journal": journal_path, "exported_at": exported_at,
            "runs": [{**d, "duration_s": duration(d)} for d in details]}
