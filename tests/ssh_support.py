"""The ssh matrix's shared pieces: keys and certificates, `Host` blocks, ssh's own verdict, and the
`health` / `results` runs whose verdict must be the same as ssh's."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

from agentsync_fleet.sandbox import MOUNT_POINT

MODERN = ["KexAlgorithms sntrup761x25519-sha512@openssh.com,curve25519-sha256",
          "Ciphers chacha20-poly1305@openssh.com", "MACs hmac-sha2-256-etm@openssh.com",
          "HostKeyAlgorithms ssh-ed25519,ssh-ed25519-cert-v01@openssh.com"]
MX_REPO = f"{MOUNT_POINT}/mxrepo"


class ModuleHosts:
    """A test module's own sshd hosts and ssh-agent: started by `start`, stopped by `close` (module fixtures)."""

    def start(self, sandbox, hosts: dict, root: Path, agent_keys: list[Path]) -> None:
        """Start `hosts` (added to `sandbox` already) and an agent on root/agent.sock holding `agent_keys`, in order."""
        self.sandbox, self.hosts = sandbox, hosts
        for name in hosts:
            sandbox.start(name)
        self.agent_sock = root / "agent.sock"
        started = subprocess.run(["ssh-agent", "-a", str(self.agent_sock), "-s"], capture_output=True, text=True,
                                 check=True)
        self.agent_pid = int(started.stdout.split("SSH_AGENT_PID=")[1].split(";")[0])
        for key in agent_keys:
            subprocess.run(["ssh-add", "-q", str(key)], env={**os.environ, "SSH_AUTH_SOCK": str(self.agent_sock)},
                           check=True, capture_output=True)

    def close(self) -> None:
        os.kill(self.agent_pid, signal.SIGTERM)  # the agent this module started
        for name in self.hosts:
            self.sandbox.stop(name)


def keygen(path: Path, *extra: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path), *extra],
                   check=True, capture_output=True)
    return path


def sign(ca: Path, pub: Path, *extra: str) -> Path:
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", pub.stem, "-V", "-5m:+1d", *extra, str(pub)],
                   check=True, capture_output=True)
    return pub.with_name(pub.stem + "-cert.pub")


def block(alias: str, host, *lines: str, known: Path | None = None, key: str | None = None) -> str:
    """One `Host` block for a sandbox host, with the usual user/port and the given extra lines."""
    body = [f"Host {alias}", f"  HostName {host.address}", f"  Port {host.port}", "  User root", *lines]
    if key is not None:
        body.append(f"  IdentityFile {key}")
    if known is not None:
        body.append(f"  UserKnownHostsFile {known}")
    return "\n".join(body) + "\n"


def ssh_verdict(fleet, alias: str) -> int:
    """OpenSSH's own answer with the same config: 0 connects, 255 refuses."""
    return subprocess.run(["ssh", "-F", str(fleet.ssh_config), "-o", "BatchMode=yes", alias, "true"],
                          capture_output=True, timeout=30, stdin=subprocess.DEVNULL, start_new_session=True).returncode


def health(fleet, alias: str) -> tuple[dict, subprocess.CompletedProcess]:
    inv = fleet.inventory({"mx": {"ssh": alias, "repo": MX_REPO}})
    result = fleet.agentsync("health", "--json", "--no-fetch", inventory=inv)
    data = json.loads(result.stdout)  # one JSON document on stdout, whatever happened
    return data["hosts"][0], result


def seed(fleet, host: str) -> None:
    """The checkout-like directory `results` brings back from, on the sandbox host behind the alias."""
    out = fleet.sandbox.hosts[host].path("mxrepo") / "mx-out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.txt").write_text(f"from {host}\n")


def results(fleet, alias: str) -> tuple[int, Path, dict]:
    """`results` from the host behind `alias`: exit code, where the seeded file lands, the transfer's row."""
    local = fleet.laptop_repo / "results" / alias
    inv = fleet.inventory({"laptop": {}, "mx": {"ssh": alias, "repo": MX_REPO,
                                                "results": [{"remote": "mx-out/", "local": f"results/{alias}/"}]}},
                          transfers={"backup_dir": f"{MOUNT_POINT}/.agentsync-backups"})
    result = fleet.agentsync("results", "--json", inventory=inv)
    data = json.loads(result.stdout)  # one JSON document on stdout, whatever happened
    transfers = data.get("transfers") or [{}]
    return result.returncode, local / "result.txt", {**transfers[0], "problems": data.get("problems", [])}


def assert_same_verdict(fleet, alias: str, ssh_connects: bool, reason: str = "", host: str = "cloud") -> dict:
    """ssh's verdict is as documented, and health and results agree with it (results: nothing lands, and the
    transfer says the host was not reached, rather than failing some other way)."""
    seed(fleet, host)
    assert (ssh_verdict(fleet, alias) == 0) is ssh_connects, f"ssh's own verdict on {alias} changed"
    row, _ = health(fleet, alias)
    assert row["reachable"] is ssh_connects, row
    if reason:
        assert row["reason"] == reason, row
    code, landed, transfer = results(fleet, alias)
    assert (code == 0 and landed.is_file()) is ssh_connects, transfer
    if not ssh_connects:
        assert not landed.exists()
        assert transfer.get("status") == "unreachable", transfer
    return row


def append(fleet, text: str) -> None:
    with fleet.ssh_config.open("a") as handle:
        handle.write("\n" + text)
