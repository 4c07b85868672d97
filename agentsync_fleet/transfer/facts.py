"""What a transfer must know about the far end before rsync starts, asked in one ssh round trip per host:
which rsync it has (checked once per run, `steps/rsync_tool.py`) and, for a push, which of the directories
about to be sent are symlinks there (`transfer/dirlinks.py`). The laptop's own rsync is checked once too.
And, before push-code sends a guarded file, whether the host's guard processes run."""

from __future__ import annotations

import shutil
import subprocess
import threading
from typing import NamedTuple

from ..errors import FleetError
from ..models import Host
from ..probes import guard_probe, parse_guard
from ..records import GuardState
from ..shell import Framing, split_sections
from ..steps.rsync import ssh_argv
from ..steps.rsync_tool import CANDIDATES, Found, RsyncTool, choose, parse_version, parse_versions
from .proc import SshSettings, child_env

LAPTOP = "this machine (the laptop)"


class Answer(NamedTuple):
    """What `ask` got back: the script's own output, and the first line the host's shell startup printed
    around it ("" on a quiet host)."""

    code: int
    stdout: bytes
    stderr: str
    noise: str = ""


def ask(ssh: SshSettings, host: Host, script: str) -> Answer:
    """Run a POSIX sh script on `host` (on stdin: no inventory value is on a command line); bounded by the
    host's timeouts. The script's output is framed (shell.Framing's markers, without its wrapper): a banner
    from the login shell's startup files is kept apart as `noise`, and rsync to that host is filtered
    (remote/rshfilter.py)."""
    target = ssh(host)
    framing = Framing.new()
    framed = f"printf '%s\\n' '{framing.start}'; printf '%s\\n' '{framing.start}' >&2\n{script}"
    try:
        proc = subprocess.run([*ssh_argv(target), target.target, "sh -s"],
                              input=framed.encode("utf-8", "surrogateescape"), capture_output=True,
                              timeout=host.command_timeout + host.connect_timeout)
    except subprocess.TimeoutExpired:
        raise FleetError(f"{host.name} did not answer within {host.command_timeout + host.connect_timeout:g}s",
                         host=host.name, hint="nothing was sent; `agentsync health` shows what is wrong") from None
    out, err, noise = framing.unframe_bytes(proc.stdout, proc.stderr)
    return Answer(proc.returncode, out, err.decode("utf-8", "replace"), noise)


class RsyncTools:
    """The rsync at each end, found once per run and shared by every route (hosts run in parallel)."""

    def __init__(self) -> None:
        self._remote: dict[str, RsyncTool | FleetError] = {}
        self._noisy: dict[str, str] = {}  # host → the first line its shell startup prints (a banner)
        self._local: RsyncTool | FleetError | None = None
        self._lock = threading.Lock()

    def known(self, host: Host) -> bool:
        with self._lock:
            return host.name in self._remote

    def record(self, host: Host, probe_output: str, noise: str = "") -> None:
        """Keep what the version probe (`rsync_tool.version_script`) found on `host`, or why it will not do,
        and whether the host's shell startup printed anything around it (`ask`'s noise)."""
        found = parse_versions(probe_output)
        with self._lock:
            self._remote[host.name] = _choice(found, host.name)
            if noise:
                self._noisy[host.name] = noise

    def noise(self, host: Host) -> str:
        """The banner `host`'s login shell prints ("" for a quiet host): rsync to it goes through a filter."""
        with self._lock:
            return self._noisy.get(host.name, "")

    def remote(self, host: Host) -> RsyncTool:
        with self._lock:
            tool = self._remote[host.name]
        if isinstance(tool, FleetError):
            raise tool
        return tool

    def local(self) -> RsyncTool:
        with self._lock:
            if self._local is None:
                self._local = _choice([_local_version(path) for path in CANDIDATES], LAPTOP)
            tool = self._local
        if isinstance(tool, FleetError):
            raise tool
        return tool


def _choice(found: list[Found], where: str) -> RsyncTool | FleetError:
    try:
        return choose(found, where)
    except FleetError as exc:
        return exc


def _local_version(path: str) -> Found:
    full = shutil.which(path)
    if full is None:
        return Found(path, "missing")
    try:
        proc = subprocess.run([full, "--version"], capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL, env=child_env(), errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return Found(path, "unknown")
    return parse_version(full if path != "rsync" else path, proc.stdout + proc.stderr)


def guard_processes(ssh: SshSettings, host: Host) -> GuardState:
    """The host's guard processes running right now (one ssh round trip, the probe script on stdin)."""
    target = ssh(host)
    script = "\n".join(guard_probe(host)) + "\n"
    try:
        proc = subprocess.run([*ssh_argv(target), target.target, "sh -s"], input=script, capture_output=True,
                              text=True, timeout=host.command_timeout + host.connect_timeout)
    except subprocess.TimeoutExpired:
        raise FleetError(f"checking guard processes on {host.name} timed out", host=host.name) from None
    if proc.returncode != 0:
        raise FleetError(f"could not check guard processes on {host.name}: {proc.stderr.strip()[-300:]}",
                         host=host.name, hint="nothing was sent; `agentsync health` shows what is wrong")
    return parse_guard(split_sections(proc.stdout).get("guard", ""), host.guard.processes)
