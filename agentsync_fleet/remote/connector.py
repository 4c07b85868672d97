"""The Connector: one resolution and one ControlMaster per host (and per jump hop) for a run.

Every connection is the user's own `ssh` with the inventory's `-F`, so
every ssh_config feature is OpenSSH's own. On top, and on every hop, we
force what we promise: BatchMode (never a prompt), StrictHostKeyChecking
yes (we never add a key, whatever the config says), UpdateHostKeys no,
our connect_timeout, and a hard deadline on each process.

ProxyJump is expanded here rather than left to ssh: ssh starts a jump
host's ssh with only `-F`, so our strict options would not reach it. Each
hop gets its own master (opened with the same options, its own config
honoured), and the next hop's ProxyCommand is `ssh <that hop> -W` through
it. A loop in the config (`Host *` → ProxyJump bastion, bastion included)
is found while resolving and refused before any process is started.
"""

from __future__ import annotations

import math
import os
import shlex
import subprocess
import threading
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

from ..errors import HostKeyError, HostUnreachable
from ..models import Host, Inventory
from ..settings import control_persist, state_dir
from . import early
from .control import control_dir, persist_arg, socket_name
from .diagnose import SshFailure, classify, ssh_lines
from .hostkeys import refusal  # host-key refusals need a scan for the fingerprint
from .master import SSH_ENV, MasterAttempt, StartLockBusy, begin_master, start_master
from .resolve import Resolution, Target, resolve, resolve_argv, split_jump
from .session import LocalSession, OpenSSHSession, Session

MAX_HOPS = 8
DEADLINE_GRACE = 1.0  # seconds past connect_timeout before the process group is killed


class Connector:
    """Opens and caches one session per host (and per jump hop) for a run."""

    def __init__(self, inventory: Inventory, *, state: str | None = None, early: Iterable[MasterAttempt] = (),
                 remember: bool = False):
        self.inventory = inventory
        self._early = {_control_path(a.argv): a for a in early}  # begun before the program loaded (early.py)
        self._remember = remember  # write down how hosts were reached, for the next run to begin early
        self._attempts: list[MasterAttempt] = []
        self.config = str(inventory.ssh_config) if inventory.ssh_config else None
        self.persist = control_persist(inventory)
        self._state = state or state_dir(inventory)
        self._control: Path | None = None
        self._resolutions: dict[str, Resolution] = {}
        self._sessions: dict[str, OpenSSHSession] = {}
        self._failed: dict[str, HostUnreachable] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._started: list[str] = []
        self._guard = threading.Lock()

    # ---------------------------------------------------------------- resolution

    def resolution(self, host: Host) -> Resolution:
        """`ssh -G` for a remote host (once per run)."""
        return self._resolve(Target.from_spec(host.ssh or host.name), host.name)

    def _resolve(self, target: Target, name: str) -> Resolution:
        key = str(target)
        with self._guard:
            if key in self._resolutions:
                return self._resolutions[key]
        found = resolve(target, self.config, name)
        with self._guard:
            return self._resolutions.setdefault(key, found)

    @property
    def control(self) -> Path:
        with self._guard:
            if self._control is None:
                self._control = control_dir(self._state)
            return self._control

    # ---------------------------------------------------------------- sessions

    def session(self, host: Host) -> Session:
        """The open session for `host`, connecting on first use. Raises HostUnreachable/HostKeyError."""
        if host.local:
            return LocalSession(host.name)
        target = Target.from_spec(host.ssh or host.name)
        return self._cached(f"host:{target}", lambda: self._open(host.name, target, host.connect_timeout))

    def _cached(self, key: str, opener: Callable[[], OpenSSHSession]) -> OpenSSHSession:
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key in self._failed:  # asked again in the same run (lock, then preflight): fail at once
                raise self._failed[key]
            if key not in self._sessions:
                try:
                    self._sessions[key] = opener()
                except HostUnreachable as exc:
                    self._failed[key] = exc
                    raise
            return self._sessions[key]

    def _open(self, name: str, target: Target, timeout: float, via: OpenSSHSession | None = None,
              chain: tuple[str, ...] = (), hop: str = "") -> OpenSSHSession:
        """Resolve `target`, open its jump hops (unless `via` is given), then its master."""
        res = self._resolve(target, name)
        if via is None and res.proxy_jump:
            via = self.tunnel(name, target, res, timeout, chain + (str(target),))
        session = self._new_session(name, target, res, timeout, via, hop)
        self._ensure_master(session, res, timeout)
        return session

    def tunnel(self, name: str, target: Target, res: Resolution, timeout: float,
               chain: tuple[str, ...], upto: int | None = None) -> OpenSSHSession | None:
        """The session of the last hop of `res`'s ProxyJump chain (of its first `upto` hops), each hop opened
        through the one before.

        `ProxyJump a,b` means: reach a with a's own settings (its own
        ProxyJump included), b through a, the target through b.
        """
        via: OpenSSHSession | None = None
        for index, hop in enumerate(res.proxy_jump[:upto]):
            hop_target = _hop_target(hop)
            if str(hop_target) in chain or len(chain) > MAX_HOPS:
                path = " → ".join((*chain, str(hop_target)))
                raise HostUnreachable(f"ProxyJump loop in ssh_config: {path}", reason="config", host=name,
                                      hint=f"exclude the jump host from its own ProxyJump (e.g. `Host * !{hop_target.host}`) "
                                           f"in {self.config or '~/.ssh/config'}; plain ssh would hang here")
            key = "jump:" + ",".join(res.proxy_jump[: index + 1])  # shared by every host behind the same hops
            via = self._cached(key, lambda t=hop_target, prev=via, hop=hop: self._open(
                f"{name} (via {hop})", t, timeout, via=prev, chain=chain, hop=hop))
        return via

    def unopened_session(self, host: Host) -> OpenSSHSession:
        """The session a host would get, without connecting it (its jump hops are opened): for `trust`."""
        target = Target.from_spec(host.ssh or host.name)
        res = self._resolve(target, host.name)
        via = self.tunnel(host.name, target, res, host.connect_timeout, (str(target),)) if res.proxy_jump else None
        return self._new_session(host.name, target, res, host.connect_timeout, via)

    def hop_resolution(self, host: Host, hop: str) -> Resolution:
        """`ssh -G` for one ProxyJump hop on the way to `host` (as the host's resolved ProxyJump writes it)."""
        return self._resolve(_hop_target(hop), host.name)

    def hop_session(self, host: Host, hop: str, *, opened: bool = True) -> OpenSSHSession:
        """The session of one ProxyJump hop on the way to `host`, connected (as a run opens it) or not (for
        `trust --jump`: the hops before it are opened, its own key is read by ssh)."""
        res = self.resolution(host)
        index = res.proxy_jump.index(hop)
        target = Target.from_spec(host.ssh or host.name)
        chain = (str(target),)
        if opened:
            via = self.tunnel(host.name, target, res, host.connect_timeout, chain, upto=index + 1)
            assert via is not None
            return via
        via = self.tunnel(host.name, target, res, host.connect_timeout, chain, upto=index)
        hop_target = _hop_target(hop)
        hop_res = self._resolve(hop_target, host.name)
        if via is None and hop_res.proxy_jump:
            via = self.tunnel(host.name, hop_target, hop_res, host.connect_timeout, chain + (str(hop_target),))
        return self._new_session(f"{host.name} (via {hop})", hop_target, hop_res, host.connect_timeout, via, hop)

    def _new_session(self, name: str, target: Target, res: Resolution, timeout: float,
                     via: OpenSSHSession | None, hop: str = "") -> OpenSSHSession:
        sock = self.control / socket_name(self.config or "", str(target), " ".join(via.prefix) if via else "")
        prefix = ["ssh", *(["-F", self.config] if self.config else []),
                  "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no",
                  "-o", f"ConnectTimeout={max(1, math.ceil(timeout))}",
                  "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
                  "-o", f"ControlPath={sock}", "-T"]
        if via is not None:
            prefix += ["-o", "ProxyCommand=" + proxy_through(via)]
        session = OpenSSHSession(name, prefix, [*target.argv(), "--", target.host],
                                 via_proxy=bool(via is not None or res.proxy_command),
                                 hint=f"`ssh{' -F ' + self.config if self.config else ''} {target} true` "
                                      "shows what ssh says", hop=hop)
        session.answer_timeout = timeout  # a host gets connect_timeout to show it is still there
        return session

    def _ensure_master(self, session: OpenSSHSession, res: Resolution, timeout: float) -> None:
        sock = _control_path(session.prefix)
        argv = [*session.prefix, "-o", "ControlMaster=yes", "-o", f"ControlPersist={persist_arg(self.persist)}",
                "-N", "-f", *session.target]
        attempt = self._adopt(sock, argv)
        if attempt is None:
            try:  # another run opening this very master: wait for it, then use its master
                attempt = begin_master(argv, sock, {**os.environ, **SSH_ENV}, timeout + DEADLINE_GRACE)
            except StartLockBusy:
                raise self._failure(session, res, None, "", timeout) from None
            if attempt is None:
                return
        with self._guard:
            self._attempts.append(attempt)
        code, stderr = attempt.result(timeout + DEADLINE_GRACE)
        if code != 0:
            raise self._failure(session, res, code, stderr, timeout)
        self._started.append(sock)
        if self._remember and not session.hop and not res.proxy_jump:  # the next run may begin it early
            early.remember(self.inventory.path, self.inventory.sha256, session.name,
                           resolve_argv=resolve_argv(res.target, self.config), resolved=res.text,
                           master_argv=argv, sock=sock)

    def _adopt(self, sock: str, argv: list[str]) -> MasterAttempt | None:
        """The attempt begun early for this socket, if it runs exactly `argv`; any other is abandoned."""
        with self._guard:
            attempt = self._early.pop(sock, None)
        if attempt is not None and attempt.argv != argv:
            attempt.abandon()
            if attempt.succeeded:  # a master made with other options than ours: never used, closed
                close_master(sock)
            return None
        return attempt

    def _failure(self, session: OpenSSHSession, res: Resolution, code: int | None, stderr: str,
                 timeout: float) -> HostUnreachable:
        if code is None:
            return HostUnreachable(f"timed out: no SSH session within connect_timeout ({timeout:g}s)",
                                   reason="timeout", host=session.name,
                                   hint=f"is {res.address}:{res.port} up, and its network (VPN/ZeroTier) "
                                        "connected? A ProxyJump/ProxyCommand chain counts against it too")
        failure = classify(stderr, via_proxy=session.via_proxy)
        if failure is None:
            lines = " | ".join(stderr.strip().splitlines()[-3:]) or f"ssh exited {code}"
            return HostUnreachable(f"ssh failed: {lines}", reason="ssh", host=session.name, hint=session.hint)
        if failure.reason == "proxy":
            failure = _with_proxy_words(session, failure, stderr, timeout)
        if failure.reason.startswith("host key") or failure.reason == "host certificate":
            return refusal(self, session, res, failure, timeout)
        return HostUnreachable(failure.message, reason=failure.reason, host=session.name,
                               hint=_hint(failure.reason, res, session, failure.detail))

    # ---------------------------------------------------------------- end of run

    def close_all(self) -> None:
        """End of the run: masters stay for ControlPersist (the next run is warm), unless persistence is off.
        A master still being opened (the run was interrupted) is given up: no handshake outlives the run."""
        for attempt in self._attempts:
            attempt.abandon()
        if self.persist <= 0:
            for sock in self._started:
                close_master(sock)
        self._sessions.clear()
        self._failed.clear()


def proxy_through(via: OpenSSHSession) -> str:
    """A ProxyCommand that reaches the next hop through `via`'s master (`ssh … -W [%h]:%p`).

    Our own words are quoted for the shell ssh runs it with and their `%`
    doubled, so only the `-W` argument's `%h`/`%p` are expanded (by the ssh
    that runs this command); a nested hop's ProxyCommand keeps its own tokens.
    """
    argv = via.argv("-W", "[%h]:%p")
    return " ".join(shlex.quote(a if a == "[%h]:%p" else a.replace("%", "%%")) for a in argv)


def _with_proxy_words(session: OpenSSHSession, failure: SshFailure, stderr: str, timeout: float) -> SshFailure:
    """The failure with what the proxy itself said. ssh sends a ProxyCommand's stderr (a jump hop's `ssh -W`
    too) to /dev/null when it starts a persisting master, so one plain attempt (no master, same options)
    hears it: the lines it prints that the master's attempt did not are the proxy's own."""
    argv = ["ControlPath=none" if a.startswith("ControlPath=") else a for a in session.prefix]
    code, again = start_master([*argv, "-o", "ControlMaster=no", *session.target, "true"],
                               timeout + DEADLINE_GRACE, {**os.environ, **SSH_ENV})
    seen = set(ssh_lines(stderr))
    words = [line for line in ssh_lines(again) if line not in seen]
    if code == 0 or not words:
        return failure
    return replace(failure, message=f"the proxy (ProxyCommand / ProxyJump) failed: {' | '.join(words[-3:])}",
                   detail="\n".join(words[-6:]))


def _hop_target(hop: str) -> Target:
    host, user, port = split_jump(hop)
    return Target(host, user, port)


def _control_path(prefix: list[str]) -> str:
    return next(a.split("=", 1)[1] for a in prefix if a.startswith("ControlPath="))


def close_master(sock: str) -> None:
    subprocess.run(["ssh", "-F", "/dev/null", "-o", f"ControlPath={sock}", "-O", "exit", "master"],
                   capture_output=True, timeout=10, stdin=subprocess.DEVNULL)


def _keys(res: Resolution) -> str:
    """The identities ssh offers for a host, as its config says (files, agent, certificates)."""
    files = list(res.lists.get("identityfile", ()))
    agent = res.get("identityagent")
    parts = [f"IdentityFile {', '.join(files)}"] if files else []
    parts += [f"CertificateFile {', '.join(res.lists['certificatefile'])}"] if res.lists.get("certificatefile") else []
    parts += [f"IdentityAgent {agent}"] if agent else []
    parts += ["IdentitiesOnly yes"] if res.get("identitiesonly") == "yes" else []
    return "; ".join(parts) or "ssh's default keys"


def _hint(reason: str, res: Resolution, session: OpenSSHSession, detail: str) -> str:
    where = f"{res.user + '@' if res.user else ''}{res.hostname}:{res.port}"
    return {
        "dns": f"check the host name '{res.hostname}' (ssh_config HostName?)",
        "refused": f"nothing listens on {where}",
        "timeout": f"{where} did not answer in time; is it up, and is the network (VPN/ZeroTier) connected?",
        "auth": f"the host refused every key ssh offered for {where} ({_keys(res)}): {session.hint}",
        "too many auth failures": "set `IdentitiesOnly yes` and the right IdentityFile for this host in ssh_config",
        "second factor": "use a key the host accepts alone, or a certificate; agentsync runs unattended",
        "no common algorithm": "ssh and the server share no algorithm: check KexAlgorithms/HostKeyAlgorithms/"
                               "Ciphers/MACs in ssh_config (or upgrade the older side)",
        "proxy": f"the proxy said: {detail.splitlines()[-1] if detail else '?'}; {session.hint}",
    }.get(reason, session.hint)


__all__ = ["Connector", "HostKeyError", "close_master", "proxy_through"]
