"""What the controller remembers of the hosts' jobs, on real sandbox hosts: `jobs` and `health` journal a job's
end the first time they see it (once), and `health` shows a job that died only if it died since its last look."""

from __future__ import annotations

import pytest
from jobs_support import as_json, inventory, job_file, kill_all_jobs, start, wait_until


@pytest.fixture
def jobs_fleet(fleet, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(fleet.root / "laptop-state"))
    yield fleet
    kill_all_jobs(fleet)


def ended_on_host(fleet, host: str, job: dict) -> None:
    """Wait for the job's exit status on its host's disk (looking at no agentsync command, which would journal)."""
    wait_until(lambda: job_file(fleet, host, job["id"], "exit").exists(), what=f"job {job['id']} to end")


def end_steps(fleet, inv, job_id: str) -> list[tuple[str, str]]:
    """(task, action) of every journaled step that records this job's end, over the whole history."""
    runs = as_json(fleet.agentsync("history", "--json", inventory=inv))["runs"]
    found = []
    for run in runs:
        detail = as_json(fleet.agentsync("history.show", run["id"], "--json", inventory=inv))
        found += [(run["task"], s["action"]) for s in detail["steps"]
                  if (s.get("data") or {}).get("job") == job_id and not s["action"].startswith("start job")]
    return found


def health_warnings(fleet, inv, host: str) -> list[str]:
    report = as_json(fleet.agentsync("health", "--json", "--no-fetch", inventory=inv))
    return next(h for h in report["hosts"] if h["host"] == host)["warnings"]


def test_jobs_and_health_journal_each_job_end_they_see_first_and_only_once(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    seen_by_jobs = start(fleet, inv, "cloud", "echo hi", "--name", "quick")
    ended_on_host(fleet, "cloud", seen_by_jobs)
    for _ in range(2):
        assert fleet.agentsync("jobs", "--json", inventory=inv).returncode == 0
    fleet.agentsync("health", "--json", "--no-fetch", inventory=inv)
    assert end_steps(fleet, inv, seen_by_jobs["id"]) == [("jobs", f"job quick ({seen_by_jobs['id']}) exited 0")]

    seen_by_health = start(fleet, inv, "gpu", "exit 4", "--name", "quickfail")
    ended_on_host(fleet, "gpu", seen_by_health)
    fleet.agentsync("health", "--json", "--no-fetch", inventory=inv)
    assert fleet.agentsync("jobs", "--json", inventory=inv).returncode == 0
    fleet.agentsync("health", "--json", "--no-fetch", inventory=inv)
    assert end_steps(fleet, inv, seen_by_health["id"]) == [("health", f"job quickfail ({seen_by_health['id']}) "
                                                                      "exited 4")]

    waited = start(fleet, inv, "cloud", "exit 0", "--name", "waited")
    assert fleet.agentsync("wait", waited["id"], inventory=inv).returncode == 0
    assert fleet.agentsync("jobs", "--json", inventory=inv).returncode == 0  # wait journaled it: jobs does not
    assert end_steps(fleet, inv, waited["id"]) == [("wait", f"job waited ({waited['id']}) exited 0")]


def test_health_shows_a_job_that_died_since_its_last_look_once_and_a_lost_job_every_time(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    first = start(fleet, inv, "cloud", "echo boom; exit 3", "--name", "broken")
    ended_on_host(fleet, "cloud", first)
    shown = f"job {first['id']} (broken) exited 3: boom"
    assert shown in health_warnings(fleet, inv, "cloud")
    assert shown not in health_warnings(fleet, inv, "cloud")  # seen at the last look
    people = fleet.agentsync("health", "--no-fetch", inventory=inv)
    assert "broken" not in people.stdout

    second = start(fleet, inv, "cloud", "echo again; exit 5", "--name", "broken2")
    ended_on_host(fleet, "cloud", second)
    lost = start(fleet, inv, "cloud", "sleep 300", "--name", "vanished")
    wrapper_pid = job_file(fleet, "cloud", lost["id"], "wrapper").read_text().split()[0]
    fleet.sandbox.ssh("cloud", f"kill -KILL {wrapper_pid} -{lost['pgid']}")
    wait_until(lambda: not fleet.sandbox.ssh("cloud", f"kill -0 {wrapper_pid} 2>/dev/null && echo up || true",
                                             check=False).strip(), what="the wrapper gone")
    warnings = health_warnings(fleet, inv, "cloud")
    assert f"job {second['id']} (broken2) exited 5: again" in warnings and shown not in warnings
    assert f"job {lost['id']} (vanished) lost" in warnings
    again = health_warnings(fleet, inv, "cloud")
    assert f"job {lost['id']} (vanished) lost" in again  # lost stays shown: it is a problem until looked into
    assert not any("broken" in w for w in again)

    elsewhere = fleet.agentsync("health", "--json", "--no-fetch", inventory=inv,  # another controller: its own looks
                                env={"AGENTSYNC_STATE_DIR": str(fleet.root / "other-laptop")})
    cloud = next(h for h in as_json(elsewhere)["hosts"] if h["host"] == "cloud")
    assert shown in cloud["warnings"] and f"job {second['id']} (broken2) exited 5: again" in cloud["warnings"]
