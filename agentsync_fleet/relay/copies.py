"""Move files between the controller and a host over the host's session (plain `cat`, no SFTP needed).

Paths are absolute (relay files live under the repo's .git, whose absolute
path we ask git for), so no `~` expansion is involved. Every transfer gets
the host's command timeout, so a host that stops answering cannot hang a run.
"""

from __future__ import annotations

import tempfile
from pathlib import Path


def read_files(session, paths: list[str], timeout: float) -> dict[str, bytes]:
    """The content of (small) files on the host."""
    return {path: session.get(path, timeout=timeout) for path in paths}


def write_files(session, files: dict[str, bytes], timeout: float) -> None:
    """Create or replace files on the host (mode 0600: patches may hold private code)."""
    for path, data in files.items():
        session.put(path, data, timeout=timeout, mode=0o600)


def upload(session, local: Path, path: str, timeout: float) -> int:
    """Copy a controller file to the host, streaming (bundles can be large); returns bytes sent."""
    return session.upload(local, path, timeout=timeout)


def download(session, path: str, local: Path, timeout: float) -> int:
    """Copy a host file to the controller, streaming; returns bytes received."""
    return session.download(path, local, timeout=timeout)


def copy_between(src_session, src_path: str, dst_session, dst_path: str, timeout: float) -> int:
    """Copy a file from one host to another through the controller; returns its size in bytes."""
    with tempfile.TemporaryDirectory(prefix="agentsync-relay-") as tmp:
        local = Path(tmp) / "transfer"
        download(src_session, src_path, local, timeout)
        return upload(dst_session, local, dst_path, timeout)
