"""`sandbox.up` / `sandbox.down`: the built-in practice fleet on this machine.

Both only ever touch a directory this tool made: `sandbox.up` refuses a root
that already holds anything (a sandbox that is up, or files of someone
else's), and `sandbox.down` removes only a root with the sandbox marker file
(`sandbox.MARKER`), saying which one.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError

DEFAULT_ROOT = "~/.local/share/agentsync/sandbox"
DEFAULT_SUBNET = 77


def root_dir(root: str | None) -> Path:
    return Path(root or os.environ.get("AGENTSYNC_SANDBOX") or DEFAULT_ROOT).expanduser().absolute()


def subnet_of(value: str | int | None) -> int:
    """The sandbox's addresses are 127.<subnet>.0.x: a whole number 1..254."""
    if value in (None, ""):
        return DEFAULT_SUBNET
    try:
        subnet = int(value)
    except (TypeError, ValueError):
        subnet = 0
    if not 1 <= subnet <= 254:
        raise UsageError(f"--subnet expects a whole number from 1 to 254 (hosts get 127.N.0.x), got {value!r}")
    return subnet


def up(root: str | None, subnet: str | int | None = None) -> int:
    from .. import sandbox_fleet
    from ..output import console

    path, net = root_dir(root), subnet_of(subnet)
    sandbox, inventory = sandbox_fleet.build(path, net)
    out = console()
    out.print(f"[green]sandbox fleet up[/] under {sandbox.root} (addresses 127.{net}.0.x)", soft_wrap=True)
    for host in sandbox.hosts.values():
        out.print(f"  {host.name:<7} sshd on {host.address}:{host.port} (pid {host.pid}, own PID + mount namespace)")
    out.print("  laptop  this machine (local: true)")
    out.print("unpushed work waiting: 1 commit on laptop, 1 on cloud; cloud runs a pretend v7_runtime;")
    out.print("gpu holds experiment results (and a .env that must never leave it)")
    out.print(f"inventory: {inventory}", soft_wrap=True)
    out.print(f"next: [bold]agentsync sync-all --inventory {inventory}[/]  (or export AGENTSYNC_INVENTORY={inventory})",
              soft_wrap=True)
    out.print(f"stop it: agentsync sandbox.down --root {sandbox.root}", soft_wrap=True)
    return 0


def down(root: str | None) -> int:
    from ..output import console
    from ..sandbox import MARKER, Sandbox, made_by_agentsync

    path = root_dir(root)
    if not path.exists():
        console().print(f"no sandbox fleet under {path}; nothing to stop", soft_wrap=True)
        return 0
    if not made_by_agentsync(path):
        raise UsageError(f"{path} holds no sandbox made by agentsync (no {MARKER} file there); removed nothing",
                         hint="name the sandbox to stop with --root (the directory `sandbox.up` printed)")
    box = Sandbox(path)
    names = ", ".join(box.hosts) or "no hosts"
    box.destroy()
    console().print(f"sandbox fleet under {path} ({names}) stopped and removed", soft_wrap=True)
    return 0
