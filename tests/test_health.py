"""`health` against real sshd hosts: the deploy gate tells each kind of trouble apart."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time

import pytest

PROC = "python3 -c 'import time; time.sleep(600)' agentsync-test-proc"


def report(result) -> dict:
    assert result.stdout.strip().startswith("{"), result.stderr
    data = json.loads(result.stdout)
    return {h["host"]: h for h in data["hosts"]} | {"_": data}


def test_healthy_fleet_passes_the_gate_with_a_table_for_people(fleet):
    inv = fleet.inventory()
    result = fleet.agentsync("health", inventory=inv)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("laptop", "cloud", "gpu"):
        assert name in result.stdout
    assert "deploy gate: PASS" in result.stdout
    assert "3/3 hosts ready" in result.stdout


def test_json_report_has_repo_state_and_nothing_else_on_stdout(fleet):
    inv = fleet.inventory({"laptop": {}, "cloud": {}, "gpu": {"gpu": True, "zerotier": "db64858fedbf2ce1"}})
    result = fleet.agentsync("health", "--json", inventory=inv)
    assert result.returncode == 0, result.stderr
    hosts = report(result)
    origin = fleet.origin_head()
    for name in ("laptop", "cloud", "gpu"):
        assert hosts[name]["passed"] is True
        assert hosts[name]["repo"]["head"] == origin
        assert hosts[name]["repo"]["branch"] == "main"
        assert (hosts[name]["repo"]["ahead"], hosts[name]["repo"]["behind"]) == (0, 0)
        assert hosts[name]["system"]["disk_free_bytes"] > 0
        assert hosts[name]["system"]["load"] is not None
    assert hosts["cloud"]["latency_ms"] is not None
    gpu = hosts["gpu"]["gpu"]
    assert gpu["status"] == "ok"
    assert gpu["gpus"][0]["name"] == "NVIDIA GeForce RTX 4090"
    assert gpu["gpus"][0]["memory_total_mb"] == 24564
    assert gpu["processes"][0]["pid"] == 4242
    assert hosts["gpu"]["zerotier"]["status"] == "ok"
    assert hosts["_"]["passed"] is True


def test_bad_fleet_tells_each_host_apart_refuses_unknown_key_and_returns_in_time(fleet):
    fleet.write_ssh_files(untrusted=("gpu",))
    known_before = hashlib.sha256(fleet.known_hosts.read_bytes()).hexdigest()
    fleet.start_process("cloud", PROC.replace("agentsync-test-proc", "agentsync-test-proc v7_runtime"))
    (fleet.repo("cloud") / "scratch.txt").write_text("uncommitted work\n")
    inv = fleet.inventory({
        "down": {}, "hang": {}, "gpu": {},
        "cloud": {"guard": {"processes": ["v7_runtime"], "critical_files": ["apps/runtime/v7_runtime.py"]}},
    })
    start = time.monotonic()
    result = fleet.agentsync("health", "--json", inventory=inv)
    elapsed = time.monotonic() - start
    assert result.returncode == 1
    hosts = report(result)
    assert hosts["down"]["reachable"] is False and hosts["down"]["reason"] == "refused"
    assert hosts["hang"]["reachable"] is False and hosts["hang"]["reason"] == "timeout"
    assert hosts["gpu"]["reachable"] is False and hosts["gpu"]["reason"] == "host key unknown"
    assert hosts["gpu"]["fingerprint"].startswith("SHA256:")
    assert hosts["gpu"]["fingerprint"] in hosts["gpu"]["error"]
    cloud = hosts["cloud"]
    assert cloud["reachable"] is True and cloud["passed"] is False
    assert cloud["repo"]["dirty"] == 1
    assert any("uncommitted" in f for f in cloud["failures"])
    running = cloud["processes"]
    assert len(running) == 1 and running[0]["pattern"] == "v7_runtime" and "agentsync-test-proc" in running[0]["command"]
    assert running[0]["pid"] > 0
    # connect_timeout is 3 s in the test inventory; allow 2 s on top (plus interpreter start-up)
    assert elapsed < 3 + 2 + 1.0, elapsed
    assert hashlib.sha256(fleet.known_hosts.read_bytes()).hexdigest() == known_before


def test_changed_host_key_is_refused_with_both_fingerprints(fleet, other_key):
    fleet.write_ssh_files(replaced_keys={"cloud": other_key})
    inv = fleet.inventory({"cloud": {}})
    result = fleet.agentsync("health", "--json", inventory=inv)
    assert result.returncode == 1
    cloud = report(result)["cloud"]
    assert cloud["reason"] == "host key changed"
    assert "HOST KEY CHANGED" in cloud["error"]
    assert cloud["fingerprint"] in cloud["error"]
    assert "ssh-keygen -R" in cloud["hint"]


def test_behind_and_diverged_repos_fail_the_gate(fleet):
    fleet.commit("laptop", "notes.md", "new\n", "Laptop work")
    fleet.git("laptop", "push", "-q", "origin", "main")
    fleet.commit("gpu", "gpu.md", "gpu\n", "GPU work")  # gpu: 1 ahead, 1 behind after fetch
    inv = fleet.inventory()
    hosts = report(fleet.agentsync("health", "--json", inventory=inv))
    assert hosts["laptop"]["passed"] is True
    assert hosts["cloud"]["repo"]["behind"] == 1 and hosts["cloud"]["repo"]["ahead"] == 0
    assert any("behind origin/main" in f for f in hosts["cloud"]["failures"])
    assert hosts["gpu"]["repo"]["behind"] == 1 and hosts["gpu"]["repo"]["ahead"] == 1
    assert any("diverged" in f for f in hosts["gpu"]["failures"])


def test_no_fetch_uses_last_fetched_state(fleet):
    fleet.commit("laptop", "notes.md", "new\n", "Laptop work")
    fleet.git("laptop", "push", "-q", "origin", "main")
    inv = fleet.inventory({"cloud": {}})
    hosts = report(fleet.agentsync("health", "--json", "--no-fetch", inventory=inv))
    assert hosts["cloud"]["repo"]["behind"] == 0  # origin moved, but we did not look
    assert hosts["_"]["fetched"] is False


def test_rebase_in_progress_and_missing_repo_fail_the_gate(fleet):
    git_dir = fleet.repo("cloud") / ".git" / "rebase-merge"
    git_dir.mkdir()
    inv = fleet.inventory({"cloud": {}, "gpu": {"repo": "/srv/agentsync/nowhere"}})
    hosts = report(fleet.agentsync("health", "--json", inventory=inv))
    assert hosts["cloud"]["repo"]["in_progress"] == ["rebase"]
    assert any("rebase in progress" in f for f in hosts["cloud"]["failures"])
    assert hosts["gpu"]["repo"]["present"] is False
    assert "does not exist" in hosts["gpu"]["failures"][0]


def test_proxyjump_reaches_a_host_only_the_jump_host_can_resolve(fleet):
    inv = fleet.inventory({"inner": {"ssh": "inner-via-jump"}})
    result = fleet.agentsync("health", "--json", inventory=inv)
    assert result.returncode == 0, result.stdout + result.stderr
    assert report(result)["inner"]["repo"]["head"] == fleet.origin_head()
    with pytest.raises(socket.gaierror):  # so the only way there was through the jump host
        socket.getaddrinfo("inner.fleet", 22)


def test_missing_optional_tools_are_reported_unavailable(fleet):
    inv = fleet.inventory({"nocli": {"gpu": True, "zerotier": "db64858fedbf2ce1"}})
    hosts = report(fleet.agentsync("health", "--json", inventory=inv))
    assert hosts["nocli"]["gpu"]["status"] == "unavailable"
    assert hosts["nocli"]["zerotier"]["status"] == "unavailable"
    assert hosts["nocli"]["passed"] is True  # missing tools are reported, not a failed gate


def test_hostile_inventory_values_cannot_inject_shell(fleet, tmp_path):
    marker = tmp_path / "pwned"
    for name in ("cloud", "laptop"):
        inv = fleet.inventory({name: {
            "repo": f"/srv/agentsync/x; touch {marker}; echo $(touch {marker})`touch {marker}`",
            "guard": {"processes": [f"$(touch {marker})", f"'; touch {marker}; '", "v7_runtime|dash"]},
        }})
        hosts = report(fleet.agentsync("health", "--json", inventory=inv))
        assert hosts[name]["repo"]["present"] is False
    assert not marker.exists()
    assert not (fleet.sandbox.hosts["cloud"].path(str(marker))).exists()


def test_hosts_flag_limits_the_run_and_rejects_unknown_names(fleet):
    inv = fleet.inventory()
    hosts = report(fleet.agentsync("health", "--json", "--hosts", "cloud", inventory=inv))
    assert set(hosts) == {"cloud", "_"}
    bad = fleet.agentsync("health", "--hosts", "clod", inventory=inv)
    assert bad.returncode == 2
    assert "clod" in bad.stderr and "Traceback" not in bad.stderr


def test_trust_adds_a_key_on_purpose_after_showing_its_fingerprint(fleet):
    fleet.write_ssh_files(untrusted=("cloud",))
    inv = fleet.inventory({"cloud": {}})
    assert fleet.agentsync("health", inventory=inv).returncode == 1
    refused = fleet.agentsync("trust", "cloud", inventory=inv)  # no tty, no --yes: refuses
    assert refused.returncode == 2
    assert "SHA256:" in refused.stdout
    trusted = fleet.agentsync("trust", "cloud", "--yes", inventory=inv)
    assert trusted.returncode == 0, trusted.stderr
    assert "SHA256:" in trusted.stdout
    assert fleet.sandbox.host_public_key("cloud").split()[1] in fleet.known_hosts.read_text()
    assert fleet.agentsync("health", inventory=inv).returncode == 0
    again = fleet.agentsync("trust", "cloud", "--yes", inventory=inv)
    assert "already trusted" in again.stdout


def test_trust_never_replaces_a_changed_key(fleet, other_key):
    fleet.write_ssh_files(replaced_keys={"cloud": other_key})
    before = fleet.known_hosts.read_text()
    result = fleet.agentsync("trust", "cloud", "--yes", inventory=fleet.inventory({"cloud": {}}))
    assert result.returncode == 1
    assert "DIFFERENT key" in result.stderr
    assert fleet.known_hosts.read_text() == before


def test_dns_and_auth_failures_are_told_apart(fleet, tmp_path):
    stranger_key = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger_key)], check=True)
    cloud = fleet.sandbox.hosts["cloud"]
    with fleet.ssh_config.open("a") as handle:
        handle.write(f"\nHost cloud-badkey\n  HostName {cloud.address}\n  Port {cloud.port}\n  User root\n"
                     f"  IdentityFile {stranger_key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {fleet.known_hosts}\n")
    inv = fleet.inventory({"nowhere": {"ssh": "root@no-such-host.invalid"}, "badkey": {"ssh": "cloud-badkey"}})
    hosts = report(fleet.agentsync("health", "--json", inventory=inv))
    assert hosts["nowhere"]["reason"] == "dns"
    assert hosts["badkey"]["reason"] == "auth" and str(stranger_key) in hosts["badkey"]["hint"]


def test_ssh_config_include_is_followed(fleet, tmp_path):
    included = tmp_path / "fleet.d" / "cloud.conf"
    included.parent.mkdir()
    cloud = fleet.sandbox.hosts["cloud"]
    included.write_text(f"Host cloud-included\n  HostName {cloud.address}\n  Port {cloud.port}\n  User root\n"
                        f"  IdentityFile {fleet.sandbox.client_key}\n  UserKnownHostsFile {fleet.known_hosts}\n")
    with fleet.ssh_config.open("a") as handle:
        # `Host *` first: an Include after a Host block belongs to that block (and ssh reads it only there)
        handle.write(f"\nHost *\nInclude {tmp_path}/fleet.d/*.conf\n")
    assert ssh_true(fleet, "cloud-included") == 0  # ssh itself agrees
    hosts = report(fleet.agentsync("health", "--json", inventory=fleet.inventory({"cloud": {"ssh": "cloud-included"}})))
    assert hosts["cloud"]["passed"] is True


def test_a_proxyjump_chain_goes_through_every_hop_in_order(fleet):
    inner = fleet.sandbox.hosts["inner"]
    with fleet.ssh_config.open("a") as handle:
        handle.write(f"\nHost inner-via-chain\n  HostName inner.fleet\n  Port {inner.port}\n  User root\n"
                     f"  ProxyJump cloud,jump\n  IdentityFile {fleet.sandbox.client_key}\n  IdentitiesOnly yes\n"
                     f"  UserKnownHostsFile {fleet.known_hosts}\n")
    cloud_log = fleet.sandbox.hosts["cloud"].path("..") / "sshd.log"
    logins_before = cloud_log.read_text().count("Accepted publickey")
    result = fleet.agentsync("health", "--json", inventory=fleet.inventory({"inner": {"ssh": "inner-via-chain"}}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert report(result)["inner"]["repo"]["head"] == fleet.origin_head()
    assert cloud_log.read_text().count("Accepted publickey") == logins_before + 1  # the first hop was used


def test_a_hung_command_times_out_and_the_other_hosts_still_report(fleet):
    fleet.sandbox.hosts["gpu"].path(".agentsync-test-slow-git").write_text("")
    inv = fleet.inventory({"cloud": {}, "gpu": {"command_timeout": 2}})
    start = time.monotonic()
    result = fleet.agentsync("health", "--json", inventory=inv)
    elapsed = time.monotonic() - start
    hosts = report(result)
    assert result.returncode == 1
    assert hosts["cloud"]["passed"] is True
    assert hosts["gpu"]["reachable"] is True and any("timed out after 2s" in f for f in hosts["gpu"]["failures"])
    assert "command_timeout" in hosts["gpu"]["hint"]
    assert elapsed < 2 + 3, elapsed


def test_an_ssh_config_proxycommand_is_used(fleet):
    inner = fleet.sandbox.hosts["inner"]
    with fleet.ssh_config.open("a") as handle:
        handle.write(f"\nHost inner-via-command\n  HostName inner.fleet\n  Port {inner.port}\n  User root\n"
                     f"  ProxyCommand ssh -F {fleet.ssh_config} -o BatchMode=yes -W %h:%p jump\n"
                     f"  IdentityFile {fleet.sandbox.client_key}\n  IdentitiesOnly yes\n"
                     f"  UserKnownHostsFile {fleet.known_hosts}\n")
    result = fleet.agentsync("health", "--json", inventory=fleet.inventory({"inner": {"ssh": "inner-via-command"}}))
    assert result.returncode == 0, result.stdout + result.stderr
    assert report(result)["inner"]["repo"]["head"] == fleet.origin_head()  # inner.fleet resolves only on jump


def ssh_true(fleet, alias: str) -> int:
    """What OpenSSH itself says about a host with the test's config: the expected result."""
    return subprocess.run(["ssh", "-F", str(fleet.ssh_config), "-o", "BatchMode=yes", alias, "true"],
                          capture_output=True, timeout=30, stdin=subprocess.DEVNULL).returncode
