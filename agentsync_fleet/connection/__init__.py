"""The only package that imports Fabric and paramiko: connect, verify host keys, run.

ssh_config (aliases, HostName, Port, User, IdentityFile, ProxyJump,
UserKnownHostsFile, HostKeyAlias, Include) is resolved through Fabric's
config object and paramiko's parser; the connection itself is opened here
because Fabric leaves gaps we must not have:

* Fabric installs an auto-accepting host-key policy and loads no known_hosts;
  we load the user's known_hosts plus every UserKnownHostsFile ssh_config names
  and refuse unknown or changed keys, showing the fingerprint.
* paramiko leaves the handshake and `exec_command` unbounded in places; a
  watchdog closes the socket or channel at the deadline, so a host that
  accepts TCP but never speaks cannot hang a run.
* paramiko does not set TCP_NODELAY; without it small request/reply exchanges
  stall on Nagle + delayed ACK (~40 ms each).

One `Session` per host per run; every command on that host reuses it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ..errors import FleetError, HostUnreachable
from ..models import Host, Inventory
from .config import Endpoint, Resolver, load_ssh_config, read_ssh_config
from .handshake import _handshake, fingerprint
from .hostkeys import PresentedKey, append_known_host, read_host_key, trust_file
from .session import LocalSession, OutputFn, Session, SSHSession

__all__ = ["Connector", "Endpoint", "LocalSession", "OutputFn", "PresentedKey", "Resolver", "SSHSession", "Session",
           "append_known_host", "fingerprint", "load_ssh_config", "read_host_key", "read_ssh_config", "trust_file"]


class Connector:
    """Opens and caches one session per host (and per jump host) for a run."""

    def __init__(self, inventory: Inventory):
        self.inventory = inventory
        self._resolver: Resolver | None = None
        self._sessions: dict[str, Session] = {}
        self._failed: dict[str, HostUnreachable] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @property
    def resolver(self) -> Resolver:
        with self._guard:
            if self._resolver is None:
                self._resolver = Resolver(self.inventory.ssh_config)
            return self._resolver

    def session(self, host: Host) -> Session:
        """The open session for `host`, connecting on first use. Raises HostUnreachable/HostKeyError."""
        if host.local:
            return LocalSession(host.name)
        return self._cached(host.name, lambda: self._open(host.name, host.ssh or host.name,
                                                          host.connect_timeout, host.slow or bool(host.zerotier)))

    def _cached(self, key: str, opener: Callable[[], Session]) -> Session:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._failed:  # asked again in the same run (lock, then preflight): fail at once, not
                raise self._failed[key]  # after another connect_timeout
            if key not in self._sessions:
                try:
                    self._sessions[key] = opener()
                except HostUnreachable as exc:
                    self._failed[key] = exc
                    raise
            return self._sessions[key]

    def _open(self, name: str, spec: str, timeout: float, compress: bool = False, depth: int = 0,
              via: SSHSession | None = None) -> SSHSession:
        """Resolve `spec` and connect, through `via` if given, else through its own ProxyJump chain."""
        try:
            endpoint = self.resolver.resolve(spec)
        except FleetError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken ssh_config line, say
            raise HostUnreachable(f"cannot read ssh_config for '{spec}': {exc}", reason="config", host=name,
                                  hint=f"check {self.inventory.ssh_config or '~/.ssh/config'}") from None
        if via is None:
            via = self.tunnel(name, endpoint, timeout, depth)
        session = _handshake(name, endpoint, timeout, via)
        session.compress = compress
        session.answer_timeout = timeout  # a host gets connect_timeout to show it is still there
        return session

    def tunnel(self, name: str, endpoint: Endpoint, timeout: float, depth: int = 0) -> SSHSession | None:
        """The session to tunnel through for `endpoint` (its ProxyJump chain), or None for a direct connection.

        `ProxyJump a,b` means: connect to a (with a's own settings, its own
        ProxyJump included), from a to b, and from b to the target — so each
        hop after the first is opened through the one before it.
        """
        if not endpoint.proxy_jump:
            return None
        if depth > 4:
            raise HostUnreachable("ProxyJump chain is too deep (a loop in ssh_config?)", reason="config", host=name)
        via = None
        for index, hop in enumerate(endpoint.proxy_jump):
            key = "jump:" + ",".join(endpoint.proxy_jump[: index + 1])
            via = self._cached(key, lambda hop=hop, prev=via: self._open(
                f"{name} (via {hop})", hop, timeout, depth=depth + 1, via=prev))
        return via

    def close_all(self) -> None:
        for session in list(self._sessions.values()):
            try:
                session.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._sessions.clear()
        self._failed.clear()
