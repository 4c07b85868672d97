"""Readable at 80 columns: golden text of history.show at 80 columns, no zero-width column, no split hash."""

from __future__ import annotations

import re
from pathlib import Path

from agentsync_fleet.output.history import _args, render_run

GOLDEN = Path(__file__).parent / "golden"
HEAD_A, HEAD_B = "4943d729aa11bb22cc33dd44ee55ff6677889900", "452e7fb7aa11bb22cc33dd44ee55ff6677889900"
ERROR = "uncommitted edits conflict with incoming commits; nothing was changed: strategies/momentum.py"


def step(host: str, stage: str, status: str, error: str = "", **extra) -> dict:
    return {"run_id": "20261121-110229-35c91f", "host": host, "stage": stage, "action": f"{stage} the checkout",
            "status": status, "duration_s": 0.4, "exit_code": 1 if error else 0, "head_before": HEAD_A,
            "head_after": HEAD_B if not error else "", "bytes": None, "files": None, "error": error,
            "commands": [], **extra}


RUN = {
    "task": "sync-all", "id": "20261121-110229-35c91f", "status": "failed", "exit_code": 1, "who": "ann@laptop",
    "pid": 4242, "controller": "laptop", "started": 1763722949.0, "ended": 1763722950.5, "duration_s": 1.5,
    "inventory": "/home/ann/fleet.yaml", "inventory_sha256": "ab" * 32,
    "args": {"from_": "cloud", "dry_run": False, "hosts": "cloud,gpu"}, "message": "",
    "hosts": [{"host": "cloud", "status": "conflict", "head_before": HEAD_A, "head_after": HEAD_A, "pulled": 0,
               "pushed": 0, "duration_s": 0.5, "message": ERROR, "warnings": []},
              {"host": "gpu", "status": "ok", "head_before": HEAD_A, "head_after": HEAD_B, "pulled": 1,
               "pushed": 0, "duration_s": 0.4, "message": "", "warnings": []}],
    "steps": [step("gpu", "converge", "ok"), step("cloud", "converge", "conflict", ERROR)],
}


def render(monkeypatch, capsys, columns: int) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    monkeypatch.setenv("TZ", "UTC")
    render_run(RUN)
    return capsys.readouterr().out


def test_history_show_at_80_columns_matches_its_golden_text_with_the_error_readable(monkeypatch, capsys):
    text = render(monkeypatch, capsys, 80)
    assert text == (GOLDEN / "history_show_80.txt").read_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    assert f"cloud converge: {ERROR}" in " ".join(text.split())  # whole, below the table, never zero-width
    assert "  cloud: uncommitted edits" in text  # the host's message too
    assert "452e7fb7" in text and not re.search(r"\b452e7f\b|\b4943d7\b", text)  # hashes never split
    assert "--from cloud" in text and "--from-" not in text  # arguments as typed


def test_history_show_wide_keeps_the_error_column(monkeypatch, capsys):
    text = render(monkeypatch, capsys, 200)
    assert "error" in text and ERROR in text


def test_recorded_arguments_read_as_typed():
    assert _args({"from_": "cloud", "dry_run": True, "inventory": "x", "hosts": None}) == "--dry-run --from cloud"


def health_report():
    from agentsync_fleet.records import (
        GpuInfo,
        HealthReport,
        HostHealth,
        ProcessInfo,
        RepoState,
        SystemState,
        ToolState,
    )

    repo = RepoState(present=True, branch="main", head=HEAD_B, upstream="origin/main", ahead=0, behind=0, fetched=True)
    cloud = HostHealth("cloud", "root@178.156.136.185", True, latency_ms=12.0, repo=repo,
                       processes=(ProcessInfo("v7_runtime", 4242, 7260, "python3 apps/runtime/v7_runtime.py"),
                                  ProcessInfo("dashboard", 4243, 7200, "python3 apps/dashboard/app.py")),
                       system=SystemState(disk_free_bytes=52_000_000_000, load=(0.42, 0.3, 0.2)))
    gpu = HostHealth("gpu", "zerotier-remote", True, latency_ms=48.0,
                     repo=RepoState(present=True, branch="main", head=HEAD_A, upstream="origin/main", ahead=0,
                                    behind=2, dirty=3, fetched=True),
                     system=SystemState(disk_free_bytes=1_200_000_000_000, load=(3.1, 2.0, 1.0)),
                     gpu=ToolState("ok", gpus=(GpuInfo("NVIDIA GeForce RTX 4090", 20480, 24564, 97, 71),)),
                     zerotier=ToolState("ok"), failures=("behind origin by 2 commits", "3 uncommitted files"))
    return HealthReport((cloud, gpu), duration_s=0.61, inventory="/home/ann/fleet.yaml")


def test_health_at_80_columns_matches_its_golden_text_and_breaks_no_word_or_hash(monkeypatch, capsys):
    from agentsync_fleet.output.health import render_health

    monkeypatch.setenv("COLUMNS", "80")
    render_health(health_report())
    text = capsys.readouterr().out
    assert text == (GOLDEN / "health_80.txt").read_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    for whole in ("v7_runtime", "452e7fb7", "4943d729", "up to date", "dashboard", "root@178.156.136.185"):
        assert whole in text, whole


CLAIM = ("incoming commits touch 'strategies/', claimed by ann@laptop since 2025-11-21 09:00 UTC, last check-in "
         "2025-11-21 10:40 UTC: \"momentum rework\": strategies/momentum.py (by bob@fleet.example)")
CONFLICT = ("uncommitted edits conflict with incoming commits; nothing was changed")


def sync_report():
    from agentsync_fleet.records import HostSync, StepRecord, SyncReport

    held = "push-code: held back (secrets, never sent): .env.local, config/credentials.json"
    laptop = HostSync("laptop", head_before=HEAD_A, head_after=HEAD_B, pushed=1, duration_s=0.4, warnings=[CLAIM])
    cloud = HostSync("cloud", head_before=HEAD_A, head_after=HEAD_B, pulled=1, pushed=1, duration_s=1.2,
                     warnings=["git_access: false: this host cannot reach origin; it is relayed through the local "
                               "host (patches in, a git bundle back)", CLAIM, held])
    gpu = HostSync("gpu", head_before=HEAD_A, head_after=HEAD_B, pulled=2, duration_s=0.9, warnings=[held, CLAIM],
                   worktrees=[{"branch": "validation", "status": "ok", "merged": 2}],
                   steps=[StepRecord("push-code", "push-code", detail="3 file(s), 12.4 KiB, 1 backed up, 2 held back",
                                     data={"transfers": []})])
    box = HostSync("box", status="conflict", head_before=HEAD_A, head_after=HEAD_A, duration_s=0.5,
                   message=CONFLICT, files=["strategies/momentum.py", "apps/runtime/v7_runtime.py"])
    return SyncReport("20261121-110229-35c91f", "/home/ann/fleet.yaml", False, (laptop, cloud, gpu, box), (), 3.1,
                      HEAD_B)


def test_sync_all_summary_at_80_columns_matches_its_golden_text_with_each_warning_once(monkeypatch, capsys):
    from agentsync_fleet.output.sync import render_summary

    monkeypatch.setenv("COLUMNS", "80")
    render_summary(sync_report())
    text = capsys.readouterr().out
    assert text == (GOLDEN / "sync_all_80.txt").read_text()
    assert all(len(line) <= 80 for line in text.splitlines())
    flat = " ".join(text.split())
    assert flat.count("incoming commits touch 'strategies/'") == 1 and "! laptop, cloud, gpu: incoming" in flat
    assert flat.count("held back (secrets, never sent)") == 1 and "! cloud, gpu: push-code: held back" in flat
    assert flat.count("git_access: false") == 1
    for whole in ("452e7fb7", "4943d729", "strategies/momentum.py", "apps/runtime/v7_runtime.py",
                  "bob@fleet.example", ".env.local"):
        assert whole in text, whole
    assert f"box conflict: {CONFLICT}" in flat and "files: strategies/momentum.py, apps/runtime/v7_runtime.py" in flat


def test_history_at_80_columns_says_where_the_columns_it_leaves_out_are(monkeypatch, capsys):
    from agentsync_fleet.output.history import render_runs

    row = {"id": RUN["id"], "task": "pull", "duration_s": 1.5, "status": "interrupted", "who": "ann@laptop",
           "args": {"hosts": "cloud,gpu"}, "hosts": {"cloud": "interrupted", "gpu": "not run"}}
    monkeypatch.setenv("COLUMNS", "80")
    render_runs([row], "/home/ann/.local/state/agentsync/journal.sqlite3")
    narrow = capsys.readouterr().out
    assert all(len(line) <= 80 for line in narrow.splitlines()), narrow
    assert "who, arguments: agentsync history.show RUN" in narrow and "│ gpu:not run " in narrow
    monkeypatch.setenv("COLUMNS", "160")
    render_runs([row], "/home/ann/.local/state/agentsync/journal.sqlite3")
    wide = capsys.readouterr().out
    assert "--hosts cloud,gpu" in wide and "ann@laptop" in wide and "who, arguments:" not in wide


def test_history_show_prints_a_warning_several_hosts_had_once_with_their_names(monkeypatch, capsys):
    hosts = [{**h, "warnings": [CLAIM] + (["git_access: false: relayed through the local host"]
                                           if h["host"] == "cloud" else [])} for h in RUN["hosts"]]
    for columns in (80, 200):
        monkeypatch.setenv("COLUMNS", str(columns))
        render_run({**RUN, "hosts": hosts})
        flat = " ".join(capsys.readouterr().out.split())
        assert flat.count("incoming commits touch 'strategies/'") == 1, (columns, flat)
        assert "cloud, gpu: ! incoming commits touch 'strategies/'" in flat
        assert "cloud: ! git_access: false" in flat
