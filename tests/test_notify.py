"""notify: after each sync-all the inventory's command gets the JSON report; its failure is never fatal."""

from __future__ import annotations

import json
import sys


def test_the_notify_command_receives_the_report_on_stdin(fleet):
    received = fleet.root / "received.json"
    inv = fleet.inventory(notify={"command": f"tee {received}"})
    fleet.commit("laptop", "laptop.md", "from the laptop\n", "Laptop work")

    result = fleet.agentsync("sync-all", "--json", inventory=inv)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    sent = json.loads(received.read_text())
    assert sent["run_id"] == report["run_id"] and sent["ok"] is True
    assert {h["host"]: h["status"] for h in sent["hosts"]} == {"laptop": "ok", "cloud": "ok", "gpu": "ok"}
    assert sent["hosts"] == report["hosts"]
    assert report["notify"]["ok"] is True and report["notify"]["command"] == f"tee {received}"
    history = json.loads(fleet.agentsync("history.show", report["run_id"], "--json").stdout)
    assert history["extra"]["notify"]["ok"] is True


def test_a_failing_or_hanging_notify_command_is_reported_and_the_sync_still_succeeds(fleet):
    inv = fleet.inventory(notify={"command": f"{sys.executable} -c 'import sys; sys.exit(\"webhook said no\")'"})
    failed = fleet.agentsync("sync-all", "--json", inventory=inv)
    assert failed.returncode == 0, failed.stderr
    assert "notify command" in failed.stderr and "failed: exited 1: webhook said no" in failed.stderr
    assert json.loads(failed.stdout)["notify"]["ok"] is False

    inv = fleet.inventory(notify={"command": "sleep 30", "timeout": 0.5})
    slow = fleet.agentsync("sync-all", inventory=inv)
    assert slow.returncode == 0 and "timed out after 0.5s" in slow.stderr

    inv = fleet.inventory(notify={"command": "/nonexistent/notifier --flag"})
    missing = fleet.agentsync("sync-all", inventory=inv)
    assert missing.returncode == 0 and "command not found: /nonexistent/notifier" in missing.stderr


def test_notify_runs_after_sync_all_only_not_after_a_dry_run(fleet):
    received = fleet.root / "received.json"
    inv = fleet.inventory(notify={"command": f"tee {received}"})
    assert fleet.agentsync("plan", inventory=inv).returncode == 0
    assert fleet.agentsync("sync-all", "--dry-run", inventory=inv).returncode == 0
    assert fleet.agentsync("pull", inventory=inv).returncode == 0
    assert not received.exists()
