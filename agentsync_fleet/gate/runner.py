"""Run a host's checks: metric files already read by the health probe, the rest one command each.

The only part of the gate that talks to a host, and only through the session
interface (`run_script` with a deadline). A host's checks run in parallel,
each with its own timeout; one that hangs costs its own timeout, no more.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from ..errors import CommandTimeout, FleetError
from ..models import Host
from ..pool import run_each
from .commands import (
    KILL_AFTER,
    METRIC_READ_LIMIT,
    http_command,
    http_result,
    metric_files,
    metric_probe,
    metric_result,
    metric_section,
    parse_file_section,
    read_file_command,
    run_command,
    run_result,
    size_of,
    timed_out,
)
from .model import CheckResult, CheckSpec

GRACE = KILL_AFTER + 3.0  # seconds past a check's own timeout before the session gives up on it


def probe_lines(host: Host, checks: Sequence[CheckSpec]) -> list[str]:
    """What the batched health probe must add so the host's metric files come back with it."""
    return metric_probe(host.repo, [c.metric for c in checks if c.metric is not None])


def run_checks(session, host: Host, checks: Sequence[CheckSpec], sections: Mapping[str, str]) -> tuple[CheckResult, ...]:
    """Every check's result, in the inventory's order; `sections` is the health probe's parsed output."""
    results: dict[str, CheckResult] = {}
    remote: list[CheckSpec] = []
    metrics = [c for c in checks if c.metric is not None]
    files = metric_files([c.metric for c in metrics])
    for check in metrics:
        text = sections.get(metric_section(files.index(check.metric.file)), "")
        state, content = parse_file_section(text)
        if state == "large" and (size_of(text) or 0) > 0:
            remote.append(check)
        else:
            results[check.name] = metric_result(check, state, content)
    remote += [c for c in checks if c.metric is None]
    for check, outcome in run_each(remote, lambda c: _run_one(session, host, c), len(remote)).items():
        results[check.name] = outcome if isinstance(outcome, CheckResult) else _failed(check, outcome)
    return tuple(results[c.name] for c in checks)


def _run_one(session, host: Host, check: CheckSpec) -> CheckResult:
    start = time.monotonic()
    try:
        if check.run is not None:
            out = session.run_script(run_command(host.repo, check), timeout=check.timeout + GRACE)
            return run_result(check, out.stdout, time.monotonic() - start)
        if check.http is not None:
            out = session.run_script(http_command(check.http, check.timeout), timeout=check.timeout + GRACE)
            return http_result(check, out.stdout, time.monotonic() - start)
        out = session.run_script(read_file_command(host.repo, check.metric.file), timeout=host.command_timeout)
        size = size_of(out.stdout)
        state = "absent" if size is None else "large" if size > METRIC_READ_LIMIT else "size"
        return metric_result(check, state, parse_file_section(out.stdout)[1], time.monotonic() - start)
    except CommandTimeout:
        return timed_out(check, time.monotonic() - start)


def _failed(check: CheckSpec, error: Exception) -> CheckResult:
    """A check that could not run at all (the connection dropped, or a bug already printed by the pool)."""
    message = error.message if isinstance(error, FleetError) else repr(error)
    return CheckResult(check.name, check.kind, "error", message)
