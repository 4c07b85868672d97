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
import signal
import socket
import struct
import subprocess
import tempfile

from .process import wait_with_deadline

MUX_MSG_HELLO = 0x00000001
MUX_VERSION = 4
PROBE_TIMEOUT = 2.0


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


def start_master(argv: list[str], timeout: float, env: dict[str, str]) -> tuple[int | None, str]:
    """Run `ssh -M -N -f …` until it has authenticated (exit 0) or failed; (exit code or None on timeout, stderr)."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True, env=env)
        try:
            code = wait_with_deadline(proc, timeout)
        except BaseException:
            _kill_group(proc.pid)
            proc.wait()
            raise
        if code is not None and code != 0:
            _kill_group(proc.pid)  # its proxies, if any are left
        err.seek(0)
        return code, err.read().decode(errors="replace")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
