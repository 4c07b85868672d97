"""Jobs through the hosts' sessions: start, list (fleet-wide, in parallel), log, follow, wait, cancel.

Each operation is one script, one round trip; `wait` polls over the one
session it keeps. Host trouble is raised as `FleetError`s for one host, and
turned into values per host by `pool.run_each` when the whole fleet is asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..errors import CommandTimeout, FleetError
from ..models import Host
from ..pool import run_each
from ..shell import split_sections
from . import scripts
from .looks import Look, died_since, listing_window, next_look
from .model import Job, JobRefused, JobSpec, Window, busy_message, unknown_program

FOLLOW_TIMEOUT_S = 30 * 24 * 3600.0  # `logs --follow` streams as long as the job runs
POLL_S = (0.2, 2.0)  # `wait`: first poll after 0.2 s, then slower, at most every 2 s


@dataclass(frozen=True)
class HostJobs:
    """One host's answer to a listing: its clock, its jobs, whether the listing ran to its end."""

    host: str
    now: float | None
    jobs: tuple[Job, ...]
    complete: bool = True


def start(session, host: Host, spec: JobSpec, *, check_gpu: bool) -> Job:
    """Start the job detached; return it as the host recorded it, or refuse (JobRefused) saying why."""
    result = session.run_script(scripts.start_script(spec, host.repo, check_gpu=check_gpu),
                                timeout=host.command_timeout + scripts.START_WAIT_S)
    outcome, detail, job = scripts.parse_start(host.name, spec.id, result.stdout)
    if outcome == "started" and job is not None:
        return job
    raise _refusal(host, spec, outcome, detail, result)


def _refusal(host: Host, spec: JobSpec, outcome: str, detail: str, result) -> FleetError:
    if outcome == "duplicate":
        return JobRefused(f"a job named {spec.name!r} is already running on {host.name} (job {detail})",
                          host=host.name, hint=f"wait for it (`agentsync wait {detail}`), cancel it, or pick "
                                               "another --name")
    if outcome == "busy":
        total, apps = scripts.parse_busy(detail)
        return JobRefused(busy_message(host.name, apps, total), host=host.name,
                          hint="wait for them to finish, or pass --allow-busy to start anyway")
    if outcome == "nocwd":
        return JobRefused(f"working directory {detail} does not exist on {host.name}", host=host.name,
                          hint="check --cwd (relative paths are relative to the host's repo)")
    if outcome == "noprogram":
        return unknown_program(host, spec.program)
    if outcome == "noflock":
        return JobRefused(f"{host.name} has no `flock` (util-linux), needed to start one job per name at a time",
                          host=host.name)
    if outcome == "claimed":
        return JobRefused(f"another `run` kept {host.name}'s job start lock for {scripts.CLAIM_WAIT_S}s",
                          host=host.name, hint="try again; `agentsync jobs` shows what runs there")
    if outcome == "nosetsid":
        return JobRefused(f"{host.name} has no `setsid` (util-linux), needed to detach the job", host=host.name)
    if outcome == "nodir":
        return FleetError(f"cannot create the job directory {detail} on {host.name}", host=host.name)
    return FleetError(f"the job did not start on {host.name}: {detail or result.tail(4) or result.exit_code}",
                      host=host.name, hint=f"see `agentsync logs {spec.id}`")


def list_host(session, host: Host, job_id: str | None = None, window: Window | None = None,
              match: str | None = None) -> HostJobs:
    """The host's jobs (or the one; or those `match` may name), those outside `window` read cheaply or left out
    (`model.Window`)."""
    result = session.run_script(scripts.list_script(host.gpu, job_id, window, match), timeout=host.command_timeout)
    now, jobs, complete = scripts.parse_list(host.name, result.stdout, host.gpu)
    if not complete:
        raise FleetError(f"listing jobs on {host.name} ended early (exit {result.exit_code}): {result.tail(3)}",
                         host=host.name)
    return HostJobs(host.name, now, tuple(jobs), complete)


def fleet_jobs(connector, hosts: list[Host], workers: int | None = None,
               windows: Mapping[str, Window | None] | None = None,
               match: str | None = None) -> dict[str, HostJobs | Exception]:
    """Every host's jobs: one round trip per host, hosts in parallel; `windows` by host name (none: all)."""
    windows = windows or {}
    results = run_each(hosts, lambda h: list_host(connector.session(h), h, window=windows.get(h.name), match=match),
                       workers)
    return {host.name: value for host, value in results.items()}


def read_log(session, host: Host, job_id: str, tail: int | None) -> str:
    result = session.run_script(scripts.log_script(job_id, tail), timeout=host.command_timeout)
    parts = split_sections(result.stdout)
    if "log" not in parts:
        raise FleetError(f"job {job_id} has no log on {host.name}", host=host.name)
    return result.stdout.split(scripts.SECTION_LOG, 1)[1] if scripts.SECTION_LOG in result.stdout else parts["log"]


def follow(session, host: Host, job_id: str, tail: int | None, write: Callable[[bytes], None]) -> None:
    """Stream the log to `write` until the job ends."""
    result = session.run_script(scripts.follow_script(job_id, tail), timeout=FOLLOW_TIMEOUT_S, on_output=write)
    if result.exit_code == 3:
        raise FleetError(f"job {job_id} has no log on {host.name}", host=host.name)


def cancel(session, host: Host, job: Job, grace: float) -> tuple[str, str]:
    result = session.run_script(scripts.cancel_script(job.id, grace), timeout=host.command_timeout + grace + 10)
    return scripts.parse_cancel(result.stdout)


def wait(session, host: Host, job_id: str, timeout: float | None,
         on_poll: Callable[[Job], None] | None = None) -> Job:
    """Poll the job over this one session until it is no longer running; CommandTimeout after `timeout`."""
    deadline = time.monotonic() + timeout if timeout is not None else None
    delay = POLL_S[0]
    while True:
        listing = list_host(session, host, job_id)
        if not listing.jobs:
            raise FleetError(f"job {job_id} is gone from {host.name} (its directory was removed)", host=host.name)
        job = listing.jobs[0]
        if on_poll is not None:
            on_poll(job)
        if not job.running:
            return job
        if deadline is not None and time.monotonic() + delay > deadline:
            raise CommandTimeout(f"job {job_id} on {host.name} is still running after {timeout:g}s",
                                 host=host.name, hint=f"it goes on; `agentsync wait {job_id}` again later")
        time.sleep(delay)
        delay = min(delay * 1.5, POLL_S[1])


@dataclass
class HealthLook:
    """What health saw of one host's jobs: the host's clock, every job listed, the died ones it shows."""

    now: float | None
    jobs: tuple[Job, ...]
    shown: tuple[str, ...]


class HealthProbe:
    """The jobs part of `health`'s one round trip: running jobs, and jobs that died since the last look.

    `last_looks` is what health showed the previous time (`looks.Looks.last`),
    `listed` each host's clock at the last listing whose ends were all
    journaled (`looks.Looks.listed`): together they say which old jobs the
    host need not read in full (`looks.listing_window`). What it sees now is
    kept in `seen`, for the command to journal job ends and remember this look.
    """

    name = "jobs"

    def __init__(self, last_looks: dict[str, Look] | None = None, listed: dict[str, float] | None = None):
        self.last_looks = dict(last_looks or {})
        self.listed = dict(listed or {})
        self.seen: dict[str, HealthLook] = {}  # filled from the hosts' threads, one key per host

    def script(self, host: Host) -> str:
        return scripts.list_script(host.gpu, window=listing_window(self.listed.get(host.name),
                                                                   self.last_looks.get(host.name)))

    def parse(self, host: Host, text: str) -> tuple[tuple[Job, ...], list[str]]:
        now, jobs, complete = scripts.parse_list(host.name, text, host.gpu)
        if not complete:
            return (), ["jobs: the listing ended early"]
        last = self.last_looks.get(host.name)
        died = died_since(jobs, now, last)
        look = next_look(jobs, now, last, died) if now is not None else None
        self.seen[host.name] = HealthLook(now, tuple(jobs), tuple(look.shown) if look else ())
        warnings = [f"job {j.id} ({j.name}) {j.label}" + (f": {j.last_line}" if j.last_line else "") for j in died]
        return tuple(j for j in jobs if j.running or j in died), warnings
