"""Why ssh failed, read from its own words: stderr and exit status 255 → a reason a person can act on.

Pure and golden-tested against OpenSSH 9.x messages. Order matters: a revoked
or changed key also prints "Host key verification failed", so the specific
reasons are looked for first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SSH_FAILED = 255  # ssh's own exit status for "could not connect / authenticate"
FINGERPRINT = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
DENIED = re.compile(r"Permission denied \(([^)]*)\)")
CONNECT = re.compile(r"connect to host \S+ port \d+: (.+)")

# (reason, patterns), first match wins
RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("host key revoked", ("REVOKED HOST KEY DETECTED", "is marked as revoked", "revoked key", "revoked by file")),
    ("host key changed", ("REMOTE HOST IDENTIFICATION HAS CHANGED", "has changed and you have requested strict")),
    ("host certificate", ("Certificate invalid", "No matching CA found", "certificate is not valid",
                          "Host certificate")),
    ("host key unknown", ("host key is known for", "Host key verification failed")),
    ("no common algorithm", ("Unable to negotiate", "no matching key exchange", "no matching host key type",
                             "no matching cipher", "no matching MAC")),
    ("too many auth failures", ("Too many authentication failures",)),
    ("dns", ("Could not resolve hostname", "Name or service not known", "Temporary failure in name resolution",
             "nodename nor servname")),
    ("refused", ("Connection refused",)),
    ("timeout", ("Connection timed out", "Operation timed out", "timed out during banner exchange")),
    ("network", ("No route to host", "Network is unreachable", "Host is unreachable")),
    ("config", ("Bad configuration option", "ControlPath too long", "too long for Unix domain socket", "Bad owner or permissions",
                "command-line line", "Unsupported option", "terminating,")),
    ("proxy", ("channel 0: open failed", "stdio forwarding failed", "Connection closed by UNKNOWN port",
               "kex_exchange_identification", "ssh_exchange_identification", "Connection closed by",
               "Connection reset by", "Broken pipe")),
)


@dataclass(frozen=True)
class SshFailure:
    """What went wrong, in ssh's terms; `detail` is ssh's own message (last lines)."""

    reason: str
    message: str
    detail: str
    fingerprint: str = ""


def ssh_lines(stderr: str) -> list[str]:
    """stderr without ssh's warning banners' @ frames and blank lines."""
    return [line.strip() for line in stderr.replace("\r", "").splitlines()
            if line.strip() and not set(line.strip()) <= {"@"}]


def classify(stderr: str, *, via_proxy: bool = False) -> SshFailure | None:
    """The reason ssh (exit 255) failed, or None when its stderr names no connection problem."""
    text = "\n".join(ssh_lines(stderr))
    for reason, patterns in RULES:
        if any(p in text for p in patterns):
            if reason == "proxy" and not via_proxy:
                reason = "lost"
            return _failure(reason, text)
    denied = DENIED.search(text)
    if denied:
        methods = [m.strip() for m in denied.group(1).split(",") if m.strip()]
        reason = "auth" if "publickey" in methods or not methods else "second factor"
        return _failure(reason, text, methods)
    return None


def _failure(reason: str, text: str, methods: list[str] | None = None) -> SshFailure:
    detail = "\n".join(text.splitlines()[-6:])
    found = FINGERPRINT.search(text)
    return SshFailure(reason, _message(reason, text, methods or []), detail, found.group(0) if found else "")


def _message(reason: str, text: str, methods: list[str]) -> str:
    connect = CONNECT.search(text)
    last = text.splitlines()[-1] if text else ""
    return {
        "host key revoked": "the host key is REVOKED (a @revoked line or RevokedHostKeys); ssh refuses it",
        "host key changed": "HOST KEY CHANGED: it differs from the one in known_hosts. Someone may be "
                            "intercepting the connection; refusing to connect",
        "host certificate": f"the host certificate is not accepted ({last})",
        "host key unknown": "unknown host key: not in any known_hosts file ssh reads; refusing to connect",
        "no common algorithm": f"no algorithm in common with the server ({last})",
        "too many auth failures": "too many authentication failures: ssh offered more keys than the server "
                                  "allows before the right one",
        "dns": f"name does not resolve ({last})",
        "refused": "connection refused (is sshd running and the port right?)",
        "timeout": f"timed out ({connect.group(1) if connect else last})",
        "network": f"network unreachable ({connect.group(1) if connect else last})",
        "config": f"ssh rejects the configuration: {last}",
        "proxy": f"the proxy (ProxyCommand / ProxyJump) failed: {' | '.join(text.splitlines()[-3:])}",
        "lost": f"the connection closed during set-up ({last})",
        "auth": f"authentication failed ({last})",
        "second factor": f"the host wants {', '.join(methods)} after the key (a password or second factor); "
                         "agentsync never prompts",
    }[reason]
