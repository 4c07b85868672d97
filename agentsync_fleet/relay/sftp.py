"""Move files between the controller and a host: SFTP over the host's session, or plain files locally.

Paths are absolute (relay files live under the repo's .git, whose absolute
path we ask git for), so no `~` expansion is involved. The SFTP channel gets
the host's command timeout, so a host that stops answering cannot hang a run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..errors import FleetError


def _is_local(session) -> bool:
    return not hasattr(session, "sftp")


def _sftp(session, timeout: float):
    client = session.sftp()
    client.get_channel().settimeout(timeout)
    return client


def _failed(session, what: str, path: str, exc: BaseException) -> FleetError:
    detail = str(exc) or type(exc).__name__
    return FleetError(f"{what} {path} failed: {detail}", host=session.name)


def read_files(session, paths: list[str], timeout: float) -> dict[str, bytes]:
    """The content of (small) files on the host, over one SFTP session."""
    path = ""
    try:
        if _is_local(session):
            return {path: Path(path).read_bytes() for path in paths}
        out = {}
        with _sftp(session, timeout) as sftp:
            for path in paths:
                with sftp.open(path, "rb") as handle:
                    out[path] = handle.read()
        return out
    except Exception as exc:  # noqa: BLE001 - OSError or paramiko's errors: the transfer failed, say where
        raise _failed(session, "reading", path or ", ".join(paths), exc) from None


def write_files(session, files: dict[str, bytes], timeout: float) -> None:
    """Create or replace files on the host (mode 0600: patches may hold private code), one SFTP session."""
    path = ""
    try:
        if _is_local(session):
            for path, data in files.items():
                Path(path).write_bytes(data)
                Path(path).chmod(0o600)
            return
        with _sftp(session, timeout) as sftp:
            for path, data in files.items():
                with sftp.open(path, "wb") as handle:
                    handle.write(data)
                sftp.chmod(path, 0o600)
    except Exception as exc:  # noqa: BLE001 - see read_files
        raise _failed(session, "writing", path or ", ".join(files), exc) from None


def upload(session, local: Path, path: str, timeout: float) -> int:
    """Copy a controller file to the host, streaming (bundles can be large); returns bytes sent."""
    try:
        if _is_local(session):
            shutil.copyfile(local, path)
        else:
            with _sftp(session, timeout) as sftp:
                sftp.put(str(local), path)
        return local.stat().st_size
    except Exception as exc:  # noqa: BLE001 - see read_files
        raise _failed(session, "uploading to", path, exc) from None


def download(session, path: str, local: Path, timeout: float) -> int:
    """Copy a host file to the controller, streaming; returns bytes received."""
    try:
        if _is_local(session):
            shutil.copyfile(path, local)
        else:
            with _sftp(session, timeout) as sftp:
                sftp.get(path, str(local))
        return local.stat().st_size
    except Exception as exc:  # noqa: BLE001 - see read_files
        raise _failed(session, "downloading", path, exc) from None


def copy_between(src_session, src_path: str, dst_session, dst_path: str, timeout: float) -> int:
    """Copy a file from one host to another through the controller; returns its size in bytes."""
    import tempfile

    if _is_local(src_session):
        return upload(dst_session, Path(src_path), dst_path, timeout)
    with tempfile.TemporaryDirectory(prefix="agentsync-relay-") as tmp:
        local = Path(tmp) / "transfer"
        download(src_session, src_path, local, timeout)
        return upload(dst_session, local, dst_path, timeout)
