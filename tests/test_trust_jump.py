"""`trust` for a host behind ProxyJump whose jump host's key is unknown: ssh refuses the host (the jump host's
key comes first), and so do we — saying which host's key is missing and the command that trusts it. Nothing
is ever added without that command."""

from __future__ import annotations

import json
import subprocess


def ssh_verdict(fleet, alias: str) -> int:
    return subprocess.run(["ssh", "-F", str(fleet.ssh_config), "-o", "BatchMode=yes", alias, "true"],
                          capture_output=True, timeout=30, stdin=subprocess.DEVNULL, start_new_session=True).returncode


def test_trust_behind_an_unknown_jump_host_names_the_jump_and_adds_nothing(fleet):
    fleet.write_ssh_files(untrusted=("jump",))
    inv = fleet.inventory({"inner": {"ssh": "inner-via-jump"}})
    before = fleet.known_hosts.read_bytes()
    assert ssh_verdict(fleet, "inner-via-jump") != 0  # ssh itself refuses: jump's key is unknown

    refused = fleet.agentsync("trust", "inner", "--yes", inventory=inv)
    assert refused.returncode == 1, refused.stdout + refused.stderr
    said = refused.stdout + refused.stderr
    assert "the jump host jump" in said and "unknown host key" in said
    assert f"agentsync trust inner --jump jump --inventory {inv}" in said
    assert "Traceback" not in said
    assert fleet.known_hosts.read_bytes() == before  # nothing added, neither jump's key nor inner's

    row = json.loads(fleet.agentsync("health", "--json", inventory=inv).stdout)["hosts"][0]
    assert row["reachable"] is False and row["reason"] == "host key unknown", row
    assert "the jump host jump" in row["error"] and row["fingerprint"].startswith("SHA256:")
    assert f"agentsync trust inner --jump jump --inventory {inv}" in row["hint"]
    assert fleet.known_hosts.read_bytes() == before


def test_trust_with_jump_trusts_that_hop_as_ssh_would_and_then_the_host_works(fleet):
    fleet.write_ssh_files(untrusted=("jump",))
    inv = fleet.inventory({"inner": {"ssh": "inner-via-jump"}})
    trusted = fleet.agentsync("trust", "inner", "--jump", "jump", "--yes", "--json", inventory=inv)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    data = json.loads(trusted.stdout)
    assert data["outcome"] == "trusted" and data["jump"] == "jump" and data["known_hosts"] == str(fleet.known_hosts)
    jump = fleet.sandbox.hosts["jump"]
    assert data["endpoint"] == f"[{jump.address}]:{jump.port}"
    found = subprocess.run(["ssh-keygen", "-F", data["endpoint"], "-f", str(fleet.known_hosts)],
                           capture_output=True, text=True)
    assert fleet.sandbox.host_public_key("jump").split()[1] in found.stdout
    assert ssh_verdict(fleet, "inner-via-jump") == 0  # ssh itself now reaches inner through jump

    again = fleet.agentsync("trust", "inner", "--yes", inventory=inv)  # inner's own key was known all along
    assert again.returncode == 0 and "already trusted" in again.stdout, again.stdout + again.stderr
    row = json.loads(fleet.agentsync("health", "--json", inventory=inv).stdout)["hosts"][0]
    assert row["reachable"] is True, row


def test_trust_jump_must_name_one_of_the_hosts_hops(fleet):
    inv = fleet.inventory({"inner": {"ssh": "inner-via-jump"}, "cloud": {}})
    wrong = fleet.agentsync("trust", "inner", "--jump", "cloud", "--yes", inventory=inv)
    assert wrong.returncode == 2 and "'cloud' is not a ProxyJump hop on the way to 'inner'" in wrong.stderr + wrong.stdout
    none = fleet.agentsync("trust", "cloud", "--jump", "jump", "--yes", inventory=inv)
    assert none.returncode == 2 and "it has no ProxyJump" in none.stderr + none.stdout
