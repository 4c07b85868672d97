"""Hosts as real ones are: no procps, busybox tools, a /proc nobody can list (and, below, other login shells,
chatty dotfiles). Each is a real sshd host in its own namespaces (conftest.py); nothing here is mocked."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

RUNTIME = "apps/runtime/v7_runtime.py"
TOKEN = "agentsync-test-proc-hosts"
PROC = f"python3 -c 'import time; time.sleep(600)' {TOKEN} v7_runtime"
GUARD = {"guard": {"processes": ["v7_runtime"], "critical_files": [RUNTIME]}}


def kill_test_processes() -> None:
    """From the controller, which sees every sandbox host's processes: ours carry TOKEN on their command line."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if TOKEN.encode() in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def hosts(fleet):
    """The fleet with slim, bbox and blind cloned from this test's origin."""
    for name in ("slim", "bbox", "blind"):
        fleet.prepare(name)
    yield fleet
    kill_test_processes()


def run_json(fleet, task: str, inv: Path, *flags: str) -> tuple[int, dict]:
    result = fleet.agentsync(task, "--json", *flags, inventory=inv)
    assert result.stdout.startswith("{"), result.stderr
    data = json.loads(result.stdout)
    return result.returncode, {h["host"]: h for h in data["hosts"]}


def critical_change(fleet) -> str:
    return fleet.commit("laptop", RUNTIME, "# v7.1\n", "Update the runtime")


@pytest.mark.parametrize("name", ["slim", "bbox"])
def test_without_procps_the_guard_still_sees_the_process_and_sync_all_refuses_the_critical_file(hosts, name):
    fleet = hosts
    fleet.start_process(name, PROC)
    inv = fleet.inventory({"laptop": {}, name: GUARD})

    code, health = run_json(fleet, "health", inv)
    assert [p["pattern"] for p in health[name]["processes"]] == ["v7_runtime"], health[name]
    assert TOKEN in health[name]["processes"][0]["command"] and health[name]["guard"]["method"] == "proc"

    before = (fleet.repo(name) / RUNTIME).read_text()
    critical_change(fleet)
    code, result = run_json(fleet, "sync-all", inv)
    assert code == 1 and result[name]["status"] == "guarded", result[name]
    assert "v7_runtime" in result[name]["message"] and RUNTIME in result[name]["message"]
    assert (fleet.repo(name) / RUNTIME).read_text() == before


def test_a_host_where_processes_cannot_be_listed_fails_the_gate_and_keeps_its_critical_files(hosts):
    fleet = hosts
    inv = fleet.inventory({"laptop": {}, "blind": GUARD})

    code, health = run_json(fleet, "health", inv)
    assert code == 1 and not health["blind"]["passed"]
    failure = next(f for f in health["blind"]["failures"] if f.startswith("cannot see processes: "))
    assert "/proc" in failure, failure
    human = fleet.agentsync("health", inventory=inv)
    assert "cannot see processes" in human.stdout

    before = (fleet.repo("blind") / RUNTIME).read_text()
    new = critical_change(fleet)
    code, result = run_json(fleet, "sync-all", inv)
    assert code == 1 and result["blind"]["status"] == "guarded", result["blind"]
    assert "cannot see processes" in result["blind"]["message"]
    assert (fleet.repo("blind") / RUNTIME).read_text() == before

    code, result = run_json(fleet, "sync-all", inv, "--allow-running")
    assert code == 0 and result["blind"]["status"] == "ok", result["blind"]
    assert fleet.head("blind") == new
    assert any("cannot be seen" in w for w in result["blind"]["warnings"])


def test_a_blind_host_whose_update_leaves_critical_files_alone_is_synced(hosts):
    fleet = hosts
    inv = fleet.inventory({"laptop": {}, "blind": GUARD})
    new = fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    code, result = run_json(fleet, "sync-all", inv)
    assert code == 0 and fleet.head("blind") == new, result["blind"]
