"""`patch-relay` on its own: open both ends, check the target can take patches, relay, report.

Host trouble (unreachable, a command that fails) becomes the result's status
and message, so `--json` always prints a report; only bad input raises.
"""

from __future__ import annotations

from ..errors import FleetError, HostUnreachable, StepFailed
from ..gitops import Checkout, StepLog
from ..gitversion import MIN_GIT, PATCH_RELAY, too_old
from ..models import Host
from ..probes import parse_repo_probe, repo_probe
from ..shell import script
from .core import End, RelayOptions, RelayResult, relay


def repo_problem(co: Checkout, host: Host, checked_out: bool) -> str | None:
    """Why this checkout cannot take part (None: it can). The target must be on its branch, nothing in progress."""
    out = co.session.run_script(script(repo_probe(host, False)), timeout=co.timeout)
    repo = parse_repo_probe(out.stdout)
    if not repo.present:
        return f"{host.name}: repo {host.repo}: {repo.error}"
    if checked_out and repo.in_progress:
        return f"{host.name}: {', '.join(repo.in_progress)} in progress; finish or abort it first"
    if checked_out and repo.branch != host.branch:
        return f"{host.name}: checked out on '{repo.branch}', inventory expects '{host.branch}'; left alone"
    old_git = too_old(repo.git_version, "agentsync", MIN_GIT) or (too_old(repo.git_version, *PATCH_RELAY)
                                                                   if checked_out else None)
    return f"{host.name}: {old_git}" if old_git else None


def run_relay(connector, src: Host, dst: Host, opts: RelayOptions, refusal=None) -> RelayResult:
    """`refusal(host name)`: why a host must not be touched (its fleet lock was not taken); then nothing runs."""
    logs = {src.name: StepLog(), dst.name: StepLog()}
    result = RelayResult(src.name, dst.name, source_branch=src.branch)
    refused = next((e for e in (refusal(h.name) for h in (src, dst)) if e is not None), None) if refusal else None
    if refused is not None:
        result.status = "unreachable" if isinstance(refused, HostUnreachable) else "skipped"
        result.message = str(refused)
        return result
    try:
        ends = [End(h, Checkout(connector.session(h), h.repo, h.command_timeout, logs[h.name], h.name))
                for h in (src, dst)]
        problem = repo_problem(ends[0].co, src, False) or repo_problem(ends[1].co, dst, True)
        if problem:
            result.status, result.message = "skipped", problem
        else:
            result = relay(ends[0], ends[1], opts)
    except HostUnreachable as exc:
        result.status, result.message = "unreachable", str(exc)
    except StepFailed as exc:
        result.status = "failed"
        result.message = (f"{exc.host}: {exc.message}: `{exc.command}` exited {exc.exit_code}\n{exc.output_tail}")
    except FleetError as exc:
        result.status, result.message = "failed", str(exc)
    result.commands = [{"host": name, "command": r.command, "exit_code": r.exit_code, "duration_s": r.duration_s}
                       for name, log in logs.items() for r in log.records]
    return result


def relay_hub(inv):
    """The host relays go through by default: the controller (`local: true`) when it can reach origin."""
    return next((h for h in inv.hosts.values() if h.local and h.git_access), None)
