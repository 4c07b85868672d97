"""More of the ssh matrix, on servers of its own: each config is first run with plain `ssh -F cfg HOST true`
(ssh's verdict is the expected result), then `health` and `results` must reach the same verdict.

Servers: one that offers only a narrow set of algorithms, one with `MaxAuthTries 1`, one that lets root in
only from one loopback source address, one with a host certificate. A real ssh-agent holds several keys.
"""

from __future__ import annotations

import os
import pwd
import shutil
from pathlib import Path

import pytest
from ssh_support import ModuleHosts, append, assert_same_verdict, block, keygen, results, sign

NARROW = ["KexAlgorithms curve25519-sha256", "Ciphers aes256-ctr",
          "MACs hmac-sha2-256-etm@openssh.com", "HostKeyAlgorithms ssh-ed25519"]
PROXY_WORDS = "bastion.example: no route to host (is the VPN up?)"


class Servers(ModuleHosts):
    """The module's own sshd hosts, a host CA and an agent holding two unauthorized keys before the right one."""

    def __init__(self, sandbox, root: Path):
        cloud = sandbox.hosts["cloud"]
        self.bind_address = cloud.address.rsplit(".", 1)[0] + ".250"  # loopback, in this run's subnet
        self.host_ca = keygen(root / "host_ca")
        signed_etc = Path(sandbox.root) / "hosts" / "sv-signed" / "etc"
        hosts = {
            "sv-narrow": sandbox.add_host("sv-narrow", sshd_extra=NARROW),
            "sv-maxauth": sandbox.add_host("sv-maxauth", sshd_extra=["MaxAuthTries 1"]),
            "sv-bind": sandbox.add_host("sv-bind", sshd_extra=[f"AllowUsers root@{self.bind_address}"]),
            "sv-signed": sandbox.add_host("sv-signed", sshd_extra=[
                f"HostCertificate {signed_etc / 'ssh_host_ed25519_key-cert.pub'}"]),
        }
        signed = hosts["sv-signed"]
        sign(self.host_ca, signed_etc / "ssh_host_ed25519_key.pub", "-h", "-n", f"{signed.address},sv-signed")
        self.start(sandbox, hosts, root, [keygen(root / "wrong_1"), keygen(root / "wrong_2"), sandbox.client_key])

    def known(self, fleet, name: str) -> Path:
        """A known_hosts file holding exactly this host's key."""
        host = self.hosts[name]
        path = fleet.root / f"kh-{name}"
        path.write_text(f"[{host.address}]:{host.port} {self.sandbox.host_public_key(name)}\n")
        return path


@pytest.fixture(scope="module")
def servers(sandbox, tmp_path_factory):
    world = Servers(sandbox, tmp_path_factory.mktemp("servers"))
    yield world
    world.close()


def test_percent_u_d_and_k_tokens_expand_as_in_ssh(fleet, servers):
    cloud = fleet.sandbox.hosts["cloud"]
    account = pwd.getpwuid(os.getuid())
    keys = fleet.root / "tokens"
    keys.mkdir()
    shutil.copy(fleet.sandbox.client_key, keys / f"key_{account.pw_name}")
    os.chmod(keys / f"key_{account.pw_name}", 0o600)
    host_key = fleet.sandbox.host_public_key("cloud")
    (keys / "known_tokens-k").write_text(f"[{cloud.address}]:{cloud.port} {host_key}\n")  # %k: the name typed
    (keys / "known_cloud-tok").write_text(f"cloud-tok {host_key}\n")  # %k: the HostKeyAlias
    from_home = os.path.relpath(keys, account.pw_dir)  # %d is the home directory: reach the test's dir from it
    lines = ("  IdentitiesOnly yes", "  IdentityAgent none", f"  IdentityFile %d/{from_home}/key_%u",
             f"  UserKnownHostsFile {keys}/known_%k")
    append(fleet, block("tokens-k", cloud, *lines))
    append(fleet, block("tokens-alias", cloud, *lines, "  HostKeyAlias cloud-tok"))
    append(fleet, block("tokens-nofile", cloud, *lines, "  HostKeyAlias cloud-none"))  # known_cloud-none: absent
    assert_same_verdict(fleet, "tokens-k", True)
    assert_same_verdict(fleet, "tokens-alias", True)
    assert_same_verdict(fleet, "tokens-nofile", False, "host key unknown")


def test_a_key_in_the_global_known_hosts_file_is_accepted(fleet, servers):
    cloud = fleet.sandbox.hosts["cloud"]
    global_known, user_known = fleet.root / "global_known_hosts", fleet.root / "kh-empty"
    global_known.write_text(f"[{cloud.address}]:{cloud.port} {fleet.sandbox.host_public_key('cloud')}\n")
    user_known.write_text("")
    append(fleet, block("cloud-global", cloud, f"  GlobalKnownHostsFile {global_known}",
                        key=fleet.sandbox.client_key, known=user_known))
    assert_same_verdict(fleet, "cloud-global", True)
    assert user_known.read_text() == ""  # nothing was added anywhere


def test_address_family_and_bind_address_are_honoured(fleet, servers):
    """sv-bind lets root in only from one loopback address: only a connection bound to it gets in."""
    host, known = servers.hosts["sv-bind"], servers.known(fleet, "sv-bind")
    append(fleet, block("bound", host, "  AddressFamily inet", f"  BindAddress {servers.bind_address}",
                        key=fleet.sandbox.client_key, known=known))
    append(fleet, block("unbound", host, key=fleet.sandbox.client_key, known=known))
    append(fleet, block("inet6-only", host, "  AddressFamily inet6", key=fleet.sandbox.client_key, known=known))
    assert_same_verdict(fleet, "bound", True, host="sv-bind")
    log = (Path(host.dir) / "sshd.log").read_text()
    assert f"Accepted publickey for root from {servers.bind_address}" in log
    assert_same_verdict(fleet, "unbound", False, "auth", host="sv-bind")
    assert_same_verdict(fleet, "inet6-only", False, "dns", host="sv-bind")  # an IPv4 address, IPv6 only


def test_a_proxyjump_chain_reaches_the_host_for_health_and_results(fleet, servers):
    inner = fleet.sandbox.hosts["inner"]
    hop_lines = (f"  IdentityFile {fleet.sandbox.client_key}", f"  UserKnownHostsFile {fleet.known_hosts}")
    append(fleet, "\n".join(["Host inner-chain", "  HostName inner.fleet", f"  Port {inner.port}", "  User root",
                             "  ProxyJump cloud,jump", *hop_lines, ""]))
    append(fleet, "\n".join(["Host inner-dead-hop", "  HostName inner.fleet", f"  Port {inner.port}",
                             "  User root", "  ProxyJump down,jump", *hop_lines, ""]))
    assert_same_verdict(fleet, "inner-chain", True, host="inner")
    assert_same_verdict(fleet, "inner-dead-hop", False, "refused", host="inner")


@pytest.mark.parametrize(("alias", "offer", "words"), [
    ("narrow-kex", "KexAlgorithms diffie-hellman-group14-sha256", "no matching key exchange method"),
    ("narrow-cipher", "Ciphers aes128-ctr", "no matching cipher"),
    ("narrow-mac", "MACs hmac-sha1", "no matching MAC"),
    ("narrow-hostkey", "HostKeyAlgorithms ecdsa-sha2-nistp256", "no matching host key type"),
])
def test_no_common_algorithm_is_refused_like_ssh(fleet, servers, alias, offer, words):
    host, known = servers.hosts["sv-narrow"], servers.known(fleet, "sv-narrow")
    append(fleet, block("narrow-ok", host, key=fleet.sandbox.client_key, known=known))
    append(fleet, block(alias, host, f"  {offer}", key=fleet.sandbox.client_key, known=known))
    assert_same_verdict(fleet, "narrow-ok", True, host="sv-narrow")  # the server itself is fine
    row = assert_same_verdict(fleet, alias, False, "no common algorithm", host="sv-narrow")
    assert words in row["error"], row


def test_too_many_authentication_failures_with_several_agent_keys(fleet, servers):
    """MaxAuthTries 1: the agent offers two wrong keys first. `IdentitiesOnly yes` (the hint) fixes it."""
    host, known = servers.hosts["sv-maxauth"], servers.known(fleet, "sv-maxauth")
    append(fleet, block("many-keys", host, f"  IdentityAgent {servers.agent_sock}", known=known))
    append(fleet, block("one-key", host, f"  IdentityAgent {servers.agent_sock}", "  IdentitiesOnly yes",
                        key=f"{fleet.sandbox.client_key}.pub", known=known))
    row = assert_same_verdict(fleet, "many-keys", False, "too many auth failures", host="sv-maxauth")
    assert "IdentitiesOnly yes" in row["hint"]
    assert_same_verdict(fleet, "one-key", True, host="sv-maxauth")


def test_a_failing_proxy_command_is_refused_with_its_own_words(fleet, servers):
    cloud = fleet.sandbox.hosts["cloud"]
    append(fleet, block("proxy-fails", cloud, f"  ProxyCommand sh -c \"echo '{PROXY_WORDS}' >&2; exit 1\"",
                        key=fleet.sandbox.client_key, known=fleet.known_hosts))
    row = assert_same_verdict(fleet, "proxy-fails", False, "proxy")
    assert PROXY_WORDS in row["error"], row
    _, _, transfer = results(fleet, "proxy-fails")
    assert PROXY_WORDS in f"{transfer.get('error')} {transfer.get('detail')}", transfer


def test_a_cert_authority_accepts_the_certified_host_and_refuses_an_uncertified_key(fleet, servers):
    signed, cloud = servers.hosts["sv-signed"], fleet.sandbox.hosts["cloud"]
    known = fleet.root / "kh-ca-only"
    known.write_text(f"@cert-authority * {servers.host_ca.with_suffix('.pub').read_text().strip()}\n")
    append(fleet, block("signed", signed, key=fleet.sandbox.client_key, known=known))
    append(fleet, block("signed-plain-key", signed, "  HostKeyAlgorithms ssh-ed25519", key=fleet.sandbox.client_key,
                        known=known))  # the same host, asked for its uncertified key
    append(fleet, block("never-signed", cloud, key=fleet.sandbox.client_key, known=known))
    assert_same_verdict(fleet, "signed", True, host="sv-signed")
    assert_same_verdict(fleet, "signed-plain-key", False, "host key unknown", host="sv-signed")
    assert_same_verdict(fleet, "never-signed", False, "host key unknown")
