"""Processes a transfer starts: `ssh -G` to read the client settings, rsync itself, git on the laptop.

No Fabric or paramiko here: rsync uses OpenSSH, and asking OpenSSH itself
(`ssh -G`, no connection made) how it will treat a host is exact and costs a
few milliseconds instead of the ~0.2 s it takes to import paramiko.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import FleetError
from ..models import Host, Inventory
from ..steps.rsync import SshTarget, split_port
from .parse import split_records

USER_KNOWN_HOSTS = "~/.ssh/known_hosts"


class SshSettings:
    """`SshTarget` per host, read once per run with `ssh -G` under the inventory's ssh_config."""

    def __init__(self, inv: Inventory):
        self.config = str(inv.ssh_config) if inv.ssh_config else None
        self._cache: dict[str, SshTarget] = {}
        self._lock = threading.Lock()

    def __call__(self, host: Host) -> SshTarget:
        with self._lock:
            if host.name not in self._cache:
                self._cache[host.name] = self._resolve(host)
            return self._cache[host.name]

    def _resolve(self, host: Host) -> SshTarget:
        target, port = split_port(host.ssh or host.name)
        argv = ["ssh", *(["-F", self.config] if self.config else []), "-G", *(["-p", str(port)] if port else []),
                target]
        proc = run_quiet(argv, f"read the ssh settings for {host.name}")
        values: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            key, _, value = line.partition(" ")
            values.setdefault(key.lower(), value.strip())
        files = [*values.get("userknownhostsfile", "").split(), os.path.expanduser(USER_KNOWN_HOSTS)]
        jump = values.get("proxyjump", "")
        return SshTarget(target=target, port=port, config=self.config, known_hosts=tuple(dict.fromkeys(files)),
                         connect_timeout=host.connect_timeout,
                         address=f"{values.get('user', 'root')}@{_bracket(values.get('hostname', target))}",
                         resolved_port=int(values.get("port", "22")), proxy_jump="" if jump == "none" else jump)


def _bracket(hostname: str) -> str:
    return f"[{hostname}]" if ":" in hostname else hostname


def run_quiet(argv: list[str], what: str, timeout: float = 30, cwd: str | None = None) -> subprocess.CompletedProcess:
    """A short local command; a missing tool or a failure is a FleetError that says what we were doing."""
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              cwd=cwd, errors="surrogateescape")
    except FileNotFoundError:
        raise FleetError(f"cannot {what}: '{argv[0]}' is not installed on this machine",
                         hint=f"install it (Debian/Ubuntu: apt-get install {_package(argv[0])})") from None
    except subprocess.TimeoutExpired:
        raise FleetError(f"cannot {what}: `{argv[0]}` took longer than {timeout:g}s") from None
    if proc.returncode != 0:
        raise FleetError(f"cannot {what}: {' '.join(argv[:3])}… exited {proc.returncode}: {proc.stderr.strip()}")
    return proc


def _package(tool: str) -> str:
    return {"ssh": "openssh-client"}.get(tool, tool)


def git_files(repo: str) -> list[str]:
    """What git would track in the laptop's checkout: tracked files plus untracked ones not ignored.

    A repository inside it (a submodule, or a clone git lists as `dir/`) is listed by its own git: rsync -r
    would send all of that directory, the files its .gitignore keeps out too. Not checked out: nothing."""
    path = os.path.abspath(os.path.expanduser(repo))
    proc = run_quiet(["git", "-C", path, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                     f"list the files of {path} with git")
    files = []
    for name in dict.fromkeys(n.rstrip("/") for n in proc.stdout.split("\0") if n):
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            inner = git_files(full) if os.path.lexists(os.path.join(full, ".git")) else []
            files += [f"{name}/{n}" for n in inner]
        elif os.path.lexists(full):  # a tracked file deleted in the working tree is not there to send
            files.append(name)
    return files


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str
    duration_s: float


def child_env() -> dict[str, str]:
    """C locale: rsync escapes every non-ASCII byte of a name as \\#ooo, which `parse.unescape` reads back exactly.
    RSYNC_* variables (RSYNC_RSH, RSYNC_OLD_ARGS, RSYNC_PARTIAL_DIR...) would change what our argv means."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RSYNC_")}
    env["LC_ALL"] = "C"
    return env


def stream(argv: list[str], on_record: Callable[[str], None], stdin: bytes | None = None) -> Finished:
    """Run a command, calling `on_record` for each line or progress update on stdout as it arrives."""
    if shutil.which(argv[0]) is None:
        raise FleetError(f"'{argv[0]}' is not installed on this machine",
                         hint=f"install it (Debian/Ubuntu: apt-get install {_package(argv[0])})")
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env())
    errors: list[bytes] = []
    threads = [threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)]
    if stdin is not None:
        threads.append(threading.Thread(target=_feed, args=(proc, stdin), daemon=True))
    for thread in threads:
        thread.start()
    text, rest = [], ""
    try:
        while chunk := proc.stdout.read1(65536):
            decoded = chunk.decode("ascii", errors="replace")  # C locale: rsync prints ASCII only
            text.append(decoded)
            records, rest = split_records(rest + decoded)
            for record in records:
                on_record(record)
        code = proc.wait()
    except BaseException:
        proc.terminate()  # our own child: Ctrl-C or a bug must not leave an rsync running
        proc.wait()
        raise
    for thread in threads:
        thread.join(timeout=5)
    if rest.strip():
        on_record(rest)
    return Finished(code, "".join(text), b"".join(errors).decode(errors="replace"), time.monotonic() - start)


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass  # rsync stopped reading (it failed); its exit code says why
