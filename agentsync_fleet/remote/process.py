"""Run one child process with a hard deadline: every byte read as it comes, the whole group killed at the end.

Each child runs in its own session (`start_new_session`): it has no
controlling terminal, so nothing it starts (ssh, a ProxyCommand, a jump
host's ssh) can ever prompt on the user's tty, and at the deadline one
`killpg` ends all of it — a jump loop or a frozen proxy cannot outlive it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from .deadline import kill_pgid, wait_with_deadline

OutputFn = Callable[[bytes], None]  # receives a command's stdout as it arrives


@dataclass
class Finished:
    """A child's exit status (None: killed at the deadline), output and timing."""

    code: int | None
    stdout: bytes
    stderr: bytes
    duration_s: float
    first_byte_s: float | None = None  # when stdout's first byte came (a round-trip measure for ssh)

    @property
    def timed_out(self) -> bool:
        return self.code is None


def run_process(argv: list[str], *, timeout: float, stdin: bytes | BinaryIO | None = None,
                on_output: OutputFn | None = None, stdout_to: BinaryIO | None = None,
                env: dict[str, str] | None = None) -> Finished:
    """Run `argv`; feed it `stdin` (bytes or a file), collect stdout (or write it to `stdout_to`) and stderr."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, env=env)
    out, err = bytearray(), bytearray()
    first: list[float] = []

    def on_stdout(chunk: bytes) -> None:
        if not first:
            first.append(time.monotonic() - start)
        if stdout_to is not None:
            stdout_to.write(chunk)
        else:
            out.extend(chunk)
        if on_output is not None:
            on_output(chunk)

    threads = [threading.Thread(target=_pump, args=(proc.stdout, on_stdout), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, err.extend), daemon=True)]
    if stdin is not None:
        threads.append(threading.Thread(target=_feed, args=(proc, stdin), daemon=True))
    for thread in threads:
        thread.start()
    try:
        code = wait_with_deadline(proc, timeout)
    except BaseException:  # Ctrl-C: our own child must not outlive us
        kill_group(proc)
        raise
    for thread in threads:
        # a grandchild that escaped the group (a daemonised ssh master) may hold a pipe: do not wait on it. After
        # a timeout the ssh client is dead; its master (which holds the pipes a multiplexed client handed it) may
        # talk to a frozen host: what it still forwards belongs to a command already given up on.
        thread.join(timeout=max(0.5, timeout - (time.monotonic() - start)) if code is not None else 0.2)
    return Finished(code, bytes(out), bytes(err), time.monotonic() - start, first[0] if first else None)


def kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (ssh, its ProxyCommand, a jump chain) and reap the child."""
    kill_pgid(proc.pid)
    proc.wait()


def _pump(stream, sink: Callable[[bytes], None]) -> None:
    try:
        for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
            sink(chunk)
    except OSError:
        pass


def _feed(proc: subprocess.Popen, data: bytes | BinaryIO) -> None:
    try:
        if isinstance(data, (bytes, bytearray)):
            proc.stdin.write(data)
        else:
            while chunk := data.read(65536):
                proc.stdin.write(chunk)
        proc.stdin.close()
    except (BrokenPipeError, OSError, ValueError):
        pass  # the command stopped reading; its exit status says the rest
