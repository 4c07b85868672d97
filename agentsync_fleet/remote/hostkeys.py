"""Host keys: refusals that say why and what to do, and `trust`, which writes where ssh reads.

We never add a key on our own. To show a fingerprint (ssh prints none for an
unknown key under strict checking) and for `trust`, ssh itself is asked to
record the presented key into a throw-away known_hosts file (accept-new
there, nothing else read, no authentication attempted): the line it writes
is exactly what ssh would write — HostKeyAlias, `[host]:port`, hashed when
HashKnownHosts says so — and `trust` appends that line, after confirmation,
to the first UserKnownHostsFile, the one ssh itself writes to.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import HostKeyError, HostUnreachable
from ..models import Host
from .diagnose import SshFailure, classify
from .master import SSH_ENV, start_master
from .resolve import Resolution
from .session import OpenSSHSession

AFTER_HOST_KEY = ("auth", "second factor", "too many auth failures")  # ssh checked the key before these
SCAN_OPTIONS = ("StrictHostKeyChecking=accept-new", "GlobalKnownHostsFile=/dev/null", "KnownHostsCommand=none",
                "RevokedHostKeys=none", "UpdateHostKeys=no", "ControlMaster=no", "ControlPath=none",
                "PreferredAuthentications=none", "BatchMode=yes")


@dataclass(frozen=True)
class PresentedKey:
    """The key a host presents, and how it compares with what ssh knows."""

    resolution: Resolution
    key_type: str
    fingerprint: str
    status: str  # known | unknown | changed
    lines: tuple[str, ...] = ()  # what ssh would write to known_hosts for it
    detail: str = ""  # ssh's own words when the key changed


def fingerprint(key_base64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob, as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def scan(session: OpenSSHSession, timeout: float) -> tuple[str, ...]:
    """The known_hosts line(s) ssh writes for the key `session`'s host presents (no auth, nothing kept)."""
    with tempfile.TemporaryDirectory(prefix="agentsync-scan-") as tmp:
        known = Path(tmp) / "known_hosts"
        overrides = [f"UserKnownHostsFile={known}", *SCAN_OPTIONS]
        argv = ["ssh", *(x for o in overrides for x in ("-o", o)), *session.prefix[1:], "-N", *session.target]
        code, stderr = start_master(argv, timeout + 1.0, {**os.environ, **SSH_ENV})
        lines = tuple(line for line in known.read_text().splitlines() if line.strip()) if known.exists() else ()
        if not lines:
            failure = classify(stderr, via_proxy=session.via_proxy)
            reason = failure.reason if failure else ("timeout" if code is None else "ssh")
            raise HostUnreachable(f"could not read the host key: {failure.message if failure else stderr.strip()}",
                                  reason=reason, host=session.name, hint=session.hint)
        return lines


def _key_of(lines: tuple[str, ...]) -> tuple[str, str]:
    """(key type, fingerprint) of the first known_hosts line."""
    parts = lines[0].split()
    return parts[-2], fingerprint(parts[-1])


def refusal(connector, session: OpenSSHSession, res: Resolution, failure: SshFailure,
            timeout: float) -> HostKeyError:
    """The error for a host-key problem, with the fingerprint and the way forward. On a ProxyJump hop it says
    that it is the jump host's key, and gives the `trust --jump` command for that hop."""
    name, hop = session.name, session.hop
    owner = name.split(" (via ", 1)[0] if hop else name
    trust = f"agentsync trust {owner}{f' --jump {hop}' if hop else ''} --inventory {connector.inventory.path}"
    fp, key_type = failure.fingerprint, ""
    if failure.reason == "host key unknown":
        try:
            key_type, fp = _key_of(scan(session, timeout))
        except HostUnreachable:
            pass
    stricter = ""
    if res.strict_host_key_checking in ("accept-new", "no"):
        stricter = (f" (your ssh_config says StrictHostKeyChecking {res.strict_host_key_checking}; "
                    "agentsync never adds host keys, it checks as with `yes`)")
    entry = res.host_key_name
    whose = f"the jump host {hop} ({entry}), on the way to {owner}," if hop else entry
    keyed = {"fingerprint": fp, "host": name, "hop": hop, "reason": failure.reason}
    if failure.reason == "host key unknown":
        subject = f"{whose} presents an unknown host key" if hop else f"unknown host key for {entry}"
        return HostKeyError(f"{subject} ({key_type} {fp}); refusing to connect{stricter}",
                            hint=f"check the fingerprint with {hop or 'the host'}'s owner, then run: {trust}", **keyed)
    if failure.reason == "host key changed":
        offending = next((line for line in failure.detail.splitlines() if "Offending" in line), "")
        return HostKeyError(f"HOST KEY CHANGED for {whose}: it now presents {fp}. Someone may be intercepting "
                            f"the connection; refusing to connect. {offending}".strip(),
                            hint=f"if the host was reinstalled, remove the old key (ssh-keygen -R '{entry}'"
                                 f"{' -f FILE' if res.get('userknownhostsfile') else ''}) and run: {trust}", **keyed)
    if failure.reason == "host key revoked":
        return HostKeyError(f"{whose}: {failure.message}",
                            hint="the host must get a new key (ask its owner); a revoked key is never trusted", **keyed)
    return HostKeyError(f"{whose}: {failure.message}",
                        hint="check the host's certificate (principals, validity, CA) and the @cert-authority line",
                        **keyed)


def read_host_key(connector, host: Host, jump: str = "") -> PresentedKey:
    """Connect as a run would; see whether ssh accepts the key of the host (or of its ProxyJump hop `jump`),
    and which key it presents. A problem with a hop's key while reading the host's own is raised as it is:
    the host's key cannot be read before its jump host is trusted (with `--jump`)."""
    if jump:
        res = connector.hop_resolution(host, jump)
        opened, unopened = (lambda: connector.hop_session(host, jump),
                            lambda: connector.hop_session(host, jump, opened=False))
    else:
        res = connector.resolution(host)
        opened, unopened = lambda: connector.session(host), lambda: connector.unopened_session(host)
    try:
        return PresentedKey(res, *_key_of(scan(opened(), host.connect_timeout)), status="known")
    except HostKeyError as exc:
        if exc.reason not in ("host key unknown", "host key changed") or exc.hop != jump:
            raise
        lines = scan(unopened(), host.connect_timeout)
        status = "unknown" if exc.reason == "host key unknown" else "changed"
        return PresentedKey(res, *_key_of(lines), status=status, lines=lines, detail=exc.message)
    except HostUnreachable as exc:
        if exc.reason not in AFTER_HOST_KEY:
            raise
        return PresentedKey(res, *_key_of(scan(unopened(), host.connect_timeout)), status="known")


def trust_file(res: Resolution) -> Path:
    """Where `trust` writes: the first UserKnownHostsFile, as ssh itself would."""
    return Path(os.path.expanduser(res.user_known_hosts[0]))


def append_known_host(path: Path, presented: PresentedKey) -> None:
    """Append ssh's own line(s) for the key to a known_hosts file (created 0600 if missing)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = "".join(line + "\n" for line in presented.lines)
    if path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
        text = "\n" + text
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(text)
