"""Checks as data, their results, and the gate's pure rules (expected files, processes expected up).

Nothing here does I/O. The inventory builds `CheckSpec`s with `build_checks`;
`health` judges with the rest.
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Sequence

from ..models import CheckSpec, HttpSpec, MetricSpec
from ..records import CheckResult
from ..settings import TIMEOUTS
from ..shell import unquote_git_path

__all__ = ["CheckResult", "CheckSpec", "HttpSpec", "MetricSpec", "build_checks", "select", "compare", "matches"]

RUN_TIMEOUT = TIMEOUTS.check_run
HTTP_TIMEOUT = TIMEOUTS.check_http
KINDS = ("run", "metric", "http")


# ---------------------------------------------------------------- building from the inventory


def build_checks(default_items: Sequence[dict] | None, host_items: Sequence[dict] | None) -> tuple[CheckSpec, ...]:
    """Defaults first, then the host's own: a host check of the same name replaces the default one,
    and `{name: X, enabled: false}` switches it off on that host."""
    merged: dict[str, dict] = {}
    for item in [*(default_items or ()), *(host_items or ())]:
        merged[item["name"]] = item
    return tuple(_build_check(item) for item in merged.values() if item.get("enabled", True))


def _build_check(item: dict) -> CheckSpec:
    metric = item.get("metric")
    http = item.get("http")
    default_timeout = HTTP_TIMEOUT if http is not None else RUN_TIMEOUT
    return CheckSpec(
        name=item["name"],
        run=item.get("run"),
        metric=MetricSpec(metric["file"], str(metric["key"]), _num(metric.get("min")), _num(metric.get("max")))
        if metric is not None else None,
        http=HttpSpec(http["url"], int(http.get("expect", 200))) if http is not None else None,
        timeout=float(item.get("timeout", default_timeout)),
    )


def _num(value: float | int | None) -> float | None:
    return None if value is None else float(value)


def select(checks: Iterable[CheckSpec], names: Sequence[str]) -> tuple[CheckSpec, ...]:
    """The checks named (all of them when no names are given)."""
    return tuple(c for c in checks if not names or c.name in names)


# ---------------------------------------------------------------- judging


def compare(spec: MetricSpec, value: float) -> str:
    """Why `value` is out of bounds (empty: it is within them)."""
    if spec.min is not None and value < spec.min:
        return f"{spec.key} {fmt(value)} < min {fmt(spec.min)}"
    if spec.max is not None and value > spec.max:
        return f"{spec.key} {fmt(value)} > max {fmt(spec.max)}"
    return ""


def fmt(value: float) -> str:
    """A number as a person wrote it: 0.68, 5, 1e-05."""
    return f"{value:g}" if math.isfinite(value) else str(value)


def matches(path: str, patterns: Iterable[str]) -> bool:
    """Exact path, a directory prefix (`logs/`), or a glob (`models/*.bin`)."""
    for pattern in patterns:
        pattern = pattern.removeprefix("./")
        if path == pattern or fnmatch.fnmatchcase(path, pattern):
            return True
        if pattern.endswith("/") and path.startswith(pattern):
            return True
        if path.startswith(pattern.rstrip("/") + "/"):
            return True
    return False


def split_untracked(status: str, patterns: Sequence[str]) -> tuple[list[str], list[str]]:
    """`git status --porcelain` lines → (allowed untracked paths, every other dirty path).

    Only untracked files (`??`) can be allowed: a change to a tracked file always counts.
    """
    allowed, other = [], []
    for line in status.splitlines():
        if len(line) <= 3:
            continue
        path = line[3:]
        if line.startswith("?? ") and patterns and matches(_unquote(path), patterns):
            allowed.append(path)
        else:
            other.append(path)
    return allowed, other


def _unquote(path: str) -> str:
    """git quotes paths with a quote, a backslash or a control character in them (C-style, `\"`, `\n`...);
    patterns are written as the names are."""
    return unquote_git_path(path)


def not_running(patterns: Sequence[str], running: Iterable[str]) -> list[str]:
    """The guard patterns no running process matched."""
    seen = set(running)
    return [p for p in patterns if p not in seen]


def check_failures(results: Iterable[CheckResult]) -> list[str]:
    return [f"check {r.name}: {r.reason or r.status}" for r in results if not r.passed]
