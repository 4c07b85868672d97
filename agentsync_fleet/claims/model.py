"""Work claims as data: who is working on which area, and the rules for claiming. Pure.

An AREA is a path in the repo, matched like `guard.critical_files`: an exact
file (`apps/runtime/v7_runtime.py`), a directory prefix (`strategies/` or
`strategies`), or a glob (`apps/*/config.yaml`, `*.md`). Any other word works
as a plain label, but only paths let sync-all warn about incoming commits.

The claims live in one JSON document (`claims.json` on the ref
`refs/agentsync/claims` in origin); every operation here turns the document
as read into the document to write, or refuses with the holder's name.
"""

from __future__ import annotations

import fnmatch
import json
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from ..errors import FleetError, UsageError

REF = "refs/agentsync/claims"
FILE = "claims.json"


class ClaimRefused(FleetError):
    """The area (or one overlapping it) is claimed by someone else, or the claim is not yours."""


@dataclass(frozen=True)
class Claim:
    area: str
    who: str  # user@host
    host: str  # the inventory host the claim was made from
    email: str  # git user.email there: commits by this author are the holder's own work
    note: str
    since: float
    checked_in: float

    def stale(self, now: float, ttl: float) -> bool:
        return now - self.checked_in > ttl

    def describe(self) -> str:
        note = f': "{self.note}"' if self.note else ""
        return f"{self.who} since {_utc(self.since)}, last check-in {_utc(self.checked_in)}{note}"


def _utc(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def normalize_area(area: str) -> str:
    """A clean area, or UsageError: relative to the repo, no `..`, no control characters."""
    value = (area or "").strip()
    if value.startswith("./"):
        value = value[2:]
    if not value or value in (".", "/"):
        raise UsageError("AREA is empty", hint="name a path in the repo, e.g. strategies/ or apps/runtime/*.py")
    if value.startswith("/") or ".." in value.split("/") or any(ord(c) < 32 for c in value):
        raise UsageError(f"AREA {area!r} must be a path inside the repo (no leading '/', no '..')",
                         hint="e.g. strategies/, apps/runtime/v7_runtime.py or 'apps/*/config.yaml'")
    return value


def area_matches(area: str, path: str) -> bool:
    """Exact path, directory prefix, or glob — the same rules as guard.critical_files."""
    return path == area or fnmatch.fnmatchcase(path, area) or path.startswith(area.rstrip("/") + "/")


def overlaps(a: str, b: str) -> bool:
    """Do two areas cover some of the same files? (exact, nested, or one glob matching the other)"""
    return a == b or area_matches(a, b) or area_matches(b, a)


def parse(text: str) -> dict[str, Claim]:
    """The claims document → {area: Claim}; an empty or missing document is no claims."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
        items = data.get("claims", {}) if isinstance(data, dict) else {}
        return {area: Claim(**{**_defaults(area), **value}) for area, value in items.items()}
    except (ValueError, TypeError) as exc:
        raise FleetError(f"{REF}:{FILE} in origin is not a claims document ({exc})",
                         hint=f"inspect it with `git show {REF}:{FILE}`; agentsync never rewrites it by force") \
            from None


def _defaults(area: str) -> dict[str, Any]:
    return {"area": area, "who": "?", "host": "", "email": "", "note": "", "since": 0.0, "checked_in": 0.0}


def render(claims: dict[str, Claim]) -> str:
    doc = {"version": 1, "claims": {area: asdict(c) for area, c in sorted(claims.items())}}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class Change:
    """The document to write (None: nothing to write) and what to tell the user."""

    claims: dict[str, Claim] | None
    message: str
    warning: str = ""


def claim(claims: dict[str, Claim], new: Claim, *, now: float, ttl: float) -> Change:
    """Claim `new.area`, refusing if it (or an overlapping area) is held by someone else and not stale."""
    warnings = []
    taken = dict(claims)
    for area, held in sorted(claims.items()):
        if not overlaps(area, new.area) or held.who == new.who:
            continue
        if not held.stale(now, ttl):
            what = f"'{area}'" if area == new.area else f"'{area}' (overlapping '{new.area}')"
            raise ClaimRefused(f"area {what} is already claimed by {held.describe()}",
                               hint="ask them; a claim goes stale after claim_ttl without a check-in, "
                                    "then it can be claimed (or `agentsync release AREA --force`)")
        warnings.append(f"took over the stale claim on '{area}' by {held.describe()}")
        del taken[area]
    key = same_area(claims, new.area)
    mine = claims.get(key)
    if mine is not None and mine.who == new.who:  # `strategies` when `strategies/` is yours: that very claim
        taken[key] = replace(mine, note=new.note or mine.note, checked_in=now)
        return Change(taken, f"'{key}' was already yours; checked in", "; ".join(warnings))
    taken[new.area] = replace(new, since=now, checked_in=now)
    return Change(taken, f"claimed '{new.area}' as {new.who}", "; ".join(warnings))


def checkin(claims: dict[str, Claim], area: str, who: str, *, now: float) -> Change:
    area, held = _held(claims, area)
    if held.who != who:
        raise ClaimRefused(f"'{area}' is claimed by {held.describe()}, not by {who}",
                           hint="check in as the holder (--who), or claim another area")
    return Change({**claims, area: replace(held, checked_in=now)}, f"checked in '{area}' ({who})")


def release(claims: dict[str, Claim], area: str, who: str, *, force: bool = False) -> Change:
    area, held = _held(claims, area)
    if held.who != who and not force:
        raise ClaimRefused(f"'{area}' is claimed by {held.describe()}, not by {who}",
                           hint="only the holder releases a claim; `--force` releases someone else's")
    rest = {a: c for a, c in claims.items() if a != area}
    return Change(rest, f"released '{area}'" + (f" (held by {held.who}; --force)" if held.who != who else ""))


def same_area(claims: dict[str, Claim], area: str) -> str:
    """The key `area` is claimed under, with or without its trailing slash (`strategies` and `strategies/` name
    the same area); `area` itself when it is not claimed."""
    return next((key for key in (area, area.rstrip("/") + "/", area.rstrip("/")) if key in claims), area)


def _held(claims: dict[str, Claim], area: str) -> tuple[str, Claim]:
    """The claim on `area` and the key it is held under (`same_area`)."""
    key = same_area(claims, area)
    if key in claims:
        return key, claims[key]
    known = ", ".join(sorted(claims)) or "none"
    raise ClaimRefused(f"'{area}' is not claimed", hint=f"claimed areas: {known}")


def listing(claims: dict[str, Claim], *, now: float, ttl: float) -> list[dict[str, Any]]:
    """Rows for `claims`: every claim with its age and whether it is stale."""
    return [{**asdict(c), "stale": c.stale(now, ttl), "idle_s": round(now - c.checked_in, 1)}
            for c in sorted(claims.values(), key=lambda c: c.area)]


@dataclass(frozen=True)
class Incoming:
    """One commit that came in on a host: its author's email and the files it changed."""

    commit: str
    email: str
    files: tuple[str, ...]


def collisions(claims: dict[str, Claim], incoming: list[Incoming], *, now: float, ttl: float) -> list[str]:
    """Warnings: live claims whose area incoming commits by *another* author touch.

    The holder's own commits (same git author email as the claim recorded)
    are their work landing, not a collision.
    """
    warnings = []
    for claim_ in sorted(claims.values(), key=lambda c: c.area):
        if claim_.stale(now, ttl):
            continue
        hits: dict[str, set[str]] = {}
        for commit in incoming:
            if claim_.email and commit.email == claim_.email:
                continue
            for path in commit.files:
                if area_matches(claim_.area, path):
                    hits.setdefault(path, set()).add(commit.email or commit.commit[:8])
        if hits:
            shown = sorted(hits)[:5]
            files = ", ".join(f"{p} (by {', '.join(sorted(hits[p]))})" for p in shown)
            more = f" and {len(hits) - len(shown)} more" if len(hits) > len(shown) else ""
            warnings.append(f"incoming commits touch '{claim_.area}', claimed by {claim_.describe()}: "
                            f"{files}{more}")
    return warnings


def parse_incoming(text: str, marker: str = "@@commit ") -> list[Incoming]:
    """`git log --format='@@commit %H %ae' --name-only` output → commits with their files."""
    commits: list[Incoming] = []
    current: tuple[str, str] | None = None
    files: list[str] = []
    for line in text.splitlines():
        if line.startswith(marker):
            if current:
                commits.append(Incoming(current[0], current[1], tuple(files)))
            parts = line[len(marker):].split(" ", 1)
            current, files = (parts[0], parts[1] if len(parts) > 1 else ""), []
        elif line.strip() and current:
            files.append(line)
    if current:
        commits.append(Incoming(current[0], current[1], tuple(files)))
    return commits
