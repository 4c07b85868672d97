"""A running job's `protect:` paths on real sandbox hosts: sync-all and push-code leave them alone while it runs
(like files of a running guard process, unless --allow-running), and always say that a job runs there."""

from __future__ import annotations

import json

import pytest
from jobs_support import inventory, kill_all_jobs, start, wait_for_state
from rsync_support import run, write

from agentsync_fleet.sandbox import MOUNT_POINT

GATED = f"echo started; while [ ! -e {MOUNT_POINT}/go ]; do sleep 0.1; done; echo finished"
MOMENTUM = "strategies/momentum.py"


@pytest.fixture
def jobs_fleet(fleet, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(fleet.root / "laptop-state"))
    yield fleet
    kill_all_jobs(fleet)


def sync(fleet, inv, *flags: str) -> tuple[int, dict]:
    result = fleet.agentsync("sync-all", "--json", *flags, inventory=inv)
    assert result.stdout.startswith("{"), result.stderr
    return result.returncode, {h["host"]: h for h in json.loads(result.stdout)["hosts"]}


def let_it_end(fleet, inv, host: str, job: dict) -> None:
    fleet.sandbox.hosts[host].path("go").touch()
    wait_for_state(fleet, inv, job["id"], lambda j: j["state"] != "running")


def test_sync_all_leaves_what_a_running_job_protects_and_says_which_jobs_run(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet, jobs={"train": {"run": GATED, "protect": ["strategies/"]}})
    job = start(fleet, inv, "gpu", "train")
    assert job["protect"] == ["strategies/"]
    plain = start(fleet, inv, "cloud", "sleep 300", "--name", "plain")  # protects nothing: only named
    before = (fleet.repo("gpu") / MOMENTUM).read_text()
    new = fleet.commit("laptop", MOMENTUM, "WINDOW = 30\n", "Tune strategy")

    code, hosts = sync(fleet, inv)

    assert code == 1
    gpu = hosts["gpu"]
    assert gpu["status"] == "guarded" and MOMENTUM in gpu["message"] and "'job train' runs" in gpu["message"]
    assert f"job train ({job['id']}) is running here; it protects strategies/" in gpu["warnings"]
    assert (fleet.repo("gpu") / MOMENTUM).read_text() == before and fleet.head("gpu") != new
    assert hosts["cloud"]["status"] == "ok" and fleet.head("cloud") == new
    assert f"job plain ({plain['id']}) is running here" in hosts["cloud"]["warnings"]

    code, hosts = sync(fleet, inv, "--allow-running")
    assert code == 0, hosts["gpu"]
    assert fleet.head("gpu") == new and (fleet.repo("gpu") / MOMENTUM).read_text() == "WINDOW = 30\n"
    assert any(w.startswith(f"--allow-running: changed {MOMENTUM} while pid {job['pid']}")
               for w in hosts["gpu"]["warnings"]), hosts["gpu"]["warnings"]

    let_it_end(fleet, inv, "gpu", job)
    newer = fleet.commit("laptop", MOMENTUM, "WINDOW = 31\n", "Tune again")
    code, hosts = sync(fleet, inv)
    assert code == 0 and fleet.head("gpu") == newer, hosts["gpu"]
    assert not any("job train" in w for w in hosts["gpu"]["warnings"])  # it ended: nothing held, nothing said


def test_push_code_holds_back_what_a_running_job_protects_and_says_a_job_runs(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    job = start(fleet, inv, "gpu", GATED, "--name", "eval", "--protect", "strategies/", "--protect", "notes/*.md")
    running = (fleet.repo("gpu") / MOMENTUM).read_text()
    write(fleet.repo("laptop") / MOMENTUM, "WINDOW = 300\n")
    write(fleet.repo("laptop") / "notes" / "a.md", "note\n")
    write(fleet.repo("laptop") / "apps" / "new_tool.py", "print('new')\n")

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inv)

    assert code == 0, data
    code_push = data["by_name"]["push-code"]
    assert sorted(h["path"] for h in code_push["held_back"]) == ["notes/a.md", MOMENTUM]
    assert all(h["reason"] == "guard" and h["pid"] == job["pid"] and f"agentsync job {job['id']}" in h["command"]
               for h in code_push["held_back"])
    assert f"job eval ({job['id']}) is running here; it protects strategies/, notes/*.md" in code_push["warnings"]
    assert (fleet.repo("gpu") / MOMENTUM).read_text() == running
    assert not (fleet.repo("gpu") / "notes" / "a.md").exists()
    assert (fleet.repo("gpu") / "apps" / "new_tool.py").read_text() == "print('new')\n"
    people = fleet.agentsync("push-code", "--host", "gpu", inventory=inv)
    assert f"held back (guarded: pid {job['pid']}" in people.stdout and "--allow-running" in people.stdout

    code, data = run(fleet, "push-code", "--host", "gpu", "--allow-running", inv=inv)
    assert code == 0 and (fleet.repo("gpu") / MOMENTUM).read_text() == "WINDOW = 300\n"
    assert any(w.startswith(f"--allow-running: sent notes/a.md, {MOMENTUM} while pid {job['pid']}")
               for w in data["by_name"]["push-code"]["warnings"])

    let_it_end(fleet, inv, "gpu", job)
    write(fleet.repo("laptop") / "notes" / "a.md", "a longer note\n")
    code, data = run(fleet, "push-code", "--host", "gpu", inv=inv)
    assert code == 0 and not data["by_name"]["push-code"]["held_back"]
    assert not any("job eval" in w for w in data["by_name"]["push-code"]["warnings"])
    assert (fleet.repo("gpu") / "notes" / "a.md").read_text() == "a longer note\n"


def test_protect_paths_are_checked_like_every_other_inventory_key_and_flag(jobs_fleet):
    fleet = jobs_fleet
    bad = inventory(fleet, jobs={"train": {"run": "true", "protect": ["/etc/passwd", "a/../b"], "protcet": []}})
    result = fleet.agentsync("jobs", inventory=bad)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert str(bad) in result.stderr and "host 'gpu', key 'jobs.train.protcet': unknown key" in result.stderr
    assert "jobs.train.protect" in result.stderr and "must be relative to the host's repo" in result.stderr
    not_a_list = inventory(fleet, jobs={"train": {"run": "true", "protect": "results/"}})
    assert "key 'jobs.train.protect'" in fleet.agentsync("jobs", inventory=not_a_list).stderr
    inv = inventory(fleet)
    for flag in ("../up", "/abs", "~/home"):
        refused = fleet.agentsync("run", "gpu", "true", "--protect", flag, inventory=inv)
        assert refused.returncode == 2 and f"--protect '{flag}' must be relative" in refused.stderr, refused.stderr
