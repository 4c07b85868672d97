"""A move is a transaction: a signal finishes it, a `kill -9` leaves a record the next run heals.

gpu's git can be stopped at a known point (`BLOCK_GIT_AT` in conftest): the
test waits until the move reached it, then signals or kills the run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
from conftest import AGENTSYNC, BLOCK_GIT_AT, BLOCKED_GIT_FAILS, BLOCKED_GIT_REACHED
from test_plan import push_to_origin
from test_sync import snapshot

from agentsync_fleet.sandbox_fleet import git


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def host_file(fleet, path: str):
    return fleet.sandbox.hosts["gpu"].path(path)


def gpu_with_work(fleet, tag: str = "") -> dict:
    """gpu behind origin, with an edit the update leaves alone, a staged file (so a stash), an untracked one."""
    push_to_origin(fleet, {"src/incoming.py": f"incoming = {tag!r}\n", "README.md": f"upstream README {tag}\n"},
                   f"Upstream {tag}")
    repo = fleet.repo("gpu")
    (repo / "strategies" / "momentum.py").write_text("WINDOW = 11\n")  # not touched by the update: stays put
    (repo / "staged.txt").write_text("staged work\n")
    git(repo, "add", "staged.txt")
    (repo / "untracked.log").write_text("untracked\n")
    return {"status": git(repo, "status", "--porcelain"), "staged": git(repo, "diff", "--cached", "--name-only"),
            "momentum": (repo / "strategies" / "momentum.py").read_bytes()}


def start_blocked(fleet, inv, at: str, *args: str) -> subprocess.Popen:
    host_file(fleet, BLOCK_GIT_AT).write_text(at)
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state"), "COLUMNS": "200"}
    proc = subprocess.Popen([*AGENTSYNC, *args, "--inventory", str(inv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    wait_for(lambda: host_file(fleet, BLOCKED_GIT_REACHED).exists() or proc.poll() is not None, f"git {at}")
    assert proc.poll() is None, proc.communicate()
    return proc


def no_leftovers(fleet) -> None:
    repo = fleet.repo("gpu")
    assert not (repo / ".git" / "agentsync-move.json").exists()
    assert not list((repo / ".git").glob("agentsync-scratch-*"))
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "stash", "list") == ""


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
@pytest.mark.parametrize("at", ["stash pop --index", "reset --quiet --keep"])
def test_a_signal_during_a_move_finishes_it_and_the_work_is_in_place(fleet, sig, code, at):
    before = gpu_with_work(fleet)
    inv = fleet.inventory({"gpu": {}})
    proc = start_blocked(fleet, inv, at, "pull", "--hosts", "gpu")

    proc.send_signal(sig)
    signalled = time.monotonic()
    host_file(fleet, BLOCK_GIT_AT).unlink()  # the blocked git command goes on, as a slow one would
    proc.communicate(timeout=30)

    assert time.monotonic() - signalled < 10 and proc.returncode == code
    repo = fleet.repo("gpu")
    assert fleet.head("gpu") == fleet.origin_head()  # the move was finished, not abandoned
    assert git(repo, "diff", "--cached", "--name-only") == before["staged"]
    assert (repo / "strategies" / "momentum.py").read_bytes() == before["momentum"]
    assert (repo / "untracked.log").read_text() == "untracked\n"
    no_leftovers(fleet)
    again = fleet.agentsync("pull", "--hosts", "gpu", "--json", inventory=inv)
    assert again.returncode == 0, again.stdout + again.stderr  # no lock left behind


def test_kill_9_after_the_stash_is_reported_by_health_and_healed_by_the_next_pull(fleet):
    before = gpu_with_work(fleet)
    snap = snapshot(fleet, "gpu")
    inv = fleet.inventory({"gpu": {}})
    proc = start_blocked(fleet, inv, "reset --quiet --keep", "pull", "--hosts", "gpu")
    proc.kill()
    proc.communicate(timeout=30)
    host_file(fleet, BLOCKED_GIT_FAILS).touch()  # the reset never happens: the run is gone
    host_file(fleet, BLOCK_GIT_AT).unlink()
    wait_for(lambda: not host_file(fleet, BLOCKED_GIT_REACHED).exists(), "the blocked git to give up")
    host_file(fleet, BLOCKED_GIT_FAILS).unlink()
    repo = fleet.repo("gpu")
    assert (repo / ".git" / "agentsync-move.json").exists() and "agentsync" in git(repo, "stash", "list")
    assert git(repo, "diff", "--cached", "--name-only") == ""  # the staged work is only in the stash now

    health = fleet.agentsync("health", "--hosts", "gpu", "--no-fetch", inventory=inv)
    assert health.returncode == 1 and "cut off" in health.stdout

    unlocked = fleet.agentsync("unlock", "--force", inventory=inv)  # the killed run's lock
    assert unlocked.returncode in (0, 1), unlocked.stderr
    recovered = fleet.agentsync("recover", "--hosts", "gpu", inventory=inv)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "restored the stash" in recovered.stdout
    assert snapshot(fleet, "gpu") == snap and git(repo, "status", "--porcelain") == before["status"]
    no_leftovers(fleet)

    pulled = fleet.agentsync("pull", "--hosts", "gpu", "--json", inventory=inv)
    assert pulled.returncode == 0, pulled.stdout
    assert fleet.head("gpu") == fleet.origin_head()


def test_the_next_sync_heals_a_killed_move_then_converges(fleet):
    before = gpu_with_work(fleet)
    inv = fleet.inventory({"gpu": {}})
    proc = start_blocked(fleet, inv, "stash pop --index", "pull", "--hosts", "gpu")
    proc.kill()
    proc.communicate(timeout=30)
    host_file(fleet, BLOCKED_GIT_FAILS).touch()
    host_file(fleet, BLOCK_GIT_AT).unlink()
    wait_for(lambda: not host_file(fleet, BLOCKED_GIT_REACHED).exists(), "the blocked git to give up")
    host_file(fleet, BLOCKED_GIT_FAILS).unlink()
    repo = fleet.repo("gpu")
    assert fleet.head("gpu") == fleet.origin_head() and git(repo, "diff", "--cached", "--name-only") == ""
    fleet.agentsync("unlock", "--force", inventory=inv)

    code = fleet.agentsync("sync-all", "--json", inventory=inv)

    assert code.returncode == 0, code.stdout + code.stderr
    assert "restored the stash" in code.stdout
    assert git(repo, "diff", "--cached", "--name-only") == before["staged"]
    assert (repo / "strategies" / "momentum.py").read_bytes() == before["momentum"]
    no_leftovers(fleet)


def test_twenty_interrupts_at_random_points_never_hang_lose_work_or_leave_anything(fleet):
    rng = random.Random(1301)
    points = ["rev-parse", "fetch", "worktree add", "rebase", "stash push", "reset --quiet --keep",
              "stash pop --index", "status", "worktree remove"]
    inv = fleet.inventory({"laptop": {}, "gpu": {}})
    repo = fleet.repo("gpu")
    for round_ in range(20):
        work = gpu_with_work(fleet, str(round_))  # a new upstream commit each round, and fresh work on gpu
        if round_ % 2:
            fleet.commit("gpu", f"gpu-{round_}.md", "own\n", f"gpu work {round_}")  # a rebase in scratch too
            (repo / "staged.txt").write_text(f"staged again {round_}\n")
            git(repo, "add", "staged.txt")  # publish (in the main thread) stashes it around its move
        point, sig = rng.choice(points), rng.choice([signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
        host_file(fleet, BLOCK_GIT_AT).write_text(point)
        env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state"), "COLUMNS": "200"}
        proc = subprocess.Popen([*AGENTSYNC, "sync-all", "--inventory", str(inv)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        wait_for(lambda p=proc: host_file(fleet, BLOCKED_GIT_REACHED).exists() or p.poll() is not None, point)
        proc.send_signal(sig)
        signalled = time.monotonic()
        host_file(fleet, BLOCK_GIT_AT).unlink()
        proc.communicate(timeout=60)
        assert time.monotonic() - signalled < 10, (round_, point)
        assert (repo / "strategies" / "momentum.py").read_bytes() == work["momentum"], (round_, point)
        assert "staged.txt" in git(repo, "diff", "--cached", "--name-only") + git(repo, "ls-files", "staged.txt")
        assert (repo / "untracked.log").read_text() == "untracked\n"
        assert not (repo / ".git" / "agentsync-move.json").exists(), (round_, point)
        assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1, (round_, point)
        assert git(repo, "stash", "list") == "", (round_, point)
        finished = fleet.agentsync("sync-all", "--json", inventory=inv)  # no lock left; converges
        assert finished.returncode == 0, (round_, point, finished.stdout[-2000:], finished.stderr[-2000:])
        git(repo, "reset", "-q", "HEAD")
        git(repo, "checkout", "-q", "--", ".")
        for name in ("staged.txt", "untracked.log"):
            (repo / name).unlink(missing_ok=True)
