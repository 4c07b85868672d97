"""Sessions: run a command on a host (SSH) or on the controller (local), same interface.

Every remote command has a deadline; a watchdog closes the channel when it
passes, because paramiko can otherwise wait forever for a reply.
"""

from __future__ import annotations

import os
import select
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import paramiko

from ..errors import CommandTimeout, HostUnreachable
from ..models import CommandResult
from ..settings import TIMEOUTS
from .config import Endpoint

OutputFn = Callable[[bytes], None]  # receives a command's stdout as it arrives


@contextmanager
def watchdog(seconds: float, on_expire: Callable[[], None]) -> Iterator[threading.Event]:
    """Call `on_expire` (which closes a socket or channel) if the block is still running after `seconds`.

    paramiko leaves some waits unbounded; closing what it waits on is the one
    way to end them. The event tells afterwards whether the deadline struck.
    """
    expired = threading.Event()

    def fire() -> None:
        expired.set()
        on_expire()

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield expired
    finally:
        timer.cancel()


ARG_SCRIPT_LIMIT = 100_000  # bytes; Linux refuses a single argument over 128 KiB


class ScriptRunner:
    """`run_script`, shared by both session kinds."""

    def run_script(self, text: str, *, timeout: float = TIMEOUTS.command, on_output: OutputFn | None = None) -> CommandResult:
        """Run a POSIX sh script as `sh -c <script>`: one round trip, the script travels with the exec.

        Sending it on stdin to `sh -s` instead costs one more round trip (the
        exec must be accepted before stdin flows); only a script too large for
        one argument goes that way.
        """
        if len(text.encode()) > ARG_SCRIPT_LIMIT:
            return self.run("sh -s", stdin=text, timeout=timeout, on_output=on_output)
        return self.run(shlex.join(["sh", "-c", text]), timeout=timeout, on_output=on_output)


class SSHSession(ScriptRunner):
    """One open SSH connection to a host; runs commands and moves files over it."""

    def __init__(self, name: str, endpoint: Endpoint, client: paramiko.SSHClient, via: SSHSession | None):
        self.name = name
        self.endpoint = endpoint
        self.client = client
        self.via = via
        self.transport = client.get_transport()
        self.last_rtt: float | None = None
        self.compress = False

    def run(self, command: str, *, stdin: str | None = None, timeout: float = TIMEOUTS.command,
            on_output: OutputFn | None = None) -> CommandResult:
        """Run shell text on the host; never raises on a non-zero exit, only on timeout or a lost link.

        `on_output` sees stdout as it arrives (raw chunks), for progress displays of long commands.
        """
        start = time.monotonic()
        try:
            chan = self.transport.open_session(timeout=min(timeout, 30.0))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(f"connection lost: {exc or type(exc).__name__}", reason="lost",
                                  host=self.name) from None
        self.last_rtt = time.monotonic() - start
        try:
            with watchdog(timeout, chan.close) as expired:
                out, err, code = self._exchange(chan, command, stdin, start + timeout, on_output)
        finally:
            chan.close()
        duration = time.monotonic() - start
        if expired.is_set() or (code is None and duration >= timeout):
            raise CommandTimeout(f"command timed out after {timeout:g}s: {_short(command)}", host=self.name,
                                 hint="raise command_timeout for this host in the inventory if this is expected")
        if code is None:
            raise HostUnreachable(f"the command ended without an exit status (killed by a signal, or the "
                                  f"connection dropped): {_short(command)}", reason="lost", host=self.name)
        return CommandResult(self.name, command, code, out, err, duration)

    @staticmethod
    def _exchange(chan: paramiko.Channel, command: str, stdin: str | None, deadline: float,
                  on_output: OutputFn | None = None) -> tuple[str, str, int | None]:
        out, err = bytearray(), bytearray()
        try:
            _start_command(chan, command)
            if stdin is not None:
                chan.sendall(stdin.encode())
            chan.shutdown_write()
            while True:
                while chan.recv_ready():
                    chunk = chan.recv(65536)
                    out += chunk
                    if on_output is not None:
                        on_output(chunk)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.closed or (chan.eof_received and chan.exit_status_ready()):
                    if not chan.recv_ready() and not chan.recv_stderr_ready():
                        break
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                select.select([chan], [], [], min(remaining, 1.0))
        except (paramiko.SSHException, OSError, EOFError):
            pass  # the watchdog closed the channel, or the link dropped: reported by the caller
        # A channel closed without an "exit-status" message reports -1: that is no status at all.
        code = chan.recv_exit_status() if chan.exit_status_ready() else None
        return out.decode(errors="replace"), err.decode(errors="replace"), None if code == -1 else code

    def sftp(self) -> paramiko.SFTPClient:
        return self.client.open_sftp()

    def close(self) -> None:
        self.client.close()


def _start_command(chan: paramiko.Channel, command: str) -> None:
    """`exec` without waiting for the server's "ok" (saves one round trip per command).

    paramiko's `exec_command` asks for a reply and blocks until it arrives; we
    do not need it: the exit status, the output and the channel close carry
    everything. A refused exec shows up as a close without exit status, which
    the caller reports. Same message as paramiko builds, with want_reply=False.
    """
    message = paramiko.Message()
    message.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
    message.add_int(chan.remote_chanid)
    message.add_string("exec")
    message.add_boolean(False)
    message.add_string(command)
    chan.transport._send_user_message(message)


class LocalSession(ScriptRunner):
    """The controller itself (`local: true`): same interface, no SSH."""

    last_rtt: float | None = 0.0

    def __init__(self, name: str):
        self.name = name

    def run(self, command: str, *, stdin: str | None = None, timeout: float = TIMEOUTS.command,
            on_output: OutputFn | None = None) -> CommandResult:
        if on_output is not None:
            return self._run_streaming(command, stdin, timeout, on_output)
        start = time.monotonic()
        try:
            proc = subprocess.run(["sh", "-c", command], input=stdin if stdin is not None else "",
                                  capture_output=True, text=True, timeout=timeout, errors="replace")
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"command timed out after {timeout:g}s: {_short(command)}", host=self.name,
                                 hint="raise command_timeout for this host in the inventory") from None
        return CommandResult(self.name, command, proc.returncode, proc.stdout, proc.stderr,
                             time.monotonic() - start)

    def _run_streaming(self, command: str, stdin: str | None, timeout: float, on_output: OutputFn) -> CommandResult:
        """Like `run`, feeding stdout to `on_output` as it arrives; the command runs in its own process
        group so a timeout ends every process it started, not just the shell."""
        start = time.monotonic()
        proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        out, err = bytearray(), bytearray()

        def pump(stream, sink: bytearray, callback: OutputFn | None) -> None:
            for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
                sink += chunk
                if callback is not None:
                    callback(chunk)

        readers = [threading.Thread(target=pump, args=(proc.stdout, out, on_output), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, err, None), daemon=True)]
        for reader in readers:
            reader.start()
        try:
            proc.stdin.write((stdin or "").encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the command did not read its input; its exit status says the rest
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # our own command, past its deadline
            except ProcessLookupError:
                pass
            proc.wait()
            raise CommandTimeout(f"command timed out after {timeout:g}s: {_short(command)}", host=self.name,
                                 hint="raise the timeout in the inventory if this is expected") from None
        finally:
            for reader in readers:
                reader.join(timeout=5)
        return CommandResult(self.name, command, code, out.decode(errors="replace"), err.decode(errors="replace"),
                             time.monotonic() - start)

    def close(self) -> None:
        pass


Session = SSHSession | LocalSession


def _short(command: str, limit: int = 160) -> str:
    line = " ".join(command.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
