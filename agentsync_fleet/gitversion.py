"""Which git a host has, and what it is too old for. Pure: the probe line is read in probes.py.

Each host's `git --version` is read once per run, in the probe every task
starts with (`probes.repo_probe`). A host whose git lacks what a step needs is
refused with the version it has and the one it needs, before anything runs,
instead of failing half-way with git's own usage text ("exited 129").
"""

from __future__ import annotations

import re

# The oldest git the test suite runs against (Debian 11's 2.30); anything older is refused, not guessed at.
MIN_GIT = (2, 30)
# What needs more than MIN_GIT, and the version that brought it.
PATCH_RELAY = ("patch relay (`git am --empty=keep`)", (2, 35))

_VERSION = re.compile(r"git version (\d+)\.(\d+)")


def parse_git_version(text: str) -> tuple[int, int] | None:
    """`git version 2.30.2` (also `… (Apple Git-146)`, `2.41.0.windows.1`) → (2, 30); None if absent."""
    match = _VERSION.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def show(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def too_old(version: tuple[int, int] | None, feature: str, need: tuple[int, int]) -> str | None:
    """`git 2.30 is too old for <feature>; need ≥ 2.35`, or None when it is new enough (or unknown: a host
    without a working git fails its repo probe with its own, clearer reason)."""
    if version is None or version >= need:
        return None
    return f"git {show(version)} is too old for {feature}; need ≥ {show(need)}"


def refusal(version: tuple[int, int] | None, relayed: bool) -> str | None:
    """Why a host's git cannot take part in a sync (None: it can)."""
    return too_old(version, "agentsync", MIN_GIT) or (too_old(version, *PATCH_RELAY) if relayed else None)
