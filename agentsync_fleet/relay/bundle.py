"""Bring the converged branch to a host that cannot reach origin: a git bundle over SFTP.

The hub (which can reach origin) bundles its copy of origin's branch, leaving
out what the host already has: the host's HEAD and its copy of origin's
branch are checked on the hub and, where known there, become the bundle's
prerequisites. The host verifies the bundle and fetches it into its own
`refs/remotes/<remote>/<branch>` (no `+`: a non-fast-forward is refused), so
its ahead/behind and the next relay's base are right. Moving the checkout is
left to the caller (the same safe move every converging host gets).
"""

from __future__ import annotations

from ..gitops import Checkout
from ..models import Host
from ..steps import git as G
from ..steps import relay as R
from ..steps.git import origin_ref
from . import copies
from .export import RelayError, common_dir


def deliver_branch(hub_co: Checkout, hub: Host, co: Checkout, host: Host, relay_id: str) -> dict:
    """Make `host`'s origin ref equal the hub's; returns what was done (method, bytes, tip, prerequisites)."""
    tip = hub_co.rev(origin_ref(hub))
    if tip is None:
        raise RelayError(f"{hub.name} has no {hub.remote}/{hub.branch} to pass on", host=hub.name)
    dest_ref, current = origin_ref(host), co.rev(origin_ref(host))
    if co.try_run(R.has_commit(co.path, tip)).ok:
        _fast_forward_ref(co, host, dest_ref, tip, current)
        return {"method": "already there", "tip": tip, "bytes": 0, "prerequisites": []}
    known = [sha for sha in dict.fromkeys([co.rev("HEAD"), current])
             if sha and hub_co.try_run(R.has_commit(hub_co.path, sha)).ok]
    hub_dir, dest_dir = R.relay_dir(common_dir(hub_co), relay_id), R.relay_dir(common_dir(co), relay_id)
    bundle, there = f"{hub_dir}/converged.bundle", f"{dest_dir}/converged.bundle"
    try:
        hub_co.run(R.make_dir(hub_dir))
        hub_co.run(R.bundle_create(hub_co.path, bundle, origin_ref(hub), known), "git bundle create")
        co.run(R.make_dir(dest_dir))
        co.log.announce("send the bundle over SFTP")
        size = copies.copy_between(hub_co.session, bundle, co.session, there, co.timeout)
        co.run(R.bundle_verify(co.path, there), "git bundle verify")
        co.run(R.fetch_bundle(co.path, there, origin_ref(hub), dest_ref), "git fetch <bundle>")
    finally:
        hub_co.try_run(R.remove_relay_dir(hub_dir))
        co.try_run(R.remove_relay_dir(dest_dir))
    if co.rev(dest_ref) != tip:
        raise RelayError(f"after fetching the bundle, {host.remote}/{host.branch} is not {tip[:8]}", host=host.name)
    return {"method": "bundle", "tip": tip, "bytes": size, "prerequisites": known}


def _fast_forward_ref(co: Checkout, host: Host, ref: str, tip: str, current: str | None) -> None:
    """The host has the commit already: move its origin ref there, forward only."""
    if current == tip:
        return
    if current and not co.is_ancestor(current, tip):
        raise RelayError(f"{host.remote}/{host.branch} ({current[:8]}) is not an ancestor of the converged "
                         f"{tip[:8]}; not moving it backwards or sideways", host=host.name)
    co.run(G.git(co.path, "update-ref", "-m", "agentsync relay", ref, tip, *([current] if current else [])),
           f"update {host.remote}/{host.branch}")
