"""Helpers the rsync transfer tests share: an inventory with backups on the host's own disk, a JSON run."""

from __future__ import annotations

import json
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


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()
