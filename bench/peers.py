"""The same health probe run by each tool: agentsync, xargs + OpenSSH, Ansible, pyinfra.

Each entry returns a zero-argument callable that runs the tool once over the
given hosts and raises if any host did not answer correctly.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from fleet import wait_quiet
from measure import run_ok

from agentsync_fleet.models import Host
from agentsync_fleet.probes import health_script
from agentsync_fleet.sandbox import MOUNT_POINT

BENCH_VENV = Path(__file__).resolve().parent / ".work" / "venv" / "bin"
AGENTSYNC = str(Path(sys.executable).parent / "agentsync")


def probe_script(fleet) -> Path:
    """The exact script `agentsync health --no-fetch` sends to each host."""
    path = fleet.root / "probe.sh"
    path.write_text(health_script(Host("bench", f"{MOUNT_POINT}/crpbot"), fetch=False))
    return path


def agentsync(fleet, link, hosts, script, cold: bool = False):
    """`agentsync health`; warm: the ssh masters of the previous round are still up (ControlPersist, as for a
    user running it twice within 5 minutes); cold: every master is closed first (untimed), so each run pays
    every handshake, as the very first run does."""
    inv = fleet.inventory(link, hosts)
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / f"state-{link}-{'cold' if cold else 'warm'}")}

    def check(result) -> bool:
        data = json.loads(result.stdout)
        return len(data["hosts"]) == len(hosts) and all(h["reachable"] for h in data["hosts"])

    def once():
        return run_ok([AGENTSYNC, "health", "--no-fetch", "--json", "--inventory", str(inv)], check, env=env)

    def close_masters():  # run before each timed round, untimed (bench_health's before_each)
        run_ok([AGENTSYNC, "disconnect", "--inventory", str(inv)], env=env)
        wait_quiet()

    if cold:
        once.prepare = close_masters
    return once


def agentsync_cold(fleet, link, hosts, script):
    return agentsync(fleet, link, hosts, script, cold=True)


def xargs_ssh(fleet, link, hosts, script):
    config = fleet.dir(link) / "ssh_config"
    command = (f"printf '%s\\n' {' '.join(hosts)} | xargs -P {len(hosts)} -I{{}} "
               f"sh -c 'ssh -F {config} {{}} sh -s < {script} | grep -c \"@@agentsync@@ end\"'")
    return lambda: run_ok(["sh", "-c", command], lambda r: r.stdout.split().count("1") == len(hosts))


def ansible(fleet, link, hosts, script):
    if not (BENCH_VENV / "ansible").exists():
        return None
    inventory = fleet.ansible_inventory(link, hosts)
    env = {**os.environ, "ANSIBLE_PIPELINING": "True", "ANSIBLE_HOST_KEY_CHECKING": "True",
           "ANSIBLE_STDOUT_CALLBACK": "oneline", "ANSIBLE_FORKS": str(len(hosts))}
    argv = [str(BENCH_VENV / "ansible"), "fleet", "-i", str(inventory), "-m", "command", "-a",
            "sh -c " + shlex.quote(Path(script).read_text()), "-f", str(len(hosts))]
    return lambda: run_ok(argv, lambda r: r.stdout.count("rc=0") == len(hosts), env=env)


def pyinfra(fleet, link, hosts, script):
    if not (BENCH_VENV / "pyinfra").exists():
        return None
    inventory = fleet.pyinfra_inventory(link, hosts)
    argv = [str(BENCH_VENV / "pyinfra"), str(inventory), "exec", "-y", "--parallel", str(len(hosts)), "--",
            "sh -c " + shlex.quote(Path(script).read_text())]
    return lambda: run_ok(argv, lambda r: "@@agentsync@@ end" in r.stdout + r.stderr
                          and "Failed" not in r.stdout + r.stderr, cwd=str(fleet.dir(link)))


PEERS = {"agentsync": agentsync, "agentsync-cold": agentsync_cold, "xargs-ssh": xargs_ssh, "ansible": ansible,
         "pyinfra": pyinfra}
