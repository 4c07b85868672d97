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

from agentsync_fleet.sandbox import MOUNT_POINT
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


# ---------------------------------------------------------------- the four points a move can be stopped at

POINTS = ("after the stash", "after the reset", "during the rebase", "during the pop")
SIGNALS = [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
SIGNAL_IDS, POINT_IDS = ["SIGINT", "SIGTERM", "SIGHUP"], [p.replace(" ", "-") for p in POINTS]
BLOCKED_AT = {"after the stash": "reset --quiet --keep", "after the reset": "stash pop --index",
              "during the rebase": "rebase --quiet"}
FILTER_GATE, FILTER_REACHED = f"{MOUNT_POINT}/.test-filter-gate", f"{MOUNT_POINT}/.test-filter-reached"


class Stop:
    """gpu's move stopped at one of `POINTS`: before a git command starts (gpu's git wrapper, `BLOCK_GIT_AT`),
    or, during the pop, inside git while it writes the popped file (a smudge filter that waits)."""

    def __init__(self, fleet, point: str):
        self.fleet, self.point = fleet, point
        if point == "during the pop":  # the pop writes staged.txt through this filter; nothing else does
            script = host_file(fleet, "pause-filter")
            script.write_text(f"#!/bin/sh\nif [ -e {FILTER_GATE} ]; then echo $PPID > {FILTER_REACHED}.tmp && "
                              f"mv {FILTER_REACHED}.tmp {FILTER_REACHED}\n  while [ -e {FILTER_GATE} ]; do sleep 0.1; "
                              "done\nfi\nexec cat\n")
            script.chmod(0o755)
            git(fleet.repo("gpu"), "config", "filter.pause.smudge", f"{MOUNT_POINT}/pause-filter")
            (fleet.repo("gpu") / ".git" / "info").mkdir(exist_ok=True)
            (fleet.repo("gpu") / ".git" / "info" / "attributes").write_text("staged.txt filter=pause\n")
            self.gate, self.reached = host_file(fleet, FILTER_GATE), host_file(fleet, FILTER_REACHED)
        else:
            self.gate, self.reached = host_file(fleet, BLOCK_GIT_AT), host_file(fleet, BLOCKED_GIT_REACHED)
        self.gate.write_text(BLOCKED_AT.get(point, ""))

    def start(self, inv, *args: str) -> subprocess.Popen:
        env = {**os.environ, "AGENTSYNC_STATE_DIR": str(self.fleet.root / "state"), "COLUMNS": "200"}
        proc = subprocess.Popen([*AGENTSYNC, *args, "--inventory", str(inv)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        wait_for(lambda: self.reached.exists() or proc.poll() is not None, f"gpu's move {self.point}")
        assert proc.poll() is None, proc.communicate()
        return proc

    def release(self) -> None:
        """The stopped git goes on, as a slow one would."""
        self.gate.unlink()

    def crash(self) -> None:
        """The host loses what was running (the git that was about to run never does; the git writing the pop
        is killed half-way): a power cut at this point."""
        if self.point == "during the pop":
            self.fleet.sandbox.ssh("gpu", f"kill -9 {int(self.reached.read_text())}")
            self.gate.unlink()
            return
        host_file(self.fleet, BLOCKED_GIT_FAILS).touch()
        self.gate.unlink()
        wait_for(lambda: not self.reached.exists(), "the blocked git to give up")
        host_file(self.fleet, BLOCKED_GIT_FAILS).unlink()


def gpu_at(fleet, point: str, tag: str = "") -> tuple[dict, Stop]:
    """gpu's work (`gpu_with_work`), plus a commit of its own when the point is in its rebase."""
    if point == "during the rebase":
        fleet.commit("gpu", "gpu.md", "gpu's own\n", "gpu work")
    return gpu_with_work(fleet, tag), Stop(fleet, point)


def work_in_place(fleet, before: dict) -> None:
    repo = fleet.repo("gpu")
    assert git(repo, "diff", "--cached", "--name-only") == before["staged"]
    assert (repo / "staged.txt").read_text() == "staged work\n"
    assert (repo / "strategies" / "momentum.py").read_bytes() == before["momentum"]
    assert (repo / "untracked.log").read_text() == "untracked\n"


@pytest.mark.parametrize("sig,code", SIGNALS, ids=SIGNAL_IDS)
@pytest.mark.parametrize("point", POINTS, ids=POINT_IDS)
def test_a_signal_at_each_point_of_a_pull_finishes_the_move_and_the_work_is_in_place(fleet, sig, code, point):
    before, stop = gpu_at(fleet, point)
    inv = fleet.inventory({"gpu": {}})
    proc = stop.start(inv, "pull", "--hosts", "gpu")

    proc.send_signal(sig)
    signalled = time.monotonic()
    stop.release()
    out, err = proc.communicate(timeout=30)

    assert time.monotonic() - signalled < 10 and proc.returncode == code, (out, err)
    if point != "during the rebase":  # a move under way is finished; a rehearsal is, and no move starts
        assert fleet.head("gpu") == fleet.origin_head()
    work_in_place(fleet, before)
    no_leftovers(fleet)
    again = fleet.agentsync("pull", "--hosts", "gpu", "--json", inventory=inv)
    assert again.returncode == 0, again.stdout + again.stderr  # no lock left behind
    assert fleet.git("gpu", "merge-base", "--is-ancestor", fleet.origin_head(), "HEAD") == ""


@pytest.mark.parametrize("sig,code", SIGNALS, ids=SIGNAL_IDS)
@pytest.mark.parametrize("point", POINTS, ids=POINT_IDS)
def test_a_signal_at_each_point_of_a_multi_host_sync_finishes_the_move_and_the_next_sync_converges(
        fleet, sig, code, point):
    before, stop = gpu_at(fleet, point)
    inv = fleet.inventory({"laptop": {}, "cloud": {}, "gpu": {}})
    proc = stop.start(inv, "sync-all")

    proc.send_signal(sig)
    signalled = time.monotonic()
    stop.release()
    out, err = proc.communicate(timeout=30)

    assert time.monotonic() - signalled < 10 and proc.returncode == code, (out, err)
    work_in_place(fleet, before)
    no_leftovers(fleet)
    assert not any((fleet.repo(h) / ".git" / "agentsync.lock").exists() for h in ("laptop", "cloud", "gpu"))
    again = fleet.agentsync("sync-all", "--json", inventory=inv)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert fleet.head("gpu") == fleet.head("laptop") == fleet.head("cloud") == fleet.origin_head()
    work_in_place(fleet, before)
    no_leftovers(fleet)


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
