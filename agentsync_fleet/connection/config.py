"""ssh_config: where and how to reach a host (Fabric's config object, paramiko's parser).

Aliases, HostName, Port, User, IdentityFile, IdentitiesOnly, ProxyJump,
ProxyCommand, UserKnownHostsFile, HostKeyAlias and Include are honoured.
"""

from __future__ import annotations

import getpass
import glob
import os
from dataclasses import dataclass
from pathlib import Path

import paramiko
from fabric import Config
from fabric.connection import derive_shorthand

SYSTEM_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"
USER_SSH_CONFIG = "~/.ssh/config"
SYSTEM_SSH_CONFIG = "/etc/ssh/ssh_config"
USER_KNOWN_HOSTS = "~/.ssh/known_hosts"


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
    proxy_command: str = ""  # ssh_config ProxyCommand, %h/%p already expanded (ProxyJump wins if both are set)

    @property
    def known_hosts_entry_name(self) -> str:
        return self.hostkey_name if self.port == 22 else f"[{self.hostkey_name}]:{self.port}"


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
            proxy_command="" if str(conf.get("proxycommand", "none")).lower() == "none" else conf["proxycommand"],
        )
