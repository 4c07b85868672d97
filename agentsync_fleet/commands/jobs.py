"""`run`, `jobs`, `logs`, `wait`, `cancel`: long commands on fleet hosts, started and watched from the laptop.

A job runs detached on its host (tmux when present, else its own session),
so the laptop can sleep or lose the connection. Its record lives on the host
(see `jobs/scripts.py`); these commands only ever read it or, for `cancel`,
signal the job's own process group after checking it is still the job.
"""

from __future__ import annotations

import sys
import time

from ..errors import UsageError
from . import FleetArgs

GRACE_S = 10.0


def run(args: FleetArgs, host: str, command: str, *, name: str | None = None, cwd: str | None = None,
        env: list[str] | None = None, then_results: bool = False, allow_busy: bool = False,
        literal: bool = False, protect: list[str] | None = None) -> int:
    from ..identity import who
    from ..jobs import model

    inv = args.load()
    target = _host(inv, host)
    spec = model.plan(target, command or "", name=name, cwd=cwd, env=model.parse_env(env), who=who(),
                      literal=literal, protect=tuple(protect or ()))
    if then_results or spec.results:
        _check_results(inv, target)
    with _connector(inv, early=args.early, remember=True) as connector:
        _connect_ahead(connector, target)  # the SSH handshake goes on while the rest of `run` is imported
        job = _start(args, connector, target, spec, allow_busy)
        if not (then_results or spec.results):
            _show(args, {"host": target.name, "job": job}, lambda out: out.render_started(job))
            return 0
        if not args.json:
            from ..output.jobs import render_started

            render_started(job, waiting=True)
        return _wait_and_collect(args, inv, connector, target, job, None, True)


def _connect_ahead(connector, target) -> None:
    """Open the host's connection in a thread: a cold `run` spends most of its time in the handshake, and
    the imports and set-up that follow need no network. `connector.session` later waits for this attempt
    and gets its session, or its failure (the connector keeps both)."""
    import threading

    def connect() -> None:
        try:
            connector.session(target)
        except Exception:  # noqa: BLE001 - raised again, with its message, where the session is asked for
            pass

    threading.Thread(target=connect, name=f"connect {target.name}", daemon=True).start()


def _start(args: FleetArgs, connector, target, spec, allow_busy: bool):
    from ..jobs import runner
    from .journaling import journal_job_start

    begun = time.monotonic()
    try:
        job = runner.start(connector.session(target), target, spec, check_gpu=target.gpu and not allow_busy)
    except Exception as exc:
        journal_job_start(args.recorder, target.name, spec, None, time.monotonic() - begun,
                          getattr(exc, "message", str(exc)))
        raise
    journal_job_start(args.recorder, target.name, spec, job, time.monotonic() - begun)
    return job


def listing(args: FleetArgs, host: str | None = None, show_all: bool = False) -> int:
    from ..jobs import model
    from ..jobs.looks import listing_window
    from .journaling import journal_first_ends

    inv = args.load()
    hosts = FleetArgs(args.inventory, host).selected(inv)
    looks = _looks(inv)
    windows = {h.name: None if show_all else listing_window(looks.listed(h.name)) for h in hosts}
    with _connector(inv) as connector:
        answers = _fleet(connector, hosts, args.worker_limit(inv), windows)
    now = {n: a.now for n, a in answers.items() if not isinstance(a, Exception) and a.now}
    jobs = model.shown([j for a in answers.values() if not isinstance(a, Exception) for j in a.jobs], now,
                       show_all)
    problems = {n: getattr(a, "message", str(a)) for n, a in answers.items() if isinstance(a, Exception)}
    journal_first_ends(args.recorder, looks,
                       [j for a in answers.values() if not isinstance(a, Exception) for j in a.jobs])
    for name, when in now.items():  # every end these listings saw is journaled: the next ones may skip them
        looks.remember_listed(name, when)
    data = {"jobs": jobs, "problems": problems, "hosts": [h.name for h in hosts]}
    _show(args, data, lambda out: out.render_jobs(jobs, problems))
    return 1 if problems else 0


def logs(args: FleetArgs, job: str, *, follow: bool = False, tail: str | int | None = None,
         host: str | None = None) -> int:
    from ..jobs import runner

    lines = _tail(tail)
    inv = args.load()
    with _connector(inv) as connector:
        found, target = _find(inv, connector, job, host)
        session = connector.session(target)
        if not follow:
            text = runner.read_log(session, target, found.id, lines)
        elif args.json:
            chunks: list[bytes] = []
            runner.follow(session, target, found.id, lines, chunks.append)
            text = b"".join(chunks).decode(errors="replace")
        else:
            _follow_to_stdout(session, target, found.id, lines)
            return 0
        if args.json:
            from ..jobs.runner import list_host

            now = list_host(session, target, found.id).jobs
            _show(args, {"job": now[0] if now else found, "log": text}, None)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    return 0


def _follow_to_stdout(session, target, job_id: str, lines: int | None) -> None:
    from ..jobs import runner

    def write(chunk: bytes) -> None:
        sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()

    try:
        runner.follow(session, target, job_id, lines, write)
    except KeyboardInterrupt:  # stops following; the job goes on, in its own session on the host
        from ..output import warn

        warn(f"stopped following; job {job_id} goes on (`agentsync logs {job_id} --follow` to follow again)")


def wait(args: FleetArgs, job: str, *, timeout: str | float | None = None, then_results: bool = False,
         host: str | None = None) -> int:
    seconds = _seconds(timeout, "--timeout")
    inv = args.load()
    with _connector(inv) as connector:
        found, target = _find(inv, connector, job, host)
        if then_results or found.results:
            _check_results(inv, target)
        if not args.json:
            from ..output.jobs import render_waiting

            render_waiting(found)
        return _wait_and_collect(args, inv, connector, target, found, seconds, then_results)


def _wait_and_collect(args, inv, connector, target, job, timeout, then_results: bool) -> int:
    from ..jobs import runner
    from .journaling import journal_job_end

    ended = runner.wait(connector.session(target), target, job.id, timeout)
    _looks(inv).first_end(ended)  # journaled here: `jobs` and `health` need not journal it again
    journal_job_end(args.recorder, ended)
    report = None
    if then_results or ended.results:
        from ..transfer.task import result_routes
        from .transfers import report_data, transfer_report

        report = transfer_report(FleetArgs(args.inventory, target.name, args.json, args.workers, args.recorder), "results",
                                 result_routes, dry_run=False, inv=inv)
    code = ended.status_code if report is None or report.ok or ended.status_code else 1
    if args.json:
        _show(args, {"job": ended, "exit_code": ended.status_code,
                     "results": report_data(report) if report is not None else None}, None)
    else:
        from ..output.jobs import render_ended
        from ..output.transfer import render_report

        if report is not None:
            render_report(report)
        render_ended(ended)
    return code


def cancel(args: FleetArgs, job: str, *, grace: str | float | None = None, host: str | None = None) -> int:
    from ..jobs import runner
    from .journaling import journal_job_end

    seconds = _seconds(grace, "--grace")
    seconds = GRACE_S if seconds is None else seconds
    inv = args.load()
    with _connector(inv) as connector:
        found, target = _find(inv, connector, job, host)
        session = connector.session(target)
        outcome, sent = runner.cancel(session, target, found, seconds)
        after = runner.list_host(session, target, found.id).jobs
    now = after[0] if after else found
    if outcome == "done":
        _looks(inv).first_end(now)
        journal_job_end(args.recorder, now, cancelled=True)
    _show(args, {"job": now, "outcome": outcome, "signal": sent}, lambda out: out.render_cancel(now, outcome, sent))
    return 0 if outcome in ("done", "ended") else 1


# ------------------------------------------------------------------ helpers


class _connector:
    """A Connector closed on the way out, whatever happens."""

    def __init__(self, inv, early: tuple = (), remember: bool = False):
        """`early`, `remember`: for `run`, the one command that begins its connection early (remote/early.py)."""
        from ..remote import Connector

        self.connector = Connector(inv, early=early, remember=remember)

    def __enter__(self):
        return self.connector

    def __exit__(self, *exc) -> None:
        self.connector.close_all()


def _looks(inv):
    """What this controller has seen of the jobs (`jobs/looks.py`), in its state dir."""
    from ..jobs.looks import Looks
    from ..settings import state_dir

    return Looks(state_dir(inv))


def _host(inv, name: str | None):
    if not name or name not in inv.hosts:
        import difflib

        close = difflib.get_close_matches(name or "", list(inv.hosts), n=1)
        raise UsageError(f"host {name!r} is not in {inv.path}",
                         hint=(f"did you mean '{close[0]}'? " if close else "") + f"hosts: {', '.join(inv.order)}")
    return inv.hosts[name]


def _check_results(inv, target) -> None:
    """Refuse --then-results up front (before a job is started or waited for) when there is nothing to bring."""
    from ..transfer.task import choose_hosts, result_routes

    choose_hosts(inv, target.name, "results", result_routes)


def _fleet(connector, hosts, workers, windows=None, match=None):
    from ..jobs import runner

    return runner.fleet_jobs(connector, hosts, workers, windows, match)


def _find(inv, connector, ref: str, host: str | None):
    """The job `ref` names, looked for on --host or on every host (in parallel), and its host."""
    from ..errors import FleetError
    from ..jobs import model

    hosts = [_host(inv, host)] if host else inv.select(None)
    # only the jobs `ref` may name (`resolve` looks at no other), the old ones without their log's last line
    answers = _fleet(connector, hosts, None, {h.name: model.Window() for h in hosts}, (ref or "").strip())
    jobs = [j for a in answers.values() if not isinstance(a, Exception) for j in a.jobs]
    try:
        job = model.resolve(jobs, ref)
    except UsageError as exc:
        missing = {n: getattr(a, "message", str(a)) for n, a in answers.items() if isinstance(a, Exception)}
        if missing:
            raise FleetError(f"{exc.message}; not reached: " + "; ".join(f"{n}: {m}" for n, m in missing.items()),
                             hint=exc.hint) from None
        raise
    return job, inv.hosts[job.host]


def _tail(value) -> int | None:
    if value in (None, ""):
        return None
    try:
        lines = int(value)
    except (TypeError, ValueError):
        lines = -1
    if lines < 0:
        raise UsageError(f"--tail expects a whole number of lines, got {value!r}")
    return lines


def _seconds(value, flag: str) -> float | None:
    if value in (None, ""):
        return None
    from ..settings import parse_duration

    if str(value).strip() in ("0", "0s", "0.0"):
        return 0.0
    seconds = parse_duration(value)
    if seconds is None or seconds < 0:
        raise UsageError(f"{flag} expects seconds (or a number with s, m, h), got {value!r}")
    return seconds


def _show(args: FleetArgs, data: dict, human) -> None:
    if args.json:
        from ..output import emit_json

        emit_json(_plain(data))
        return
    if human is not None:
        from ..output import jobs as out

        human(out)


def _plain(value):
    """JSON-ready data: every Job with its `label` (`exited 0`, `killed (SIGTERM)`...) beside its fields."""
    from ..jobs.model import Job
    from ..models import to_jsonable

    if isinstance(value, Job):
        return {**to_jsonable(value), "label": value.label}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
