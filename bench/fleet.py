"""The benchmark fleet: N real sshd hosts (one namespace each), optionally behind a 25 ms/way proxy.

Writes, for each link (`loopback`, `wan50`), an ssh_config + known_hosts, an
agentsync inventory, an Ansible inventory and a pyinfra inventory that all
point at the same hosts, so every tool is measured against the same servers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

from agentsync_fleet.sandbox import MOUNT_POINT, Sandbox, free_port
from agentsync_fleet.sandbox_fleet import clone, make_origin

HERE = Path(__file__).resolve().parent
BENCH_SUBNET = int(os.environ.get("AGENTSYNC_BENCH_SUBNET", "93"))  # 127.<subnet>.0.x; parallel benches pick their own
REPO = f"{MOUNT_POINT}/crpbot"


class BenchFleet:
    def __init__(self, root: Path, count: int, delay: float = 0.025):
        self.root = root
        self.count = count
        self.delay = delay
        self.names = [f"h{i:02d}" for i in range(count)]
        self.sandbox = Sandbox(root / "sandbox", subnet=BENCH_SUBNET)
        self.proxy: subprocess.Popen | None = None
        self.links: dict[str, dict[str, tuple[str, int]]] = {}

    def up(self) -> BenchFleet:
        if self.sandbox.hosts:
            self.sandbox.destroy()
            self.sandbox = Sandbox(self.root / "sandbox", subnet=BENCH_SUBNET)
        for name in self.names:
            self.sandbox.add_host(name)
        self.sandbox.start_all()
        self.origin = make_origin(self.root)
        self.laptop_repo = clone(self.origin, self.root / "laptop" / "crpbot", "laptop")
        for name in self.names:
            clone(self.origin, self.sandbox.hosts[name].path("crpbot"), name)
        direct = {n: (h.address, h.port) for n, h in self.sandbox.hosts.items()}
        delayed = {n: (f"127.94.{i // 200}.{i % 200 + 2}", 0) for i, n in enumerate(self.names)}
        delayed = {n: (addr, free_port(addr)) for n, (addr, _) in delayed.items()}
        self.links = {"loopback": direct, "wan50": delayed}
        mappings = [f"{a}:{p}={direct[n][0]}:{direct[n][1]}" for n, (a, p) in delayed.items()]
        self.proxy = subprocess.Popen([sys.executable, str(HERE / "delay_proxy.py"), "--delay", str(self.delay),
                                       *mappings], stdout=subprocess.PIPE, text=True)
        assert self.proxy.stdout.readline().strip() == "ready"
        for link in self.links:
            self._write_link_files(link)
        return self

    def down(self) -> None:
        if self.proxy:
            self.proxy.terminate()
            self.proxy.wait(5)
        self.sandbox.destroy()

    def dir(self, link: str) -> Path:
        path = self.root / link
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _write_link_files(self, link: str) -> None:
        out = self.dir(link)
        targets = self.links[link]
        config, known = [], []
        key = self.sandbox.client_key
        for name, (address, port) in targets.items():
            config += [f"Host {name}", f"  HostName {address}", f"  Port {port}", "  User root",
                       f"  IdentityFile {key}", "  IdentitiesOnly yes", f"  UserKnownHostsFile {out / 'known_hosts'}",
                       "  StrictHostKeyChecking yes", "  BatchMode yes", "  ControlMaster no", ""]
            known.append(f"[{address}]:{port} {self.sandbox.host_public_key(name)}")
        (out / "ssh_config").write_text("\n".join(config))
        (out / "known_hosts").write_text("\n".join(known) + "\n")

    def inventory(self, link: str, hosts: list[str], laptop: bool = False, extra: dict | None = None) -> Path:
        out = self.dir(link)
        data = {"ssh_config": str(out / "ssh_config"),
                "defaults": {"connect_timeout": 20, "command_timeout": 120},
                "hosts": {}}
        if laptop:
            data["hosts"]["laptop"] = {"local": True, "repo": str(self.laptop_repo)}
        for name in hosts:
            data["hosts"][name] = {"ssh": name, "repo": REPO, **(extra or {})}
        path = out / f"fleet-{len(hosts)}{'-laptop' if laptop else ''}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def ansible_inventory(self, link: str, hosts: list[str]) -> Path:
        out = self.dir(link)
        lines = ["[fleet]"] + hosts + ["", "[fleet:vars]", "ansible_user=root",
                                        "ansible_python_interpreter=/usr/bin/python3",
                                        f"ansible_ssh_common_args='-F {out / 'ssh_config'}'",
                                        f"ansible_ssh_private_key_file={self.sandbox.client_key}"]
        path = out / f"ansible-{len(hosts)}.ini"
        path.write_text("\n".join(lines) + "\n")
        return path

    def pyinfra_inventory(self, link: str, hosts: list[str]) -> Path:
        out = self.dir(link)
        rows = []
        for name in hosts:
            address, port = self.links[link][name]
            rows.append((address, {"ssh_port": port, "ssh_user": "root", "ssh_key": str(self.sandbox.client_key),
                                   "ssh_known_hosts_file": str(out / "known_hosts"),
                                   "ssh_strict_host_key_checking": "yes"}))
        path = out / f"pyinfra_{len(hosts)}.py"
        path.write_text(f"fleet = {rows!r}\n")
        return path


def wait_quiet(seconds: float = 0.2) -> None:
    """Let sshd children of the previous round exit before the next one is timed."""
    time.sleep(seconds)
