"""The built-in practice fleet: a laptop (this machine), a cloud server and a GPU box.

`sandbox.up` builds it: real sshd hosts from `sandbox.py`, a bare git origin,
one checkout per host, a pretend production process on the cloud host, stand-in
`nvidia-smi` / `zerotier-cli` on the GPU host (they print the real tools'
documented formats), and an inventory that points at all of it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from .sandbox import MOUNT_POINT, Sandbox, claim_root, require_tools

PROJECT = "crpbot"
ZEROTIER_NETWORK = "db64858fedbf2ce1"
IDENTITIES = {"laptop": "Lena Laptop", "cloud": "Cody Cloud", "gpu": "Gil GPU", "seed": "Fleet Seed"}

NVIDIA_SMI = """#!/bin/sh
# Stand-in for nvidia-smi: prints what the real tool prints for these queries (csv, noheader, nounits).
case "$*" in
  *--query-gpu=*) echo "NVIDIA GeForce RTX 4090, 3121, 24564, 37, 54" ;;
  *--query-compute-apps=*) echo "4242, python3, 2980" ;;
  *) echo "NVIDIA-SMI 550.54.14    Driver Version: 550.54.14    CUDA Version: 12.4" ;;
esac
"""

ZEROTIER_CLI = """#!/bin/sh
# Stand-in for zerotier-cli: the documented `listnetworks` format.
if [ "$1" = listnetworks ]; then
  echo "200 listnetworks <nwid> <name> <mac> <status> <type> <dev> <ZT assigned ips>"
  echo "200 listnetworks %s fleet-net 7a:1c:2e:90:4b:11 OK PRIVATE ztks5abcde 10.147.17.23/24"
  exit 0
fi
echo "200 info 8056c2e21c 1.14.0 ONLINE"
"""

RUNTIME = """\"\"\"Pretend production runtime: sleeps; sync-all must never restart or kill it.\"\"\"
import time

while True:
    time.sleep(60)
"""

SEED_FILES = {
    "README.md": "# crpbot\n\nA pretend trading project used by the agentsync sandbox fleet.\n",
    "apps/runtime/v7_runtime.py": RUNTIME,
    "apps/dashboard/app.py": "print('dashboard')\n",
    "strategies/momentum.py": "WINDOW = 20\n",
    ".gitignore": "results/\n*.log\n.env\n",
}


def git(cwd: Path | str, *args: str) -> str:
    """Run git on the controller (used to seed repositories), returning stdout."""
    proc = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} in {cwd} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def install_tool(sandbox: Sandbox, host: str, name: str, text: str) -> None:
    path = Path(sandbox.hosts[host].bin_dir) / name
    path.write_text(text)
    path.chmod(0o755)


def make_origin(root: Path, files: dict[str, str] = SEED_FILES) -> Path:
    """A bare origin with one commit holding `files`."""
    origin = root / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    seed = root / "seed"
    subprocess.run(["git", "clone", "-q", str(origin), str(seed)], check=True, capture_output=True)
    set_identity(seed, "seed")
    git(seed, "checkout", "-q", "-b", "main")
    for rel, text in files.items():
        (seed / rel).parent.mkdir(parents=True, exist_ok=True)
        (seed / rel).write_text(text)
    git(seed, "add", "-A")
    git(seed, "commit", "-q", "-m", "Initial commit")
    git(seed, "push", "-q", "origin", "main")
    return origin


def set_identity(repo: Path, who: str) -> None:
    name = IDENTITIES.get(who, who.title())
    git(repo, "config", "user.name", name)
    git(repo, "config", "user.email", f"{who}@fleet.example")


def clone(origin: Path, dest: Path, who: str) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "clone", "-q", str(origin), str(dest)], check=True, capture_output=True)
    set_identity(dest, who)
    return dest


def build(root: str | Path, subnet: int = 77) -> tuple[Sandbox, Path]:
    """Create and start the laptop + cloud + gpu fleet under `root`; return it and its inventory path."""
    require_tools()
    sandbox = Sandbox(claim_root(root), subnet)
    for name in ("cloud", "gpu"):
        sandbox.add_host(name)
    install_tool(sandbox, "gpu", "nvidia-smi", NVIDIA_SMI)
    install_tool(sandbox, "gpu", "zerotier-cli", ZEROTIER_CLI % ZEROTIER_NETWORK)
    sandbox.start_all()
    origin = make_origin(sandbox.root)
    laptop_repo = clone(origin, sandbox.root / "laptop" / PROJECT, "laptop")
    for name in ("cloud", "gpu"):
        clone(origin, sandbox.hosts[name].path(PROJECT), name)
    sandbox.start_process("cloud", f"python3 {MOUNT_POINT}/{PROJECT}/apps/runtime/v7_runtime.py")
    seed_work(sandbox, laptop_repo)
    inventory = sandbox.root / "fleet.yaml"
    inventory.write_text(yaml.safe_dump(inventory_data(sandbox, laptop_repo), sort_keys=False))
    return sandbox, inventory


def seed_work(sandbox: Sandbox, laptop_repo: Path) -> None:
    """Unpushed work on two hosts, as a day of work leaves it, so sync-all has something to do."""
    cloud = sandbox.hosts["cloud"].path(PROJECT)
    (cloud / "strategies" / "mean_reversion.py").write_text("LOOKBACK = 48  # written by an agent on cloud\n")
    git(cloud, "add", "strategies/mean_reversion.py")
    git(cloud, "commit", "-q", "-m", "Add mean-reversion strategy (agent on cloud)")
    (laptop_repo / "README.md").write_text(SEED_FILES["README.md"] + "\nRun `agentsync health` before a deploy.\n")
    git(laptop_repo, "commit", "-q", "-am", "Document the deploy gate (laptop)")
    results = sandbox.hosts["gpu"].path(f"{PROJECT}/results/exp-001")  # ignored by git: comes back by rsync
    results.mkdir(parents=True)
    (results / "metrics.json").write_text('{"sharpe": 1.42, "max_drawdown": 0.08}\n')
    (results / "equity_curve.csv").write_text("day,equity\n" + "".join(f"{d},{1 + d / 1000:.3f}\n" for d in range(250)))
    (results / ".env").write_text("WANDB_API_KEY=not-a-real-key\n")  # a secret: must never travel


def inventory_data(sandbox: Sandbox, laptop_repo: Path) -> dict:
    repo = f"{MOUNT_POINT}/{PROJECT}"
    return {
        "ssh_config": str(sandbox.ssh_config),
        "state_dir": "state",  # journal, locks and the laptop's backups stay inside the sandbox
        "transfers": {"backup_dir": f"{MOUNT_POINT}/.agentsync-backups"},  # hosts share /root: backups on their disk
        "defaults": {"branch": "main", "connect_timeout": 5, "command_timeout": 60},
        "order": ["laptop", "cloud", "gpu"],
        "hosts": {
            "laptop": {"local": True, "repo": str(laptop_repo)},
            "cloud": {"ssh": "cloud", "repo": repo,
                      "guard": {"processes": ["v7_runtime", "dashboard"],
                                "critical_files": ["apps/runtime/v7_runtime.py"]}},
            "gpu": {"ssh": "gpu", "repo": repo, "zerotier": ZEROTIER_NETWORK, "gpu": True,
                    "results": [{"remote": "results/", "local": "results/gpu/"}],  # contents
                    "worktrees": [{"path": f"{MOUNT_POINT}/{PROJECT}-validation", "branch": "validation",
                                   "merge": "main", "strategy": "merge", "push": False}]},
        },
    }
