"""rsync's remote shell for a host whose login shell prints a banner: the same ssh, with the banner cut off.

rsync speaks its protocol over the remote shell's stdout, so one `Welcome to vm!` line from a `~/.bashrc`
(or `/etc/ssh/sshrc`) ruins it ("protocol version mismatch -- is your shell clean?"). For such a host
(seen in the first command of a run: transfer/facts.ask), rsync's `-e` becomes this program followed by the
very ssh argv it would have used (same ControlMaster, same options). rsync appends `[-l USER] [-4|-6] HOST`
and its remote command; we send that command as one argument every login shell hands to `sh` unchanged
(as shell.sh_argument does), preceded by a marker line with a nonce of this run on stdout and stderr. What
comes before the marker is dropped; after it, bytes are relayed unchanged in large chunks (splice where the
kernel offers it). stdin is ssh's own: it goes straight through. A marker that never comes (ssh could not
connect, the login shell failed) leaves stderr as it was, so rsync's report stays true; stdout before it is
all noise and is dropped. The exit status is ssh's.

It runs as a script (`python -I -S rshfilter.py N SSH-ARGV…`, N = the length of SSH-ARGV) with the standard
library only: start-up stays a few milliseconds, and only noisy hosts ever pay it.
"""

from __future__ import annotations

import base64
import os
import select
import signal
import subprocess
import sys
import threading

CHUNK = 1 << 16
PROGRAM = os.path.abspath(__file__)


def rsh_argv(ssh: list[str] | tuple[str, ...]) -> list[str]:
    """rsync's `-e` argv that runs `ssh` through this filter."""
    return [sys.executable, "-I", "-S", PROGRAM, str(len(ssh)), *ssh]


def sh_argument(command: str, name: str) -> str:
    """Same as shell.sh_argument (this script imports nothing of ours): base64, which no login shell reads."""
    encoded = base64.b64encode(command.encode()).decode()
    return f"sh -c 'eval \"$(printf %s {encoded} | base64 -d)\"' {name}"


def split_rsync_words(words: list[str]) -> tuple[list[str], list[str]]:
    """What rsync appended to the ssh argv → (ssh options and the host, the remote command's words)."""
    i = 0
    while i < len(words) and words[i] in ("-l", "-4", "-6"):
        i += 2 if words[i] == "-l" else 1
    return words[: i + 1], words[i + 1:]


def remote_argument(command: list[str], marker: str) -> str:
    """The marker on stdout and stderr, then the remote rsync in the shell's place (ssh joins words by spaces)."""
    body = (f"printf '%s\\n' '{marker}'; printf '%s\\n' '{marker}' >&2\n"
            f"exec {' '.join(command)}\n")
    return sh_argument(body, "agentsync-rsync")


def build(argv: list[str], marker: str) -> list[str]:
    """This program's arguments (N, ssh argv, what rsync appended) → the ssh argv to run."""
    count = int(argv[0])
    ssh, appended = argv[1: 1 + count], argv[1 + count:]
    target, command = split_rsync_words(appended)
    return [*ssh, *target, remote_argument(command, marker)]


def skip_to_marker(fd: int, marker: bytes) -> tuple[bytes, bytes | None]:
    """Read `fd` until the marker line: (what came before, what came after it) or (all of it, None) at EOF."""
    held = b""
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return held, None
        held += chunk
        at = held.find(marker)
        if at != -1:
            return held[:at], held[at + len(marker):]


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data`. Our stdout may be non-blocking: rsync can hand the remote shell one socket for
    stdin and stdout, and ssh makes its stdin (that same socket) non-blocking; then we wait until it drains."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view):]
        except BlockingIOError:
            select.select([], [fd], [])


def relay(src: int, dest: int) -> None:
    """Copy src to dest until EOF, unchanged: splice (no copy through userspace) when both ends allow it."""
    splice = getattr(os, "splice", None)
    try:
        while splice is not None:
            try:
                if splice(src, dest, CHUNK) == 0:
                    return
            except BlockingIOError:
                select.select([], [dest], [])  # a non-blocking stdout that is full (see write_all)
            except BrokenPipeError:
                raise
            except OSError:
                splice = None  # not a pipe on either end (or an old kernel): read/write below
        while chunk := os.read(src, CHUNK):
            write_all(dest, chunk)
    except BrokenPipeError:
        pass  # rsync is gone: ssh ends when its stdout closes


def filtered(src: int, dest: int, marker: bytes, keep_unmarked: bool) -> None:
    """Drop what precedes the marker, then relay. No marker at all: pass it on only if `keep_unmarked`."""
    before, after = skip_to_marker(src, marker)
    try:
        if after is None:
            if keep_unmarked:
                write_all(dest, before)
            return
        if after:
            write_all(dest, after)
    except BrokenPipeError:
        return
    relay(src, dest)


def main(argv: list[str]) -> int:
    marker = f"@@agentsync-rsh-{os.urandom(8).hex()}@@"
    proc = subprocess.Popen(build(argv, marker), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: proc.send_signal(signum))
    line = (marker + "\n").encode()
    errors = threading.Thread(target=filtered, args=(proc.stderr.fileno(), 2, line, True), daemon=True)
    errors.start()
    filtered(proc.stdout.fileno(), 1, line, False)
    proc.stdout.close()
    code = proc.wait()
    errors.join()
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
