"""Where and how to reach a host, as the user's own OpenSSH decides it: `ssh -G`, once per host per run.

`ssh -G` applies the whole client config (Include, Match host/user/
originalhost/exec, tokens, canonicalisation) without connecting, in a few
milliseconds. Everything that reaches a host uses this one answer: the
connection itself passes the same `-F`, user, port and target to ssh, so
ssh resolves exactly the same way; the answer is read for what we must
know ourselves (jump hops, known_hosts files for `trust`, the address another
host dials, the user's StrictHostKeyChecking to name in a refusal).
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field, replace

from ..errors import HostUnreachable

PORT_SUFFIX = re.compile(r"^(.*):(\d{1,5})$")
JUMP_URI = re.compile(r"^ssh://(?:([^@/]+)@)?([^:/]+)(?::(\d{1,5}))?/?$")
MULTI = {"identityfile", "certificatefile", "localforward", "remoteforward", "dynamicforward", "sendenv",
         "setenv", "canonicaldomains"}
RESOLVE_TIMEOUT = 30.0  # `Match exec` runs the user's commands; bound it anyway


def split_port(spec: str) -> tuple[str, int | None]:
    """`user@host:2222` → ("user@host", 2222); ssh takes the port as `-p`."""
    match = PORT_SUFFIX.match(spec)
    if match and not spec.endswith("]"):
        return match.group(1), int(match.group(2))
    return spec, None


def split_jump(hop: str) -> tuple[str, str | None, int | None]:
    """One ProxyJump hop (`[user@]host[:port]` or `ssh://[user@]host[:port]`) → (host, user, port)."""
    uri = JUMP_URI.match(hop)
    if uri:
        return uri.group(2), uri.group(1), int(uri.group(3)) if uri.group(3) else None
    target, port = split_port(hop)
    user, _, host = target.rpartition("@")
    return host, user or None, port


@dataclass(frozen=True)
class Target:
    """What we hand ssh to name a host: the alias or host, and the user/port the inventory (or a hop) fixed."""

    host: str
    user: str | None = None
    port: int | None = None

    @classmethod
    def from_spec(cls, spec: str) -> Target:
        """An inventory `ssh:` value: alias, host, user@host or user@host:port."""
        target, port = split_port(spec)
        user, _, host = target.rpartition("@")
        return cls(host, user or None, port)

    def argv(self) -> list[str]:
        """`-l USER -p PORT` (only what was given: the rest is the config's), for ssh and ssh -G alike."""
        return [*(["-l", self.user] if self.user else []), *(["-p", str(self.port)] if self.port else [])]

    def __str__(self) -> str:
        text = f"{self.user}@{self.host}" if self.user else self.host
        return f"{text}:{self.port}" if self.port else text


@dataclass(frozen=True)
class Resolution:
    """`ssh -G`'s answer for one target (keys lower-case; single values first-wins as in ssh)."""

    target: Target
    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, tuple[str, ...]] = field(default_factory=dict)
    text: str = ""  # the answer as ssh printed it (a later run compares it whole: remote/early.py)

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def hostname(self) -> str:
        return self.get("hostname", self.target.host)

    @property
    def port(self) -> int:
        return int(self.get("port", "22") or 22)

    @property
    def user(self) -> str:
        return self.get("user")

    @property
    def address(self) -> str:
        """user@hostname, bracketed for IPv6: what another host dials to reach this one."""
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{self.user}@{host}" if self.user else host

    @property
    def proxy_jump(self) -> tuple[str, ...]:
        value = self.get("proxyjump")
        return () if value in ("", "none") else tuple(h.strip() for h in value.split(",") if h.strip())

    @property
    def proxy_command(self) -> str:
        value = self.get("proxycommand")
        return "" if value == "none" else value

    @property
    def user_known_hosts(self) -> tuple[str, ...]:
        return tuple(self.get("userknownhostsfile", "~/.ssh/known_hosts ~/.ssh/known_hosts2").split())

    @property
    def global_known_hosts(self) -> tuple[str, ...]:
        return tuple(self.get("globalknownhostsfile").split())

    @property
    def host_key_name(self) -> str:
        """The name known_hosts is searched under: HostKeyAlias as written (ssh adds no port to it), else
        HostName, as `[name]:port` off port 22."""
        alias = self.get("hostkeyalias")
        if alias and alias != "none":
            return alias
        return self.hostname if self.port == 22 else f"[{self.hostname}]:{self.port}"

    @property
    def strict_host_key_checking(self) -> str:
        """The user's own setting, as they would write it (yes / ask / accept-new / no)."""
        return {"true": "yes", "false": "no"}.get(self.get("stricthostkeychecking"),
                                                  self.get("stricthostkeychecking") or "ask")

    @property
    def hash_known_hosts(self) -> bool:
        return self.get("hashknownhosts") == "yes"


def parse_ssh_g(text: str, target: Target) -> Resolution:
    """`ssh -G` output → Resolution (pure; golden-tested)."""
    values: dict[str, str] = {}
    lists: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        key = key.lower()
        if not key:
            continue
        if key in MULTI:
            lists.setdefault(key, []).append(value.strip())
        else:
            values.setdefault(key, value.strip())
    return Resolution(target, values, {k: tuple(v) for k, v in lists.items()})


def resolve_argv(target: Target, config: str | None) -> list[str]:
    return ["ssh", *(["-F", config] if config else []), "-G", *target.argv(), "--", target.host]


def resolve(target: Target, config: str | None, name: str) -> Resolution:
    """Ask the user's ssh how it will treat `target` (no connection is made)."""
    argv = resolve_argv(target, config)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=RESOLVE_TIMEOUT,
                              stdin=subprocess.DEVNULL, errors="replace")
    except FileNotFoundError:
        raise HostUnreachable("the OpenSSH client (`ssh`) is not installed on this machine", reason="config",
                              host=name, hint="install it (Debian/Ubuntu: apt-get install openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise HostUnreachable(f"`ssh -G {target}` took longer than {RESOLVE_TIMEOUT:g}s (a slow `Match exec`?)",
                              reason="config", host=name) from None
    if proc.returncode != 0:
        detail = " ".join(proc.stderr.split())[-400:] or f"exit {proc.returncode}"
        raise HostUnreachable(f"ssh cannot read its config for '{target}': {detail}", reason="config", host=name,
                              hint=f"check {config or '~/.ssh/config'}; `ssh -G {target}` shows the same error")
    return replace(parse_ssh_g(proc.stdout, target), text=proc.stdout)
