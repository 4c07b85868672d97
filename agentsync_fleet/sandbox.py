"""A fleet of real OpenSSH servers on this machine, for rehearsals, demos and tests.

Each sandbox host is `/usr/sbin/sshd -D` on its own loopback address
(127.0.x.y), inside its own PID and mount namespace (`unshare`), so it has its
own process table and its own disk: the host's directory is bind-mounted on
`MOUNT_POINT` inside its namespace only. Nothing here fakes SSH.

Facts that shaped this module:
* sshd as root needs /run/sshd (privilege separation directory).
* Root's ~/.bashrc may run `pyenv init` (~100 ms per remote command); an
  empty file is bound over it inside each namespace, and PATH comes from sshd's
  `SetEnv`.
* To stop a host we signal the namespace's init (sshd itself), not the
  `unshare` wrapper: when init dies the kernel ends every process in the host.
* Every host shares the controller's home directory. Per-user state (job
  records under $XDG_STATE_HOME) and tmux servers ($TMUX_TMPDIR) are kept on
  the host's own disk (`HOST_STATE_ENV`), so hosts never see each other's jobs
  and nothing lands in the real user's ~/.local/state.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import FleetError, UsageError

SSHD = "/usr/sbin/sshd"
MOUNT_POINT = "/srv/agentsync"
HOST_STATE_ENV = {"XDG_STATE_HOME": f"{MOUNT_POINT}/.state", "TMUX_TMPDIR": MOUNT_POINT}
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class SandboxHost:
    """One sshd host: where it listens, its disk on the controller, and its namespace init pid."""

    name: str
    address: str
    port: int
    dir: str
    env: dict[str, str] = field(default_factory=dict)
    etc_hosts: dict[str, str] = field(default_factory=dict)
    pid: int | None = None  # sshd = init of the host's PID namespace, as seen from the controller
    own_ssh_dir: bool = False  # the host's user sees <dir>/dot-ssh as ~/.ssh (its own ssh client keys/config)
    sshd_extra: list[str] = field(default_factory=list)  # sshd_config lines put first (first value wins there)
    sftp: bool = True  # False: no `Subsystem sftp` line (a host without an SFTP server)
    hide_tools: list[str] = field(default_factory=list)  # commands left off PATH (a slim image without procps)
    proc_hidden: bool = False  # an empty filesystem over /proc: no process can be listed by any tool
    # With proc_hidden: the one program that still lists processes, run as `ps` with a /proc of its own (a host
    # where no /proc can be read but `ps` works, as on BSD or macOS), e.g. "/usr/bin/ps" or "busybox ps".
    ps_only: str = ""
    login_shell: str = ""  # the user's login shell on this host (default: the controller's passwd entry)
    bashrc: str = ""  # ~/.bashrc's text on this host (default: empty; e.g. a banner `echo`)
    # /etc/ssh/sshrc's text: sshd runs it with /bin/sh before every session's command, whatever the login
    # shell, and what it prints reaches the client (a motd-like banner on any shell). "": none.
    sshrc: str = ""

    @property
    def path_dir(self) -> Path:
        """With hide_tools: a directory of links to every command on the usual PATH but those."""
        return Path(self.dir) / "path"

    @property
    def bin_dir(self) -> Path:
        return Path(self.dir) / "bin"

    def path(self, relative: str = "") -> Path:
        """A path inside the host (as it sees it under MOUNT_POINT), from the controller's side."""
        rel = relative[len(MOUNT_POINT):].lstrip("/") if relative.startswith(MOUNT_POINT) else relative
        return Path(self.dir) / "disk" / rel


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


MARKER = ".agentsync-sandbox"  # in every sandbox root `sandbox.up` made: the only roots `sandbox.down` removes


def made_by_agentsync(root: str | Path) -> bool:
    return (Path(root) / MARKER).is_file()


def claim_root(root: str | Path) -> Path:
    """Make `root` a new sandbox root: it must not exist yet or be empty; the marker says this tool made it.

    Never replaces what is there: another sandbox (perhaps someone's running practice fleet) or anyone's files.
    """
    path = Path(root)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        if made_by_agentsync(path):
            raise UsageError(f"a sandbox fleet made by agentsync is already under {path}; not replacing it",
                             hint=f"stop and remove it first (agentsync sandbox.down --root {path}), "
                                  "or choose another --root")
        raise UsageError(f"{path} already holds files that agentsync sandbox.up did not create; not touching it",
                         hint="choose a new or empty directory with --root")
    path.mkdir(parents=True, exist_ok=True)
    (path / MARKER).write_text("made by `agentsync sandbox.up`; `agentsync sandbox.down --root` removes it all\n")
    return path


def require_tools() -> None:
    missing = [tool for tool in (SSHD, "unshare", "ssh-keygen", "git") if not shutil.which(tool)]
    if missing:
        raise FleetError(f"the sandbox needs {', '.join(missing)}",
                         hint="run `make setup` (installs openssh-server, rsync and git with apt)")
    if os.geteuid() != 0:
        raise FleetError("the sandbox needs root (it creates PID and mount namespaces)",
                         hint="run it as root or with sudo")


class Sandbox:
    """Creates, starts and stops sandbox hosts under one directory; state survives in sandbox.json."""

    def __init__(self, root: str | Path, subnet: int = 77):
        self.root = Path(root).resolve()
        self.subnet = subnet  # hosts get 127.<subnet>.0.<n>
        self.hosts: dict[str, SandboxHost] = {}
        self._load_state()

    # ---------------------------------------------------------------- paths

    @property
    def client_key(self) -> Path:
        return self.root / "keys" / "client_ed25519"

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    def _state_file(self) -> Path:
        return self.root / "sandbox.json"

    def _load_state(self) -> None:
        if self._state_file().is_file():
            data = json.loads(self._state_file().read_text())
            self.hosts = {name: SandboxHost(**h) for name, h in data["hosts"].items()}

    def save(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"hosts": {name: asdict(h) for name, h in self.hosts.items()}}
        self._state_file().write_text(json.dumps(data, indent=2))

    # ---------------------------------------------------------------- creation

    def add_host(self, name: str, env: dict[str, str] | None = None, etc_hosts: dict[str, str] | None = None,
                 port: int | None = None, own_ssh_dir: bool = False, sshd_extra: list[str] | None = None,
                 sftp: bool = True, **options) -> SandboxHost:
        """Create a host's disk, host key and sshd_config (does not start it).

        `options` are SandboxHost's ways to make a host like real ones: hide_tools, proc_hidden,
        login_shell, bashrc, sshrc."""
        require_tools()
        self._ensure_client_key()
        address = f"127.{self.subnet}.0.{len(self.hosts) + 2}"
        host_dir = self.root / "hosts" / name
        for sub in ("disk", "bin", "etc"):
            (host_dir / sub).mkdir(parents=True, exist_ok=True)
        key = host_dir / "etc" / "ssh_host_ed25519_key"
        if not key.exists():
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}-host", "-f", str(key)])
        host = SandboxHost(name, address, port or free_port(address), str(host_dir), dict(env or {}),
                           dict(etc_hosts or {}), own_ssh_dir=own_ssh_dir, sshd_extra=list(sshd_extra or []),
                           sftp=sftp, **options)
        if host.hide_tools:
            _link_commands(host.path_dir, set(host.hide_tools))
        if host.ps_only:
            _install_ps_only(host)
        if own_ssh_dir:
            (host_dir / "dot-ssh").mkdir(mode=0o700, exist_ok=True)
        self.hosts[name] = host
        self._write_sshd_config(host)
        self.save()
        return host

    def _ensure_client_key(self) -> None:
        if not self.client_key.exists():
            self.client_key.parent.mkdir(parents=True, exist_ok=True)
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "agentsync-sandbox", "-f",
                  str(self.client_key)])

    def _write_sshd_config(self, host: SandboxHost) -> None:
        env = {"PATH": f"{host.bin_dir}:{host.path_dir if host.hide_tools else BASE_PATH}", **HOST_STATE_ENV,
               **host.env}
        etc = Path(host.dir) / "etc"
        lines = [
            *host.sshd_extra,
            f"ListenAddress {host.address}:{host.port}",
            f"HostKey {etc / 'ssh_host_ed25519_key'}",
            f"AuthorizedKeysFile {self.client_key}.pub",
            "PidFile none", "UsePAM no", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "StrictModes no", "UseDNS no", "PrintMotd no", "PrintLastLog no",
            "MaxStartups 500", "MaxSessions 200", "LogLevel VERBOSE",
            *(["Subsystem sftp internal-sftp"] if host.sftp else []),
            "AllowTcpForwarding yes",
            "SetEnv " + " ".join(f'"{k}={v}"' for k, v in env.items()),
        ]
        (etc / "sshd_config").write_text("\n".join(lines) + "\n")
        if host.etc_hosts:
            text = "127.0.0.1 localhost\n" + "".join(f"{ip} {n}\n" for n, ip in host.etc_hosts.items())
            (etc / "hosts").write_text(text)

    def set_env(self, name: str, **env: str) -> None:
        """Change a host's environment (takes effect for new sessions after a restart)."""
        host = self.hosts[name]
        host.env.update(env)
        self._write_sshd_config(host)
        self.save()

    # ---------------------------------------------------------------- lifecycle

    def start(self, name: str, wait: float = 10.0) -> SandboxHost:
        host = self.hosts[name]
        if host.pid and _alive(host.pid):
            return host
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        Path(MOUNT_POINT).mkdir(parents=True, exist_ok=True)
        etc = Path(host.dir) / "etc"
        binds = [f"mount --bind {Path(host.dir) / 'disk'} {MOUNT_POINT}"]
        binds += self._startup_binds(host)
        if (etc / "hosts").exists():
            binds.append(f"mount --bind {etc / 'hosts'} /etc/hosts")
        if host.own_ssh_dir:  # ssh finds ~/.ssh through passwd, not $HOME: bind one over it in this host only
            (Path.home() / ".ssh").mkdir(mode=0o700, exist_ok=True)  # the mount point (what ssh would create)
            binds.append(f"mount --bind {Path(host.dir) / 'dot-ssh'} {Path.home() / '.ssh'}")
        inner = " && ".join(binds + [f"exec {SSHD} -D -e -f {etc / 'sshd_config'}"])
        log = open(Path(host.dir) / "sshd.log", "ab")
        wrapper = subprocess.Popen(
            ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "sh", "-c", inner],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        host.pid = _namespace_init(wrapper.pid, wait)
        self._wait_listening(host, wait)
        self.save()
        return host

    def _startup_binds(self, host: SandboxHost) -> list[str]:
        """~/.bashrc (empty, or the host's own text), the login shell (a passwd of its own), /proc hidden."""
        binds = []
        bashrc = Path.home() / ".bashrc"
        if host.bashrc:
            own = Path(host.dir) / "etc" / "bashrc"
            own.write_text(host.bashrc)
            bashrc.touch(exist_ok=True)  # the mount point
            binds.append(f"mount --bind {own} {bashrc}")
        elif bashrc.exists():
            binds.append(f"mount --bind /dev/null {bashrc}")
        if host.login_shell:
            passwd = Path(host.dir) / "etc" / "passwd"
            passwd.write_text(_with_login_shell(Path("/etc/passwd").read_text(), os.getuid(), host.login_shell))
            binds.append(f"mount --bind {passwd} /etc/passwd")
        if host.ps_only:  # mounted before /proc is hidden: `ps` binds it over /proc in a mount namespace of its own
            binds.append(f"mount -t proc agentsync-ps-proc {_ps_proc(host)}")
        if host.proc_hidden:
            binds.append("mount -t tmpfs -o size=16k agentsync-no-proc /proc")
        if host.sshrc:  # an /etc/ssh of this host's own (sshd reads its config and keys from the host's dir)
            own = Path(host.dir) / "etc" / "sshrc"
            own.write_text(host.sshrc)
            binds.append(f"mount -t tmpfs -o size=64k agentsync-etc-ssh /etc/ssh && cp {shlex.quote(str(own))} /etc/ssh/sshrc")
        return binds

    def _wait_listening(self, host: SandboxHost, wait: float) -> None:
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((host.address, host.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"SSH-"):
                        return
            except OSError:
                pass
            if host.pid and not _alive(host.pid):
                break
            time.sleep(0.02)
        log = (Path(host.dir) / "sshd.log").read_text(errors="replace")[-800:]
        raise FleetError(f"sandbox host {host.name} did not start on {host.address}:{host.port}\n{log}")

    def kill(self, name: str) -> None:
        """Pull the plug: SIGKILL the namespace's init, which ends every process on that host."""
        self._signal(name, signal.SIGKILL)

    def stop(self, name: str) -> None:
        self._signal(name, signal.SIGTERM)

    def _signal(self, name: str, sig: int) -> None:
        host = self.hosts[name]
        if host.pid and _alive(host.pid):
            os.kill(host.pid, sig)
            deadline = time.monotonic() + 5
            while _alive(host.pid) and time.monotonic() < deadline:
                time.sleep(0.01)
        host.pid = None
        self.save()

    def start_all(self) -> None:
        for name in self.hosts:
            self.start(name)
        self.write_client_files()

    def stop_all(self) -> None:
        for name in self.hosts:
            self.stop(name)

    def destroy(self) -> None:
        self.stop_all()
        shutil.rmtree(self.root, ignore_errors=True)

    # ---------------------------------------------------------------- client side

    def write_client_files(self, dest: Path | None = None, untrusted: tuple[str, ...] = (),
                           replaced_keys: dict[str, str] | None = None,
                           extra: dict[str, tuple[str, int]] | None = None) -> tuple[Path, Path]:
        """Write an ssh_config (one alias per host) and a known_hosts beside it; return both paths.

        `untrusted` hosts get no known_hosts line; `replaced_keys` maps a host to
        another public key line ("type base64") to put there instead (a
        changed key); `extra` adds aliases for addresses that are not sandbox
        hosts (a dead port, a silent listener).
        """
        dest = dest or self.root
        config_path, known_path = dest / "ssh_config", dest / "known_hosts"
        config, known = [], []
        targets = {h.name: (h.address, h.port) for h in self.hosts.values()} | dict(extra or {})
        for name, (address, port) in targets.items():
            config += [f"Host {name}", f"  HostName {address}", f"  Port {port}", "  User root",
                       f"  IdentityFile {self.client_key}", "  IdentitiesOnly yes",
                       f"  UserKnownHostsFile {known_path}", "  StrictHostKeyChecking yes",
                       "  BatchMode yes", "  ConnectTimeout 10", ""]
            if name in self.hosts and name not in untrusted:
                key = (replaced_keys or {}).get(name) or self.host_public_key(name)
                known.append(f"[{address}]:{port} {key}")
        config_path.write_text("\n".join(config))
        known_path.write_text("\n".join(known) + "\n")
        return config_path, known_path

    def host_public_key(self, name: str) -> str:
        """The host's public key as "type base64"."""
        pub = (Path(self.hosts[name].dir) / "etc" / "ssh_host_ed25519_key.pub").read_text().split()
        return f"{pub[0]} {pub[1]}"

    def ssh_argv(self, name: str, command: str) -> list[str]:
        """Run a command on a host with OpenSSH's own client (used to set hosts up, independently of us)."""
        return ["ssh", "-F", str(self.ssh_config), "-o", "BatchMode=yes", name, command]

    def ssh(self, name: str, command: str, check: bool = True, timeout: float = 30) -> str:
        proc = subprocess.run(self.ssh_argv(name, command), capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise FleetError(f"sandbox ssh {name} {command!r} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def start_process(self, name: str, command: str) -> None:
        """Start a long-running process on a host, detached from the SSH session."""
        self.ssh(name, f"cd {MOUNT_POINT} && (setsid nohup {command} >/dev/null 2>&1 </dev/null &)")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _namespace_init(wrapper_pid: int, wait: float) -> int:
    """The pid (in our namespace) of the child `unshare --fork` made: init of the new PID namespace."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            children = Path(f"/proc/{wrapper_pid}/task/{wrapper_pid}/children").read_text().split()
        except OSError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.005)
    raise FleetError("sandbox: unshare did not start its child")


def _with_login_shell(passwd: str, uid: int, shell: str) -> str:
    """/etc/passwd's text with the login shell of the user `uid` replaced."""
    lines = []
    for line in passwd.splitlines():
        fields = line.split(":")
        if len(fields) == 7 and fields[2] == str(uid):
            fields[6] = shell
        lines.append(":".join(fields))
    return "\n".join(lines) + "\n"


def _link_commands(target: Path, hidden: set[str]) -> None:
    """A PATH directory: links to the first command of each name on BASE_PATH, leaving out `hidden`."""
    target.mkdir(parents=True, exist_ok=True)
    for directory in BASE_PATH.split(":"):
        for entry in sorted(Path(directory).iterdir()) if Path(directory).is_dir() else []:
            link = target / entry.name
            if entry.name in hidden or link.is_symlink() or not os.access(entry, os.X_OK):
                continue
            link.symlink_to(entry)


_PS_ONLY = """exec unshare --mount --propagation private sh -c 'mount --bind {proc} /proc && exec "$@"' sh {ps} "$@"
"""


def _ps_proc(host: SandboxHost) -> Path:
    return Path(host.dir) / "ps-proc"


def _install_ps_only(host: SandboxHost) -> None:
    """`ps` on the host's PATH: `host.ps_only`, seeing the host's processes through a /proc only it can see."""
    _ps_proc(host).mkdir(exist_ok=True)
    ps = host.bin_dir / "ps"
    ps.write_text("#!/bin/sh\n" + _PS_ONLY.format(proc=_ps_proc(host), ps=host.ps_only))
    ps.chmod(0o755)


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)
