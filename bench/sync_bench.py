"""sync-all on 3 hosts against the hand-run routine: the same steps, one host after another, plain ssh.

The sequential script is what the team types today: on the laptop pull and
push; then for each host one ssh to look (`ps`, `git status`) and one ssh to
stash, pull --rebase, pop and push.
"""

from __future__ import annotations

import json
import subprocess

from measure import BenchRunFailed, run_ok

from agentsync_fleet.sandbox import MOUNT_POINT

REPO = f"{MOUNT_POINT}/crpbot"
HOSTS = ["h00", "h01", "h02"]


def sequential_script(fleet, link: str) -> str:
    config = fleet.dir(link) / "ssh_config"
    lines = ["set -e", f"cd {fleet.laptop_repo}", "git pull -q --rebase origin main", "git push -q origin HEAD:main"]
    for host in HOSTS:
        lines.append(f"ssh -F {config} {host} 'ps aux | grep -c [v]7_runtime || true; "
                     f"cd {REPO} && git status --porcelain | wc -l' >/dev/null")
        lines.append(f"ssh -F {config} {host} 'cd {REPO} && git stash -q; git pull -q --rebase origin main && "
                     "(git stash pop -q 2>/dev/null || true) && git push -q origin HEAD:main' >/dev/null")
    return "\n".join(lines) + "\n"


def _all_converged(fleet) -> None:
    origin = subprocess.run(["git", "-C", str(fleet.origin), "rev-parse", "main"], capture_output=True,
                            text=True).stdout.strip()
    for host in HOSTS:
        head = subprocess.run(["git", "-C", str(fleet.sandbox.hosts[host].path("crpbot")), "rev-parse", "HEAD"],
                              capture_output=True, text=True).stdout.strip()
        if head != origin:
            raise BenchRunFailed(f"{host} at {head[:8]}, origin at {origin[:8]}: the run did not converge")


def sync_commands(fleet, link: str, scenario: str, agentsync: str) -> tuple[dict, object]:
    """(timed commands, an untimed hook run before each) for one scenario on one link."""
    inventory = fleet.inventory(link, HOSTS, laptop=True)
    script = fleet.root / f"sequential-{link}.sh"
    script.write_text(sequential_script(fleet, link))
    counter = [0]

    def new_commit(_name: str) -> None:
        if scenario != "one-commit":
            return
        counter[0] += 1
        (fleet.laptop_repo / "bench.txt").write_text(f"change {counter[0]}\n")
        for args in (["add", "bench.txt"], ["commit", "-qm", f"bench change {counter[0]} ({link})"]):
            subprocess.run(["git", "-C", str(fleet.laptop_repo), *args], check=True)

    def agentsync_run() -> None:
        run_ok([agentsync, "sync-all", "--json", "--inventory", str(inventory)], lambda r: json.loads(r.stdout)["ok"])
        _all_converged(fleet)

    def sequential_run() -> None:
        run_ok(["sh", str(script)])
        _all_converged(fleet)

    return {"agentsync sync-all": agentsync_run, "sequential ssh": sequential_run}, new_commit
