"""The user's own SSH, exactly: for each ssh_config feature, OpenSSH's verdict (`ssh -F cfg HOST true`) is
the expected result, and `health` and `results` must reach the same verdict — connect where ssh connects,
refuse where ssh refuses, with the reason told apart.

Real sshd hosts (added to the session's sandbox), a real ssh-agent, real host and user certificate
authorities; nothing is mocked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from ssh_support import (
    MODERN,
    MX_REPO,
    ModuleHosts,
    append,
    assert_same_verdict,
    block,
    health,
    keygen,
    results,
    sign,
    ssh_verdict,
)

from agentsync_fleet.errors import FleetError
from agentsync_fleet.inventory import load
from agentsync_fleet.remote import Connector
from agentsync_fleet.sandbox import MOUNT_POINT


class Matrix(ModuleHosts):
    """The extra hosts and credentials the matrix needs, made once per module."""

    def __init__(self, sandbox, root: Path):
        self.root = root
        self.host_ca = keygen(root / "host_ca")
        self.user_ca = keygen(root / "user_ca")
        self.user_key = keygen(root / "user_key")  # not authorized anywhere: only its certificate is
        self.user_cert = sign(self.user_ca, self.user_key.with_suffix(".pub"), "-n", "root")
        cert_etc = Path(sandbox.root) / "hosts" / "mx-cert" / "etc"
        hosts = {
            "mx-modern": sandbox.add_host("mx-modern", sshd_extra=MODERN),
            "mx-cert": sandbox.add_host("mx-cert", sshd_extra=[
                f"HostCertificate {cert_etc / 'ssh_host_ed25519_key-cert.pub'}",
                f"TrustedUserCAKeys {self.user_ca}.pub"]),
            "mx-2fa": sandbox.add_host("mx-2fa", sshd_extra=["AuthenticationMethods publickey,password",
                                                              "PasswordAuthentication yes"]),
        }
        cert = hosts["mx-cert"]
        sign(self.host_ca, cert_etc / "ssh_host_ed25519_key.pub", "-h", "-n", f"{cert.address},mx-cert")
        self.start(sandbox, hosts, root, [sandbox.client_key])
        self.agent_pub = root / "agent_only" / "client.pub"  # the public half alone: the private one is in the agent
        self.agent_pub.parent.mkdir()
        shutil.copy(f"{sandbox.client_key}.pub", self.agent_pub)


@pytest.fixture(scope="module")
def matrix(sandbox, tmp_path_factory):
    world = Matrix(sandbox, tmp_path_factory.mktemp("matrix"))
    yield world
    world.close()


def test_a_modern_only_server_is_reached_like_ssh_does(fleet, matrix):
    host = matrix.hosts["mx-modern"]
    known = fleet.root / "kh-modern"
    known.write_text(f"[{host.address}]:{host.port} {fleet.sandbox.host_public_key('mx-modern')}\n")
    append(fleet, block("modern", host, key=fleet.sandbox.client_key, known=known))
    assert_same_verdict(fleet, "modern", True, host="mx-modern")


def test_a_revoked_marker_in_a_global_known_hosts_file_is_refused(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    global_known = fleet.root / "global_known_hosts"
    global_known.write_text(f"@revoked [{cloud.address}]:{cloud.port} {fleet.sandbox.host_public_key('cloud')}\n")
    append(fleet, block("cloud-revoked", cloud, f"  GlobalKnownHostsFile {global_known}",
                        key=fleet.sandbox.client_key, known=fleet.known_hosts))
    row = assert_same_verdict(fleet, "cloud-revoked", False, "host key revoked")
    assert "revoked" in row["error"].lower()


def test_a_key_in_revoked_host_keys_is_refused(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    revoked = fleet.root / "revoked_keys"
    revoked.write_text(fleet.sandbox.host_public_key("cloud") + "\n")
    append(fleet, block("cloud-krl", cloud, f"  RevokedHostKeys {revoked}", key=fleet.sandbox.client_key,
                        known=fleet.known_hosts))
    assert_same_verdict(fleet, "cloud-krl", False, "host key revoked")


def test_a_host_certificate_from_a_cert_authority_is_accepted_and_its_plain_key_is_not(fleet, matrix):
    host = matrix.hosts["mx-cert"]
    known = fleet.root / "kh-ca"
    known.write_text(f"@cert-authority * {(matrix.host_ca.with_suffix('.pub')).read_text().strip()}\n")
    append(fleet, block("certified", host, key=fleet.sandbox.client_key, known=known))
    append(fleet, block("uncertified", host, "  HostKeyAlgorithms ssh-ed25519", key=fleet.sandbox.client_key,
                        known=known))
    assert_same_verdict(fleet, "certified", True, host="mx-cert")
    assert_same_verdict(fleet, "uncertified", False, "host key unknown", host="mx-cert")


def test_a_user_certificate_file_is_used(fleet, matrix):
    host = matrix.hosts["mx-cert"]
    known = fleet.root / "kh-cert"
    known.write_text(f"[{host.address}]:{host.port} {fleet.sandbox.host_public_key('mx-cert')}\n")
    append(fleet, block("usercert", host, "  IdentitiesOnly yes", f"  CertificateFile {matrix.user_cert}",
                        "  IdentityAgent none", key=matrix.user_key, known=known))
    assert_same_verdict(fleet, "usercert", True, host="mx-cert")


def test_identity_agent_is_used_and_none_means_none(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    append(fleet, block("via-agent", cloud, f"  IdentityAgent {matrix.agent_sock}", known=fleet.known_hosts))
    append(fleet, block("no-agent", cloud, "  IdentityAgent none", known=fleet.known_hosts))
    assert_same_verdict(fleet, "via-agent", True)
    assert_same_verdict(fleet, "no-agent", False, "auth")


def test_identities_only_with_the_key_in_the_agent(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    append(fleet, block("only-agent", cloud, "  IdentitiesOnly yes", f"  IdentityAgent {matrix.agent_sock}",
                        key=str(matrix.agent_pub), known=fleet.known_hosts))
    assert_same_verdict(fleet, "only-agent", True)


def test_match_host_user_and_exec_decide_as_in_ssh(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    append(fleet, "\n".join([
        "Host matched", "  User root",
        'Match originalhost matched user root exec "test -n %h"',
        f"  HostName {cloud.address}", f"  Port {cloud.port}", f"  IdentityFile {fleet.sandbox.client_key}",
        f"  UserKnownHostsFile {fleet.known_hosts}",
        "Match originalhost matched user nobody", "  Port 1", ""]))
    assert_same_verdict(fleet, "matched", True)


def test_include_inside_a_host_block_applies_to_that_host_only(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    included = fleet.root / "conf.d" / "cloud.conf"
    included.parent.mkdir()
    included.write_text(f"HostName {cloud.address}\nPort {cloud.port}\nUser root\n"
                        f"IdentityFile {fleet.sandbox.client_key}\nUserKnownHostsFile {fleet.known_hosts}\n")
    append(fleet, f"Host included\n  Include {fleet.root}/conf.d/*.conf\nHost not-included\n  HostName 127.0.0.1\n"
                  "  Port 9\n")
    assert_same_verdict(fleet, "included", True)
    assert_same_verdict(fleet, "not-included", False, "refused")


def test_percent_tokens_in_paths_expand_as_in_ssh(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    keys = fleet.root / "tokens"
    keys.mkdir()
    shutil.copy(fleet.sandbox.client_key, keys / "root_key")
    os.chmod(keys / "root_key", 0o600)
    (keys / f"known_{cloud.address}_{cloud.port}").write_text(
        f"[{cloud.address}]:{cloud.port} {fleet.sandbox.host_public_key('cloud')}\n")
    append(fleet, block("tokens", cloud, "  IdentitiesOnly yes", key=f"{keys}/%r_key", known=f"{keys}/known_%h_%p"))
    assert_same_verdict(fleet, "tokens", True)


def test_hashed_known_hosts_and_host_key_alias_on_a_non_22_port(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    hashed = fleet.root / "kh-hashed"
    hashed.write_text(f"cloud-alias {fleet.sandbox.host_public_key('cloud')}\n")  # ssh adds no port to an alias
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(hashed)], check=True, capture_output=True)
    assert "cloud-alias" not in hashed.read_text()
    append(fleet, block("aliased", cloud, "  HostKeyAlias cloud-alias", key=fleet.sandbox.client_key, known=hashed))
    assert_same_verdict(fleet, "aliased", True)


def test_a_proxycommand_that_needs_a_shell(fleet, matrix):
    inner = fleet.sandbox.hosts["inner"]
    append(fleet, "\n".join([
        "Host inner-shell", "  HostName inner.fleet", f"  Port {inner.port}", "  User root",
        f"  ProxyCommand ssh -F {fleet.ssh_config} -o BatchMode=yes -W %h:%p jump 2>/dev/null || exit 1",
        f"  IdentityFile {fleet.sandbox.client_key}", f"  UserKnownHostsFile {fleet.known_hosts}", ""]))
    assert_same_verdict(fleet, "inner-shell", True, host="inner")


def test_proxyjump_none_overrides_a_later_wildcard(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    append(fleet, block("no-jump", cloud, "  ProxyJump none", key=fleet.sandbox.client_key, known=fleet.known_hosts)
           + "Host no-jump\n  ProxyJump jump\n")
    assert_same_verdict(fleet, "no-jump", True)


def test_a_second_factor_is_refused_cleanly_without_a_prompt_or_a_hang(fleet, matrix):
    host = matrix.hosts["mx-2fa"]
    known = fleet.root / "kh-2fa"
    known.write_text(f"[{host.address}]:{host.port} {fleet.sandbox.host_public_key('mx-2fa')}\n")
    append(fleet, block("two-factor", host, key=fleet.sandbox.client_key, known=known))
    start = time.monotonic()
    row = assert_same_verdict(fleet, "two-factor", False, "second factor", host="mx-2fa")
    assert "never prompts" in row["error"]
    assert time.monotonic() - start < 30


def test_a_proxyjump_loop_is_refused_at_once(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    append(fleet, block("loop-target", cloud, "  ProxyJump loop-bastion", key=fleet.sandbox.client_key,
                        known=fleet.known_hosts) + block("loop-bastion", cloud, "  ProxyJump loop-bastion"))
    start = time.monotonic()
    row, result = health(fleet, "loop-target")
    assert row["reachable"] is False and row["reason"] == "config" and "loop" in row["error"], row
    assert time.monotonic() - start < 10
    code, landed, _ = results(fleet, "loop-target")
    assert code != 0 and not landed.exists()
    # Nothing of the loop may outlive the run: a plain `ssh -F` on this config recurses without end.
    leftovers = subprocess.run(["pgrep", "-f", f"{fleet.ssh_config}.*loop-bastion"], capture_output=True, text=True)
    assert leftovers.stdout == "", f"ssh processes left running: {leftovers.stdout.split()}"


def test_the_fleet_hosts_have_no_sftp_server_yet_files_travel(fleet):
    """cloud and gpu run without `Subsystem sftp` (see conftest): the relay tests pass over them."""
    batch = subprocess.run(["sftp", "-F", str(fleet.ssh_config), "-b", "-", "cloud"], input="pwd\n",
                           capture_output=True, text=True, timeout=30, start_new_session=True)
    assert batch.returncode != 0
    inv = load(str(fleet.inventory({"cloud": {}})))
    connector = Connector(inv, state=str(fleet.root / "state"))
    session = connector.session(inv.hosts["cloud"])
    data = bytes(range(256)) * 1000
    session.put(f"{MOUNT_POINT}/blob.bin", data, timeout=30)
    assert fleet.sandbox.hosts["cloud"].path("blob.bin").read_bytes() == data
    assert oct(fleet.sandbox.hosts["cloud"].path("blob.bin").stat().st_mode)[-3:] == "600"
    assert session.get(f"{MOUNT_POINT}/blob.bin", timeout=30) == data
    with pytest.raises(FleetError, match="no-such"):
        session.get(f"{MOUNT_POINT}/no-such", timeout=30)


def test_accept_new_in_the_config_is_overridden_and_the_refusal_says_so(fleet, matrix):
    fleet.write_ssh_files(untrusted=("cloud",))
    cloud = fleet.sandbox.hosts["cloud"]
    append(fleet, block("cloud-lax", cloud, "  StrictHostKeyChecking accept-new", key=fleet.sandbox.client_key,
                        known=fleet.known_hosts))
    before = fleet.known_hosts.read_text()
    inv = fleet.inventory({"lax": {"ssh": "cloud-lax", "repo": MX_REPO}})
    result = fleet.agentsync("health", "--json", inventory=inv)
    row = json.loads(result.stdout)["hosts"][0]
    assert row["reason"] == "host key unknown" and row["fingerprint"].startswith("SHA256:")
    assert "StrictHostKeyChecking accept-new" in row["error"]
    assert f"agentsync trust lax --inventory {inv}" in row["hint"]
    assert fleet.known_hosts.read_text() == before  # ssh with accept-new would have added it; we never do


def test_trust_writes_where_ssh_reads_hashed_under_the_host_key_alias_and_known_markers_do_not_break_it(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    known = fleet.root / "kh-trust"
    ca = matrix.host_ca.with_suffix(".pub").read_text().strip()
    known.write_text(f"@cert-authority *.example {ca}\n@revoked other.example {fleet.sandbox.host_public_key('gpu')}\n")
    append(fleet, block("cloud-hashed", cloud, "  HostKeyAlias cloud-box", "  HashKnownHosts yes",
                        key=fleet.sandbox.client_key, known=f"{known} {fleet.root / 'kh-second'}"))
    inv = fleet.inventory({"hashed": {"ssh": "cloud-hashed", "repo": MX_REPO}})
    assert ssh_verdict(fleet, "cloud-hashed") != 0
    trusted = fleet.agentsync("trust", "hashed", "--yes", inventory=inv)
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    lines = known.read_text().splitlines()
    assert len(lines) == 3 and lines[2].startswith("|1|") and "cloud-box" not in lines[2]  # hashed, appended
    assert not (fleet.root / "kh-second").exists()
    found = subprocess.run(["ssh-keygen", "-F", "cloud-box", "-f", str(known)], capture_output=True, text=True)
    assert fleet.sandbox.host_public_key("cloud").split()[1] in found.stdout
    assert ssh_verdict(fleet, "cloud-hashed") == 0  # ssh itself now accepts it
    again = fleet.agentsync("trust", "hashed", "--yes", inventory=inv)
    assert "already trusted" in again.stdout


def sshd_logins(fleet, host: str) -> int:
    return (Path(fleet.sandbox.hosts[host].dir) / "sshd.log").read_text().count("Accepted publickey")


def test_a_second_run_reuses_the_master_and_disconnect_closes_it(fleet):
    inv = fleet.inventory({"cloud": {}})
    assert fleet.agentsync("health", "--json", inventory=inv).returncode == 0
    logins = sshd_logins(fleet, "cloud")
    assert fleet.agentsync("health", "--json", inventory=inv).returncode == 0
    assert fleet.agentsync("results", "--json", inventory=fleet.inventory(
        {"laptop": {}, "cloud": {"results": [{"remote": "./", "local": "results/cloud/"}]}},
        transfers={"backup_dir": f"{MOUNT_POINT}/.agentsync-backups"})).returncode == 0
    assert sshd_logins(fleet, "cloud") == logins  # health, the lock and rsync all rode the warm master
    closed = fleet.agentsync("disconnect", "--json", inventory=inv)
    assert closed.returncode == 0 and json.loads(closed.stdout)["closed"] >= 1
    assert fleet.agentsync("health", "--json", inventory=inv).returncode == 0
    assert sshd_logins(fleet, "cloud") == logins + 1  # a new connection after disconnect


def test_control_persist_no_ends_the_masters_with_the_run(fleet):
    inv = fleet.inventory({"cloud": {}}, control_persist="no")
    assert fleet.agentsync("health", "--json", inventory=inv).returncode == 0
    closed = fleet.agentsync("disconnect", "--json", inventory=inv)
    assert json.loads(closed.stdout)["closed"] == 0


def test_wildcard_and_negated_known_hosts_patterns(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    key = fleet.sandbox.host_public_key("cloud")
    wild, negated = fleet.root / "kh-wild", fleet.root / "kh-negated"
    wild.write_text(f"[127.*]:* {key}\n")
    negated.write_text(f"cloud-*,!cloud-neg {key}\n")  # names as HostKeyAlias gives them
    append(fleet, block("wild", cloud, key=fleet.sandbox.client_key, known=wild))
    append(fleet, block("negated", cloud, "  HostKeyAlias cloud-neg", key=fleet.sandbox.client_key, known=negated))
    append(fleet, block("not-negated", cloud, "  HostKeyAlias cloud-pos", key=fleet.sandbox.client_key, known=negated))
    assert_same_verdict(fleet, "wild", True)
    assert_same_verdict(fleet, "negated", False, "host key unknown")
    assert_same_verdict(fleet, "not-negated", True)


def test_a_passphrase_key_works_only_when_its_agent_holds_it(fleet, matrix):
    cloud = fleet.sandbox.hosts["cloud"]
    locked = fleet.root / "locked_key"
    shutil.copy(fleet.sandbox.client_key, locked)  # the authorized key, with a passphrase on this copy
    os.chmod(locked, 0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", "secret phrase", "-f", str(locked)], check=True,
                   capture_output=True)
    append(fleet, block("locked-agent", cloud, "  IdentitiesOnly yes", f"  IdentityAgent {matrix.agent_sock}",
                        key=str(locked), known=fleet.known_hosts))
    append(fleet, block("locked-alone", cloud, "  IdentitiesOnly yes", "  IdentityAgent none",
                        key=str(locked), known=fleet.known_hosts))
    assert_same_verdict(fleet, "locked-agent", True)
    assert_same_verdict(fleet, "locked-alone", False, "auth")  # never a passphrase prompt


def test_connection_attempts_against_a_silent_host_cost_one_bounded_wait(fleet, matrix):
    listener = fleet.listener
    append(fleet, "\n".join(["Host silent-retries", f"  HostName {listener.address}", f"  Port {listener.port}",
                             "  ConnectionAttempts 3", "  ConnectTimeout 1", ""]))
    start = time.monotonic()
    row, _ = health(fleet, "silent-retries")
    assert row["reachable"] is False and row["reason"] == "timeout", row
    assert time.monotonic() - start < 3 + 1 + 3  # connect_timeout 3 s in the test inventory, plus start-up
