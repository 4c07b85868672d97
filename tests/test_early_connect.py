"""A cold `run` begins its SSH handshake before the program has loaded (remote/early.py, launch.py).

Real sshd hosts: the early connection is begun only when nothing it depends on
changed (inventory bytes, `ssh -G`'s answer), adopted by the run's Connector
without a second login, replaced when it does not match what the Connector
would run, and never outlives a run cut short by Ctrl-C.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import AGENTSYNC
from jobs_support import wait_until
from test_real_hosts import namespace_processes

from agentsync_fleet import inventory
from agentsync_fleet._startup import RUN_SWITCHES, RUN_VALUE_FLAGS, run_target
from agentsync_fleet.cli import ns
from agentsync_fleet.remote import Connector, early
from agentsync_fleet.remote.master import MasterAttempt

# ------------------------------------------------------------------ the peek at the command line (pure)

ENV = {"AGENTSYNC_INVENTORY": "/env/fleet.yaml"}


@pytest.mark.parametrize("argv, expected", [
    (["run", "gpu", "python train.py"], ("/env/fleet.yaml", "gpu")),
    (["run", "gpu", "python train.py", "--inventory", "/x/f.yaml"], ("/x/f.yaml", "gpu")),
    (["run", "--inventory=/x/f.yaml", "--json", "gpu", "train", "--name", "t", "--env", "A=1"], ("/x/f.yaml", "gpu")),
    (["run", "--host", "gpu", "--command", "true", "--then-results", "--allow-busy", "--literal",
      "--protect", "data/", "--cwd", "src"], ("/env/fleet.yaml", "gpu")),
])
def test_the_peek_finds_the_host_and_inventory_of_a_well_formed_run(argv, expected):
    assert run_target(argv, ENV) == expected


def test_the_peek_without_an_inventory_anywhere_uses_the_default_path():
    assert run_target(["run", "gpu", "true"], {}) == ("inventory/fleet.yaml", "gpu")


@pytest.mark.parametrize("argv", [
    ["run", "gpu", "true", "--help"], ["run", "-h", "gpu", "true"], ["run", "gpu", "--", "true"],
    ["run", "gpu", "true", "--bogus"], ["run", "gpu", "true", "--json=yes"], ["run", "gpu", "true", "-n", "x"],
    ["run", "gpu"], ["run", "gpu", "true", "extra"], ["run", "gpu", "true", "--name"], ["jobs", "gpu", "x"],
    ["--list", "run", "gpu"], ["run", "--host", "", "true"], [],
])
def test_anything_but_a_well_formed_run_begins_nothing(argv):
    assert run_target(argv, ENV) is None


def test_the_peek_knows_exactly_the_flags_of_the_run_task():
    arguments = ns["run"].get_arguments()
    flags = {a.name.replace("_", "-"): a.kind for a in arguments}
    assert set(RUN_VALUE_FLAGS) | set(RUN_SWITCHES) == set(flags)
    assert {name for name, kind in flags.items() if kind is bool} == set(RUN_SWITCHES)


# ------------------------------------------------------------------ on real hosts


def logins(fleet, host: str) -> int:
    return (Path(fleet.sandbox.hosts[host].dir) / "sshd.log").read_text().count("Accepted publickey")


def reached_once(fleet, **cloud) -> Path:
    """An inventory whose cloud this controller reached once (so its way there is written down), then
    disconnected: the next run is cold."""
    inv = fleet.inventory({"laptop": {}, "cloud": cloud})
    assert fleet.agentsync("run", "cloud", "true", inventory=inv).returncode == 0
    assert fleet.agentsync("disconnect", inventory=inv).returncode == 0
    return inv


def connector(fleet, inv: Path, *attempts: MasterAttempt) -> Connector:
    """The Connector a run of the CLI makes (same state dir as `fleet.agentsync`)."""
    return Connector(inventory.load(inv), state=str(fleet.root / "state"), early=attempts)


def test_a_cold_run_begins_its_connection_early_and_the_connector_adopts_it_without_a_second_login(fleet):
    inv = reached_once(fleet)
    before = logins(fleet, "cloud")

    attempt = early.begin(inv, "cloud")
    assert attempt is not None and attempt.argv[0] == "ssh" and "-N" in attempt.argv
    assert attempt.result(30)[0] == 0
    assert logins(fleet, "cloud") == before + 1

    run = connector(fleet, inv, attempt)
    try:
        assert run.session(inventory.load(inv).hosts["cloud"]).run("echo hi").stdout == "hi\n"
    finally:
        run.close_all()
    assert logins(fleet, "cloud") == before + 1  # adopted: no second connection

    again = fleet.agentsync("run", "cloud", "echo early", "--json", inventory=inv)  # the CLI, end to end, warm
    assert again.returncode == 0, again.stderr


def test_nothing_begins_early_when_anything_it_depends_on_has_changed(fleet, monkeypatch):
    inv = reached_once(fleet)
    text, config = inv.read_text(), fleet.ssh_config.read_text()

    inv.write_text(text + "# edited\n")  # another inventory: its settings may differ
    assert early.begin(inv, "cloud") is None
    inv.write_text(text)

    fleet.ssh_config.write_text(config + "\nHost cloud\n  ServerAliveCountMax 7\n")  # ssh would connect otherwise
    assert early.begin(inv, "cloud") is None
    fleet.ssh_config.write_text(config)

    monkeypatch.setenv("AGENTSYNC_EARLY", "0")
    assert early.begin(inv, "cloud") is None
    monkeypatch.delenv("AGENTSYNC_EARLY")

    cache = Path(early.cache_file(inv))
    cache.chmod(0o666)  # a record someone else could have written
    assert early.begin(inv, "cloud") is None
    cache.chmod(0o600)

    assert early.begin(inv, "gpu") is None  # never reached from here

    attempt = early.begin(inv, "cloud")  # all as it was: it begins
    assert attempt is not None and attempt.result(30)[0] == 0
    assert early.begin(inv, "cloud") is None  # its master is up: nothing to begin


def master_processes(sock: str) -> list[str]:
    """Command lines of the ssh processes serving `sock`."""
    found = subprocess.run(["pgrep", "-af", f"ControlPath={sock}"], capture_output=True, text=True).stdout
    return [line for line in found.splitlines() if "pgrep" not in line]


def test_an_early_connection_not_made_exactly_as_the_connector_would_is_closed_and_replaced(fleet):
    inv = reached_once(fleet)
    attempt = early.begin(inv, "cloud")
    assert attempt is not None
    attempt.abandon()
    argv = ["ServerAliveInterval=16" if a == "ServerAliveInterval=15" else a for a in attempt.argv]
    assert argv != attempt.argv
    other = MasterAttempt(argv, dict(os.environ))  # as an older agentsync, say, would have made it
    assert other.result(30)[0] == 0
    sock = next(a.split("=", 1)[1] for a in argv if a.startswith("ControlPath="))

    run = connector(fleet, inv, other)
    try:
        assert run.session(inventory.load(inv).hosts["cloud"]).run("echo hi").stdout == "hi\n"
    finally:
        run.close_all()
    served = wait_until(lambda: [p for p in master_processes(sock) if "ServerAliveInterval=16" not in p] and
                        not [p for p in master_processes(sock) if "ServerAliveInterval=16" in p] and
                        master_processes(sock), what="only the connector's own master on the socket")
    assert all("ServerAliveInterval=15" in p for p in served)


@pytest.mark.parametrize("begun", ["early", "while-loading"])
def test_ctrl_c_while_a_run_is_still_connecting_leaves_no_ssh_behind(fleet, begun):
    inv = reached_once(fleet, connect_timeout=120)  # an ssh left behind would live on for minutes
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state"),
           **({"AGENTSYNC_EARLY": "0"} if begun != "early" else {})}
    sock = json.loads(Path(early.cache_file(inv)).read_text())["hosts"]["cloud"]["sock"]
    frozen = namespace_processes(fleet, "cloud")
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)  # sshd takes the TCP connection and never answers: a hung VM
    try:
        run = subprocess.Popen([*AGENTSYNC, "run", "cloud", "true", "--inventory", str(inv)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(lambda: master_processes(sock), what="ssh connecting to the frozen host")
        run.send_signal(signal.SIGINT)
        started = time.monotonic()
        _, err = run.communicate(timeout=30)
        assert run.returncode == 130 and time.monotonic() - started < 15, err.decode()
        wait_until(lambda: not master_processes(sock), timeout=10, what="every ssh of the run gone")
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass


def holds_open(pid: int, path: str) -> bool:
    """`pid` has `path` open (what a process waiting on an flock shows from outside)."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == path for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


@pytest.mark.parametrize("begun", ["early", "while-loading"])
def test_two_runs_connecting_to_one_host_at_once_share_one_master_and_leave_no_other_ssh(fleet, begun):
    inv = reached_once(fleet)
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state"),
           **({"AGENTSYNC_EARLY": "0"} if begun != "early" else {})}
    sock = json.loads(Path(early.cache_file(inv)).read_text())["hosts"]["cloud"]["sock"]
    frozen = namespace_processes(fleet, "cloud")
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)  # both runs reach the host while it is still shaking hands with the first
    try:
        first = subprocess.Popen([*AGENTSYNC, "run", "cloud", "true", "--inventory", str(inv)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(lambda: master_processes(sock), what="the first run connecting")
        second = subprocess.Popen([*AGENTSYNC, "run", "cloud", "true", "--name", "other", "--inventory", str(inv)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        wait_until(lambda: holds_open(second.pid, f"{sock}.lock") or len(master_processes(sock)) > 1,
                   what="the second run connecting too")
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    for run in (first, second):
        _, err = run.communicate(timeout=60)
        assert run.returncode == 0, err.decode()
    assert len(master_processes(sock)) == 1  # the one master both used: no plain connection left behind
    assert fleet.agentsync("disconnect", inventory=inv).returncode == 0
    wait_until(lambda: not master_processes(sock), what="nothing left once disconnected")
