"""A host keeps every job record it ever had (jobs are never pruned): listing its jobs must not cost a fork per
old record. Real sandbox host, real sshd; the host's `od` (run once per log's last line read) is counted."""

from __future__ import annotations

import contextlib
import time

import pytest
from jobs_support import JOBS_DIR, as_json, job_file, kill_all_jobs, start, wait_until, write_old_jobs

OLD = 2000
DAY = 24 * 3600


@pytest.fixture
def jobs_fleet(fleet):
    yield fleet
    kill_all_jobs(fleet)


@contextlib.contextmanager
def counted_od(fleet, host: str):
    """The host's `od` logs each run to a file on the controller; yields a function that reads the count."""
    shim = fleet.sandbox.hosts[host].bin_dir / "od"
    calls = fleet.root / f"od-calls-{host}"
    calls.write_text("")
    shim.write_text(f"#!/bin/sh\necho od >> {calls}\nexec /usr/bin/od \"$@\"\n")
    shim.chmod(0o755)
    try:
        yield lambda: len(calls.read_text().splitlines())
    finally:
        shim.unlink()


def old_records(fleet, recent: dict, count: int, ended: int, status: int = 0, first: int = 0) -> list[str]:
    """Old jobs' records beside a real one, as the start script and the wrapper wrote them long ago."""
    machine = job_file(fleet, "cloud", recent["id"], "machine").read_text().strip()
    return write_old_jobs(fleet.sandbox.hosts["cloud"].path(JOBS_DIR), machine, count, ended, status, first)


def test_listing_a_host_with_thousands_of_old_jobs_forks_only_for_the_jobs_it_shows(jobs_fleet):
    fleet = jobs_fleet
    inv = fleet.inventory({"cloud": {}})
    running = start(fleet, inv, "cloud", "echo working; sleep 600", "--name", "long")
    recent = start(fleet, inv, "cloud", "echo boom; exit 4", "--name", "recentfail")
    wait_until(lambda: job_file(fleet, "cloud", recent["id"], "exit").exists(), what="the recent job's end")
    three_days_ago = int(time.time()) - 3 * DAY
    old = old_records(fleet, recent, OLD, three_days_ago)
    old_failed = old_records(fleet, recent, 3, three_days_ago, status=2, first=OLD)
    shown = {running["id"], recent["id"]}

    with counted_od(fleet, "cloud") as od_runs:
        for _ in range(2):  # the first listing of this controller, then one after it (old ends journaled)
            before = od_runs()
            listed = as_json(fleet.agentsync("jobs", "--json", inventory=inv))
            assert {j["id"] for j in listed["jobs"]} == shown and not listed["problems"]
            assert od_runs() - before == len(shown)  # a last line for each job shown, none for the 2003 old

        before = od_runs()
        everything = {j["id"]: j for j in as_json(fleet.agentsync("jobs", "--all", "--json", inventory=inv))["jobs"]}
        assert set(everything) == shown | set(old) | set(old_failed)
        assert everything[old[7]]["label"] == "exited 0" and everything[old[7]]["last_line"] == "last words of old7"
        assert everything[old_failed[0]]["label"] == "exited 2"
        assert od_runs() - before == len(everything)  # --all asks for every last line

        before = od_runs()
        logs = fleet.agentsync("logs", old[1234], inventory=inv)
        assert logs.returncode == 0 and logs.stdout == "starting old1234\nlast words of old1234\n"
        assert fleet.agentsync("logs", "old1999", "--tail", "1", inventory=inv).stdout == "last words of old1999\n"
        assert od_runs() - before == 0  # finding a job by id or name lists only those it may name, the old briefly

        before = od_runs()
        report = as_json(fleet.agentsync("health", "--json", "--no-fetch", inventory=inv))
        cloud = next(h for h in report["hosts"] if h["host"] == "cloud")
        assert {j["id"] for j in cloud["jobs"]} == shown
        assert cloud["warnings"] == [f"job {recent['id']} (recentfail) exited 4: boom"]  # not the 3-day-old ones
        assert od_runs() - before == len(shown)

    wait = fleet.agentsync("wait", old[5], "--json", inventory=inv)
    assert wait.returncode == 0 and as_json(wait)["job"]["last_line"] == "last words of old5"


def test_a_job_that_ended_unseen_days_ago_is_still_journaled_with_its_last_line(jobs_fleet):
    fleet = jobs_fleet
    inv = fleet.inventory({"cloud": {}})
    recent = start(fleet, inv, "cloud", "echo fine", "--name", "recent")
    wait_until(lambda: job_file(fleet, "cloud", recent["id"], "exit").exists(), what="the job's end")
    now = int(time.time())
    assert fleet.agentsync("jobs", "--json", inventory=inv).returncode == 0  # listed: its ends are journaled
    listed = fleet.root / "state" / "jobs" / "listed" / "cloud"
    assert abs(int(listed.read_text()) - now) < 60
    listed.write_text(str(now - 5 * DAY))  # as if that listing was on Friday...
    weekend = old_records(fleet, recent, 1, now - 3 * DAY, status=1)  # ...and this job died on Saturday
    older = old_records(fleet, recent, 1, now - 6 * DAY, first=1)  # ended before Friday's listing: journaled then

    listing = as_json(fleet.agentsync("jobs", "--json", inventory=inv))
    assert [j["id"] for j in listing["jobs"]] == [recent["id"]]  # ended more than a day ago: not shown...
    history = as_json(fleet.agentsync("history", "--json", "--task", "jobs", inventory=inv))["runs"]
    steps = [s for run in history
             for s in as_json(fleet.agentsync("history.show", run["id"], "--json", inventory=inv))["steps"]]
    ends = {(s.get("data") or {}).get("job"): s for s in steps}
    assert weekend[0] in ends and older[0] not in ends  # ...but its end is journaled, once
    assert ends[weekend[0]]["commands"][0]["output_tail"] == "last words of old0"
