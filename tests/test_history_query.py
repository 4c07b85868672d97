"""The journal's pure questions (stats, resume, summaries) and its SQLite store, without a fleet."""

from __future__ import annotations

import os
import socket
import subprocess
import threading

from agentsync_fleet.journal import query
from agentsync_fleet.journal.recorder import RunRecorder, step_row
from agentsync_fleet.journal.store import Journal
from agentsync_fleet.records import CommandRecord, HostSync, StepRecord


def run(id_: str, status: str = "ok", task: str = "sync-all", started: float = 100.0, ended: float | None = 110.0,
        **extra) -> dict:
    return {"id": id_, "task": task, "status": status, "started": started, "ended": ended, "args": {},
            "extra": extra}


def host(run_id: str, name: str, status: str = "ok", ended: float = 110.0, message: str = "") -> dict:
    return {"run_id": run_id, "host": name, "status": status, "ended": ended, "message": message}


def step(run_id: str, name: str, stage: str, status: str = "ok", duration: float = 1.0) -> dict:
    return {"run_id": run_id, "host": name, "stage": stage, "status": status, "duration_s": duration}


def test_stats_give_success_rate_median_step_times_and_last_success_per_host():
    runs = [run("r1", started=0, ended=10), run("r2", "failed", started=20, ended=24),
            run("r3", "ok", "health", started=30, ended=31), run("r4", "running", ended=None)]
    hosts = [host("r1", "cloud", ended=10), host("r2", "cloud", "conflict", ended=24), host("r3", "cloud", ended=31),
             host("r1", "gpu", ended=10), host("r2", "gpu", ended=24)]
    steps = [step("r1", "cloud", "converge", duration=1), step("r2", "cloud", "converge", "conflict", 3),
             step("r3", "cloud", "converge", duration=8), step("r1", "gpu", "converge", duration=2)]
    stats = query.stats(runs, hosts, steps)
    assert stats["runs"] == 4 and stats["finished"] == 3 and stats["ok"] == 2 and stats["success_rate"] == 0.6667
    assert stats["tasks"]["sync-all"] == {"runs": 3, "ok": 1, "success_rate": 0.5, "median_duration_s": 7.0}
    assert stats["steps"] == [
        {"host": "cloud", "stage": "converge", "action": "", "steps": 3, "ok": 2, "median_duration_s": 3},
        {"host": "gpu", "stage": "converge", "action": "", "steps": 1, "ok": 1, "median_duration_s": 2}]
    assert stats["last_success"] == {"cloud": {"at": 31, "run_id": "r3", "task": "health"},
                                     "gpu": {"at": 24, "run_id": "r2", "task": "sync-all"}}
    assert query.stats([], [], [])["success_rate"] is None


def test_step_medians_are_per_host_and_step_not_lumped_per_stage():
    """Two artifact entries of one host (a small config, a big model) are two steps of one stage."""
    steps = [{**step(f"r{i}", "cloud", "artifacts-up", duration=d), "action": action}
             for i in range(2) for action, d in (("up config → s3://b/c", 1.0), ("up models → s3://b/m", 100.0))]
    steps += [{**step("r0", "cloud", "preflight", duration=0.1), "action": "probe"},  # a dry run: no fetch
              {**step("r1", "cloud", "preflight", duration=2.0), "action": "probe + fetch"}]
    rows = {(r["stage"], r["action"]): r for r in query.step_medians(steps)}
    assert rows[("artifacts-up", "up config → s3://b/c")]["median_duration_s"] == 1.0
    assert rows[("artifacts-up", "up models → s3://b/m")]["median_duration_s"] == 100.0
    assert rows[("preflight", "probe + fetch")]["median_duration_s"] == 2.0 and len(rows) == 4


def test_resume_picks_hosts_that_did_not_end_ok_including_those_an_interrupted_run_never_finished():
    last = run("r9", "interrupted", hosts=["laptop", "cloud", "gpu", "review"])
    hosts = [host("r9", "laptop"), host("r9", "cloud", "conflict", message="files differ\nmore")]
    steps = [step("r9", "gpu", "preflight"), step("r9", "gpu", "publish", "ok")]
    plan = query.resume_plan(last, hosts, steps, ["laptop", "cloud", "gpu", "review", "new"])
    assert plan.run_id == "r9" and plan.done == ("laptop",)
    assert plan.rerun == {"cloud": "conflict: files differ", "gpu": "no result (run interrupted, last step publish ok)",
                          "review": "no result (run interrupted)"}  # "new" was not in that run
    assert list(query.resume_plan(last, hosts, steps, ["gpu"]).rerun) == ["gpu"]


def test_resume_takes_each_host_from_the_latest_run_that_included_it():
    full = (run("r1", "failed", hosts=["laptop", "cloud", "gpu"]),
            [host("r1", "laptop"), host("r1", "cloud", "failed", message="push refused"),
             host("r1", "gpu", "conflict", message="README")], [])
    limited = (run("r2", hosts=["laptop", "cloud"]), [host("r2", "laptop"), host("r2", "cloud")], [])
    plan = query.resume_across([limited, full], ["laptop", "cloud", "gpu", "new"])
    assert plan.run_id == "r1" and plan.rerun == {"gpu": "conflict: README"} and plan.done == ("laptop", "cloud")

    again = (run("r3", "failed", hosts=["cloud"]), [host("r3", "cloud", "failed", message="no")], [])
    plan = query.resume_across([again, limited, full], ["laptop", "cloud", "gpu"])
    assert plan.run_id == "r3" and plan.rerun == {"cloud": "failed: no", "gpu": "conflict: README; in run r1"}
    assert query.resume_across([limited], ["gpu"]) == query.ResumePlan("r2")  # never included: nothing to do
    assert query.resume_across([], ["gpu"]) is None


def test_only_real_sync_runs_with_rows_can_be_resumed():
    rows = [host("r", "cloud")]
    assert query.was_sync(run("r"), rows, [])
    assert not query.was_sync(run("r", task="pull"), rows, [])
    assert not query.was_sync(run("r", "refused"), rows, [])
    assert not query.was_sync({**run("r"), "args": {"dry_run": True}}, rows, [])
    assert not query.was_sync(run("r", "error"), [], [])


def test_summaries_show_each_hosts_final_status_or_its_worst_step():
    [summary] = query.summaries([run("r1")], [host("r1", "cloud")],
                                [step("r1", "cloud", "preflight"), step("r1", "gpu", "preflight"),
                                 step("r1", "gpu", "converge", "failed")])
    assert summary["hosts"] == {"cloud": "ok", "gpu": "failed"} and summary["hosts_ok"] == 1
    assert summary["duration_s"] == 10.0


def test_a_step_row_carries_exit_code_heads_bytes_files_and_the_error():
    record = StepRecord("publish", "publish local commits", status="failed", duration_s=0.5,
                        commands=[CommandRecord("git fetch", 0, 0.1), CommandRecord("git push", 1, 0.2, "denied")],
                        data={"head_before": "aaa", "head_after": "bbb", "bytes": 2048, "files": ["a", "b", "c"]})
    result = HostSync("cloud", status="failed", message="publish: push failed")
    row = step_row("r1", "cloud", record, result, ended=1000.0)
    assert row["exit_code"] == 1 and row["error"] == "publish: push failed" and row["started"] == 999.5
    assert (row["head_before"], row["head_after"], row["bytes"], row["files"]) == ("aaa", "bbb", 2048, 3)
    ok = step_row("r1", "cloud", StepRecord("converge", "x", commands=[CommandRecord("git merge-base", 1, 0.1)]),
                  HostSync("cloud", head_before="ccc"))
    assert ok["exit_code"] == 0 and ok["error"] == "" and ok["head_before"] == "ccc"  # an ok step exited fine


def test_rows_are_on_disk_as_soon_as_written_and_a_dead_process_run_becomes_interrupted(tmp_path):
    journal = Journal.in_dir(tmp_path)
    gone = subprocess.Popen(["true"])
    gone.wait()
    journal.start_run({"id": "r1", "task": "sync-all", "started": 1.0, "status": "running", "who": "me@here",
                       "controller": socket.gethostname(), "pid": gone.pid, "inventory": "/f.yaml",
                       "inventory_sha256": "00"})
    journal.add_step({"run_id": "r1", "host": "cloud", "stage": "preflight", "action": "probe", "status": "ok",
                      "ended": 5.0})
    other = Journal.in_dir(tmp_path)  # another process's view, before anything is closed
    assert [r["id"] for r in other.runs()] == ["r1"] and len(other.steps_of(["r1"])) == 1
    assert other.reconcile() == ["r1"]
    run_row = other.find("r1")
    assert run_row["status"] == "interrupted" and run_row["ended"] == 5.0
    assert other.find("r") == run_row and other.find("last") == run_row and other.find("x") is None


def test_a_live_run_is_left_running(tmp_path):
    recorder = RunRecorder("health", {"json": True}, run_id="live")

    class Inv:
        path = tmp_path / "fleet.yaml"
        sha256 = "ab"
        settings = {"state_dir": str(tmp_path / "state")}

    recorder.attach(Inv())
    threads = [threading.Thread(target=recorder.host_done, args=(HostSync(f"h{i}"),)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    journal = Journal.in_dir(tmp_path / "state")
    assert journal.reconcile() == []  # this very process is alive
    assert journal.find("live")["status"] == "running" and journal.find("live")["pid"] == os.getpid()
    assert len(journal.hosts_of(["live"])) == 8  # written from several threads at once
    recorder.finish("ok", 0)
    assert journal.find("live")["status"] == "ok" and journal.find("live")["exit_code"] == 0


def test_hosts_a_run_that_ended_early_never_acted_on_read_not_run_never_ok():
    interrupted = run("r1", "interrupted", hosts=["laptop", "cloud", "gpu", "box"])
    steps = [step("r1", "laptop", "preflight"), step("r1", "laptop", "publish"), step("r1", "cloud", "preflight"),
             step("r1", "cloud", "publish", "interrupted"), step("r1", "gpu", "preflight")]
    [summary] = query.summaries([interrupted], [], steps)
    assert summary["hosts"] == {"laptop": "ok", "cloud": "interrupted", "gpu": "not run", "box": "not run"}
    strict = run("r2", "failed", hosts=["laptop", "cloud"])
    rows = [host("r2", "laptop", "unreachable"), host("r2", "cloud", "skipped", message="not run: --strict, and "
                                                                                       "laptop is unreachable")]
    assert query.summaries([strict], rows, [])[0]["hosts"] == {"laptop": "unreachable", "cloud": "not run"}
    dry = run("r3", "ok", hosts=["gpu"])  # a finished run's read-only hosts did what was asked
    assert query.summaries([dry], [], [step("r3", "gpu", "preflight")])[0]["hosts"] == {"gpu": "ok"}
