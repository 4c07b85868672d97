"""Run artifact syncs on the hosts: one round trip per entry, uploads before downloads, hosts in parallel.

`run_entry` never raises: whatever happens (no CLI, unreachable host,
timeout, an AWS error) becomes an `EntryResult`, so one entry's failure never
stops the others. `run_fleet` is the standalone task's order: every `up`
entry of every selected host finishes before any `down` entry starts, so a
download always sees what this run uploaded.

How the figures are counted: *files* are the CLI's own `upload:` /
`download:` lines (deletions apart); *bytes* are the on-disk sizes, on the
host, of exactly those files, listed right after the sync in the same round
trip (for a dry-run download nothing is on disk yet, so bytes are unknown).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import CommandTimeout, FleetError, HostUnreachable
from ..models import Host, S3Entry
from ..pool import run_each
from ..shell import split_sections
from ..steps import s3 as S
from .diagnose import Problem, diagnose, install_hint, scrub
from .parse import ProgressCounter, parse_sizes, parse_sync_output

LISTED_PATHS = 200  # paths kept per entry in the report; counts are always complete
CONTROLLER_GRACE_S = S.KILL_AFTER_S + 10  # the host's own deadline (TERM, then KILL) reports first

# (host, entry index, files so far, deleted so far, progress text)
ProgressFn = Callable[[str, int, int, int, str], None]


@dataclass(frozen=True)
class EntryResult:
    """How one entry went: what moved, how much, how long, and if it failed, why and what to do."""

    host: str
    index: int  # position among the host's s3 entries
    path: str
    local_dir: str
    url: str
    direction: str
    dry_run: bool
    delete: bool
    status: str  # ok | failed | unreachable
    command: str  # the exact sync, as shown to people
    files: int = 0
    bytes: int | None = 0
    deleted: int = 0
    paths: tuple[str, ...] = ()  # moved (or would-move) files, the first LISTED_PATHS
    deleted_paths: tuple[str, ...] = ()
    held_back: tuple[str, ...] = ()  # secret files in an upload's directory, never sent (steps.s3.secret_excludes)
    started_at: float = 0.0  # wall clock, for ordering across hosts
    finished_at: float = 0.0
    duration_s: float = 0.0
    exit_code: int | None = None
    message: str = ""
    hint: str = ""
    aws_message: str = ""
    aws_code: str = ""
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def step_data(self) -> dict:
        """The figures a sync-all StepRecord keeps (the run journal stores them)."""
        keys = ("path", "local_dir", "url", "direction", "dry_run", "delete", "files", "bytes", "deleted",
                "started_at", "finished_at", "duration_s", "exit_code", "aws_code", "message")
        return {k: getattr(self, k) for k in keys} | {"paths": list(self.paths[:20]),
                                                      "held_back": list(self.held_back[:20])}


def entries(host: Host, direction: str | None = None) -> list[tuple[int, S3Entry]]:
    return [(i, e) for i, e in enumerate(host.s3) if direction in (None, e.direction)]


def _base(host: Host, index: int, entry: S3Entry, dry_run: bool) -> dict:
    return {"host": host.name, "index": index, "path": entry.path, "local_dir": S.local_dir(host, entry),
            "url": entry.url, "direction": entry.direction, "dry_run": dry_run, "delete": entry.delete,
            "command": S.sync_command(host, entry, dry_run)}


def failed_entry(host: Host, index: int, entry: S3Entry, dry_run: bool, error: FleetError,
                 started: float | None = None, status: str = "failed") -> EntryResult:
    """An entry that could not run at all (host unreachable, timeout; `skipped`: not tried)."""
    status = "unreachable" if isinstance(error, HostUnreachable) else status
    now = time.time()
    return EntryResult(**_base(host, index, entry, dry_run), status=status, bytes=None, started_at=started or now,
                       finished_at=now, duration_s=round(now - (started or now), 3), message=scrub(error.message),
                       hint=error.hint or "")


def run_entry(session, host: Host, index: int, entry: S3Entry, *, dry_run: bool = False,
              on_progress: ProgressFn | None = None) -> EntryResult:
    """Sync one entry on its host (one round trip); never raises for a host-level problem."""
    counter = ProgressCounter(entry.url)

    def feed(chunk: bytes) -> None:
        if counter.feed(chunk) and on_progress is not None:
            on_progress(host.name, index, counter.files, counter.deleted, counter.progress)

    started, clock = time.time(), time.monotonic()
    if on_progress is not None:
        on_progress(host.name, index, 0, 0, "")  # started: the display shows a spinner from now on
    try:  # the host stops the sync at entry.timeout (see steps.s3); this deadline is for hosts without `timeout`
        result = session.run_script(S.sync_script(host, entry, dry_run), timeout=entry.timeout + CONTROLLER_GRACE_S,
                                    on_output=feed)
    except CommandTimeout:
        return failed_entry(host, index, entry, dry_run, _timed_out(entry), started)
    except FleetError as exc:
        return failed_entry(host, index, entry, dry_run, exc, started)
    finished, duration = time.time(), round(time.monotonic() - clock, 3)
    return interpret(host, index, entry, dry_run, result.exit_code, result.stdout, result.stderr,
                     started, finished, duration)


def _timed_out(entry: S3Entry, where: str = "") -> FleetError:
    return FleetError(f"sync of {entry.path} ⇄ {entry.url} did not finish within {entry.timeout:g}s{where}",
                      hint="raise `timeout:` for this entry (or in s3_settings / the top-level s3:)")


def interpret(host: Host, index: int, entry: S3Entry, dry_run: bool, exit_code: int, stdout: str, stderr: str,
              started: float = 0.0, finished: float = 0.0, duration: float = 0.0) -> EntryResult:
    """The remote script's output → an EntryResult (pure)."""
    base = _base(host, index, entry, dry_run) | {"started_at": started, "finished_at": finished,
                                                  "duration_s": duration, "exit_code": exit_code}
    sections = split_sections(stdout)
    if S.NO_CLI in sections:
        return EntryResult(**base, status="failed", bytes=None,
                           message=f"the AWS CLI (`aws`) is not installed on {host.name}, or not on its PATH",
                           hint=install_hint(host))
    if S.NO_DIR in sections:
        what = "does not exist" if entry.direction == "up" else "cannot be created"
        return EntryResult(**base, status="failed", bytes=None, message=f"{base['local_dir']} {what} on "
                           f"{host.name}", hint="check path: for this entry (relative paths are relative to repo)")
    out = parse_sync_output(sections.get(S.SYNC, ""), stderr, entry.url)
    if exit_code in (126, 127) and not out.transfers:  # `command -v` found an `aws` that cannot run: a version
        said = scrub((out.other or out.failed or (f"exit {exit_code}",))[0])  # manager's shim, a broken link
        return EntryResult(**base, status="failed", bytes=None, aws_message=said, hint=install_hint(host),
                           message=f"the AWS CLI (`aws`) cannot run on {host.name}: {said}")
    moved = [t.path for t in out.moved]
    measured = S.SIZES in sections
    sizes = parse_sizes(sections.get(S.SIZES, "")) if measured else {}
    figures = {"files": len(moved), "deleted": len(out.deleted), "paths": tuple(moved[:LISTED_PATHS]),
               "deleted_paths": tuple(t.path for t in out.deleted[:LISTED_PATHS]),
               "held_back": tuple(S.held_back(entry, list(sizes))[:LISTED_PATHS]),
               "bytes": sum(sizes.get(p, 0) for p in moved) if measured else None,
               "warnings": tuple(scrub(w) for w in out.warnings[:20])}
    if S.TIMED_OUT in sections:
        error = _timed_out(entry, f"; stopped on {host.name}")
        return EntryResult(**base, **figures, status="failed", message=error.message, hint=error.hint or "")
    problem: Problem | None = diagnose(out, exit_code, entry, host.name)
    if problem is None:
        return EntryResult(**base, **figures, status="ok")
    return EntryResult(**base, **figures, status="failed", message=problem.message, hint=problem.hint,
                       aws_message=problem.aws_message, aws_code=problem.code)


def run_host(connector, host: Host, direction: str, dry_run: bool,
             on_progress: ProgressFn | None = None,
             on_done: Callable[[EntryResult], None] | None = None,
             refused: FleetError | None = None) -> list[EntryResult]:
    """A host's entries of one direction, one after another (one link, one disk); failures do not stop the rest.
    `refused`: why this host must not be touched (its fleet lock was not taken): every entry says so, none runs."""
    results = []
    for index, entry in entries(host, direction):
        if refused is not None:
            results.append(failed_entry(host, index, entry, dry_run, refused, status="skipped"))
            if on_done is not None:
                on_done(results[-1])
            continue
        try:
            session = connector.session(host)
        except FleetError as exc:
            result = failed_entry(host, index, entry, dry_run, exc)
        else:
            result = run_entry(session, host, index, entry, dry_run=dry_run, on_progress=on_progress)
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results


def run_fleet(connector, hosts: list[Host], *, direction: str | None = None, dry_run: bool = False,
              workers: int | None = None, on_progress: ProgressFn | None = None,
              on_done: Callable[[EntryResult], None] | None = None,
              refusal: Callable[[str], FleetError | None] | None = None) -> list[EntryResult]:
    """Every up entry (hosts in parallel), then every down entry; results in host order, ups first.
    `refusal(host name)`: why a host must not be touched (`locks.FleetLock.refusal`); the others go on."""
    results: list[EntryResult] = []
    for phase in ("up", "down"):
        if direction not in (None, phase):
            continue
        chosen = [h for h in hosts if entries(h, phase)]
        outcomes = run_each(chosen, lambda h, p=phase: run_host(connector, h, p, dry_run, on_progress, on_done,
                                                                refusal(h.name) if refusal else None), workers)
        for host, outcome in outcomes.items():
            if isinstance(outcome, Exception):  # a bug: report it on every entry of that host, go on
                error = FleetError(f"internal error: {outcome!r}")
                results += [failed_entry(host, i, e, dry_run, error) for i, e in entries(host, phase)]
            else:
                results += outcome
    return results
