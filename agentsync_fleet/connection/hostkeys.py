"""`trust`: read the key a host presents, compare it with known_hosts, add it on purpose."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import paramiko

from ..errors import HostUnreachable
from ..models import Host
from .config import SYSTEM_KNOWN_HOSTS, USER_KNOWN_HOSTS, Endpoint
from .handshake import _classify, _hint_for, _open_socket, fingerprint


@dataclass(frozen=True)
class PresentedKey:
    """The key a host presents, and how it compares with what known_hosts says."""

    endpoint: Endpoint
    key_type: str
    key_base64: str
    fingerprint: str
    status: str  # known | unknown | changed
    known_fingerprint: str = ""


def read_host_key(connector, host: Host) -> PresentedKey:
    """Run the key exchange only (no authentication) to see which key the host presents.

    `connector` is the run's `Connector`: jump hosts on the way are opened
    (and their own keys verified) as for any connection.
    """
    endpoint = connector.resolver.resolve(host.ssh or host.name)
    via = connector.tunnel(host.name, endpoint, host.connect_timeout)
    try:
        transport = paramiko.Transport(_open_socket(endpoint, via, host.connect_timeout))
        transport.start_client(timeout=host.connect_timeout)
        key = transport.get_remote_server_key()
        transport.close()
    except Exception as exc:  # noqa: BLE001 - shown to the user as a reason
        reason, message = _classify(exc, False)
        raise HostUnreachable(message, reason=reason, host=host.name, hint=_hint_for(reason, endpoint)) from None
    known = paramiko.HostKeys()
    for path in endpoint.known_hosts_files:
        if os.path.isfile(path):
            known.load(path)
    entry = known.lookup(endpoint.known_hosts_entry_name) or {}
    status, old = "unknown", ""
    if key.get_name() in entry:
        status = "known" if entry[key.get_name()] == key else "changed"
        old = fingerprint(entry[key.get_name()])
    elif entry:
        status, old = "changed", ", ".join(fingerprint(k) for k in entry.values())
    return PresentedKey(endpoint, key.get_name(), key.get_base64(), fingerprint(key), status, old)


def trust_file(endpoint: Endpoint) -> Path:
    """Where `trust` writes: the first UserKnownHostsFile ssh_config names, else ~/.ssh/known_hosts."""
    extra = [f for f in endpoint.known_hosts_files if f not in (SYSTEM_KNOWN_HOSTS,
                                                                 str(Path(USER_KNOWN_HOSTS).expanduser()))]
    return Path(extra[0] if extra else Path(USER_KNOWN_HOSTS).expanduser())


def append_known_host(path: Path, presented: PresentedKey) -> None:
    """Add one `name keytype base64` line to a known_hosts file (created 0600 if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    line = f"{presented.endpoint.known_hosts_entry_name} {presented.key_type} {presented.key_base64}\n"
    if path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        line = "\n" + line
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(line)
