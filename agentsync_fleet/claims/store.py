"""Claims on origin: the ref `refs/agentsync/claims`, read and updated by compare-and-swap.

Every host already reaches origin, so the claims live there — no new server.
An update builds a new commit (one file, `claims.json`) whose parent is the
claims commit just read, and pushes it WITHOUT force. If anyone updated the
ref in between, the push is not a fast-forward and git refuses it (and the
server checks the old value under its ref lock, so two pushes racing for
the same old value cannot both land). The loser reads again, re-checks — the
area may now be taken — and retries. Nothing here ever force-pushes.

The git plumbing runs on whichever host the user picks, through its session.
"""

from __future__ import annotations

import random
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import FleetError
from ..models import Host
from ..shell import script, section, split_sections
from ..steps import git as G
from .model import FILE, REF, Change, Claim, parse, render

CACHE_REF = "refs/agentsync/claims-origin"  # the host's local copy of what it last read (not pushed anywhere)
TRIES = 8


@dataclass(frozen=True)
class Snapshot:
    """The claims as read on one host: the commit they came from (None: no claims yet) and who is asking."""

    commit: str | None
    claims: dict[str, Claim]
    user: str
    email: str


def read_script(host: Host) -> str:
    repo, remote = host.repo, host.remote
    return script([
        section("user"), 'id -un 2>/dev/null || echo "${USER:-unknown}"',
        section("email"), f"{G.git(repo, 'config', 'user.email')} || true",
        f"remote=$({G.git(repo, 'ls-remote', remote, REF)} 2>&1) || "
        f"{{ {section('failed')}; printf '%s\\n' \"$remote\"; exit 0; }}",
        f"sha=$(printf '%s\\n' \"$remote\" | awk '$2 == \"{REF}\" {{ print $1 }}')",
        section("commit"), 'echo "$sha"',
        'if [ -n "$sha" ]; then',
        f"  out=$({G.git(repo, 'fetch', '--quiet', '--no-tags', remote, f'+{REF}:{CACHE_REF}')} 2>&1) || "
        f"{{ {section('failed')}; printf '%s\\n' \"$out\"; exit 0; }}",
        f"  {section('document')}; {G.git(repo, 'cat-file', 'blob')} \"$sha:{FILE}\"",
        "fi",
    ])


def write_script(host: Host, parent: str | None, document: str, message: str, who: str, email: str) -> str:
    repo = host.repo
    ident = " ".join(f"{k}={shlex.quote(v)}" for k, v in (
        ("GIT_AUTHOR_NAME", who), ("GIT_AUTHOR_EMAIL", email or who),
        ("GIT_COMMITTER_NAME", who), ("GIT_COMMITTER_EMAIL", email or who)))
    parents = f"-p {shlex.quote(parent)}" if parent else ""
    return script([
        f"blob=$(printf '%s' {shlex.quote(document)} | {G.git(repo, 'hash-object', '-w', '--stdin')}) || exit 3",
        f"tree=$(printf '100644 blob %s\\t{FILE}\\n' \"$blob\" | {G.git(repo, 'mktree')}) || exit 3",
        f"commit=$({ident} {G.git(repo, 'commit-tree')} \"$tree\" {parents} -m {shlex.quote(message)}) || exit 3",
        section("commit"), 'echo "$commit"',
        # A plain push: never --force. A concurrent update makes it a non-fast-forward, which git refuses.
        f"out=$({G.git(repo, 'push', '--porcelain', host.remote)} \"$commit:{REF}\" 2>&1); rc=$?",
        section("push"), "printf '%s\\n' \"$out\"", 'echo "exit=$rc"',
        f'if [ "$rc" = 0 ]; then {G.git(repo, "update-ref", CACHE_REF)} "$commit"; fi',
    ])


def push_outcome(text: str) -> str:
    """ok | contended (someone updated the ref first: read again) | failed."""
    if text.rstrip().endswith("exit=0"):
        return "ok"
    lowered = text.lower()
    rejected = [line for line in text.splitlines() if line.startswith("!")]
    if any("[rejected]" in line for line in rejected):
        return "contended"
    if any(word in lowered for word in ("cannot lock ref", "failed to update ref", "reference already exists",
                                        "fetch first", "non-fast-forward", "is at ")):
        return "contended"
    return "failed"


def read(session, host: Host) -> Snapshot:
    result = session.run_script(read_script(host), timeout=host.command_timeout)
    parts = split_sections(result.stdout)
    if "failed" in parts or "commit" not in parts:
        detail = parts.get("failed", "") or result.tail(4) or f"exit {result.exit_code}"
        raise FleetError(f"cannot read {REF} from {host.remote} in {host.repo}: {detail.strip()}", host=host.name,
                         hint="check that this host can fetch from origin (agentsync health shows it)")
    commit = parts["commit"].strip() or None
    claims = parse(parts.get("document", "")) if commit else {}
    return Snapshot(commit, claims, parts.get("user", "").strip() or "unknown", parts.get("email", "").strip())


def write(session, host: Host, parent: str | None, document: str, message: str, who: str, email: str) -> str:
    result = session.run_script(write_script(host, parent, document, message, who, email),
                                timeout=host.command_timeout)
    parts = split_sections(result.stdout)
    if "push" not in parts:
        raise FleetError(f"could not build the claims commit in {host.repo}: {result.tail(4)}", host=host.name)
    outcome = push_outcome(parts["push"])
    if outcome == "failed":
        raise FleetError(f"pushing {REF} to {host.remote} failed: {parts['push'].strip()}", host=host.name,
                         hint="the claims ref is only ever updated by fast-forward; check the host can push")
    return outcome


Operation = Callable[[Snapshot], tuple[Change, str]]  # snapshot -> (change, commit message)


def update(session, host: Host, operation: Operation, who: Callable[[Snapshot], str],
           tries: int = TRIES) -> Change:
    """Read, apply `operation`, push without force; on a lost race read again and re-check."""
    for attempt in range(tries):
        snap = read(session, host)
        change, message = operation(snap)  # may refuse (ClaimRefused) now that we see the latest claims
        if change.claims is None or change.claims == snap.claims:
            return change
        if write(session, host, snap.commit, render(change.claims), message, who(snap), snap.email) == "ok":
            return change
        time.sleep(random.uniform(0.05, 0.3) * (attempt + 1))  # let the winner's update settle, then re-read
    raise FleetError(f"{REF} in origin kept changing during {tries} attempts; nothing was written",
                     host=host.name, hint="try again in a moment")
