"""Fixtures: a real fleet of OpenSSH servers (one PID + mount namespace each) and fresh git repos.

The sshd hosts live for the whole session; every test gets a fresh bare
origin, fresh checkouts on every host and its own ssh_config/known_hosts, so
tests cannot leak state into each other.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
import yaml

from agentsync_fleet.remote import control_dir, disconnect_all
from agentsync_fleet.sandbox import HOST_STATE_ENV, MOUNT_POINT, Sandbox
from agentsync_fleet.sandbox_fleet import (
    NVIDIA_SMI,
    ZEROTIER_CLI,
    ZEROTIER_NETWORK,
    clone,
    git,
    install_tool,
    make_origin,
)

REPO = f"{MOUNT_POINT}/crpbot"
# gpu's git hangs while this file exists on its disk: a host that accepts commands and never finishes them.
SLOW_GIT_MARKER = f"{MOUNT_POINT}/.agentsync-test-slow-git"
# gpu's git stops before running a command whose arguments contain the text in this file, touches
# BLOCKED_GIT_REACHED and waits (at most 60 s) until the file is gone: a known point to interrupt a move at.
BLOCK_GIT_AT = f"{MOUNT_POINT}/.agentsync-test-block-git-at"
BLOCKED_GIT_REACHED = f"{MOUNT_POINT}/.agentsync-test-blocked-git"
BLOCKED_GIT_FAILS = f"{MOUNT_POINT}/.agentsync-test-blocked-git-fails"  # present when unblocked: exit 99, no git
SLOW_GIT = f"""#!/bin/sh
[ -e {SLOW_GIT_MARKER} ] && sleep 60
if [ -e {BLOCK_GIT_AT} ]; then
  case " $* " in *"$(cat {BLOCK_GIT_AT})"*)
    touch {BLOCKED_GIT_REACHED}; i=0
    while [ -e {BLOCK_GIT_AT} ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    [ -e {BLOCKED_GIT_FAILS} ] && {{ rm -f {BLOCKED_GIT_REACHED}; exit 99; }}
    rm -f {BLOCKED_GIT_REACHED} ;;
  esac
fi
exec /usr/bin/git "$@"
"""
AGENTSYNC = [sys.executable, "-m", "agentsync_fleet"]
LOGIN_SHELLS = {"bash": "/bin/bash", "dash": "/bin/dash", "zsh": "/usr/bin/zsh", "fish": "/usr/bin/fish",
                "tcsh": "/usr/bin/tcsh", "ash": ""}  # ash: busybox, linked in the host's bin
NOISY_BASHRC = "echo 'Welcome to vm! 4 updates can be applied.'\necho 'stty: standard input: not a tty' >&2\n"
# A banner any host can be given for one test, whatever its login shell: sshd runs /etc/ssh/sshrc with /bin/sh
# before each session's command, and what it prints reaches the client. The files live on the host's disk (a
# test's `fleet.prepare` wipes them; `tests/test_noisy_rsync.py` removes what it wrote).
BANNER_OUT = f"{MOUNT_POINT}/.agentsync-test-banner"
BANNER_ERR = f"{MOUNT_POINT}/.agentsync-test-banner-err"
SSHRC = f"[ -f {BANNER_OUT} ] && cat {BANNER_OUT}\n[ -f {BANNER_ERR} ] && cat {BANNER_ERR} >&2\ntrue\n"
PROCPS = ["ps", "pgrep", "pkill", "pidof", "pwdx", "top", "pgrep.procps", "pkill.procps"]
# Sandbox hosts share the controller's home directory; per-user state (job records) and tmux servers are kept
# on each host's own disk instead (every sandbox host's default), so hosts (and tests: the disk is wiped for each)
# do not see each other's.
HOST_ENV = HOST_STATE_ENV
# The test fleet's addresses are 127.<SUBNET>.0.x; parallel runs of the suite (worktrees) each pick their own.
SUBNET = int(os.environ.get("AGENTSYNC_TEST_SUBNET", "91"))
# Where a real user's agentsync keeps its journal, locks and backups: the suite must never write there.
REAL_STATE_DIR = Path(os.environ.get("AGENTSYNC_STATE_DIR") or "~/.local/state/agentsync").expanduser()
# Receiving sandbox hosts share /root with the controller: test inventories keep backups on the host's own disk.
HOST_BACKUPS = f"{MOUNT_POINT}/.agentsync-backups"


def pytest_configure(config) -> None:
    """Every agentsync the suite runs, in-process or as a subprocess (which inherits the environment), gets a
    throwaway state dir unless a test names its own: nothing lands in the real user's journal or backups."""
    state = tempfile.mkdtemp(prefix="agentsync-state-", dir=os.environ.get("PYTEST_DEBUG_TEMPROOT"))
    config._agentsync_state = state
    os.environ["AGENTSYNC_STATE_DIR"] = state
    # The laptop is a local host: its per-user job records (${XDG_STATE_HOME:-~/.local/state}/agentsync/jobs)
    # would otherwise be the real user's. Tests that look at them name their own with monkeypatch.
    os.environ["XDG_STATE_HOME"] = os.path.join(state, "xdg-state")
    # What the controller caches (how it reached each host, to begin the next `run`'s connection early) too.
    os.environ["XDG_CACHE_HOME"] = os.path.join(state, "xdg-cache")


def pytest_unconfigure(config) -> None:
    state = getattr(config, "_agentsync_state", None)
    if state:
        shutil.rmtree(state, ignore_errors=True)


OLD_GIT = Path(__file__).resolve().parent.parent / ".cache" / "git-2.30"


def old_git_wrapper(extra: str = "") -> str:
    """The `git` of the old-git host: Debian 11's 2.30, run from where `make setup` unpacked it."""
    if not (OLD_GIT / "usr" / "bin" / "git").exists():
        raise RuntimeError(f"{OLD_GIT} is missing: run `make setup` (it unpacks Debian 11's git 2.30 there)")
    return (f"#!/bin/sh\n{extra}GIT_EXEC_PATH={OLD_GIT}/usr/lib/git-core exec {OLD_GIT}/usr/bin/git \"$@\"\n")


class SilentListener:
    """Accepts TCP connections and never says a word: a host that hangs before the SSH banner."""

    def __init__(self, address: str):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(50)
        self.address, self.port = self.sock.getsockname()
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)


@pytest.fixture(scope="session")
def aws_env(tmp_path_factory) -> dict[str, str]:
    """Test credentials in files of their own, handed to hosts through their environment (never real ones)."""
    from s3_support import write_aws_files

    return write_aws_files(tmp_path_factory.mktemp("aws"))


@pytest.fixture(scope="session")
def moto_s3():
    """moto's S3 server on a free loopback port, for the whole session: a real S3 API over HTTP."""
    from s3_support import MotoServer

    server = MotoServer.start()
    yield server
    server.stop()


def commands_without(directory: Path, *left_out: str) -> str:
    """A PATH directory with every system command except `left_out` (a host that lacks them)."""
    directory.mkdir(parents=True)
    for system_dir in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        for command in os.listdir(system_dir):
            link = directory / command
            if command not in left_out and not link.exists():
                link.symlink_to(Path(system_dir) / command)
    return str(directory)


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory, aws_env):
    root = tmp_path_factory.mktemp("fleet")
    box = Sandbox(root, subnet=SUBNET)
    box.add_host("cloud", env=HOST_ENV, sftp=False)  # no SFTP server on cloud and gpu: file transfers must not need one
    box.add_host("gpu", env=HOST_ENV, sftp=False)
    box.add_host("jump", etc_hosts={"inner.fleet": f"127.{SUBNET}.0.5"})
    box.add_host("inner", env=HOST_ENV)  # 127.<SUBNET>.0.5: reached through jump by a name only jump can resolve
    # no optional tools (aws, nvidia-smi, zerotier-cli), no rsync, no tmux
    box.add_host("nocli", env={"PATH": commands_without(root / "nocli-path", "rsync", "tmux"), **HOST_ENV})
    box.add_host("edge", own_ssh_dir=True)  # has its own ~/.ssh: runs rsync straight to gpu (direct: true)
    # Hosts as real ones are (tests/test_real_hosts.py): a slim image without procps, busybox's ps in its place,
    # a /proc no tool can list.
    box.add_host("slim", hide_tools=PROCPS)
    box.add_host("bbox", hide_tools=PROCPS)
    box.add_host("blind", proc_hidden=True)
    # No /proc anyone can read, yet processes can be listed: only by procps' ps (as on a BSD or macOS host), or
    # only by busybox's ps on a host without procps.
    box.add_host("psonly", proc_hidden=True, ps_only="/usr/bin/ps")
    box.add_host("bbonly", proc_hidden=True, ps_only=f"{shutil.which('busybox')} ps", hide_tools=PROCPS)
    for shell, path in LOGIN_SHELLS.items():  # every login shell sshd may hand our commands to
        box.add_host(f"sh-{shell}", login_shell=path or str(box.root / "hosts" / f"sh-{shell}" / "bin" / shell),
                     sshrc=SSHRC, env=HOST_ENV)  # job records on the host's disk, not in the shared real home
    box.add_host("noisy", bashrc=NOISY_BASHRC, env=HOST_ENV)  # a cloud image's ~/.bashrc that greets every session
    box.add_host("oldgit")  # Debian 11's git 2.30 (`make setup` unpacks it into .cache/)
    assert box.hosts["inner"].address == f"127.{SUBNET}.0.5"
    install_tool(box, "gpu", "nvidia-smi", NVIDIA_SMI)
    install_tool(box, "gpu", "zerotier-cli", ZEROTIER_CLI % ZEROTIER_NETWORK)
    install_tool(box, "gpu", "git", SLOW_GIT)
    install_tool(box, "bbox", "ps", "#!/bin/sh\nexec busybox ps \"$@\"\n")
    install_tool(box, "oldgit", "git", old_git_wrapper())
    (box.hosts["sh-ash"].bin_dir / "ash").symlink_to(shutil.which("busybox"))  # busybox runs the applet it is named
    from s3_support import install_aws_cli

    install_aws_cli(box, ("cloud", "gpu"), aws_env)  # nocli gets the credentials but no CLI on its PATH
    box.start_all()
    yield box
    box.destroy()


@pytest.fixture(scope="session")
def silent_listener():
    return SilentListener(f"127.{SUBNET}.0.200")


@pytest.fixture(scope="session")
def other_key(tmp_path_factory) -> str:
    """A host key that belongs to no sandbox host (to fake a changed key)."""
    path = tmp_path_factory.mktemp("otherkey") / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    parts = path.with_suffix(".pub").read_text().split()
    return f"{parts[0]} {parts[1]}"


class Fleet:
    """One test's world: origin, checkouts, inventory, and ways to poke at each host."""

    def __init__(self, sandbox: Sandbox, root: Path, listener: SilentListener):
        self.sandbox = sandbox
        self.root = root
        self.listener = listener
        self.origin = make_origin(root)
        self.laptop_repo = clone(self.origin, root / "laptop" / "crpbot", "laptop")
        for name in ("cloud", "gpu", "inner", "nocli"):
            disk = sandbox.hosts[name].path()
            for child in disk.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            clone(self.origin, sandbox.hosts[name].path("crpbot"), name)
        self.write_ssh_files()

    def write_ssh_files(self, untrusted: tuple[str, ...] = (), replaced_keys: dict[str, str] | None = None) -> None:
        extra = {"down": (f"127.{SUBNET}.0.201", 9), "hang": (self.listener.address, self.listener.port)}
        self.ssh_config, self.known_hosts = self.sandbox.write_client_files(
            self.root, untrusted=untrusted, replaced_keys=replaced_keys, extra=extra)
        inner = self.sandbox.hosts["inner"]
        with self.ssh_config.open("a") as handle:
            handle.write(f"\nHost inner-via-jump\n  HostName inner.fleet\n  Port {inner.port}\n  User root\n"
                         f"  ProxyJump jump\n  IdentityFile {self.sandbox.client_key}\n  IdentitiesOnly yes\n"
                         f"  UserKnownHostsFile {self.known_hosts}\n")
        with self.known_hosts.open("a") as handle:
            handle.write(f"[inner.fleet]:{inner.port} {self.sandbox.host_public_key('inner')}\n")

    def prepare(self, name: str) -> None:
        """A fresh clone of this test's origin on one of the hosts the constructor leaves alone."""
        disk = self.sandbox.hosts[name].path()
        for child in disk.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        clone(self.origin, self.sandbox.hosts[name].path("crpbot"), name)

    def repo(self, host: str) -> Path:
        """A host's checkout, seen from the controller (its disk is a directory here)."""
        return self.laptop_repo if host == "laptop" else self.sandbox.hosts[host].path("crpbot")

    def git(self, host: str, *args: str) -> str:
        return git(self.repo(host), *args)

    def commit(self, host: str, path: str, text: str, message: str) -> str:
        file = self.repo(host) / path
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text)
        self.git(host, "add", path)
        self.git(host, "commit", "-q", "-m", message)
        return self.git(host, "rev-parse", "HEAD")

    def head(self, host: str) -> str:
        return self.git(host, "rev-parse", "HEAD")

    def origin_head(self, branch: str = "main") -> str:
        return git(self.origin, "rev-parse", branch)

    def host_spec(self, name: str, **settings) -> dict:
        if name == "laptop":
            spec = {"local": True, "repo": str(self.laptop_repo)}
        else:
            spec = {"ssh": name, "repo": REPO}
        spec.update(settings)
        return spec

    def inventory(self, hosts: dict[str, dict] | None = None, **top) -> Path:
        """Write an inventory for this test; `hosts` maps name → extra settings (None: defaults)."""
        hosts = hosts if hosts is not None else {"laptop": {}, "cloud": {}, "gpu": {}}
        data = {"ssh_config": str(self.ssh_config),
                "defaults": {"branch": "main", "connect_timeout": 3, "command_timeout": 30},
                "hosts": {name: self.host_spec(name, **(extra or {})) for name, extra in hosts.items()},
                "transfers": {"backup_dir": HOST_BACKUPS}}
        data.update(top)
        path = self.root / "fleet.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def agentsync(self, *args: str, inventory: Path | None = None, timeout: float = 120,
                  env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """Run the real CLI in a subprocess, as a user would."""
        argv = [*AGENTSYNC, *args]
        if inventory is not None:
            argv += ["--inventory", str(inventory)]
        full_env = {**os.environ, "AGENTSYNC_STATE_DIR": str(self.root / "state"), "COLUMNS": "200",
                    **(env or {})}
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env)

    def start_process(self, host: str, command: str) -> None:
        self.sandbox.start_process(host, command)

    def stop_processes(self, host: str, pattern: str) -> None:
        self.sandbox.ssh(host, f"pkill -f {pattern} || true", check=False)


@pytest.fixture
def fleet(sandbox, silent_listener, tmp_path):
    world = Fleet(sandbox, tmp_path, silent_listener)
    yield world
    for name in ("cloud", "gpu"):
        sandbox.ssh(name, "pkill -f 'agentsync-test-proc' || true", check=False)
    disconnect_all(control_dir(str(tmp_path / "state")))  # this test's ssh masters (ControlPersist)
