"""`trust HOST`: add a host's key to known_hosts on purpose, after showing its fingerprint.

Exit 0 when the key is (now) trusted, 1 when it is not (changed key, declined), 2 bad input
(no such host, a local host, no --yes without a terminal). With --json, stdout carries one
document on every path (the error paths: see `taskrun.run_body`).

The key is read by ssh itself, through the host's own route (ProxyJump,
ProxyCommand, HostKeyAlias), and written as ssh would write it into the first
UserKnownHostsFile. Never replaces a key that changed: that is exactly the
case a person must look into first (the old line is removed by hand, then
`trust` is run again).

A host behind ProxyJump cannot be reached before each jump host's key is
trusted: `trust HOST` then refuses, naming the hop, and `trust HOST --jump HOP`
trusts that hop's key the same way (read through the hops before it, written
where ssh reads for that hop).
"""

from __future__ import annotations

import sys

from ..errors import FleetError, UsageError
from . import FleetArgs


def run(args: FleetArgs, host_name: str, yes: bool = False, jump: str = "") -> int:
    from ..output import console
    from ..remote import Connector, append_known_host, read_host_key, trust_file

    inv = args.load()
    if host_name not in inv.hosts:
        raise UsageError(f"no host '{host_name}' in {inv.path}", hint=f"hosts: {', '.join(inv.order)}")
    host = inv.hosts[host_name]
    if host.local:
        raise UsageError(f"host '{host_name}' is local: true; there is no host key to trust")
    connector = Connector(inv)
    try:
        _check_jump(connector, host, jump, inv)
        presented = read_host_key(connector, host, jump)
    finally:
        connector.close_all()
    out = console(stderr=args.json)
    name = presented.resolution.host_key_name
    who = f"{host_name}'s jump host {jump}" if jump else host_name
    out.print(f"{who} ({name}) presents {presented.key_type} key [bold]{presented.fingerprint}[/]")

    def report(outcome: str, known_hosts: str | None = None) -> None:
        if args.json:
            from ..output import emit_json

            emit_json({"ok": outcome in ("known", "trusted"), "host": host_name, "jump": jump or None, "endpoint": name,
                       "key_type": presented.key_type, "fingerprint": presented.fingerprint, "outcome": outcome,
                       "known_hosts": known_hosts})

    if presented.status == "known":
        out.print("[green]already trusted[/]: ssh accepts this host's key; nothing to do.")
        report("known")
        return 0
    if presented.status == "changed":
        raise FleetError(
            f"known_hosts holds a DIFFERENT key for {name}; not replacing it ({presented.detail})",
            host=host_name, hint=f"if the host was really reinstalled, run `ssh-keygen -R '{name}'` "
                                 f"(add -f FILE for a UserKnownHostsFile), then `agentsync trust {host_name}"
                                 f"{' --jump ' + jump if jump else ''}` again")
    target = trust_file(presented.resolution)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("not trusting a key without confirmation",
                             hint="compare the fingerprint with the host's owner (ssh-keygen -lf on the host), "
                                  "then rerun with --yes")
        out.print(f"Trust this key and add it to {target}? [y/N] ", end="")  # on stderr with --json
        answer = input().strip().lower()
        if answer not in ("y", "yes"):
            out.print("not trusted; nothing changed.")
            report("declined")
            return 1
    append_known_host(target, presented)
    out.print(f"[green]trusted[/]: added {name} {presented.key_type} to {target}")
    report("trusted", str(target))
    return 0


def _check_jump(connector, host, jump: str, inv) -> None:
    """`--jump` must name one of the host's ProxyJump hops, as ssh resolves them."""
    if not jump:
        return
    hops = connector.resolution(host).proxy_jump
    if jump not in hops:
        listed = f"its hops: {', '.join(hops)}" if hops else "it has no ProxyJump"
        raise UsageError(f"'{jump}' is not a ProxyJump hop on the way to '{host.name}' ({listed})",
                         hint=f"`ssh -G` for {host.ssh or host.name} with {inv.ssh_config or '~/.ssh/config'} "
                              "shows its proxyjump")
