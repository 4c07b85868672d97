"""`sandbox.up` / `sandbox.down`: the built-in practice fleet on this machine."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_ROOT = "~/.local/share/agentsync/sandbox"


def root_dir(root: str | None) -> Path:
    return Path(root or os.environ.get("AGENTSYNC_SANDBOX") or DEFAULT_ROOT).expanduser()


def up(root: str | None) -> int:
    from .. import sandbox_fleet
    from ..output import console

    sandbox, inventory = sandbox_fleet.build(root_dir(root))
    out = console()
    out.print(f"[green]sandbox fleet up[/] under {sandbox.root}")
    for host in sandbox.hosts.values():
        out.print(f"  {host.name:<7} sshd on {host.address}:{host.port} (pid {host.pid}, own PID + mount namespace)")
    out.print("  laptop  this machine (local: true)")
    out.print("unpushed work waiting: 1 commit on laptop, 1 on cloud; cloud runs a pretend v7_runtime;")
    out.print("gpu holds experiment results (and a .env that must never leave it)")
    out.print(f"inventory: {inventory}")
    out.print(f"next: [bold]agentsync sync-all --inventory {inventory}[/]  (or export AGENTSYNC_INVENTORY={inventory})",
              soft_wrap=True)
    return 0


def down(root: str | None) -> int:
    from ..output import console
    from ..sandbox import Sandbox

    path = root_dir(root)
    if not (path / "sandbox.json").exists():
        console().print(f"no sandbox fleet under {path}; nothing to stop")
        return 0
    Sandbox(path).destroy()
    console().print(f"sandbox fleet under {path} stopped and removed")
    return 0
