"""`results` on a warm master costs the host three commands: take the lock (asking which rsync the host has in
the same round trip), rsync, release the lock. Counted from the host's own sshd log, so an extra round trip
(the version check on its own, a second connection) shows up as a failure here, not only in the benchmark."""

from __future__ import annotations

from pathlib import Path

from rsync_support import inventory, run


def sessions(fleet, host: str) -> list[str]:
    """The commands sshd started on `host` so far (LogLevel VERBOSE logs each session)."""
    log = (Path(fleet.sandbox.hosts[host].dir) / "sshd.log").read_text()
    return [line for line in log.splitlines() if "Starting session: command" in line]


def test_results_takes_the_lock_and_checks_rsync_in_one_round_trip(fleet):
    (fleet.repo("gpu") / "results").mkdir()
    (fleet.repo("gpu") / "results" / "score.txt").write_text("0.93\n")
    inv = inventory(fleet, {"laptop": {}, "gpu": {"results": [{"remote": "results/", "local": "results/gpu/"}]}})
    assert fleet.agentsync("health", "--json", inventory=inv).returncode in (0, 1)  # the master is up: warm
    before = len(sessions(fleet, "gpu"))

    code, data = run(fleet, "results", inv=inv)

    assert code == 0, data
    assert (fleet.repo("laptop") / "results" / "gpu" / "score.txt").read_text() == "0.93\n"
    assert len(sessions(fleet, "gpu")) - before == 3  # lock + rsync version, rsync, release


def test_a_dry_run_takes_no_lock_and_still_checks_rsync(fleet):
    (fleet.repo("gpu") / "results").mkdir()
    inv = inventory(fleet, {"laptop": {}, "gpu": {"results": [{"remote": "results/", "local": "results/gpu/"}]}})
    assert fleet.agentsync("health", "--json", inventory=inv).returncode in (0, 1)
    before = len(sessions(fleet, "gpu"))

    code, data = run(fleet, "results", "--dry-run", inv=inv)

    assert code == 0, data
    assert len(sessions(fleet, "gpu")) - before == 2  # the rsync version on its own, then rsync -n
