"""Hosts as real ones are: no procps, busybox tools, a /proc nobody can list (and, below, other login shells,
chatty dotfiles). Each is a real sshd host in its own namespaces (conftest.py); nothing here is mocked."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from conftest import LOGIN_SHELLS, old_git_wrapper
from test_locks import wait_for

from agentsync_fleet.sandbox_fleet import git, install_tool

RUNTIME = "apps/runtime/v7_runtime.py"
TOKEN = "agentsync-test-proc-hosts"
PROC = f"python3 -c 'import time; time.sleep(600)' {TOKEN} v7_runtime"
GUARD = {"guard": {"processes": ["v7_runtime"], "critical_files": [RUNTIME]}}
PS_HOSTS = ("psonly", "bbonly")  # no readable /proc: only `ps` lists processes (procps, then busybox)


def namespace_processes(fleet, name: str) -> list[int]:
    """Every process of a sandbox host: those in the PID namespace of its sshd (the namespace's init)."""
    init = fleet.sandbox.hosts[name].pid
    ns = os.readlink(f"/proc/{init}/ns/pid")
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "ns" / "pid") == ns:
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


def running_test_processes(fleet, name: str) -> list[int]:
    """The test process running on one of *this* suite's hosts, seen from the controller: exec'd (its command
    line is python's own, not a shell's on the way there) and carrying TOKEN. Other suites' hosts (parallel
    worktrees) have their own: never look at, let alone kill, theirs."""
    found = []
    for pid in namespace_processes(fleet, name):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0] == b"python3" and TOKEN.encode() in argv:
            found.append(pid)
    return found


def start_test_process(fleet, name: str, command: str = PROC) -> None:
    """Start the guard process on a host and wait until it really runs there (ssh returns before it execs)."""
    fleet.start_process(name, command)
    wait_for(lambda: running_test_processes(fleet, name), what=f"the test process to run on {name}")


def kill_test_processes(fleet) -> None:
    for name in ("slim", "bbox", "blind", *PS_HOSTS):
        for pid in running_test_processes(fleet, name):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def hosts(fleet):
    """The fleet with slim, bbox and blind cloned from this test's origin."""
    for name in ("slim", "bbox", "blind"):
        fleet.prepare(name)
    yield fleet
    kill_test_processes(fleet)


def run_json(fleet, task: str, inv: Path, *flags: str) -> tuple[int, dict]:
    result = fleet.agentsync(task, "--json", *flags, inventory=inv)
    assert result.stdout.startswith("{"), result.stderr
    data = json.loads(result.stdout)
    return result.returncode, {h["host"]: h for h in data["hosts"]}


def critical_change(fleet) -> str:
    return fleet.commit("laptop", RUNTIME, "# v7.1\n", "Update the runtime")


def assert_sync_all_refuses_the_critical_file(fleet, name: str, inv: Path) -> None:
    """A commit changing the guard's critical file: sync-all leaves `name` guarded, its file as it was, while the
    test process (which the guard must see) still runs."""
    before = (fleet.repo(name) / RUNTIME).read_text()
    critical_change(fleet)
    code, result = run_json(fleet, "sync-all", inv)
    assert running_test_processes(fleet, name), "the test process is gone: the guard had nothing to see"
    assert code == 1 and result[name]["status"] == "guarded", result[name]
    assert "v7_runtime" in result[name]["message"] and RUNTIME in result[name]["message"]
    assert (fleet.repo(name) / RUNTIME).read_text() == before


@pytest.mark.parametrize("name", ["slim", "bbox"])
def test_without_procps_the_guard_still_sees_the_process_and_sync_all_refuses_the_critical_file(hosts, name):
    fleet = hosts
    start_test_process(fleet, name)
    inv = fleet.inventory({"laptop": {}, name: GUARD})

    code, health = run_json(fleet, "health", inv)
    assert [p["pattern"] for p in health[name]["processes"]] == ["v7_runtime"], health[name]
    assert TOKEN in health[name]["processes"][0]["command"] and health[name]["guard"]["method"] == "proc"

    assert_sync_all_refuses_the_critical_file(fleet, name, inv)


@pytest.mark.parametrize("name, method", [("psonly", "ps"), ("bbonly", "busybox-ps")])
def test_where_no_proc_can_be_read_ps_then_busybox_ps_find_the_process_and_sync_all_refuses_the_critical_file(
        fleet, name, method):
    fleet.prepare(name)
    try:
        start_test_process(fleet, name)
        inv = fleet.inventory({"laptop": {}, name: GUARD})

        code, health = run_json(fleet, "health", inv)
        guard = health[name]["guard"]
        assert guard["method"] == method and guard["status"] == "ok", guard
        assert [p["pattern"] for p in health[name]["processes"]] == ["v7_runtime"], health[name]
        found = health[name]["processes"][0]
        assert TOKEN in found["command"] and found["pid"] == pid_on_host(fleet, name)
        assert (found["uptime_s"] is not None) == (method == "ps")  # busybox's ps knows no elapsed time

        assert_sync_all_refuses_the_critical_file(fleet, name, inv)
    finally:
        kill_test_processes(fleet)


def pid_on_host(fleet, name: str) -> int:
    """The test process's pid as the host numbers it (the last NSpid of its status), read from the controller."""
    (pid,) = running_test_processes(fleet, name)
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("NSpid:"))
    return int(line.split()[-1])


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


# ---------------------------------------------------------------- any login shell, hostile inventory values

SHELL_HOSTS = [f"sh-{shell}" for shell in LOGIN_SHELLS]
# Each would create a file named agentsync-pwn-N if any shell on the way read it as code.
CANARY_DIR = "crpbot x'\\''$(touch agentsync-pwn-1)`touch agentsync-pwn-2`;touch agentsync-pwn-3 \"$HOME\" \\ ü %s {a,b} !x #y"
CANARY_PATTERNS = ["v7'; touch /srv/agentsync/agentsync-pwn-4; '", "x\"; touch /srv/agentsync/agentsync-pwn-5; \"",
                   "x$(touch /srv/agentsync/agentsync-pwn-6)", "`touch /srv/agentsync/agentsync-pwn-7`",
                   "x\\'; touch /srv/agentsync/agentsync-pwn-8 #", "y\n touch /srv/agentsync/agentsync-pwn-9"]
CANARY_FILES = ["apps/x'\\''$(touch agentsync-pwn-10)", "a b/`touch agentsync-pwn-11`"]


def canaries(fleet, name: str) -> list[str]:
    """Every agentsync-pwn-* file on the host's disk, the controller's home, /tmp or /."""
    places = [fleet.sandbox.hosts[name].path(), Path.home(), Path("/tmp"), Path("/"), fleet.root]
    found = [str(p) for place in places[:1] for p in place.rglob("agentsync-pwn-*")]
    return found + [str(p) for place in places[1:] for p in place.glob("agentsync-pwn-*")]


def clone_into(fleet, name: str, directory: str) -> Path:
    fleet.prepare(name)
    target = fleet.sandbox.hosts[name].path(directory)
    fleet.sandbox.hosts[name].path("crpbot").rename(target)
    return target


@pytest.mark.parametrize("name", SHELL_HOSTS)
def test_every_login_shell_runs_our_commands_exactly_and_canaries_in_inventory_values_create_nothing(fleet, name):
    clone_into(fleet, name, CANARY_DIR)
    host = {"repo": f"/srv/agentsync/{CANARY_DIR}",
            "guard": {"processes": CANARY_PATTERNS, "critical_files": CANARY_FILES}}
    inv = fleet.inventory({"laptop": {}, name: host})

    code, health = run_json(fleet, "health", inv)
    assert code == 0 and health[name]["passed"], health[name]
    assert health[name]["repo"]["branch"] == "main" and health[name]["guard"]["status"] == "ok"
    assert not health[name]["warnings"], health[name]["warnings"]

    new = fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    code, result = run_json(fleet, "sync-all", inv)
    assert code == 0 and result[name]["status"] == "ok", result[name]
    assert fleet.git("laptop", "rev-parse", "HEAD") == new
    assert fleet.sandbox.hosts[name].path(CANARY_DIR).is_dir()
    assert git_head(fleet.sandbox.hosts[name].path(CANARY_DIR)) == new
    assert canaries(fleet, name) == []


def git_head(repo: Path) -> str:
    return git(repo, "rev-parse", "HEAD")


# ---------------------------------------------------------------- a ~/.bashrc that prints a banner


def test_a_banner_from_the_login_shell_reaches_no_parser_and_health_warns_about_it(fleet):
    fleet.prepare("noisy")
    inv = fleet.inventory({"laptop": {}, "noisy": {}})

    code, health = run_json(fleet, "health", inv)
    assert code == 0 and health["noisy"]["passed"], health["noisy"]
    assert health["noisy"]["repo"]["head"] == fleet.head("noisy") and health["noisy"]["repo"]["branch"] == "main"
    warning = next(w for w in health["noisy"]["warnings"] if w.startswith("noisy shell startup: "))
    assert "Welcome to vm!" in warning
    human = fleet.agentsync("health", inventory=inv)
    assert "noisy shell startup" in human.stdout

    theirs = fleet.commit("noisy", "notes.md", "from noisy\n", "Noisy host work")
    mine = fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    code, result = run_json(fleet, "sync-all", inv)
    assert code == 0 and result["noisy"]["status"] == "ok", result["noisy"]
    assert fleet.head("noisy") == fleet.head("laptop") == fleet.origin_head()
    log = fleet.git("laptop", "log", "--format=%H", "-n", "3")
    assert theirs in log or "Noisy host work" in fleet.git("laptop", "log", "--format=%s", "-n", "3")
    assert mine in fleet.git("noisy", "log", "--format=%H", "-n", "3")
    assert fleet.git("noisy", "status", "--porcelain", "--untracked-files=all") == ""  # no file named after it
    assert "Welcome" not in json.dumps(result)


# ---------------------------------------------------------------- old git, and locks that could not be taken


def test_a_host_with_git_2_30_is_synced_under_its_lock(fleet):
    fleet.prepare("oldgit")
    inv = fleet.inventory({"laptop": {}, "oldgit": {}})
    code, health = run_json(fleet, "health", inv)
    assert code == 0 and health["oldgit"]["repo"]["git_version"] == [2, 30], health["oldgit"]

    fleet.commit("oldgit", "notes.md", "old git work\n", "Old git host work")
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    result = fleet.agentsync("sync-all", "--json", inventory=inv)
    data = json.loads(result.stdout)
    hosts = {h["host"]: h for h in data["hosts"]}
    assert result.returncode == 0 and hosts["oldgit"]["status"] == "ok", hosts["oldgit"]
    assert fleet.head("oldgit") == fleet.head("laptop") == fleet.origin_head()
    assert "Old git host work" in fleet.git("laptop", "log", "--format=%s")  # published (rebased onto origin)
    assert "lock" not in result.stderr  # taken and released like anywhere else


def test_git_2_30_is_refused_for_patch_relay_with_the_versions_it_has_and_needs(fleet):
    fleet.prepare("oldgit")
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    before = fleet.head("oldgit")
    inv = fleet.inventory({"laptop": {}, "oldgit": {"git_access": False}})
    code, result = run_json(fleet, "sync-all", inv)
    assert code == 1 and result["oldgit"]["status"] == "skipped", result["oldgit"]
    assert "git 2.30 is too old for patch relay (`git am --empty=keep`); need ≥ 2.35" in result["oldgit"]["message"]
    assert fleet.head("oldgit") == before
    code, health = run_json(fleet, "health", inv)
    assert any("git 2.30 is too old" in f for f in health["oldgit"]["failures"])


def test_a_host_whose_lock_cannot_be_taken_is_never_synced_and_the_report_says_why(fleet):
    fleet.prepare("oldgit")
    before = fleet.head("oldgit")
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    # Only the lock asks git for the common dir in this run: that git refuses, everything else works.
    broken = 'case "$*" in *--git-common-dir*) echo "fatal: cannot lock" >&2; exit 128 ;; esac\n'
    install_tool(fleet.sandbox, "oldgit", "git", old_git_wrapper(broken))
    try:
        code, result = run_json(fleet, "sync-all", fleet.inventory({"laptop": {}, "oldgit": {}}))
    finally:
        install_tool(fleet.sandbox, "oldgit", "git", old_git_wrapper())
    assert code == 1 and result["oldgit"]["status"] == "skipped", result["oldgit"]
    assert "fleet lock could not be taken on oldgit" in result["oldgit"]["message"]
    assert "cannot lock" in result["oldgit"]["message"]
    assert fleet.head("oldgit") == before
    assert result["laptop"]["status"] == "ok"


# ---------------------------------------------------------------- clocks


def test_a_controller_whose_clock_runs_3h_ahead_never_takes_over_a_live_runs_lock(fleet):
    import subprocess

    import yaml
    from conftest import AGENTSYNC
    from test_locks import remote_lock, start_held_sync

    from agentsync_fleet.locks.model import Holder

    first, inv, gate = start_held_sync(fleet)
    try:
        wait_for(lambda: all(remote_lock(fleet, h).exists() for h in ("cloud", "gpu")), what="the first run's locks")
        held = {h: remote_lock(fleet, h).read_text() for h in ("cloud", "gpu")}
        # Controller B: another machine name (its own UTS namespace), its clock 3 h fast (libfaketime), its own
        # state dir, and an inventory of the shared hosts only (the laptop is each controller's own disk).
        data = yaml.safe_load(inv.read_text())
        data["hosts"] = {name: spec for name, spec in data["hosts"].items() if name in ("cloud", "gpu")}
        other_inv = fleet.root / "controller-b.yaml"
        other_inv.write_text(yaml.safe_dump(data))
        launcher = ["unshare", "--uts", "sh", "-c", 'hostname controller-b && exec "$@"', "sh",
                    "faketime", "-f", "+3h"]
        env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state-b")}
        clock = subprocess.run([*launcher, "date", "+%s"], capture_output=True, text=True, env=env, check=True)
        assert int(clock.stdout) - time.time() > 2.9 * 3600  # the skew is real

        second = subprocess.run([*launcher, *AGENTSYNC, "sync-all", "--inventory", str(other_inv)],
                                capture_output=True, text=True, env=env, timeout=120)
        assert second.returncode == 1, second.stdout + second.stderr
        assert "the fleet is locked on" in second.stderr and "took over" not in second.stderr
        assert {h: remote_lock(fleet, h).read_text() for h in ("cloud", "gpu")} == held
        assert Holder.from_json(held["cloud"]).pid == first.pid
    finally:
        gate.unlink()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err


# ---------------------------------------------------------------- a host that freezes mid-run


def signal_host(fleet, name: str, sig: int) -> None:
    for pid in namespace_processes(fleet, name):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def test_a_host_frozen_mid_run_costs_one_timeout_and_the_others_converge(fleet):
    from test_locks import remote_lock, start_held_sync

    connect, command = 3, 10  # without "gone", the lock release alone would wait out a second command timeout
    inv = fleet.inventory({"laptop": {}, "cloud": {"command_timeout": command}, "gpu": {}})
    run, inv, gate = start_held_sync(fleet, inv)
    try:
        wait_for(lambda: all(remote_lock(fleet, h).exists() for h in ("cloud", "gpu")), what="the run's locks")
        signal_host(fleet, "cloud", signal.SIGSTOP)  # sshd, its sessions, every shell: a dropped VPN, a hung VM
        started = time.monotonic()
        gate.unlink()
        out, err = run.communicate(timeout=120)
        elapsed = time.monotonic() - started
    finally:
        signal_host(fleet, "cloud", signal.SIGCONT)
        if gate.exists():
            gate.unlink()
    hosts = {h["host"]: h for h in json.loads(out)["hosts"]}
    assert hosts["gpu"]["status"] == "ok" and fleet.head("gpu") == fleet.head("laptop") == fleet.origin_head()
    assert hosts["cloud"]["status"] in ("unreachable", "failed"), hosts["cloud"]
    print(f"a run with cloud frozen took {elapsed:.1f}s (connect {connect}s + command {command}s + 5s allowed)")
    assert elapsed < connect + command + 5, (elapsed, hosts["cloud"]["message"], err[-2000:],
                                             json.loads(out)["duration_s"],
                                             {n: [(s["stage"], s["action"], s["duration_s"]) for s in h["steps"]]
                                              for n, h in hosts.items()})

