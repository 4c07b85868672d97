"""A run longer than `lock_ttl` keeps its locks: its heartbeat refreshes them on every host it holds them, so
another controller (which can only judge a lock by its age on the host) refuses to start while it runs; a
holder that dies stops beating, and its locks go stale `lock_ttl` later. Real sshd hosts, two controllers."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import yaml
from conftest import AGENTSYNC
from test_locks import remote_lock, start_held_sync, wait_for

from agentsync_fleet.locks.heartbeat import Heartbeat, interval
from agentsync_fleet.locks.model import Holder

TTL = 10  # seconds: the heartbeat beats every 2.5 s
SHARED = ("cloud", "gpu")
# Controller B: another machine name (its own UTS namespace), so it cannot check A's process and judges A's
# locks by their age on the hosts only.
OTHER_CONTROLLER = ("unshare", "--uts", "sh", "-c", 'hostname controller-b && exec "$@"', "sh")


def held_run(fleet):
    """A sync-all that holds its locks until the test lets it go (its push waits on a gate: the command
    timeout is raised so the push outlasts the test's waiting)."""
    defaults = {"branch": "main", "connect_timeout": 3, "command_timeout": 120}
    return start_held_sync(fleet, fleet.inventory(lock_ttl=f"{TTL}s", defaults=defaults))


def other_controller_syncs(fleet, inv) -> subprocess.CompletedProcess:
    data = yaml.safe_load(inv.read_text())
    data["hosts"] = {name: spec for name, spec in data["hosts"].items() if name in SHARED}
    other = fleet.root / "controller-b.yaml"
    other.write_text(yaml.safe_dump(data))
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state-b")}
    return subprocess.run([*OTHER_CONTROLLER, *AGENTSYNC, "sync-all", "--inventory", str(other)],
                          capture_output=True, text=True, env=env, timeout=120)


def lock_age(fleet, host: str) -> float:
    """The lock's age as its host tells it (sandbox hosts share this machine's clock)."""
    return time.time() - remote_lock(fleet, host).stat().st_mtime


def test_a_run_longer_than_lock_ttl_keeps_its_locks_and_another_controller_is_refused(fleet):
    first, inv, gate = held_run(fleet)
    try:
        wait_for(lambda: all(remote_lock(fleet, h).exists() for h in SHARED), what="the first run's locks")
        taken = time.monotonic()
        held = {h: remote_lock(fleet, h).read_text() for h in SHARED}
        created = {h: remote_lock(fleet, h).stat().st_mtime for h in SHARED}
        # Past 2 × lock_ttl, with each lock refreshed more than lock_ttl after it was taken.
        wait_for(lambda: time.monotonic() - taken > 2 * TTL and
                 all(remote_lock(fleet, h).stat().st_mtime > created[h] + TTL for h in SHARED),
                 timeout=120, what="the run to outlive lock_ttl, its locks refreshed")
        assert all(lock_age(fleet, h) < TTL for h in SHARED)

        second = other_controller_syncs(fleet, inv)

        assert second.returncode == 1, second.stdout + second.stderr
        assert "the fleet is locked on" in second.stderr and "took over" not in second.stderr
        assert {h: remote_lock(fleet, h).read_text() for h in SHARED} == held  # the same record: never replaced
    finally:
        gate.unlink()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert not any(remote_lock(fleet, h).exists() for h in SHARED)  # released at the end, as always


def test_when_the_holder_dies_its_heartbeat_stops_and_its_locks_go_stale_after_lock_ttl(fleet):
    first, inv, gate = held_run(fleet)
    try:
        wait_for(lambda: all(remote_lock(fleet, h).exists() for h in SHARED), what="the first run's locks")
        dead = Holder.from_json(remote_lock(fleet, "cloud").read_text())
        os.kill(first.pid, signal.SIGKILL)  # kill -9: no release, no more beats
        first.communicate(timeout=60)
        # The host reads the age in whole seconds (`date +%s` minus `stat -c %Y`): it is past TTL for certain once
        # the exact age is past TTL + 1 (at exactly TTL + 0.3 it can read TTL, not yet stale).
        wait_for(lambda: all(lock_age(fleet, h) > TTL + 1 for h in SHARED), timeout=120, what="the locks to age")

        second = other_controller_syncs(fleet, inv)
    finally:
        gate.unlink()  # the dead run's git push (its pre-push hook waits on the gate) may end now

    assert second.returncode == 0, second.stdout + second.stderr
    assert "took over a stale lock on cloud" in second.stderr and "took over a stale lock on gpu" in second.stderr
    assert "older than lock_ttl (10s)" in second.stderr
    assert f"pid {dead.pid}" in second.stderr


# ---------------------------------------------------------------- the heartbeat itself


def test_the_heartbeat_beats_until_stopped_and_a_failing_beat_is_only_missed():
    calls: list[float] = []
    third = threading.Event()

    def beat() -> None:
        calls.append(time.monotonic())
        if len(calls) == 3:
            third.set()
        if len(calls) == 1:
            raise OSError("a host that did not answer")

    beating = Heartbeat(beat, 0.05).start()
    assert third.wait(30), calls  # the failed first beat did not stop the others
    assert beating.stop(wait=30)  # the thread has ended: no beat can start any more
    assert beating.beats == len(calls) - 1 >= 2


def test_four_beats_per_lock_ttl_and_never_more_than_one_a_second():
    assert interval(7200) == 1800 and interval(6) == 1.5 and interval(2) == 1.0
