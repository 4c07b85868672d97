"""Processes a transfer starts: rsync itself (over the run's ssh masters) and git on the laptop."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import FleetError, HostUnreachable
from ..models import Host, Inventory
from ..remote import Connector
from ..steps.rsync import SshTarget
from .parse import split_records


class SshSettings:
    """`SshTarget` per host from the run's Connector: its one `ssh -G` resolution and its master's ssh argv.

    rsync's `-e` is the very argv every other command to the host uses
    (same -F, strict options, ControlPath, ProxyJump hops), so rsync rides
    the warm master. A host that cannot be connected still gets its argv
    (a plan shows its commands), and `failure` keeps the connector's own
    diagnosis (ssh's reason, as `health` tells it) so the run reports that
    instead of trying the host once more.
    """

    def __init__(self, inv: Inventory, connector=None):
        self.connector = connector if connector is not None else Connector(inv)
        self.config = str(inv.ssh_config) if inv.ssh_config else None
        self._cache: dict[str, SshTarget] = {}
        self._failures: dict[str, HostUnreachable] = {}
        self._lock = threading.Lock()

    def __call__(self, host: Host) -> SshTarget:
        with self._lock:
            cached = self._cache.get(host.name)
        if cached is None:
            cached = self._resolve(host)
            with self._lock:
                cached = self._cache.setdefault(host.name, cached)
        return cached

    def failure(self, host: Host) -> HostUnreachable | None:
        """Why the connector could not reach `host` this run (None: connected, or not asked yet)."""
        self(host)
        with self._lock:
            return self._failures.get(host.name)

    def _resolve(self, host: Host) -> SshTarget:
        res = self.connector.resolution(host)
        try:
            session = self.connector.session(host)
        except HostUnreachable as exc:
            with self._lock:
                self._failures[host.name] = exc
            # Not connected: rsync gets the argv the host would have and reports ssh's own diagnosis. When even
            # that cannot be built (a ProxyJump loop), the host's error stands: a plain `ssh -F` would loop forever.
            session = self.connector.unopened_session(host)
        jump = ",".join(res.proxy_jump)
        user = res.target.user
        return SshTarget(target=f"{user}@{res.target.host}" if user else res.target.host, port=res.target.port, config=self.config,
                         connect_timeout=host.connect_timeout, address=res.address, resolved_port=res.port,
                         proxy_jump=jump, argv=tuple(session.rsh_argv()) if session is not None else ())


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
