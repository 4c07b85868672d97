"""The fleet lock against real runs: a second run is refused, stale locks are taken over, unlock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

from agentsync_fleet.identity import process_alive, process_stamp, process_start, process_table
from agentsync_fleet.locks import remote
from agentsync_fleet.locks.local import LocalLock
from agentsync_fleet.locks.model import Holder, stale_reason
from agentsync_fleet.models import Host
from agentsync_fleet.remote import LocalSession

AGENTSYNC = [sys.executable, "-m", "agentsync_fleet"]
HERE = socket.gethostname()


def holder(**changes) -> Holder:
    values = {"who": "ann@laptop-2", "controller": "laptop-2", "pid": 4242, "pid_start": "99", "since": 1000.0,
              "run_id": "20260101-000000-abcdef", "task": "sync-all", "inventory": "/x/fleet.yaml"}
    return Holder(**{**values, **changes})


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def remote_lock(fleet, host: str):
    return fleet.repo(host) / ".git" / "agentsync.lock"


def local_lock(fleet, inv) -> LocalLock:
    return LocalLock(fleet.root / "state", inv)


def gated_laptop_push(fleet, gate):
    """The laptop's push waits until `gate` is removed: a sync-all that holds the lock for as long as we like."""
    hook = fleet.repo("laptop") / ".git" / "hooks" / "pre-push"
    hook.write_text(f"#!/bin/sh\nwhile [ -e {gate} ]; do sleep 0.1; done\nexit 0\n")
    hook.chmod(0o755)


def start_held_sync(fleet, inv=None, launcher: tuple[str, ...] = (), state: str = "state") -> tuple:
    """A sync-all (in the background) that holds the fleet lock until `gate` is removed: a laptop commit to
    publish, and a pre-push hook that waits. Returns (process, inventory, gate)."""
    fleet.commit("laptop", "laptop.md", "from the laptop\n", "Laptop work")
    gate = fleet.root / "laptop-push-gate"
    gate.write_text("hold")
    gated_laptop_push(fleet, gate)
    inv = inv or fleet.inventory()
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / state)}
    proc = subprocess.Popen([*launcher, *AGENTSYNC, "sync-all", "--json", "--inventory", str(inv)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, inv, gate


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ------------------------------------------------------------------ pure rules


def test_a_lock_is_stale_when_its_process_is_gone_here_or_it_is_older_than_lock_ttl():
    def alive(pid, start):
        return pid == 4242

    mine = holder(controller="here")
    assert stale_reason(mine, now=1010, ttl=60, here="here", alive=alive) is None
    assert "process 7 on here is gone" in stale_reason(holder(controller="here", pid=7), now=1010, ttl=60,
                                                        here="here", alive=alive)
    # Another controller's process cannot be checked from here: only its age counts.
    assert stale_reason(holder(pid=7), now=1010, ttl=60, here="here", alive=alive) is None
    assert "older than lock_ttl (1m)" in stale_reason(holder(pid=7), now=1061, ttl=60, here="here", alive=alive)
    assert stale_reason(None, now=0, ttl=60, here="here", alive=alive) == "its holder record is unreadable"
    # The lock's age as its host's clock tells it wins over this controller's clock, both ways.
    ahead = 1000 + 3 * 3600  # this controller's clock runs 3 h fast; the host says the lock is 30 s old
    assert stale_reason(holder(pid=7), now=ahead, ttl=60, here="here", alive=alive, age=30) is None
    assert "older than lock_ttl" in stale_reason(holder(pid=7), now=1000, ttl=60, here="here", alive=alive, age=61)


def test_holder_records_round_trip_and_garbage_is_not_a_holder():
    h = holder()
    assert Holder.from_json(h.to_json()) == h
    assert Holder.from_json("not json") is None and Holder.from_json('{"who": "x"}') is None
    assert "ann@laptop-2 (sync-all run 20260101-000000-abcdef, pid 4242 on laptop-2) since 1970-01-01" in h.describe(
        now=1042)


# ------------------------------------------------------------------ real runs


def test_a_second_concurrent_sync_is_refused_and_names_the_first(fleet):
    first, inv, gate = start_held_sync(fleet)
    try:
        wait_for(lambda: all(remote_lock(fleet, h).exists() for h in ("laptop", "cloud", "gpu")),
                 what="the first run's locks on every host")
        held = Holder.from_json(remote_lock(fleet, "cloud").read_text())
        assert held.pid == first.pid and held.task == "sync-all" and held.controller == HERE

        second = fleet.agentsync("sync-all", inventory=inv)
        assert second.returncode == 1
        assert "the fleet is locked on this controller by" in second.stderr
        assert f"sync-all run {held.run_id}, pid {first.pid} on {HERE}" in second.stderr and "since" in second.stderr
        assert "Traceback" not in second.stderr

        # Another controller (its own state dir) meets the locks in the hosts' repos instead.
        elsewhere = fleet.agentsync("sync-all", inventory=inv, env={"AGENTSYNC_STATE_DIR": str(fleet.root / "other")})
        assert elsewhere.returncode == 1
        assert "the fleet is locked on " in elsewhere.stderr and f"pid {first.pid}" in elsewhere.stderr
        assert "the fleet is locked on laptop (" in elsewhere.stderr and "also locked on cloud, gpu" in elsewhere.stderr
        assert Holder.from_json(remote_lock(fleet, "cloud").read_text()) == held  # the refused runs left it alone
        assert local_lock(fleet, inv).read()[1].pid == first.pid
    finally:
        gate.unlink()
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert json.loads(out)["run_id"] == held.run_id
    assert not any(remote_lock(fleet, h).exists() for h in ("laptop", "cloud", "gpu"))  # released
    assert not local_lock(fleet, inv).path.exists()
    refused = fleet.agentsync("history", "--status", "refused", "--json")
    assert len(json.loads(refused.stdout)["runs"]) == 1  # the refused run is in the history too


def test_results_and_push_code_wait_their_turn_behind_a_running_sync(fleet):
    fleet.commit("laptop", "laptop.md", "from the laptop\n", "Laptop work")
    gate = fleet.root / "laptop-push-gate"
    gate.write_text("hold")
    gated_laptop_push(fleet, gate)
    state = fleet.sandbox.hosts["gpu"].path("state")
    transfers = {"backup_dir": str(state)}
    (fleet.repo("gpu") / "results").mkdir()
    (fleet.repo("gpu") / "results" / "run1.csv").write_text("loss,0.1\n")
    inv = fleet.inventory({"laptop": {}, "cloud": {}, "gpu": {"results": [{"remote": "results", "local": "results"}],
                                                              "push_code": True}}, transfers=transfers)
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state")}
    first = subprocess.Popen([*AGENTSYNC, "sync-all", "--json", "--inventory", str(inv)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: remote_lock(fleet, "gpu").exists(), what="the sync's lock on gpu")
        for task in ("results", "push-code"):
            refused = fleet.agentsync(task, "--host", "gpu", inventory=inv)
            assert refused.returncode == 1, refused.stderr
            assert "the fleet is locked on this controller by" in refused.stderr and f"pid {first.pid}" in refused.stderr
    finally:
        gate.unlink()
    out, _ = first.communicate(timeout=60)
    hosts = {h["host"]: h for h in json.loads(out)["hosts"]}
    assert first.returncode == 0, {n: (h["status"], h["message"]) for n, h in hosts.items()}


def test_stale_locks_are_taken_over_with_a_warning(fleet):
    inv = fleet.inventory()
    gone = dead_pid()
    lock = local_lock(fleet, inv)
    lock.dir.mkdir(parents=True)
    lock.path.write_text(holder(controller=HERE, who=f"root@{HERE}", pid=gone, pid_start="1",
                                since=time.time() - 30).to_json() + "\n")
    old = holder(controller="laptop-2", since=time.time() - 3 * 3600)  # older than the default lock_ttl (2h)
    remote_lock(fleet, "cloud").write_text(old.to_json() + "\n")
    os.utime(remote_lock(fleet, "cloud"), (old.since, old.since))  # its age counts by the host's clock

    result = fleet.agentsync("sync-all", "--json", inventory=inv)

    assert result.returncode == 0, result.stderr
    assert f"took over a stale lock on this controller held by root@{HERE}" in result.stderr
    assert f"its process {gone} on {HERE} is gone" in result.stderr
    assert "took over a stale lock on cloud (/srv/agentsync/crpbot/.git) held by ann@laptop-2" in result.stderr
    assert "older than lock_ttl (2h)" in result.stderr
    assert not remote_lock(fleet, "cloud").exists() and not lock.path.exists()


def test_a_live_lock_from_another_controller_is_kept_until_unlock_force(fleet):
    inv = fleet.inventory(lock_ttl="30m")
    remote_lock(fleet, "gpu").write_text(holder(since=time.time() - 60).to_json() + "\n")

    refused = fleet.agentsync("pull", inventory=inv)
    assert refused.returncode == 1
    assert "the fleet is locked on gpu (/srv/agentsync/crpbot/.git) by ann@laptop-2" in refused.stderr
    assert not remote_lock(fleet, "cloud").exists()  # what the refused run had taken is released again

    kept = fleet.agentsync("unlock", "--json", inventory=inv)
    rows = {r["where"]: r for r in json.loads(kept.stdout)["locks"]}
    assert kept.returncode == 1 and rows["gpu"]["status"] == "kept" and rows["cloud"]["status"] == "none"
    assert remote_lock(fleet, "gpu").exists()

    forced = fleet.agentsync("unlock", "--force", inventory=inv)
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "removed" in forced.stdout and not remote_lock(fleet, "gpu").exists()
    assert fleet.agentsync("pull", inventory=inv).returncode == 0


def test_read_only_tasks_take_no_lock(fleet):
    inv = fleet.inventory()
    remote_lock(fleet, "cloud").write_text(holder(since=time.time()).to_json() + "\n")
    for task in (["health"], ["status"], ["plan"], ["sync-all", "--dry-run"]):
        result = fleet.agentsync(*task, inventory=inv)
        assert result.returncode == 0, (task, result.stderr)
        assert "locked" not in result.stderr
    assert Holder.from_json(remote_lock(fleet, "cloud").read_text()).who == "ann@laptop-2"


def test_process_start_tells_a_reused_pid_from_the_original():
    start = process_start(os.getpid())
    assert start and start.isdigit()


def test_a_pid_of_another_process_table_is_presumed_alive_and_the_journal_leaves_its_run_running(tmp_path):
    from agentsync_fleet.journal.store import Journal

    here = process_table()
    assert process_stamp(os.getpid()) == f"{process_start(os.getpid())}@{here}"
    gone = dead_pid()
    assert not process_alive(gone, f"1@{here}") and not process_alive(gone, "1")  # ours (or an old record): gone
    assert process_alive(gone, "1@0123456789ab/4026531999")  # another machine or namespace: cannot tell

    journal = Journal(tmp_path / "journal.sqlite3")
    for run_id, stamp in (("theirs", "1@0123456789ab/4026531999"), ("ours", f"1@{here}")):
        journal.start_run({"id": run_id, "task": "sync-all", "started": 1.0, "status": "running", "who": "x",
                           "controller": HERE, "pid": gone, "pid_start": stamp, "inventory": "/i",
                           "inventory_sha256": ""})
    assert journal.reconcile() == ["ours"]
    assert {r["id"]: r["status"] for r in journal.runs()} == {"theirs": "running", "ours": "interrupted"}


def test_a_late_takeover_of_a_lock_already_taken_over_never_lets_a_third_run_in(tmp_path, monkeypatch):
    """A and B both found the same stale lock; A took it over first. B's takeover comes late, slowly:
    while it works, a third run C tries the lock. C must meet A's lock, and A must still hold it after."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    host, session = Host(name="laptop", repo=str(repo), local=True), LocalSession("laptop")
    lock = repo / ".git" / "agentsync.lock"
    stale = holder(since=time.time() - 3 * 3600).to_json()
    lock.write_text(stale + "\n")
    a, b, c = (holder(run_id=f"run-{n}", controller=HERE, pid=os.getpid(), since=time.time()) for n in "abc")

    taken = remote.run_script(session, host, remote.takeover_script(str(repo), a, stale))
    assert taken.status == "acquired"

    # B's shell is slow: every file operation of its takeover pauses (a loaded host, a slow disk).
    slow, mark = tmp_path / "slow-bin", tmp_path / "b-is-inside"
    slow.mkdir()
    for tool in ("mv", "ln", "rm"):
        real = shutil.which(tool)
        (slow / tool).write_text(f"#!/bin/sh\n{real} \"$@\"; rc=$?\ntouch {mark}\nsleep 2\nexit $rc\n")
        (slow / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{slow}{os.pathsep}{os.environ['PATH']}")
    late: list[remote.RemoteState] = []
    worker = threading.Thread(target=lambda: late.append(
        remote.run_script(session, host, remote.takeover_script(str(repo), b, stale))))
    worker.start()
    wait_for(lambda: mark.exists() or not worker.is_alive(), what="B's takeover to start")
    monkeypatch.setenv("PATH", os.environ["PATH"].split(os.pathsep, 1)[1])

    third = remote.run_script(session, host, remote.acquire_script(str(repo), c))
    worker.join(timeout=30)

    assert third.status == "held" and third.holder == a  # C is refused: A holds the lock
    assert late[0].status == "changed" and late[0].holder == a  # B sees A's lock and judges that one
    assert Holder.from_json(lock.read_text()) == a
    assert sorted(p.name for p in lock.parent.glob("agentsync.lock*")) == ["agentsync.lock"]


def test_ctrl_c_while_the_locks_are_being_taken_leaves_no_lock_behind(fleet):
    """Ctrl-C while one host is still being locked (hang: connects, never answers) and the others already are."""
    inv = fleet.inventory({"laptop": {}, "cloud": {}, "hang": {}})
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state")}
    run = subprocess.Popen([*AGENTSYNC, "sync-all", "--json", "--inventory", str(inv)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: remote_lock(fleet, "laptop").exists() and remote_lock(fleet, "cloud").exists(),
                 what="the locks on laptop and cloud")
        run.send_signal(signal.SIGINT)
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130, err
    assert not remote_lock(fleet, "laptop").exists() and not remote_lock(fleet, "cloud").exists()
    assert not local_lock(fleet, inv).path.exists()
    runs = json.loads(fleet.agentsync("history", "--json").stdout)["runs"]
    assert runs[0]["status"] == "interrupted"


def test_a_run_in_another_pid_namespace_of_the_same_name_is_not_taken_for_dead(fleet):
    """Agents in containers that share the host's network share its hostname, not its processes: the
    first run's pid means nothing to the second, so its lock must not look stale to it."""
    first, inv, gate = start_held_sync(fleet, launcher=("unshare", "--pid", "--fork", "--mount-proc"),
                                       state="container-state")
    try:
        wait_for(lambda: remote_lock(fleet, "cloud").exists(), what="the first run's lock on cloud")
        held = Holder.from_json(remote_lock(fleet, "cloud").read_text())
        assert held.controller == HERE and held.pid != first.pid  # a pid of its own namespace

        second = fleet.agentsync("pull", inventory=inv)

        assert second.returncode == 1, second.stderr
        assert "the fleet is locked on" in second.stderr and "took over" not in second.stderr
        assert Holder.from_json(remote_lock(fleet, "cloud").read_text()) == held
        rows = json.loads(fleet.agentsync("unlock", "--json", inventory=inv).stdout)["locks"]
        assert {r["where"]: r["status"] for r in rows}["cloud"] == "kept"
    finally:
        gate.unlink()
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err


def test_patch_relay_waits_its_turn_behind_a_running_sync_and_is_journaled_per_host(fleet):
    fleet.commit("laptop", "laptop.md", "from the laptop\n", "Laptop work")
    fleet.commit("cloud", "cloud.md", "from the cloud\n", "Cloud work")
    gate = fleet.root / "laptop-push-gate"
    gate.write_text("hold")
    gated_laptop_push(fleet, gate)
    inv = fleet.inventory({"laptop": {}, "cloud": {}})
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state")}
    first = subprocess.Popen([*AGENTSYNC, "sync-all", "--json", "--inventory", str(inv)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: remote_lock(fleet, "cloud").exists(), what="the sync's lock on cloud")
        laptop_head = fleet.head("laptop")
        refused = fleet.agentsync("patch-relay", "--from", "cloud", inventory=inv)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "the fleet is locked on this controller by" in refused.stderr and f"pid {first.pid}" in refused.stderr
        assert fleet.head("laptop") == laptop_head  # nothing was applied under the running sync
    finally:
        gate.unlink()
    _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err

    fleet.commit("cloud", "later.md", "after the sync\n", "Cloud, later")
    relayed = fleet.agentsync("patch-relay", "--from", "cloud", "--json", inventory=inv)
    assert relayed.returncode == 0, relayed.stderr
    assert not remote_lock(fleet, "cloud").exists() and not remote_lock(fleet, "laptop").exists()
    run = json.loads(fleet.agentsync("history", "--json").stdout)["runs"][0]
    assert run["task"] == "patch-relay" and run["hosts"] == {"cloud": "ok", "laptop": "ok"}
    steps = json.loads(fleet.agentsync("history.show", run["id"], "--json").stdout)["steps"]
    assert {s["host"] for s in steps} == {"cloud", "laptop"} and all(s["commands"] for s in steps)


def test_a_run_stopped_with_sigterm_releases_its_locks_and_says_so_in_the_history(fleet):
    """`kill PID`, a supervisor's stop or an agent harness's timeout: the run unwinds like Ctrl-C."""
    run, inv, gate = start_held_sync(fleet)
    try:
        wait_for(lambda: all(remote_lock(fleet, h).exists() for h in ("laptop", "cloud", "gpu")),
                 what="the run's locks on every host")
        run.send_signal(signal.SIGTERM)
        _, err = run.communicate(timeout=60)
    finally:
        gate.unlink(missing_ok=True)
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143, err
    assert not any(remote_lock(fleet, h).exists() for h in ("laptop", "cloud", "gpu"))
    assert not local_lock(fleet, inv).path.exists()
    last = json.loads(fleet.agentsync("history", "--json").stdout)["runs"][0]
    assert last["status"] == "interrupted" and last["exit_code"] == 143 and "SIGTERM" in last["message"]


def test_a_live_run_on_this_controller_keeps_its_lock_however_long_it_runs(fleet):
    """lock_ttl stands in for a check that cannot be made; here the holder can be seen running (a long upload)."""
    inv = fleet.inventory()
    lock = local_lock(fleet, inv)
    lock.dir.mkdir(parents=True)
    running = holder(controller=HERE, who=f"root@{HERE}", pid=os.getpid(), pid_start=process_stamp(os.getpid()),
                     since=time.time() - 3 * 3600)  # older than the default lock_ttl (2h), and alive
    lock.path.write_text(running.to_json() + "\n")

    refused = fleet.agentsync("pull", inventory=inv)

    assert refused.returncode == 1, refused.stderr
    assert "the fleet is locked on this controller by" in refused.stderr and "took over" not in refused.stderr
    assert lock.read()[1] == running
    kept = fleet.agentsync("unlock", inventory=inv)
    assert kept.returncode == 1 and lock.read()[1] == running


def test_a_run_under_nohup_ignores_a_hangup_as_nohup_asked(fleet):
    run, inv, gate = start_held_sync(fleet, launcher=("nohup",))
    try:
        wait_for(lambda: remote_lock(fleet, "cloud").exists(), what="the run's lock on cloud")
        run.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert run.poll() is None  # still at work
    finally:
        gate.unlink()
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    assert json.loads(out)["ok"] is True


def test_a_host_frozen_while_the_run_is_interrupted_costs_one_release_deadline_and_its_lock_is_named(fleet):
    from test_real_hosts import signal_host

    fleet.commit("laptop", "laptop.md", "from the laptop\n", "Laptop work")
    gate, reached = fleet.root / "laptop-push-gate", fleet.root / "laptop-push-reached"
    gate.write_text("hold")
    hook = fleet.repo("laptop") / ".git" / "hooks" / "pre-push"  # the run stops in the laptop's push
    hook.write_text(f"#!/bin/sh\ntouch {reached}\nwhile [ -e {gate} ]; do sleep 0.1; done\nexit 0\n")
    hook.chmod(0o755)
    inv = fleet.inventory({"laptop": {}, "cloud": {"connect_timeout": 3}, "gpu": {}})  # command_timeout: 30
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state")}
    run = subprocess.Popen([*AGENTSYNC, "sync-all", "--inventory", str(inv)], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: reached.exists() or run.poll() is not None, what="the laptop's push")
        assert run.poll() is None and remote_lock(fleet, "cloud").exists()
        signal_host(fleet, "cloud", signal.SIGSTOP)  # sshd, its sessions, every shell: a hung VM
        run.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        out, err = run.communicate(timeout=120)
        elapsed = time.monotonic() - signalled
    finally:
        signal_host(fleet, "cloud", signal.SIGCONT)
        gate.unlink(missing_ok=True)

    assert run.returncode == 130, (out, err)
    assert elapsed < 10, (elapsed, err[-2000:])  # one release deadline (+ one answer check), not a command timeout
    assert "could not release the fleet lock on cloud (/srv/agentsync/crpbot/.git/agentsync.lock)" in err, err
    assert remote_lock(fleet, "cloud").exists() and not remote_lock(fleet, "gpu").exists()
    assert not local_lock(fleet, inv).read()[0]
    again = fleet.agentsync("sync-all", "--json", inventory=inv)  # the lock cloud kept is stale: taken over
    assert again.returncode == 0 and "took over a stale lock on cloud" in again.stderr, again.stderr[-2000:]
