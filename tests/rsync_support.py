"""Helpers the rsync transfer tests share: an inventory with backups on the host's own disk, a JSON run."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from agentsync_fleet.sandbox import MOUNT_POINT

# Sandbox hosts share /root with the controller: backups go on each host's own disk instead.
BACKUPS = f"{MOUNT_POINT}/.agentsync-backups"


def inventory(fleet, hosts: dict, **top) -> Path:
    top.setdefault("transfers", {"backup_dir": BACKUPS})
    return fleet.inventory(hosts, **top)


def run(fleet, task: str, *flags: str, inv: Path) -> tuple[int, dict]:
    """Run a transfer task with --json; (exit status, report with transfers also indexed by name)."""
    result = fleet.agentsync(task, "--json", *flags, inventory=inv)
    assert result.stdout.startswith("{"), result.stderr
    data = json.loads(result.stdout)
    data["by_name"] = {t["name"]: t for t in data["transfers"]}
    return result.returncode, data


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def debian_rsync(version: str = "3.2.7") -> Path:
    """Debian 12's own rsync `version` (the main archive's, next to the 3.5.0 its security archive serves),
    fetched once with apt into a cache and unpacked: a real older rsync to put at one end of a transfer."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "agentsync-tests" / f"rsync-{version}"
    binary = cache / "usr" / "bin" / "rsync"
    if binary.exists():
        return binary
    listed = subprocess.run(["apt-cache", "madison", "rsync"], capture_output=True, text=True, check=True).stdout
    found = [cols[1].strip() for cols in (line.split("|") for line in listed.splitlines())
             if len(cols) > 2 and cols[1].strip().startswith(version + "-")]
    if not found:
        raise RuntimeError(f"apt knows no rsync {version} (apt-cache madison rsync): run apt-get update; "
                           "the tests need Debian 12's archive")
    with tempfile.TemporaryDirectory() as work:
        subprocess.run(["apt-get", "download", "-q", f"rsync={found[0]}"], cwd=work, check=True,
                       capture_output=True)
        [deb] = Path(work).glob("rsync_*.deb")
        unpacked = Path(work) / "x"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(unpacked)], check=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(unpacked, cache)  # atomic: a parallel suite fetching the same finds one whole copy
        except OSError:
            if not binary.exists():
                raise
    return binary
