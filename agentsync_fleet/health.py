"""`health`: probe every host in parallel and judge the deploy gate.

Collecting (I/O through a `Connector`) and judging (`gate_failures`, pure) are
kept apart so the gate's rules can be read and tested on their own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from .errors import CommandTimeout, FleetError, HostUnreachable
from .gate.model import CheckSpec, check_failures, not_running, select, split_untracked
from .gate.runner import probe_lines, run_checks
from .gitversion import refusal
from .models import Host, Inventory
from .pool import run_each
from .probes import health_script, parse_health_output
from .records import GuardState, HealthReport, HostHealth, RepoState, ToolState
from .remote import Connector


class ExtraProbe(Protocol):
    """A probe another feature adds to the same round trip (jobs): its script, and its parser.

    `parse` returns (rows for `HostHealth.<name>`, warnings). It informs; it never fails the gate.
    """

    name: str
    script: Callable[[Host], str]
    parse: Callable[[Host, str], tuple[tuple[Any, ...], list[str]]]


EXTRA_MARK = "@@agentsync-extra@@ "


def gate_failures(host: Host, repo: RepoState | None, fetch: bool, allowed: int = 0) -> list[str]:
    """Why this host may not be deployed to right now (empty list: it may); `allowed`: untracked files
    `allow_untracked` lets pass."""
    if repo is None:
        return ["not probed"]
    if not repo.present:
        return [f"repo {host.repo}: {repo.error}"]
    failures = [why] if (why := refusal(repo.git_version, not host.git_access)) else []
    if repo.in_progress:
        failures.append(f"{', '.join(repo.in_progress)} in progress")
    if repo.branch != host.branch:
        failures.append(f"on branch '{repo.branch}', inventory expects '{host.branch}'")
    if repo.dirty - allowed > 0:
        failures.append(f"{repo.dirty - allowed} uncommitted/untracked file(s)")
    if repo.leftover:
        failures.append(f"an agentsync move was cut off here and left {repo.leftover}: the next sync-all, pull or "
                        "push heals it first, or run `agentsync recover`")
    if fetch and host.git_access and not repo.fetched:
        failures.append(f"git fetch failed: {repo.fetch_error or 'unknown error'}")
    if not repo.upstream:
        failures.append(f"no {host.remote}/{host.branch} to compare with")
    elif position_failure(repo):
        failures.append(position_failure(repo))
    return failures


def position_failure(repo: RepoState | None) -> str:
    """Behind or diverged from origin: the one failure sync-all itself fixes (empty: neither)."""
    if repo is None or not repo.present or not repo.upstream or not repo.behind:
        return ""
    kind = "diverged from" if repo.ahead else "behind"
    return f"{kind} {repo.upstream} ({repo.ahead} ahead, {repo.behind} behind)"


def probe_verdict(host: Host, parts: dict, guard: GuardState | None, fetch: bool
                  ) -> tuple[list[str], list[str], list[str]]:
    """From the probe alone: (failures, untracked files allow_untracked lets pass, guard patterns not running)."""
    allowed, _ = split_untracked(parts["sections"].get("status", ""), host.allow_untracked)
    failures = gate_failures(host, parts["repo"], fetch, len(allowed)) + guard_failures(host, guard)
    seen = guard is not None and not guard.unknown
    down = not_running(host.guard.processes, [p.pattern for p in guard.processes]) if seen else []
    if host.guard.expect_running and parts["complete"]:
        failures += [f"{pattern} is not running" for pattern in down]
    return failures, allowed, down


def guard_failures(host: Host, guard: GuardState | None) -> list[str]:
    """A guard that could not look fails the gate: "nothing runs" would be a guess."""
    if host.guard.processes and (guard is None or guard.unknown):
        return [f"cannot see processes: {guard.detail if guard else 'not probed'}"]
    return []


def noise_warnings(noise: str) -> list[str]:
    """The host's login shell prints something before our commands: ignored (shell.Framing), but worth fixing."""
    if not noise:
        return []
    return [f"noisy shell startup: {noise[:120]!r} (printed by the login shell's startup files before every "
            "command; agentsync ignores it, but other tools (scp, rsync) may break: print only in interactive "
            "shells)"]


def tool_warnings(zerotier: ToolState | None, gpu: ToolState | None) -> list[str]:
    warnings = []
    if zerotier and zerotier.status != "ok":
        warnings.append(f"zerotier {zerotier.status}: {zerotier.detail}")
    if gpu and gpu.status not in ("ok",):
        warnings.append(f"gpu {gpu.status}: {gpu.detail}")
    return warnings


def probe_host(connector: Connector, host: Host, fetch: bool = True, extras: Sequence[ExtraProbe] = (),
               checks: tuple[CheckSpec, ...] = ()) -> HostHealth:
    """Connect (or reuse the connection), run the batched probe, then `checks`; never raises for host trouble.

    Metric files of `checks` are read by the probe itself (no extra round trip).
    """
    start = time.monotonic()
    try:
        session = connector.session(host)
        text = health_script(host, fetch and host.git_access, probe_lines(host, checks))
        text += "".join(f"echo '{EXTRA_MARK}{probe.name}'\n{probe.script(host)}" for probe in extras)
        result = session.run_script(text, timeout=host.command_timeout)
    except HostUnreachable as exc:
        return HostHealth(host.name, host.target, False, exc.reason, exc.message, exc.hint or "",
                          getattr(exc, "fingerprint", ""), failures=(f"unreachable: {exc.message}",),
                          duration_s=time.monotonic() - start)
    except (CommandTimeout, FleetError) as exc:
        return HostHealth(host.name, host.target, True, "", exc.message, exc.hint or "",
                          failures=(f"probe failed: {exc.message}",), duration_s=time.monotonic() - start)
    own, *extra_outputs = result.stdout.split("\n" + EXTRA_MARK)
    parts = parse_health_output(host, own)
    guard = parts["guard"] if host.guard.processes else None
    failures, allowed, down = probe_verdict(host, parts, guard, fetch)
    if not parts["complete"]:
        failures.append(f"probe ended early (exit {result.exit_code}): {result.tail(2)}")
    results = run_checks(session, host, checks, parts["sections"]) if checks else ()
    failures += check_failures(results)
    latency = session.last_rtt * 1000 if session.last_rtt is not None and not host.local else None
    health = HostHealth(
        host=host.name, target=host.target, reachable=True, latency_ms=latency, repo=parts["repo"],
        processes=guard.processes if guard else (), guard=guard, system=parts["system"], zerotier=parts["zerotier"], gpu=parts["gpu"],
        failures=tuple(failures), warnings=tuple(tool_warnings(parts["zerotier"], parts["gpu"])
                                                  + noise_warnings(getattr(session, "startup_noise", ""))),
        duration_s=time.monotonic() - start, checks=results, allowed_untracked=tuple(allowed), not_running=tuple(down),
        running_jobs=parts["running"],
    )
    return _with_extras(health, host, extras, extra_outputs)


def _with_extras(health: HostHealth, host: Host, extras: Sequence[ExtraProbe], outputs: list[str]) -> HostHealth:
    found = {text.split("\n", 1)[0].strip(): text.partition("\n")[2] for text in outputs}
    warnings = list(health.warnings)
    for probe in extras:
        if probe.name not in found:
            warnings.append(f"{probe.name}: the probe did not run")
            continue
        rows, said = probe.parse(host, found[probe.name])
        health = replace(health, **{probe.name: rows})
        warnings += said
    return replace(health, warnings=tuple(warnings))


def check_fleet(inventory: Inventory, hosts: list[Host], connector: Connector, fetch: bool = True,
                workers: int | None = None, extras: Sequence[ExtraProbe] = (),
                checks: tuple[str, ...] | None = None) -> HealthReport:
    """Probe every host in parallel. `checks`: None runs no checks; () all of each host's; names, only those."""
    start = time.monotonic()
    chosen = {h.name: select(h.checks, checks) if checks is not None else () for h in hosts}
    results = run_each(hosts, lambda h: probe_host(connector, h, fetch, extras, chosen[h.name]), workers)
    rows = []
    for host, value in results.items():
        if isinstance(value, Exception):  # a bug, already printed by the pool
            value = HostHealth(host.name, host.target, False, "internal error", repr(value),
                               failures=("internal error",))
        rows.append(value)
    return HealthReport(tuple(rows), time.monotonic() - start, str(inventory.path), fetch)
