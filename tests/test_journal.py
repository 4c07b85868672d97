"""The run journal against real runs: a success, a failure, a run killed with kill -9, and --resume."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from test_locks import wait_for  # one wait-for-a-condition helper for the lock and journal tests

from agentsync_fleet.identity import who

AGENTSYNC = [sys.executable, "-m", "agentsync_fleet"]


def run_json(fleet, *args: str, inventory: Path | None = None, code: int | None = 0) -> dict:
    result = fleet.agentsync(*args, "--json", inventory=inventory)
    assert result.stdout.startswith(("{", "[")), result.stderr
    if code is not None:
        assert result.returncode == code, result.stderr
    return json.loads(result.stdout)


def history(fleet, *args: str) -> dict:
    return run_json(fleet, "history", *args)


def show(fleet, run_id: str) -> dict:
    return run_json(fleet, "history.show", run_id)


def steps_by(detail: dict) -> dict[tuple[str, str], dict]:
    return {(s["host"], s["stage"]): s for s in detail["steps"]}


def hook(fleet, host: str, name: str, body: str) -> None:
    """A git hook in a host's checkout (hooks run on that host, where git runs)."""
    path = fleet.repo(host) / ".git" / "hooks" / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def journal_rows(fleet, sql: str, params: tuple = ()) -> list[tuple]:
    """Rows of the journal, or [] while it (or its schema: the run creates the file first) does not exist yet."""
    path = fleet.root / "state" / "journal.sqlite3"
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=5) as db:
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:  # the run created the file and has not written its tables yet
            if "no such table" in str(exc):
                return []
            raise


def test_history_records_a_successful_sync_with_every_host_and_step(fleet):
    fleet.commit("laptop", "laptop.md", "from the laptop\n", "Laptop work")
    inv = fleet.inventory()
    report = run_json(fleet, "sync-all", inventory=inv)

    runs = history(fleet)["runs"]
    assert [r["id"] for r in runs] == [report["run_id"]]  # the report and the journal share the run id
    run = runs[0]
    assert run["task"] == "sync-all" and run["status"] == "ok" and run["exit_code"] == 0
    assert run["who"] == who() and run["controller"] == socket.gethostname() and run["pid"] > 0
    assert run["inventory"] == str(inv.resolve())
    assert run["inventory_sha256"] == hashlib.sha256(inv.read_bytes()).hexdigest()
    assert run["args"]["json"] is True and run["ended"] >= run["started"]
    assert run["hosts"] == {"laptop": "ok", "cloud": "ok", "gpu": "ok"}

    detail = show(fleet, run["id"][:17])  # a unique prefix is enough
    origin = fleet.origin_head()
    assert {h["host"]: (h["status"], h["head_after"]) for h in detail["hosts"]} == {
        "laptop": ("ok", origin), "cloud": ("ok", origin), "gpu": ("ok", origin)}
    steps = steps_by(detail)
    assert {("laptop", "preflight"), ("cloud", "preflight"), ("gpu", "preflight"), ("laptop", "publish"),
            ("cloud", "converge"), ("gpu", "converge")} <= set(steps)
    publish = steps[("laptop", "publish")]
    assert publish["status"] == "ok" and publish["exit_code"] == 0 and publish["duration_s"] >= 0
    assert any("push" in c["command"] and c["exit_code"] == 0 for c in publish["commands"])
    converge = steps[("cloud", "converge")]
    assert converge["head_before"] != origin and converge["head_after"] == origin
    assert converge["detail"] == "pulled 1 commit(s)"


def test_history_records_a_failed_run_with_its_error_and_exit_code(fleet):
    fleet.commit("laptop", "README.md", "laptop's README\n", "Rewrite README")
    (fleet.repo("gpu") / "README.md").write_text("gpu's own uncommitted README\n")
    fleet.commit("cloud", "cloud.md", "cloud work\n", "Cloud work")
    hook(fleet, "cloud", "pre-push", "echo 'pushes from cloud are switched off' >&2; exit 1")

    report = run_json(fleet, "sync-all", inventory=fleet.inventory(), code=1)

    run = history(fleet, "--status", "failed")["runs"][0]
    assert run["id"] == report["run_id"] and run["exit_code"] == 1
    assert run["hosts"] == {"laptop": "ok", "cloud": "failed", "gpu": "conflict"}
    detail = show(fleet, "last")
    steps = steps_by(detail)
    push = steps[("cloud", "publish")]
    assert push["status"] == "failed" and push["exit_code"] == 1
    assert "push failed" in push["error"] and "pushes from cloud are switched off" in push["error"]
    gpu = steps[("gpu", "converge")]
    assert gpu["status"] == "conflict" and "uncommitted edits conflict" in gpu["error"]
    assert {h["host"]: h["status"] for h in detail["hosts"]}["gpu"] == "conflict"
    assert history(fleet, "--host", "gpu", "--status", "ok")["runs"] == []

    human = fleet.agentsync("history.show", run["id"], inventory=None)
    assert human.returncode == 0 and "pushes from cloud are switched off" in human.stdout
    assert not any((fleet.repo(h) / ".git" / "agentsync.lock").exists() for h in ("laptop", "cloud", "gpu"))
    assert not list((fleet.root / "state" / "locks").glob("*.lock"))  # a failed run releases its locks too


def start_sync_blocked_in_cloud_push(fleet, stderr) -> tuple:
    """A sync-all (in the background) whose cloud push hangs until `gate` is removed, then refuses:
    laptop's publish is journaled first. Returns (process, inventory, gate)."""
    fleet.commit("laptop", "laptop.md", "from the laptop\n", "Laptop work")
    fleet.commit("cloud", "cloud.md", "from the cloud\n", "Cloud work")
    gate = fleet.root / "cloud-push-gate"
    gate.write_text("hold")
    blocked = fleet.root / "cloud-push-blocked"  # the hook says it is running (cloud sees the controller's /tmp)
    hook(fleet, "cloud", "pre-push", f"touch {blocked}; while [ -e {gate} ]; do sleep 0.1; done; exit 1")
    inv = fleet.inventory()
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state")}
    proc = subprocess.Popen([*AGENTSYNC, "sync-all", "--json", "--inventory", str(inv)], env=env,
                            stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    return proc, inv, gate


def test_run_killed_with_kill_9_keeps_its_finished_steps_and_shows_interrupted(fleet):
    proc, inv, gate = start_sync_blocked_in_cloud_push(fleet, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: journal_rows(fleet, "SELECT status FROM steps WHERE host = 'laptop' AND stage = 'publish'"),
                 what="laptop's publish step in the journal")
        wait_for((fleet.root / "cloud-push-blocked").exists, what="cloud's publish blocked in its pre-push hook")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        gate.unlink()
        if proc.poll() is None:
            proc.kill()
    (fleet.repo("cloud") / ".git" / "hooks" / "pre-push").unlink()

    run = history(fleet)["runs"][0]
    assert run["status"] == "interrupted" and run["pid"] == proc.pid and run["exit_code"] is None
    assert "killed or crashed" in run["message"]
    detail = show(fleet, run["id"])
    steps = steps_by(detail)
    assert steps[("laptop", "publish")]["status"] == "ok"
    assert {("laptop", "preflight"), ("cloud", "preflight"), ("gpu", "preflight")} <= set(steps)
    assert ("cloud", "publish") not in steps and detail["hosts"] == []  # it never finished
    assert history(fleet, "--status", "interrupted")["runs"][0]["id"] == run["id"]

    # The killed run's locks are stale now (its process is gone): the next run takes them over.
    again = fleet.agentsync("sync-all", "--json", inventory=inv)
    assert again.returncode == 0, again.stderr
    assert "took over a stale lock on this controller" in again.stderr
    assert f"process {proc.pid} on {socket.gethostname()} is gone" in again.stderr


def test_ctrl_c_mid_step_is_journaled_as_interrupted_never_as_ok_and_releases_every_lock(fleet):
    proc, inv, gate = start_sync_blocked_in_cloud_push(fleet, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: journal_rows(fleet, "SELECT status FROM steps WHERE host = 'laptop' AND stage = 'publish'"),
                 what="laptop's publish step in the journal")
        wait_for((fleet.root / "cloud-push-blocked").exists, what="cloud's publish blocked in its pre-push hook")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        gate.unlink()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err

    run = history(fleet)["runs"][0]
    assert run["status"] == "interrupted" and run["exit_code"] == 130
    steps = steps_by(show(fleet, run["id"]))
    assert steps[("laptop", "publish")]["status"] == "ok"
    assert steps[("cloud", "publish")]["status"] == "interrupted"  # it never finished: not ok
    assert run["hosts"] == {"laptop": "ok", "cloud": "interrupted", "gpu": "not run"}  # gpu was never touched
    shown = fleet.agentsync("history.show", run["id"], env={"COLUMNS": "80"}).stdout
    assert re.search(r"│ gpu +│ not run +│", shown), shown
    assert not any((fleet.repo(h) / ".git" / "agentsync.lock").exists() for h in ("laptop", "cloud", "gpu"))


def test_resume_runs_only_the_host_that_failed(fleet):
    fleet.commit("laptop", "README.md", "laptop's README\n", "Rewrite README")
    (fleet.repo("gpu") / "README.md").write_text("gpu's own uncommitted README\n")
    inv = fleet.inventory()
    first = run_json(fleet, "sync-all", inventory=inv, code=1)
    assert {h["host"]: h["status"] for h in first["hosts"]} == {"laptop": "ok", "cloud": "ok", "gpu": "conflict"}

    fleet.git("gpu", "checkout", "--", "README.md")  # the user resolves the conflict on gpu
    cloud_head = fleet.commit("cloud", "later.md", "made after the first run\n", "Cloud, later")
    resumed = fleet.agentsync("sync-all", "--resume", "--json", inventory=inv)

    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert [h["host"] for h in report["hosts"]] == ["gpu"]  # only the host that failed
    assert report["resumed_from"] == first["run_id"]
    assert "resuming sync-all" in resumed.stderr and "gpu (conflict" in resumed.stderr
    assert fleet.head("gpu") == fleet.origin_head() == fleet.head("laptop")
    assert fleet.head("cloud") == cloud_head and fleet.git("laptop", "log", "--format=%s", "origin/main").count(
        "Cloud, later") == 0  # cloud was not touched: its new commit was not published
    assert [s["host"] for s in show(fleet, report["run_id"])["steps"]] == ["gpu", "gpu"]

    nothing = fleet.agentsync("sync-all", "--resume", inventory=inv)
    assert nothing.returncode == 0 and "nothing to resume" in nothing.stdout
    quiet = fleet.agentsync("sync-all", "--resume", "--json", inventory=inv)  # scripts still get a report
    assert quiet.returncode == 0 and "nothing to resume" in quiet.stderr
    empty = json.loads(quiet.stdout)
    assert empty["hosts"] == [] and empty["ok"] is True and empty["resumed_from"] == report["run_id"]


def test_resume_after_a_run_limited_with_hosts_still_runs_the_host_that_failed_before(fleet):
    fleet.commit("laptop", "README.md", "laptop's README\n", "Rewrite README")
    (fleet.repo("gpu") / "README.md").write_text("gpu's own uncommitted README\n")
    inv = fleet.inventory()
    first = run_json(fleet, "sync-all", inventory=inv, code=1)
    assert {h["host"]: h["status"] for h in first["hosts"]}["gpu"] == "conflict"
    limited = run_json(fleet, "sync-all", "--hosts", "laptop,cloud", inventory=inv)  # says nothing about gpu
    assert [h["host"] for h in limited["hosts"]] == ["laptop", "cloud"]
    assert run_json(fleet, "sync-all", "--dry-run", inventory=inv)["dry_run"] is True  # a dry run decides nothing

    fleet.git("gpu", "checkout", "--", "README.md")
    resumed = fleet.agentsync("sync-all", "--resume", "--json", inventory=inv)

    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert [h["host"] for h in report["hosts"]] == ["gpu"] and report["resumed_from"] == first["run_id"]
    assert "gpu (conflict" in resumed.stderr and "left alone (ended ok): laptop, cloud" in resumed.stderr
    assert fleet.head("gpu") == fleet.origin_head()


def test_standalone_results_and_push_code_are_journaled_per_host_under_the_runs_own_id(fleet):
    results = fleet.repo("gpu") / "results"
    results.mkdir()
    (results / "run1.csv").write_text("loss,0.1\n")
    (fleet.repo("laptop") / "notes.txt").write_text("not committed yet\n")
    inv = fleet.inventory({"laptop": {}, "gpu": {"results": [{"remote": "results", "local": "results"}]}},
                          transfers={"backup_dir": str(fleet.sandbox.hosts["gpu"].path("state"))})

    for task, stage, moved in (("results", "results", "results/run1.csv"), ("push-code", "push-code", "notes.txt")):
        report = run_json(fleet, task, "--host", "gpu", inventory=inv)
        run = history(fleet)["runs"][0]
        assert run["id"] == report["run_id"] and run["task"] == task  # one id: report, backups, history
        assert run["hosts"] == {"gpu": "ok"} and history(fleet, "--host", "gpu")["runs"][0]["id"] == run["id"]
        [step] = show(fleet, run["id"])["steps"]
        assert (step["host"], step["stage"], step["status"]) == ("gpu", stage, "ok")
        assert step["files"] >= 1 and step["bytes"] > 0 and step["duration_s"] is not None
        assert any("rsync" in c["command"] and c["exit_code"] == 0 for c in step["commands"])
        assert any(moved in str(t["changes"]) for t in step["data"]["transfers"]), step["data"]


def test_resume_without_an_earlier_sync_is_a_clear_usage_error(fleet):
    result = fleet.agentsync("sync-all", "--resume", inventory=fleet.inventory())
    assert result.returncode == 2
    assert "nothing to resume: no earlier sync-all" in result.stderr and "Traceback" not in result.stderr


def test_history_stats_and_export_cover_every_run(fleet):
    inv = fleet.inventory()
    fleet.commit("laptop", "a.md", "a\n", "A")
    run_json(fleet, "sync-all", inventory=inv)
    run_json(fleet, "health", inventory=inv)
    (fleet.repo("gpu") / "dirty.txt").write_text("untracked\n")
    run_json(fleet, "health", inventory=inv, code=1)

    stats = history(fleet) and run_json(fleet, "history.stats")
    assert stats["runs"] == 3 and stats["ok"] == 2 and stats["success_rate"] == round(2 / 3, 4)
    assert stats["tasks"]["health"] == {"runs": 2, "ok": 1, "success_rate": 0.5,
                                        "median_duration_s": stats["tasks"]["health"]["median_duration_s"]}
    medians = {(s["host"], s["stage"]): s for s in stats["steps"]}
    assert medians[("cloud", "converge")]["steps"] == 1 and medians[("cloud", "converge")]["median_duration_s"] > 0
    assert set(stats["last_success"]) == {"laptop", "cloud", "gpu"}
    assert stats["last_success"]["cloud"]["task"] == "health"  # the later of cloud's two successes

    listing = fleet.agentsync("history", "--limit", "2")
    assert listing.returncode == 0 and listing.stdout.count("health") == 2 and "sync-all" not in listing.stdout
    human = fleet.agentsync("history.stats")
    assert human.returncode == 0 and "3 runs" in human.stdout and "last success per host" in human.stdout
    bad = fleet.agentsync("history", "--status", "weird")
    assert bad.returncode == 2 and "one of: running, ok, failed" in bad.stderr

    out = fleet.root / "export.json"
    result = fleet.agentsync("history.export", str(out))
    assert result.returncode == 0, result.stderr
    exported = json.loads(out.read_text())
    assert [r["task"] for r in exported["runs"]] == ["sync-all", "health", "health"]  # oldest first
    assert exported["runs"][0]["steps"] and exported["runs"][0]["hosts"]


OPEN_AT_ONCE = """
import os, sys
from agentsync_fleet.journal.store import Journal, JournalError
ready, go, state = sys.argv[1:4]
open(ready, "w").close()
while not os.path.exists(go):
    pass
try:
    Journal.in_dir(state).close()
except JournalError as exc:
    print(exc.message)
    sys.exit(1)
"""


def test_processes_creating_the_journal_at_the_same_moment_all_open_it(tmp_path):
    """Two commands run for the first time at once (an agent and its operator): neither loses its journal."""
    for attempt in range(10):  # the race is narrow: before the fix about one round in three lost a journal
        state, go = tmp_path / f"state-{attempt}", tmp_path / f"go-{attempt}"
        readies = [tmp_path / f"ready-{attempt}-{i}" for i in range(12)]
        procs = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, str(r), str(go), str(state)],
                                  stdout=subprocess.PIPE, text=True) for r in readies]
        wait_for(lambda readies=readies: all(r.exists() for r in readies), what="every process at the start line")
        go.touch()
        outcomes = [(p.wait(timeout=60), p.stdout.read()) for p in procs]
        assert all(code == 0 for code, _ in outcomes), outcomes
