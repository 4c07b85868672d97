"""sync-all's last stage: warn when incoming commits touch an area someone else has claimed.

For every host whose HEAD moved, the commits that came in (old HEAD..new
HEAD, merges left out) are listed with their files and author emails. The
claims are read once per run from origin. A live claim whose area those
commits touch, by an author other than the claim's holder, becomes a warning
on that host. This stage only reads: it never changes a host's status.
"""

from __future__ import annotations

import threading
import time

from ..engine.context import RunContext
from ..engine.stage import Stage
from ..errors import FleetError
from ..models import Host
from ..settings import claim_ttl
from ..steps import git as G
from . import store
from .model import Claim, collisions, parse_incoming

MARKER = "@@commit "


def incoming_command(host: Host, old: str) -> str:
    return G.git(host.repo, "-c", "core.quotepath=off", "log", "--no-merges", "--no-renames",
                 f"--format={MARKER}%H %ae", "--name-only", f"{old}..HEAD")


class ClaimsStage(Stage):
    name = "claims"

    def __init__(self) -> None:
        self._claims: dict[str, Claim] | None = None
        self._problem = ""
        self._lock = threading.Lock()

    def hosts(self, ctx: RunContext) -> list[Host]:
        """Every host that was reached and whose HEAD may have moved, whatever its final status."""
        return [h for h in ctx.hosts if h.git_access and ctx.result(h).head_before
                and ctx.result(h).status != "unreachable"]

    def run(self, ctx: RunContext, host: Host) -> None:
        result = ctx.result(host)
        if result.head_after and result.head_after == result.head_before:
            return  # nothing came in
        try:
            claims = self._load(ctx, host)
            if self._problem:
                result.warnings.append(f"could not check claimed areas: {self._problem}")
                return
            if not claims:
                return  # the common case costs no round trip on the hosts
            session = ctx.connector.session(host)
            out = session.run(incoming_command(host, result.head_before), timeout=host.command_timeout)
            commits = parse_incoming(out.stdout, MARKER) if out.ok else []
            result.warnings.extend(collisions(claims, commits, now=time.time(), ttl=claim_ttl(ctx.inventory)))
        except FleetError as exc:  # a warning is informative; it must never fail the host
            result.warnings.append(f"could not check claimed areas: {exc.message}")

    def _load(self, ctx: RunContext, host: Host) -> dict[str, Claim]:
        """The claims, read once per run: from the local host when there is one (no network), else this one."""
        reader = next((h for h in ctx.hosts if h.local and h.git_access and ctx.result(h).active), host)
        with self._lock:
            if self._claims is None and not self._problem:
                try:
                    self._claims = store.read(ctx.connector.session(reader), reader).claims
                except FleetError as exc:
                    self._problem = exc.message
            return self._claims or {}
