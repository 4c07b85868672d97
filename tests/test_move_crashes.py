"""A crash (`kill -9` of the run, of git itself: a power cut) leaves a record; the next run puts the checkout right.

The laptop's checkout can be stopped in the middle of writing the update's
files: a smudge filter on one path (`pause_filter`) waits there, so the test
can kill git half-way through `reset --keep`, as a power cut would.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import AGENTSYNC
from test_move_faults import full_snapshot
from test_move_interrupts import POINT_IDS, POINTS, gpu_at, no_leftovers, wait_for, work_in_place
from test_plan import push_to_origin
from test_sync import snapshot, sync

from agentsync_fleet.sandbox_fleet import git


def pause_filter(fleet, repo: Path, path: str) -> tuple[Path, Path]:
    """Checking out `path` in `repo` stops while `gate` exists; `reached` then holds the pid of the git
    writing it. Returns (gate, reached)."""
    gate, reached, script = fleet.root / "filter-gate", fleet.root / "filter-reached", fleet.root / "pause-filter"
    script.write_text(f"#!/bin/sh\nif [ -e {gate} ]; then echo $PPID > {reached}.tmp && mv {reached}.tmp {reached}\n"
                      f"  while [ -e {gate} ]; do sleep 0.1; done\nfi\nexec cat\n")
    script.chmod(0o755)
    git(repo, "config", "filter.pause.smudge", str(script))
    (repo / ".git" / "info").mkdir(exist_ok=True)
    (repo / ".git" / "info" / "attributes").write_text(f"{path} filter=pause\n")
    gate.write_text("")
    return gate, reached


def start(fleet, inv, *args: str) -> subprocess.Popen:
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state"), "COLUMNS": "200"}
    return subprocess.Popen([*AGENTSYNC, *args, "--inventory", str(inv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def crash_mid_update(fleet, inv, repo: Path) -> None:
    """Run sync-all until git is half-way through the laptop's update, then kill -9 the run and that git."""
    gate, reached = pause_filter(fleet, repo, "pause.txt")
    proc = start(fleet, inv, "sync-all")
    wait_for(lambda: reached.exists() or proc.poll() is not None, "git to reach pause.txt")
    assert proc.poll() is None, proc.communicate()
    proc.kill()
    proc.communicate(timeout=30)
    pid = int(reached.read_text())
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "git"
    os.kill(pid, signal.SIGKILL)  # git dies mid-update: a power cut
    gate.unlink()


def test_a_crash_mid_update_without_a_stash_is_put_right_by_the_next_sync(fleet):
    push_to_origin(fleet, {"README.md": "upstream README\n", "pause.txt": "paused\n", "zz_new.txt": "new\n"},
                   "Upstream")
    repo = fleet.repo("laptop")
    (repo / "strategies" / "momentum.py").write_text("WINDOW = 5\n")  # untouched by the update: no stash
    (repo / "notes.txt").write_text("mine\n")
    before = full_snapshot(fleet, "laptop")
    inv = fleet.inventory({"laptop": {}, "cloud": {}})

    crash_mid_update(fleet, inv, repo)

    assert (repo / "README.md").read_text() == "upstream README\n"  # half-applied: the update's file is there
    assert fleet.head("laptop") == before["head"] and (repo / ".git" / "index.lock").exists()
    health = fleet.agentsync("health", "--hosts", "laptop", "--no-fetch", inventory=inv)
    assert health.returncode == 1 and "cut off" in health.stdout, health.stdout

    code, hosts = sync(fleet, inv)

    assert code == 0, hosts["laptop"]
    assert fleet.head("laptop") == fleet.head("cloud") == fleet.origin_head()
    healed = " ".join(hosts["laptop"]["healed"])
    assert "put back 1 file(s) the cut-off update" in healed and "README.md" in healed and "index.lock" in healed, healed
    assert (repo / "strategies" / "momentum.py").read_text() == "WINDOW = 5\n"
    assert (repo / "notes.txt").read_text() == "mine\n"
    assert (repo / "pause.txt").read_text() == "paused\n" and (repo / "zz_new.txt").read_text() == "new\n"
    assert git(repo, "status", "--porcelain") == before["status"]
    assert not (repo / ".git" / "agentsync-move.json").exists() and not (repo / ".git" / "index.lock").exists()


def test_recover_after_a_crash_mid_update_puts_the_checkout_back_byte_for_byte(fleet):
    """With an untracked file the update was replacing with the very same bytes (removed just before the reset,
    `steps.git.reset_keep(replace=...)`): it is written back, untracked, as it was."""
    push_to_origin(fleet, {"README.md": "upstream README\n", "pause.txt": "paused\n", "zz_new.txt": "new\n"},
                   "Upstream")
    repo = fleet.repo("laptop")
    (repo / "zz_new.txt").write_text("new\n")  # untracked, identical to what the update brings
    (repo / "strategies" / "momentum.py").write_text("WINDOW = 5\n")
    before = full_snapshot(fleet, "laptop")
    inv = fleet.inventory({"laptop": {}})

    crash_mid_update(fleet, inv, repo)
    assert not (repo / "zz_new.txt").exists()  # removed for the reset to write it: only the record knows it
    recovered = fleet.agentsync("recover", "--hosts", "laptop", inventory=inv)

    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "put back 1 untracked file(s)" in recovered.stdout and "index.lock" in recovered.stdout
    assert full_snapshot(fleet, "laptop") == before
    assert not (repo / ".git" / "agentsync-move.json").exists() and not (repo / ".git" / "index.lock").exists()


@pytest.mark.parametrize("healer", ["sync-all", "recover"])
@pytest.mark.parametrize("point", POINTS, ids=POINT_IDS)
def test_kill_9_at_each_point_is_reported_by_health_then_healed(fleet, point, healer):
    before, stop = gpu_at(fleet, point)
    snap = snapshot(fleet, "gpu")
    inv = fleet.inventory({"laptop": {}, "gpu": {}})
    proc = stop.start(inv, "sync-all")
    proc.kill()
    proc.communicate(timeout=30)
    stop.crash()

    health = fleet.agentsync("health", "--hosts", "gpu", "--no-fetch", inventory=inv)
    assert health.returncode == 1 and "cut off" in health.stdout, health.stdout

    if healer == "recover":
        recovered = fleet.agentsync("recover", "--hosts", "gpu", inventory=inv)
        assert recovered.returncode == 0, recovered.stdout + recovered.stderr
        work_in_place(fleet, before)
        no_leftovers(fleet)
        if point in ("after the stash", "during the rebase"):  # HEAD never moved: exactly as it was
            assert snapshot(fleet, "gpu") == snap
    code, hosts = sync(fleet, inv)  # the killed run's locks are stale (its process is gone): taken over

    assert code == 0, hosts["gpu"]
    assert bool(hosts["gpu"]["healed"]) == (healer == "sync-all"), hosts["gpu"]["healed"]
    assert fleet.head("gpu") == fleet.head("laptop") == fleet.origin_head()
    work_in_place(fleet, before)
    no_leftovers(fleet)
