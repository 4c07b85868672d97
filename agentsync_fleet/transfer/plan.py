"""From inventory entries to routes and rsync legs: which machine, which path, which options. Pure.

A *route* is one entry with both sides resolved to a machine and a path. It
becomes one or two *legs* (rsync runs):

* laptop ↔ host: one leg, rsync on the laptop;
* host → host, the default: two legs through a cache on the laptop (the hosts
  often cannot reach each other): source → cache, cache → target;
* host → host with `direct: true`: one leg, rsync run on the source host.

Paths: relative ones are relative to that machine's repo; `~/` is that
machine's home. A remote path is given to rsync absolute or as `./relative`
(relative to the login directory, i.e. the home) so it can never be read as
an option; a trailing `/` keeps rsync's meaning (the directory's contents).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ..entries import split_ref
from ..errors import FleetError
from ..models import Host, Inventory, RsyncEntry
from ..secrets import is_protected
from ..settings import TIMEOUTS, TransferSettings
from ..steps.rsync import (
    RsyncCall,
    SshTarget,
    remote_spec,
    secret_rules,
    ssh_argv,
)

CODE_ENTRY = "push-code"


@dataclass(frozen=True)
class Place:
    """One side of a transfer: a machine and a path as the inventory wrote it."""

    host: Host
    path: str

    @property
    def local(self) -> bool:
        return self.host.local

    @property
    def resolved(self) -> str:
        return local_path(self.host.repo, self.path) if self.local else remote_path(self.host.repo, self.path)

    @property
    def display(self) -> str:
        return f"{self.host.name}:{self.resolved}"


@dataclass(frozen=True)
class Route:
    owner: Host  # the host whose inventory entry this is
    entry: RsyncEntry
    src: Place
    dest: Place

    @property
    def key(self) -> str:
        return f"{self.owner.name}.{self.entry.name}"

    @property
    def mode(self) -> str:
        if self.src.local or self.dest.local:
            return "local"
        return "direct" if self.entry.direct else "relay"

    @property
    def is_code(self) -> bool:
        return self.entry.kind == "code"


@dataclass(frozen=True)
class Leg:
    """One rsync run of a route; `on` is the host that runs it (None: the laptop)."""

    call: RsyncCall
    label: str
    on: Host | None = None
    receiver: Host | None = None  # the machine files land on (None: the laptop)
    peer: Host | None = None  # the remote host this rsync talks to
    dest_dir: str = ""  # the receiving side's path, for restore instructions
    final: bool = True  # False for the source → cache leg of a relay
    prefix: str = ""  # "data/": this run sends into what the receiver's data/ links to (transfer/dirlinks.py)


@dataclass(frozen=True)
class LegOptions:
    """What differs between runs of the same route."""

    run_id: str
    state_dir: str
    dry_run: bool = False
    settings: TransferSettings = field(default_factory=TransferSettings)

    @classmethod
    def for_inventory(cls, inv: Inventory, run_id: str, state_dir: str, dry_run: bool = False) -> LegOptions:
        # absolute: rsync reads a relative --backup-dir against the destination dir (backups inside it)
        return cls(run_id, os.path.abspath(state_dir), dry_run, TransferSettings.from_inventory(inv))


def controller(inv: Inventory) -> Host:
    """The laptop: the `local: true` host, or a stand-in when the inventory has none (absolute paths only)."""
    for host in inv.hosts.values():
        if host.local:
            return host
    return Host(name="local", repo=os.getcwd(), local=True)


def _join(base: str, path: str) -> str:
    if path in (".", "./"):
        return base.rstrip("/") + "/"
    return base.rstrip("/") + "/" + path.removeprefix("./")


def local_path(repo: str, path: str) -> str:
    path = os.path.expanduser(path)
    if os.path.isabs(path):
        return path
    return _join(os.path.abspath(os.path.expanduser(repo)), path)


def remote_path(repo: str, path: str) -> str:
    if path.startswith("/"):
        return path
    if path == "~" or path.startswith("~/"):
        return "./" + path[2:] if len(path) > 2 else "./"
    base = repo if repo.startswith("/") else remote_path("", repo if repo.startswith("~") else "~/" + repo)
    return _join(base, path)


def place(inv: Inventory, owner: Host, value: str, own_side: bool) -> Place:
    ref, path = split_ref(value)
    if ref is not None:
        return Place(inv.hosts[ref], path)
    return Place(owner if own_side else controller(inv), path)


def entry_route(inv: Inventory, owner: Host, entry: RsyncEntry) -> Route:
    push = entry.direction == "push"
    return Route(owner, entry, place(inv, owner, entry.src, not push), place(inv, owner, entry.dest, push))


def code_route(inv: Inventory, host: Host) -> Route:
    """The laptop's working tree (its repo) onto the host's repo; the file list comes from git at run time.

    Two checkouts of one commit have the same content but different mtimes, so rsync's quick check
    (size + mtime) would "update" — and back up — every file; push-code compares content (--checksum),
    which for a source tree costs little."""
    entry = RsyncEntry(name=CODE_ENTRY, direction="push", src="./", dest="./", kind="code")
    return Route(host, entry, Place(controller(inv), "./"), Place(host, "./"))


def push_routes(inv: Inventory, host: Host, code: bool) -> list[Route]:
    routes = [code_route(inv, host)] if code else []
    return routes + [entry_route(inv, host, e) for e in host.rsync if e.direction == "push"]


def pull_routes(inv: Inventory, host: Host) -> list[Route]:
    return [entry_route(inv, host, e) for e in (*host.results, *host.rsync) if e.direction == "pull"]


def backup_dir(route: Route, receiver: Host, opts: LegOptions) -> str:
    stamp = f"{opts.run_id}/{route.key}"
    if receiver.local:
        return os.path.join(opts.state_dir, "backups", stamp)
    return f"{opts.settings.backup_dir.rstrip('/')}/{stamp}"


def legs(route: Route, opts: LegOptions, ssh: Callable[[Host], SshTarget]) -> list[Leg]:
    """The rsync runs for a route, in order. `ssh(host)` gives the OpenSSH settings for a remote host."""
    refuse_secret_source(route, opts.settings.secrets)
    # .git never travels (any transfer, any depth): it would replace a receiving checkout's refs, index and
    # objects — commits move with git (sync-all); .git on the receiving side is also kept from `delete`
    excludes = (*secret_rules(opts.settings.secrets), ".git", *route.entry.exclude)
    common = dict(dry_run=opts.dry_run, bwlimit=opts.settings.bwlimit, excludes=excludes,
                  compress=any(_slow(p.host) for p in (route.src, route.dest)))
    if route.mode == "local":
        return [_local_leg(route, opts, ssh, common)]
    if route.mode == "direct":
        return [_direct_leg(route, opts, ssh, common)]
    return _relay_legs(route, opts, ssh, common)


def refuse_secret_source(route: Route, patterns: tuple[str, ...]) -> None:
    """rsync's excludes match names *below* the source, so a source that is itself inside `credentials/`
    (or is `.env`) would send what the patterns are there to hold back: refuse it before anything moves."""
    for part in route.src.path.split("/"):
        matched = next((p for p in patterns if part not in ("", ".", "..", "~") and is_protected(part, (p,))), None)
        if matched is not None:
            raise FleetError(f"{route.key}: src '{route.src.path}' names '{part}', which matches the secret pattern "
                             f"'{matched}'; secrets never travel, so nothing was sent", host=route.owner.name,
                             hint="point src at a path that does not go through it (transfers.secrets and the "
                                  "built-in patterns are always on)")


def _slow(host: Host) -> bool:
    return not host.local and (host.slow or bool(host.zerotier))


def _timeout(host: Host) -> int:
    return max(TIMEOUTS.rsync_io_floor, int(host.command_timeout))


def _spec(place_: Place, ssh: Callable[[Host], SshTarget], sender: bool = False) -> str:
    return place_.resolved if place_.local else remote_spec(ssh(place_.host).target, place_.resolved, sender=sender)


def _local_leg(route: Route, opts: LegOptions, ssh: Callable[[Host], SshTarget], common: dict) -> Leg:
    remote = route.dest if route.src.local else route.src
    target = ssh(remote.host)
    call = RsyncCall(src=_spec(route.src, ssh, sender=True), dest=_spec(route.dest, ssh), rsh=tuple(ssh_argv(target)),
                     remote="receiver" if route.src.local else "sender", delete=route.entry.delete,
                     io_timeout=_timeout(remote.host), backup_dir=backup_dir(route, route.dest.host, opts),
                     files_from=route.is_code, checksum=route.is_code, keep_dirlinks=route.src.local, **common)
    return Leg(call, f"{route.src.display} → {route.dest.display}", None,
               None if route.dest.local else route.dest.host, remote.host, route.dest.resolved)


def _relay_legs(route: Route, opts: LegOptions, ssh: Callable[[Host], SshTarget], common: dict) -> list[Leg]:
    cache = os.path.join(opts.state_dir, "relay", route.owner.name, route.entry.name) + "/"
    src, dest = route.src, route.dest
    inbound = RsyncCall(src=_spec(src, ssh, sender=True), dest=cache, rsh=tuple(ssh_argv(ssh(src.host))), remote="sender",
                        delete=True, io_timeout=_timeout(src.host), **common)  # the cache mirrors the source
    name = src.resolved.rstrip("/").rsplit("/", 1)[-1]
    staged = cache if src.resolved.endswith("/") else cache + name
    outbound = RsyncCall(src=staged, dest=_spec(dest, ssh), rsh=tuple(ssh_argv(ssh(dest.host))), remote="receiver",
                         delete=route.entry.delete, io_timeout=_timeout(dest.host),
                         backup_dir=backup_dir(route, dest.host, opts), **common)
    return [Leg(inbound, f"{src.display} → laptop cache", None, None, src.host, cache, final=False),
            Leg(outbound, f"laptop cache → {dest.display}", None, dest.host, dest.host, dest.resolved)]


def _direct_leg(route: Route, opts: LegOptions, ssh: Callable[[Host], SshTarget], common: dict) -> Leg:
    """rsync runs on the source host with *its* ssh client, keys and known_hosts; host-key checks stay on."""
    target = ssh(route.dest.host)
    if target.proxy_jump:
        raise FleetError(f"{route.key}: direct: true, but {route.dest.host.name} is reached through ProxyJump "
                         f"{target.proxy_jump}, which {route.src.host.name} does not know", host=route.owner.name,
                         hint="remove direct: true (the default relays through the laptop)")
    hop = SshTarget(target=target.address or target.target, port=target.resolved_port or target.port,
                    connect_timeout=target.connect_timeout)
    call = RsyncCall(src=route.src.resolved, dest=remote_spec(hop.target, route.dest.resolved),
                     rsh=tuple(ssh_argv(hop, first_hop=False)), remote="receiver", delete=route.entry.delete,
                     io_timeout=_timeout(route.dest.host), backup_dir=backup_dir(route, route.dest.host, opts),
                     **common)
    return Leg(call, f"{route.src.display} → {route.dest.display} (direct)", route.src.host, route.dest.host,
               route.dest.host, route.dest.resolved)
