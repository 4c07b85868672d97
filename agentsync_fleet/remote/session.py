"""Sessions: run a command, move bytes and files, on a host (OpenSSH) or on the controller (local).

Both kinds share one interface: `run`, `run_script`, `put`/`get` (bytes),
`upload`/`download` (files), each with a deadline. Files travel over plain
commands (`cat > file`, `cat file`), so no SFTP subsystem is needed.

On a host, sshd hands each command to the user's login shell, whichever it
is, and that shell's startup files may print a banner first: every command
goes out as one `shell.Framing` argument (any login shell passes it to `sh`
unchanged) and its output comes back with everything outside the framing
markers dropped (`startup_noise` keeps the first line for `health`). A host
that times out or drops the link, and then does not run `true` within
`answer_timeout`, is gone for the rest of the run: later commands fail at
once instead of each waiting out a timeout of its own.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from ..errors import CommandTimeout, FleetError, HostUnreachable
from ..models import CommandResult
from ..settings import TIMEOUTS
from ..shell import Framing
from .diagnose import SSH_FAILED, classify
from .master import SSH_ENV
from .process import Finished, OutputFn, kill_group, run_process

ARG_SCRIPT_LIMIT = 85_000  # bytes; Linux refuses one argument over 128 KiB, and base64 (shell.Framing) adds 1/3


def _short(command: str, limit: int = 160) -> str:
    line = " ".join(command.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


class Session:
    """The interface both kinds implement; `_exec` is the one primitive each provides."""

    name: str
    last_rtt: float | None = None

    def _exec(self, command: str, *, timeout: float, stdin: bytes | BinaryIO | None = None,
              on_output: OutputFn | None = None, stdout_to: BinaryIO | None = None) -> Finished:
        raise NotImplementedError

    def run(self, command: str, *, stdin: str | None = None, timeout: float = TIMEOUTS.command,
            on_output: OutputFn | None = None) -> CommandResult:
        """Run shell text; never raises on a non-zero exit, only on a timeout or a lost link."""
        done = self._checked(command, timeout, stdin=None if stdin is None else stdin.encode(), on_output=on_output)
        return CommandResult(self.name, command, done.code, done.stdout.decode(errors="replace"),
                             done.stderr.decode(errors="replace"), done.duration_s)

    def run_script(self, text: str, *, timeout: float = TIMEOUTS.command, on_output: OutputFn | None = None) -> CommandResult:
        """Run a POSIX sh script: one round trip, the script travels with the exec (every command runs
        under `sh`: `sh -c` here, `shell.Framing` on a host).

        Sending it on stdin to `sh -s` instead costs one more round trip (the
        exec must be accepted before stdin flows); only a script too large for
        one argument goes that way.
        """
        if len(text.encode()) > ARG_SCRIPT_LIMIT:
            return self.run("sh -s", stdin=text, timeout=timeout, on_output=on_output)
        return self.run(text, timeout=timeout, on_output=on_output)

    def put(self, path: str, data: bytes, *, timeout: float, mode: int = 0o600) -> None:
        """Create or replace a file with `data` (created with `mode`; patches may hold private code)."""
        self._transfer(_write_command(path, mode), f"writing {path}", timeout, stdin=data)

    def get(self, path: str, *, timeout: float) -> bytes:
        return self._transfer(_read_command(path), f"reading {path}", timeout).stdout

    def upload(self, local: Path, path: str, *, timeout: float, mode: int = 0o600) -> int:
        """Copy a controller file to the host, streaming; returns bytes sent."""
        with open(local, "rb") as handle:
            self._transfer(_write_command(path, mode), f"uploading to {path}", timeout, stdin=handle)
        return local.stat().st_size

    def download(self, path: str, local: Path, *, timeout: float) -> int:
        """Copy a host file to the controller, streaming; returns bytes received."""
        with open(local, "wb") as handle:
            self._transfer(_read_command(path), f"downloading {path}", timeout, stdout_to=handle)
        return local.stat().st_size

    def _transfer(self, command: str, what: str, timeout: float, **io) -> Finished:
        done = self._checked(command, timeout, **io)
        if done.code != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()
            raise FleetError(f"{what} failed: {detail[-1] if detail else f'exit {done.code}'}", host=self.name)
        return done

    def _checked(self, command: str, timeout: float, **io) -> Finished:
        done = self._exec(command, timeout=timeout, **io)
        if done.timed_out:
            raise CommandTimeout(f"command timed out after {timeout:g}s: {_short(command)}", host=self.name,
                                 hint="raise command_timeout for this host in the inventory if this is expected")
        return done

    def close(self) -> None:
        pass


def _write_command(path: str, mode: int) -> str:
    """Write stdin to `path` through a temporary name in the same directory, then rename: never half a file."""
    tmp = f"{path}.agentsync-tmp"
    return (f"umask 077 && cat > {shlex.quote(tmp)} && chmod {mode:o} {shlex.quote(tmp)} && "
            f"mv -f {shlex.quote(tmp)} {shlex.quote(path)}")


def _read_command(path: str) -> str:
    return f"cat -- {shlex.quote(path)}"


class LocalSession(Session):
    """The controller itself (`local: true`): same interface, `sh -c` here instead of ssh."""

    last_rtt: float | None = 0.0
    startup_noise = ""  # no login shell runs here: commands go straight to `sh -c`

    def __init__(self, name: str):
        self.name = name

    def _exec(self, command: str, *, timeout: float, stdin=None, on_output=None, stdout_to=None) -> Finished:
        return run_process(["sh", "-c", command], timeout=timeout, stdin=stdin if stdin is not None else b"",
                           on_output=on_output, stdout_to=stdout_to)


class OpenSSHSession(Session):
    """A host reached with the user's `ssh`, every command riding one ControlMaster connection.

    `prefix` is the full ssh argv up to (not including) the target: the
    inventory's `-F`, our fixed options, the ControlPath; `target` is
    `-l/-p … -- host`. A master that vanished mid-run (host rebooted) is not
    silently re-made by a command (`ControlMaster=no`): ssh then connects
    directly, with the same strict options, and the failure reads as usual.
    """

    def __init__(self, name: str, prefix: list[str], target: list[str], *, via_proxy: bool = False,
                 hint: str = "", hop: str = ""):
        self.name = name
        self.hop = hop  # the ProxyJump hop this session is (as the config writes it); "" for the host itself
        self.prefix = prefix
        self.target = target
        self.via_proxy = via_proxy
        self.hint = hint
        self.last_rtt: float | None = None
        self.framing = Framing.new()  # how commands are wrapped for the login shell and their output framed
        self.startup_noise = ""  # the first line the host's shell startup printed around our commands, if any
        self.gone = ""  # why the host is gone for the rest of the run ("" while it answers)
        self.answer_timeout = TIMEOUTS.connect  # how long a host may take to show it is still there

    def argv(self, *extra: str) -> list[str]:
        """ssh argv for a command: `extra` options go before the target (`-W`, `-O check`...)."""
        return [*self.prefix, "-o", "ControlMaster=no", *extra, *self.target]

    def rsh_argv(self) -> list[str]:
        """The ssh argv for rsync's `-e`: rsync adds the host (our target's name) and its own command."""
        return [*self.prefix, "-o", "ControlMaster=no", *self.target[:-2]]

    def _exec(self, command: str, *, timeout: float, stdin=None, on_output=None, stdout_to=None) -> Finished:
        if self.gone:
            raise HostUnreachable(f"gone for the rest of this run: {self.gone}", reason="lost", host=self.name,
                                  hint=self.hint)
        sink = self.framing.sink(stdout_to) if stdout_to is not None else None
        live = self.framing.stream(on_output) if on_output is not None else None  # stdout has no end marker
        try:
            done = self._ssh(self.framing.argument(command), timeout, stdin, live, sink)
        except HostUnreachable as exc:
            self._gone_unless_it_answers(exc.message)
            raise
        if done.timed_out:
            self._gone_unless_it_answers(f"a command timed out after {timeout:g}s")
        out, err, noise = self.framing.unframe_bytes(done.stdout, done.stderr)
        if sink is not None:
            noise = sink.finish() or noise
        self.startup_noise = self.startup_noise or noise
        return replace(done, stdout=out, stderr=err)

    def _gone_unless_it_answers(self, why: str) -> None:
        """A host that does not run `true` within answer_timeout (frozen, link down) is gone for the run.
        No pipes: a multiplexed ssh hands them to its master, which would hold them open past the deadline."""
        proc = subprocess.Popen([*self.argv(), "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True, env={**os.environ, **SSH_ENV})
        try:
            answered = proc.wait(timeout=self.answer_timeout) == 0
        except subprocess.TimeoutExpired:
            kill_group(proc)
            answered = False
        if not answered:
            self.gone = why

    def _ssh(self, command: str, timeout: float, stdin, on_output, stdout_to) -> Finished:
        done = run_process([*self.argv(), command], timeout=timeout, stdin=stdin, on_output=on_output,
                           stdout_to=stdout_to, env={**os.environ, **SSH_ENV})
        if self.last_rtt is None and done.first_byte_s is not None:
            self.last_rtt = done.first_byte_s
        if done.code == SSH_FAILED:
            failure = classify(done.stderr.decode(errors="replace"), via_proxy=self.via_proxy)
            if failure is not None:  # ssh itself failed: the command never ran (or the link dropped)
                raise HostUnreachable(f"connection lost: {failure.message}", reason="lost", host=self.name,
                                      hint=self.hint) from None
        return done


class _Calls:
    """A writer that hands each chunk to a callback (a progress display fed as output arrives)."""

    def __init__(self, callback: OutputFn):
        self.write = callback


def wait_for(predicate, timeout: float, interval: float = 0.01) -> bool:
    """Poll `predicate` until true or `timeout` passes (a socket appearing, say)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
