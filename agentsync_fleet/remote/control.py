"""ControlMaster sockets: one private 0700 directory, one short socket name per connection.

Unix socket paths are limited to ~104 bytes (sun_path), so the name is a
12-character hash, and when the state dir itself is too deep the directory
moves to /tmp/agentsync-<uid>/<hash of the state dir> — created 0700 and
checked to be ours and not a symlink, since /tmp is shared.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
from pathlib import Path

from ..errors import FleetError

SOCKET_PATH_MAX = 100  # bytes; sun_path is 104 on macOS/BSD, 108 on Linux, keep a margin
MASTER_SUFFIX = 17  # ssh binds "<ControlPath>.<16 random chars>" first, then renames it
NAME_LENGTH = 12
PLAIN_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")  # nothing ssh would read as a %token, a quote or a word break
DEFAULT_PERSIST = 300.0  # seconds a master stays after its last use: the next command within it is warm


def _digest(text: str, length: int = NAME_LENGTH) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def _private_dir(path: Path) -> Path:
    """Create `path` 0700 if missing; refuse it unless it is a real directory owned by us, 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise FleetError(f"{path} is not a directory owned by this user; refusing to keep ssh sockets there",
                         hint="remove it, or set state_dir in the inventory")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def control_dir(state_dir: str) -> Path:
    """The directory for this state dir's master sockets (short enough for a socket name)."""
    preferred = Path(os.path.abspath(state_dir)) / "cm"
    if len(str(preferred)) + 1 + NAME_LENGTH + MASTER_SUFFIX <= SOCKET_PATH_MAX and PLAIN_PATH.match(str(preferred)):
        return _private_dir(preferred)
    base = _private_dir(Path(f"/tmp/agentsync-{os.geteuid()}"))
    return _private_dir(base / _digest(str(preferred), 10))


def socket_name(*parts: str) -> str:
    return _digest("\0".join(parts))


def persist_arg(seconds: float) -> str:
    """ControlPersist's value: whole seconds, `no` when persistence is off (the master ends with the run)."""
    return f"{max(1, round(seconds))}s" if seconds > 0 else "no"


def disconnect_all(directory: Path, timeout: float = 10.0) -> list[str]:
    """Ask every master with a socket in `directory` to exit (`ssh -O exit`); returns the sockets closed."""
    closed = []
    if not directory.is_dir():
        return closed
    for sock in sorted(directory.iterdir()):
        try:
            if not stat.S_ISSOCK(os.lstat(sock).st_mode):
                continue
        except FileNotFoundError:  # a master that just ended (or ssh's temporary name, renamed)
            continue
        try:
            proc = subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit", "master"],
                                  capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            continue
        if proc.returncode == 0:
            closed.append(sock.name)
        else:  # a stale socket (its master is gone): nothing to close, just tidy up
            sock.unlink(missing_ok=True)
    return closed
