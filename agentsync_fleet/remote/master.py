"""Starting and probing one ControlMaster: the only place a connection to a host is set up.

Probing is local and cheap: connect to the socket and exchange the mux
protocol's hello (no process, no network). Starting is `ssh -M -N -f`:
ssh authenticates, then puts the master in the background and exits 0 —
or exits 255 with its reason on stderr. That stderr goes to a file, not a
pipe: a ProxyCommand started by the master lives as long as the master
and would hold a pipe open. The whole attempt has a deadline; at it the
process group (ssh, its proxies, a jump chain) is killed.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time

from .deadline import kill_pgid, wait_with_deadline

MUX_MSG_HELLO = 0x00000001
MUX_VERSION = 4
PROBE_TIMEOUT = 2.0
SSH_ENV = {"SSH_ASKPASS_REQUIRE": "never"}  # with BatchMode and no tty: never any prompt, not even askpass


def master_alive(path: str) -> bool:
    """True when a master answers on `path` (the mux hello); a stale socket or none is False."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(PROBE_TIMEOUT)
            sock.connect(path)
            sock.sendall(struct.pack(">III", 8, MUX_MSG_HELLO, MUX_VERSION))
            header = _recv_exact(sock, 4)
            (length,) = struct.unpack(">I", header)
            body = _recv_exact(sock, min(length, 4096))
            return len(body) >= 4 and struct.unpack(">I", body[:4])[0] == MUX_MSG_HELLO
    except (OSError, struct.error):
        return False


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


class StartLock:
    """`<socket>.lock`, held while one process opens the master for that socket.

    Two runs opening the same host's master at once would both start
    `ssh -M`: the second finds the socket taken, turns multiplexing off and
    stays in the background as a plain connection nobody ever closes. Under
    this lock the second waits, then finds the first's master and uses it.
    It is an `flock`: the kernel drops it with the process, however it ends.
    """

    POLL_S = 0.01

    def __init__(self, sock: str):
        self.path = f"{sock}.lock"
        self._fd: int | None = None

    def acquire(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the lock (0: only if free now)."""
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(self.POLL_S)
                continue
            self._fd = fd
            return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file drops the flock
            self._fd = None


class MasterAttempt:
    """One `ssh -M -N -f` under way: begun now, its outcome read later (`result`), or given up (`abandon`).

    Begun early (remote/early.py, before the program has loaded) or by the
    Connector, it is awaited by whoever needs the connection; an attempt
    still under way when its run ends is abandoned: its process group is
    killed, so no handshake outlives the run that began it.
    """

    def __init__(self, argv: list[str], env: dict[str, str], start_lock: StartLock | None = None):
        self.argv = argv
        self._start_lock = start_lock  # held until the attempt has ended (made its master or failed)
        self._err = _scratch_file()
        try:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=self._err, start_new_session=True, env=env)
        except BaseException:
            self._ended()
            raise
        self._outcome: tuple[int | None, str] | None = None
        self._lock = threading.Lock()  # `abandon` (the run ending) may come while a thread awaits `result`

    def _ended(self) -> None:
        self._err.close()
        if self._start_lock is not None:
            self._start_lock.release()

    def result(self, timeout: float) -> tuple[int | None, str]:
        """Wait until ssh has authenticated (exit 0) or failed; (exit code or None on timeout, stderr)."""
        try:
            code = wait_with_deadline(self._proc, timeout) if self._outcome is None else None
        except BaseException:
            self.abandon()
            raise
        with self._lock:
            if self._outcome is None:
                if code is not None and code != 0:
                    kill_pgid(self._proc.pid)  # its proxies, if any are left
                self._err.seek(0)
                self._outcome = (code, self._err.read().decode(errors="replace"))
                self._ended()
            return self._outcome

    @property
    def succeeded(self) -> bool:
        """It ended having made its master (exit 0)."""
        return self._outcome is not None and self._outcome[0] == 0

    def abandon(self) -> None:
        """Kill the attempt if it is still under way (a master it already made stays: it is a normal one)."""
        killed = False
        if self._outcome is None and self._proc.poll() is None:
            kill_pgid(self._proc.pid)
            self._proc.wait()
            killed = True
        with self._lock:
            if self._outcome is None:
                self._outcome = (None if killed else self._proc.returncode, "abandoned")
                self._ended()


class StartLockBusy(Exception):
    """Another process kept a socket's start lock past the wait it was given."""


def begin_master(argv: list[str], sock: str, env: dict[str, str], wait: float) -> MasterAttempt | None:
    """Begin `ssh -M` (`argv`) for `sock` under its start lock, waiting `wait` seconds for the lock; None when a
    master already answers there (made by another run, maybe while this one waited). Raises StartLockBusy."""
    if master_alive(sock):
        return None
    lock = StartLock(sock)
    if not lock.acquire(wait):
        raise StartLockBusy(sock)
    if master_alive(sock):
        lock.release()
        return None
    return MasterAttempt(argv, env, start_lock=lock)


def start_master(argv: list[str], timeout: float, env: dict[str, str]) -> tuple[int | None, str]:
    """Run `ssh -M -N -f …` until it has authenticated (exit 0) or failed; (exit code or None on timeout, stderr)."""
    return MasterAttempt(argv, env).result(timeout)


def _scratch_file():
    """An anonymous file for ssh's stderr. `tempfile` costs 3 ms to import, paid before the early start
    (remote/early.py): Linux's O_TMPFILE needs nothing; elsewhere, tempfile it is."""
    flag = getattr(os, "O_TMPFILE", 0)
    if flag:
        try:
            return os.fdopen(os.open(os.environ.get("TMPDIR") or "/tmp", flag | os.O_RDWR, 0o600), "w+b")
        except OSError:
            pass
    import tempfile

    return tempfile.TemporaryFile()
