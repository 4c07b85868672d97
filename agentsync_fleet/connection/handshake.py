"""Opening an SSH connection: TCP or a jump-host tunnel, the handshake, host keys, auth — with a deadline.

Fabric would install an auto-accepting host-key policy and load no
known_hosts; here the user's known_hosts plus every UserKnownHostsFile
ssh_config names are loaded and an unknown or changed key is refused with its
fingerprint. paramiko leaves parts of the handshake unbounded; a watchdog
closes the socket at the deadline so a host that accepts TCP but never speaks
cannot hang a run. paramiko does not set TCP_NODELAY, and the first reply
after auth waits on a delayed ACK: both are fixed on the socket.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import socket
import time

import paramiko

from ..errors import HostKeyError, HostUnreachable
from .config import Endpoint
from .session import SSHSession, watchdog

# paramiko's transport thread logs failed handshakes with tracebacks; we report them ourselves.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint, as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class _RefuseUnknownKey(paramiko.MissingHostKeyPolicy):
    """Never trust a key on first sight: raise with the fingerprint so the user can decide."""

    def missing_host_key(self, client, hostname, key):  # noqa: ANN001 - paramiko's signature
        raise _UnknownKey(hostname, key)


class _UnknownKey(Exception):
    def __init__(self, hostname: str, key: paramiko.PKey):
        super().__init__(hostname)
        self.hostname = hostname
        self.key = key


def _classify(exc: BaseException, timed_out: bool) -> tuple[str, str]:
    """(reason, message) for a failed connection attempt."""
    if timed_out or isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout", "timed out before the SSH handshake finished"
    if isinstance(exc, socket.gaierror):
        return "dns", f"name does not resolve ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "refused", "connection refused (is sshd running and the port right?)"
    if isinstance(exc, paramiko.AuthenticationException):
        return "auth", f"authentication failed ({exc})"
    if isinstance(exc, paramiko.ProxyCommandFailure):
        return "proxy", f"the ssh_config ProxyCommand failed ({exc})"
    if isinstance(exc, paramiko.ChannelException):
        return "jump", f"jump host could not open a tunnel ({exc})"
    if isinstance(exc, OSError) and exc.errno is not None:
        return "network", exc.strerror or str(exc)
    text = str(exc) or type(exc).__name__
    if "banner" in text.lower():
        return "timeout", f"no SSH banner ({text})"
    return "ssh", text


class _QuickAckSocket:
    """A TCP socket that acknowledges every read at once (Linux TCP_QUICKACK).

    sshd leaves Nagle on for non-interactive sessions. Right after auth it sends
    two small messages, and its reply to our first channel-open then waits for
    our ACK, which the kernel delays ~40 ms. Measured: the first command on a
    new connection took 45 ms on loopback, 4 ms with this. The flag is not
    sticky, so it is set again before each read.
    """

    def __init__(self, sock: socket.socket):
        self._sock = sock
        self._quickack = getattr(socket, "TCP_QUICKACK", None)

    def recv(self, size: int) -> bytes:
        if self._quickack is not None:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, self._quickack, 1)
            except OSError:
                self._quickack = None
        return self._sock.recv(size)

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


def _open_socket(endpoint: Endpoint, via: SSHSession | None, timeout: float):
    if via is not None:
        return via.transport.open_channel("direct-tcpip", (endpoint.hostname, endpoint.port), ("", 0),
                                          timeout=timeout)
    if endpoint.proxy_command:  # the user's own command from ssh_config, run as OpenSSH would (no shell)
        return paramiko.ProxyCommand(endpoint.proxy_command)
    sock = socket.create_connection((endpoint.hostname, endpoint.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # paramiko leaves Nagle on
    return _QuickAckSocket(sock)


def _new_client(endpoint: Endpoint) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    for path in endpoint.known_hosts_files:
        if os.path.isfile(path):
            try:
                client.load_system_host_keys(path)  # "system" keys are never written back by paramiko
            except (OSError, paramiko.SSHException) as exc:
                raise HostUnreachable(f"cannot read known_hosts file {path}: {exc}", reason="host key",
                                      host=endpoint.spec) from None
    client.set_missing_host_key_policy(_RefuseUnknownKey())
    return client


def _handshake(name: str, endpoint: Endpoint, timeout: float, via: SSHSession | None) -> SSHSession:
    """TCP (or tunnel) + SSH handshake + auth, all within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    client = _new_client(endpoint)
    sock = None

    def expire() -> None:
        if sock is not None:
            sock.close()
        client.close()

    with watchdog(timeout, expire) as timed_out:
        try:
            sock = _open_socket(endpoint, via, timeout)
            remaining = max(0.1, deadline - time.monotonic())
            client.connect(
                hostname=endpoint.hostkey_name, port=endpoint.port, username=endpoint.user, sock=sock,
                key_filename=list(endpoint.key_files) or None, look_for_keys=not endpoint.identities_only,
                allow_agent=bool(os.environ.get("SSH_AUTH_SOCK")) and not endpoint.identities_only,
                timeout=remaining, banner_timeout=remaining, auth_timeout=remaining, channel_timeout=remaining,
            )
        except _UnknownKey as exc:
            client.close()
            raise HostKeyError(
                f"unknown host key for {endpoint.known_hosts_entry_name} ({exc.key.get_name()} {fingerprint(exc.key)}); "
                "refusing to connect", reason="host key unknown", fingerprint=fingerprint(exc.key), host=name,
                hint=f"check the fingerprint with the host's owner, then run: agentsync trust {name}") from None
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"HOST KEY CHANGED for {endpoint.known_hosts_entry_name}: it now presents "
                f"{exc.key.get_name()} {fingerprint(exc.key)}, known_hosts has {fingerprint(exc.expected_key)}. "
                "Someone may be intercepting the connection; refusing to connect", reason="host key changed",
                fingerprint=fingerprint(exc.key), host=name,
                hint=f"if the host was reinstalled, remove the old key (ssh-keygen -R "
                     f"'{endpoint.known_hosts_entry_name}') and run: agentsync trust {name}") from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reason the user can read
            client.close()
            reason, message = _classify(exc, timed_out.is_set())
            raise HostUnreachable(message, reason=reason, host=name, hint=_hint_for(reason, endpoint)) from None
    transport = client.get_transport()
    transport.set_keepalive(15)
    return SSHSession(name, endpoint, client, via)


def _hint_for(reason: str, endpoint: Endpoint) -> str:
    target = f"{endpoint.user}@{endpoint.hostname}:{endpoint.port}"
    return {
        "dns": f"check the host name '{endpoint.hostname}' (ssh_config HostName?)",
        "refused": f"nothing listens on {target}",
        "timeout": f"{target} did not answer in time; is it up, and is the network (VPN/ZeroTier) connected?",
        "auth": f"the key(s) {', '.join(endpoint.key_files) or '(default keys)'} were refused for {target}",
    }.get(reason, f"try: ssh -v {endpoint.spec}")
