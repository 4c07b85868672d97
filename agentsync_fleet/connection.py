"""The only module that imports Fabric and paramiko: connect, verify host keys, run.

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

import base64
import getpass
import glob
import hashlib
import logging
import os
import select
import shlex
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Config
from fabric.connection import derive_shorthand

from .errors import CommandTimeout, FleetError, HostKeyError, HostUnreachable
from .models import CommandResult, Host, Inventory

# paramiko's transport thread logs failed handshakes with tracebacks; we report them ourselves.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False

SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
USER_SSH_CONFIG = "~/.ssh/config"
SYSTEM_SSH_CONFIG = "/etc/ssh/ssh_config"
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"

OutputFn = Callable[[bytes], None]  # receives a command's stdout as it arrives


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH-style SHA256 fingerprint, as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class Endpoint:
    """Where and how to reach one SSH target, after ssh_config is applied."""

    spec: str  # what the inventory said: alias, user@host or user@host:port
    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    known_hosts_files: tuple[str, ...]
    hostkey_name: str  # the name known_hosts is searched under (HostKeyAlias or HostName)
    proxy_jump: tuple[str, ...]
    identities_only: bool

    @property
    def known_hosts_entry_name(self) -> str:
        return self.hostkey_name if self.port == 22 else f"[{self.hostkey_name}]:{self.port}"


class _RefuseUnknownKey(paramiko.MissingHostKeyPolicy):
    """Never trust a key on first sight: raise with the fingerprint so the user can decide."""

    def missing_host_key(self, client, hostname, key):  # noqa: ANN001 - paramiko's signature
        raise _UnknownKey(hostname, key)


class _UnknownKey(Exception):
    def __init__(self, hostname: str, key: paramiko.PKey):
        super().__init__(hostname)
        self.hostname = hostname
        self.key = key


def read_ssh_config(path: Path, depth: int = 0) -> str:
    """An ssh_config file's text with `Include` lines replaced by the files they name.

    paramiko's parser keeps `Include` as an ordinary key and ignores the
    included files; OpenSSH splices them in place. Relative include paths are
    relative to ~/.ssh, as OpenSSH does for user files.
    """
    if depth > 8:
        return ""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        words = line.strip().split(None, 1)
        if len(words) == 2 and words[0].lower() == "include":
            for pattern in words[1].split():
                full = os.path.expanduser(pattern)
                full = full if os.path.isabs(full) else os.path.expanduser(f"~/.ssh/{pattern}")
                for name in sorted(glob.glob(full)):
                    out.append(read_ssh_config(Path(name), depth + 1))
            continue
        out.append(line)
    return "\n".join(out)


def load_ssh_config(path: Path | None) -> paramiko.SSHConfig:
    """The inventory's ssh_config only, if it names one; else ~/.ssh/config then /etc/ssh/ssh_config."""
    paths = [path] if path else [Path(USER_SSH_CONFIG).expanduser(), Path(SYSTEM_SSH_CONFIG)]
    text = "\n".join(read_ssh_config(p) for p in paths if p.is_file())
    return paramiko.SSHConfig.from_text(text)


class Resolver:
    """ssh_config lookups (Fabric's config object and shorthand parsing), shared by a run's sessions."""

    def __init__(self, ssh_config: Path | None):
        self.ssh_config = ssh_config
        self._config = Config(ssh_config=load_ssh_config(ssh_config))

    def resolve(self, spec: str) -> Endpoint:
        short = derive_shorthand(spec)  # user@host:port -> parts; an alias is just a host
        conf = self._config.base_ssh_config.lookup(short["host"])
        hostname = conf.get("hostname", short["host"])
        user = short["user"] or conf.get("user") or getpass.getuser()
        port = int(short["port"] or conf.get("port", 22))
        keys = tuple(str(Path(k).expanduser()) for k in conf.get("identityfile", ()))
        files = [SYSTEM_KNOWN_HOSTS, USER_KNOWN_HOSTS, *str(conf.get("userknownhostsfile", "")).split()]
        jumps = tuple(j.strip() for j in str(conf.get("proxyjump", "")).split(",") if j.strip()
                      and j.strip().lower() != "none")
        return Endpoint(
            spec=spec, hostname=hostname, port=port, user=user,
            key_files=tuple(k for k in keys if os.path.exists(k)),
            known_hosts_files=tuple(dict.fromkeys(str(Path(f).expanduser()) for f in files)),
            hostkey_name=str(conf.get("hostkeyalias", hostname)), proxy_jump=jumps,
            identities_only=str(conf.get("identitiesonly", "no")).lower() == "yes",
        )


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
    if isinstance(exc, paramiko.ChannelException):
        return "jump", f"jump host could not open a tunnel ({exc})"
    if isinstance(exc, OSError) and exc.errno is not None:
        return "network", exc.strerror or str(exc)
    text = str(exc) or type(exc).__name__
    if "banner" in text.lower():
        return "timeout", f"no SSH banner ({text})"
    return "ssh", text


ARG_SCRIPT_LIMIT = 100_000  # bytes; Linux refuses a single argument over 128 KiB


class ScriptRunner:
    """`run_script`, shared by both session kinds."""

    def run_script(self, text: str, *, timeout: float = 120.0, on_output: OutputFn | None = None) -> CommandResult:
        """Run a POSIX sh script as `sh -c <script>`: one round trip, the script travels with the exec.

        Sending it on stdin to `sh -s` instead costs one more round trip (the
        exec must be accepted before stdin flows); only a script too large for
        one argument goes that way.
        """
        if len(text.encode()) > ARG_SCRIPT_LIMIT:
            return self.run("sh -s", stdin=text, timeout=timeout, on_output=on_output)
        return self.run(shlex.join(["sh", "-c", text]), timeout=timeout, on_output=on_output)


class SSHSession(ScriptRunner):
    """One open SSH connection to a host; runs commands and moves files over it."""

    def __init__(self, name: str, endpoint: Endpoint, client: paramiko.SSHClient, via: SSHSession | None):
        self.name = name
        self.endpoint = endpoint
        self.client = client
        self.via = via
        self.transport = client.get_transport()
        self.last_rtt: float | None = None
        self.compress = False

    def run(self, command: str, *, stdin: str | None = None, timeout: float = 120.0,
            on_output: OutputFn | None = None) -> CommandResult:
        """Run shell text on the host; never raises on a non-zero exit, only on timeout or a lost link.

        `on_output` sees stdout as it arrives (raw chunks), for progress displays of long commands.
        """
        start = time.monotonic()
        try:
            chan = self.transport.open_session(timeout=min(timeout, 30.0))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise HostUnreachable(f"connection lost: {exc or type(exc).__name__}", reason="lost",
                                  host=self.name) from None
        self.last_rtt = time.monotonic() - start
        watchdog = threading.Timer(timeout, chan.close)
        watchdog.daemon = True
        watchdog.start()
        try:
            out, err, code = self._exchange(chan, command, stdin, start + timeout, on_output)
        finally:
            watchdog.cancel()
            chan.close()
        duration = time.monotonic() - start
        if code is None and duration >= timeout:
            raise CommandTimeout(f"command timed out after {timeout:g}s: {_short(command)}", host=self.name,
                                 hint="raise command_timeout for this host in the inventory if this is expected")
        if code is None:
            raise HostUnreachable(f"connection lost while running: {_short(command)}", reason="lost",
                                  host=self.name)
        return CommandResult(self.name, command, code, out, err, duration)

    @staticmethod
    def _exchange(chan: paramiko.Channel, command: str, stdin: str | None, deadline: float,
                  on_output: OutputFn | None = None) -> tuple[str, str, int | None]:
        out, err = bytearray(), bytearray()
        try:
            _start_command(chan, command)
            if stdin is not None:
                chan.sendall(stdin.encode())
            chan.shutdown_write()
            while True:
                while chan.recv_ready():
                    chunk = chan.recv(65536)
                    out += chunk
                    if on_output is not None:
                        on_output(chunk)
                while chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                if chan.closed or (chan.eof_received and chan.exit_status_ready()):
                    if not chan.recv_ready() and not chan.recv_stderr_ready():
                        break
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                select.select([chan], [], [], min(remaining, 1.0))
        except (paramiko.SSHException, OSError, EOFError):
            pass  # the watchdog closed the channel, or the link dropped: reported by the caller
        code = chan.recv_exit_status() if chan.exit_status_ready() else None
        return out.decode(errors="replace"), err.decode(errors="replace"), code

    def sftp(self) -> paramiko.SFTPClient:
        return self.client.open_sftp()

    def close(self) -> None:
        self.client.close()


def _start_command(chan: paramiko.Channel, command: str) -> None:
    """`exec` without waiting for the server's "ok" (saves one round trip per command).

    paramiko's `exec_command` asks for a reply and blocks until it arrives; we
    do not need it: the exit status, the output and the channel close carry
    everything. A refused exec shows up as a close without exit status, which
    the caller reports. Same message as paramiko builds, with want_reply=False.
    """
    message = paramiko.Message()
    message.add_byte(paramiko.common.cMSG_CHANNEL_REQUEST)
    message.add_int(chan.remote_chanid)
    message.add_string("exec")
    message.add_boolean(False)
    message.add_string(command)
    chan.transport._send_user_message(message)


class LocalSession(ScriptRunner):
    """The controller itself (`local: true`): same interface, no SSH."""

    last_rtt: float | None = 0.0

    def __init__(self, name: str):
        self.name = name

    def run(self, command: str, *, stdin: str | None = None, timeout: float = 120.0,
            on_output: OutputFn | None = None) -> CommandResult:
        if on_output is not None:
            return self._run_streaming(command, stdin, timeout, on_output)
        start = time.monotonic()
        try:
            proc = subprocess.run(["sh", "-c", command], input=stdin if stdin is not None else "",
                                  capture_output=True, text=True, timeout=timeout, errors="replace")
        except subprocess.TimeoutExpired:
            raise CommandTimeout(f"command timed out after {timeout:g}s: {_short(command)}", host=self.name,
                                 hint="raise command_timeout for this host in the inventory") from None
        return CommandResult(self.name, command, proc.returncode, proc.stdout, proc.stderr,
                             time.monotonic() - start)

    def _run_streaming(self, command: str, stdin: str | None, timeout: float, on_output: OutputFn) -> CommandResult:
        """Like `run`, feeding stdout to `on_output` as it arrives; the command runs in its own process
        group so a timeout ends every process it started, not just the shell."""
        start = time.monotonic()
        proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
        out, err = bytearray(), bytearray()

        def pump(stream, sink: bytearray, callback: OutputFn | None) -> None:
            for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
                sink += chunk
                if callback is not None:
                    callback(chunk)

        readers = [threading.Thread(target=pump, args=(proc.stdout, out, on_output), daemon=True),
                   threading.Thread(target=pump, args=(proc.stderr, err, None), daemon=True)]
        for reader in readers:
            reader.start()
        try:
            proc.stdin.write((stdin or "").encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the command did not read its input; its exit status says the rest
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # our own command, past its deadline
            except ProcessLookupError:
                pass
            proc.wait()
            raise CommandTimeout(f"command timed out after {timeout:g}s: {_short(command)}", host=self.name,
                                 hint="raise the timeout in the inventory if this is expected") from None
        finally:
            for reader in readers:
                reader.join(timeout=5)
        return CommandResult(self.name, command, code, out.decode(errors="replace"), err.decode(errors="replace"),
                             time.monotonic() - start)

    def close(self) -> None:
        pass


Session = SSHSession | LocalSession


def _short(command: str, limit: int = 160) -> str:
    line = " ".join(command.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


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

    def _open(self, name: str, spec: str, timeout: float, compress: bool = False, depth: int = 0) -> SSHSession:
        try:
            endpoint = self.resolver.resolve(spec)
        except FleetError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken ssh_config line, say
            raise HostUnreachable(f"cannot read ssh_config for '{spec}': {exc}", reason="config", host=name,
                                  hint=f"check {self.inventory.ssh_config or '~/.ssh/config'}") from None
        via = None
        if endpoint.proxy_jump:
            if depth > 4:
                raise HostUnreachable("ProxyJump chain is too deep (a loop in ssh_config?)", reason="config",
                                      host=name)
            jump = endpoint.proxy_jump[-1]
            via = self._cached(f"jump:{jump}", lambda: self._open(f"{name} (via {jump})", jump, timeout,
                                                                    depth=depth + 1))
        session = _handshake(name, endpoint, timeout, via)
        session.compress = compress
        return session

    def close_all(self) -> None:
        for session in list(self._sessions.values()):
            try:
                session.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        self._sessions.clear()
        self._failed.clear()


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
    timed_out = threading.Event()
    sock = None

    def expire() -> None:
        timed_out.set()
        if sock is not None:
            sock.close()
        client.close()

    watchdog = threading.Timer(timeout, expire)
    watchdog.daemon = True
    watchdog.start()
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
    finally:
        watchdog.cancel()
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


@dataclass(frozen=True)
class PresentedKey:
    """The key a host presents, and how it compares with what known_hosts says."""

    endpoint: Endpoint
    key_type: str
    key_base64: str
    fingerprint: str
    status: str  # known | unknown | changed
    known_fingerprint: str = ""


def read_host_key(connector: Connector, host: Host) -> PresentedKey:
    """Run the key exchange only (no authentication) to see which key the host presents."""
    endpoint = connector.resolver.resolve(host.ssh or host.name)
    via = None
    if endpoint.proxy_jump:
        jump = endpoint.proxy_jump[-1]
        via = connector._cached(f"jump:{jump}", lambda: connector._open(host.name, jump, host.connect_timeout,
                                                                        depth=1))
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
