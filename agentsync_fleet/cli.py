"""The command line: Invoke tasks for `inv` (via tasks.py) and the `agentsync` program.

Thin by design: each task turns its flags into a `FleetArgs`, imports its
command module lazily (so `--help` and `--list` stay fast), runs
it, and turns the result into an exit status. A `FleetError` (a problem the
user can fix) is printed without a traceback; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._startup import without_unittest_mock

with without_unittest_mock():
    from invoke import Collection, Exit, task

from . import __version__
from .commands import FleetArgs
from .program import HELP_FLAGS, FleetProgram

FLEET_HELP = {
    "inventory": "inventory file (default: $AGENTSYNC_INVENTORY, else inventory/fleet.yaml)",
    "hosts": "comma-separated host names to limit the run to (default: all)",
    "json": "print a machine-readable JSON report on stdout (and nothing else there)",
    "workers": "how many hosts to work on at once (default: one per host, at most 32)",
}


@dataclass(frozen=True)
class TaskRun:
    """What a task body gets as `c`: Invoke's context and the run's journal recorder, passed on explicitly."""

    invoke: Any
    recorder: Any
    early: tuple = ()  # connections begun before the command line was parsed (launch.py); `run` takes them


def _guarded(body: Callable[..., int], name: str, journal: bool = True) -> Callable[..., int]:
    """Map a command's return value to the exit status; print FleetErrors without a traceback.

    Every fleet task is also recorded in the run journal here, once: the
    recorder made here reaches the task as `c.recorder` and its command as
    `FleetArgs.recorder` (its run row appears when it loads its inventory).
    `journal=False` is for tasks that only read the journal or do not
    concern a fleet.
    """

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        from .journal import NullRecorder, RunRecorder
        from .output import warn
        from .taskrun import INTERRUPTED, arguments, run_body

        if any(value in HELP_FLAGS for value in (*args, *kwargs.values())):  # `inv claim --help`: help, never act
            from .program import task_help

            task_help(ns, wrapper)
            return 0
        recorder = RunRecorder(name, arguments(body, c, args, kwargs), warn=warn) if journal else NullRecorder()
        code = run_body(body, recorder, TaskRun(c, recorder, program.early), *args, **kwargs)
        if code in INTERRUPTED:
            raise Exit("interrupted", code=code)
        if code:
            raise Exit(code=code)
        return 0

    return wrapper


def fleet_task(help: dict[str, str] | None = None, journal: bool = True, **kwargs):  # noqa: A002 - Invoke's keyword
    """@task with the shared fleet flags documented, no auto short flags, error handling and journaling."""

    def decorate(body):
        params = body.__code__.co_varnames[: body.__code__.co_argcount]
        texts = {k: v for k, v in {**FLEET_HELP, **(help or {})}.items() if k in params}
        name = kwargs.get("name") or body.__name__.replace("_", "-")
        return task(help=texts, auto_shortflags=False, **kwargs)(_guarded(body, name, journal))

    return decorate


HEALTH_HELP = {
    "no_fetch": "skip `git fetch` (faster; ahead/behind then use the last fetched state)",
    "no_checks": "skip the inventory's checks: (run, metric, http)",
    "check": "run only this check (repeat the flag, or comma-separate names)",
}


@fleet_task(help=HEALTH_HELP, iterable=["check"])
def health(c, inventory=None, hosts=None, json=False, workers=None, no_fetch=False, no_checks=False, check=None):
    """Deploy gate: reachability, repo state, guard processes, your checks, disk, load, GPU and ZeroTier per host."""
    from .commands import health as command

    return command.run(FleetArgs(inventory, hosts, json, workers, recorder=c.recorder), fetch=not no_fetch,
                       checks=None if no_checks else command.check_names(check))


@fleet_task(help={"no_fetch": "skip `git fetch`"})
def status(c, inventory=None, hosts=None, json=False, workers=None, no_fetch=False):
    """Per host: ahead of / behind origin and uncommitted files (read-only)."""
    from .commands import status as command

    return command.run(FleetArgs(inventory, hosts, json, workers, recorder=c.recorder), fetch=not no_fetch)


SYNC_HELP = {
    "resume": "run again only the hosts that did not end ok in the last sync-all of this inventory",
    "dry_run": "print the plan (stages, hosts, exact commands) and change nothing",
    "strict": "abort everything if any host is unreachable (default: skip it and go on)",
    "allow_running": "change guard.critical_files even while a guard process runs",
    "gate": "run the health gate (checks included) first; if it fails, change nothing on any host",
}


@fleet_task(help=SYNC_HELP, name="sync-all")
def sync_all(c, inventory=None, hosts=None, json=False, workers=None, dry_run=False, strict=False,
             allow_running=False, resume=False, gate=False):
    """Bring every checkout to the same commit, then move code, artifacts and results; never loses work."""
    from .commands import sync as command

    return command.run(FleetArgs(inventory, hosts, json, workers, recorder=c.recorder), dry_run=dry_run, strict=strict,
                       allow_running=allow_running, resume=resume, gate=gate)


@fleet_task(help=SYNC_HELP)
def plan(c, inventory=None, hosts=None, json=False, workers=None, strict=False):
    """Show what sync-all would do, command by command, without changing anything (= sync-all --dry-run)."""
    from .commands import sync as command

    return command.run(FleetArgs(inventory, hosts, json, workers, recorder=c.recorder),
                       dry_run=True, strict=strict, task="plan")


@fleet_task(help=SYNC_HELP)
def pull(c, inventory=None, hosts=None, json=False, workers=None, dry_run=False, allow_running=False):
    """Bring hosts onto origin's branch (the converge stage alone), keeping uncommitted work."""
    from .commands import sync as command

    return command.run(FleetArgs(inventory, hosts, json, workers, recorder=c.recorder),
                       dry_run=dry_run, allow_running=allow_running,
                       only_stages=("converge", "relay-out", "claims"), task="pull")


@fleet_task(help=SYNC_HELP)
def push(c, inventory=None, hosts=None, json=False, workers=None, dry_run=False, allow_running=False):
    """Publish hosts' local commits to origin, one host at a time in order (the publish stage alone)."""
    from .commands import sync as command

    return command.run(FleetArgs(inventory, hosts, json, workers, recorder=c.recorder),
                       dry_run=dry_run, allow_running=allow_running,
                       only_stages=("relay-in", "publish", "claims"), task="push")


ARTIFACTS_HELP = {
    "host": "only this host's entries (comma-separated for several; default: every host with s3: entries)",
    "direction": "only `up` (host → S3) or only `down` (S3 → host) entries (default: every up, then every down)",
    "dry_run": "list what would move (`aws s3 sync --dryrun`); moves and deletes nothing",
}


@fleet_task(help=ARTIFACTS_HELP)
def artifacts(c, inventory=None, host=None, direction=None, json=False, workers=None, dry_run=False):
    """Sync models/data between hosts and S3, on each host directly: every up entry before any down."""
    from .commands import artifacts as command

    return command.run(FleetArgs(inventory, host, json, workers, recorder=c.recorder),
                       direction=direction, dry_run=dry_run)


TRANSFER_HELP = {
    "host": "the host(s) to transfer with, comma-separated (default: every host that has something to transfer)",
    "dry_run": "show the itemized changes (rsync -n -i) and move nothing",
    "allow_running": "send guard.critical_files even while a guard process runs on the host",
}


@fleet_task(help={**TRANSFER_HELP, "force_older": "send even to a host whose checkout has commits the laptop's "
                                                   "lacks (their files are overwritten by the laptop's older ones)"},
            name="push-code")
def push_code(c, host=None, inventory=None, json=False, workers=None, dry_run=False, allow_running=False,
              force_older=False):
    """Send the laptop's working tree (tracked + untracked-not-ignored files, never .git or secrets) to a host."""
    from .commands import push_code as command

    return command.run(FleetArgs(inventory, host, json, workers, recorder=c.recorder),
                       dry_run=dry_run, allow_running=allow_running, force_older=force_older)


@fleet_task(help=TRANSFER_HELP)
def results(c, host=None, inventory=None, json=False, workers=None, dry_run=False):
    """Bring results back from a host to the laptop (its results: and rsync pull entries), backing up what they replace."""
    from .commands import results as command

    return command.run(FleetArgs(inventory, host, json, workers, recorder=c.recorder), dry_run=dry_run)


@fleet_task(help={"host": "the host whose key to trust", "yes": "do not ask for confirmation",
                  "jump": "trust the key of this ProxyJump hop on the way to HOST instead (as its ProxyJump names it)"})
def trust(c, host, inventory=None, yes=False, json=False, jump=None):
    """Show a host's key fingerprint and add it to known_hosts on purpose (never replaces a changed key)."""
    from .commands import trust as command

    return command.run(FleetArgs(inventory, None, json, recorder=c.recorder), host, yes=yes, jump=jump or "")


@fleet_task()
def disconnect(c, inventory=None, json=False):
    """Close the ssh connections kept open between runs (ControlPersist); the next run connects afresh."""
    from .commands import disconnect as command

    return command.run(FleetArgs(inventory, None, json))


@fleet_task(help={"force": "also remove locks whose holder may still be running"})
def unlock(c, inventory=None, hosts=None, json=False, workers=None, force=False):
    """Remove stale fleet locks (holder gone, or older than lock_ttl) here and on the hosts; --force: any lock."""
    from .commands import unlock as command

    return command.run(FleetArgs(inventory, hosts, json, workers, recorder=c.recorder), force=force)


@fleet_task()
def recover(c, inventory=None, hosts=None, json=False, workers=None):
    """Heal what cut-off moves left (restore their stash, remove scratch worktrees); list agentsync stashes."""
    from .commands import recover as command

    return command.run(FleetArgs(inventory, hosts, json, workers, recorder=c.recorder))


CLAIM_HELP = {
    "area": "a path in the repo: a file, a directory (strategies/) or a glob ('apps/*/config.yaml')",
    "note": "what you are doing there, for the others",
    "host": "run the git plumbing on this host (default: the controller's own checkout)",
    "who": "who holds the claim (default: user@host of that host)",
    "force": "release a claim that is not yours",
}


@fleet_task(help=CLAIM_HELP)
def claim(c, area, note="", host=None, who=None, inventory=None, json=False):
    """Claim an area of the repo (who works on what); refused if someone else holds it and it is not stale."""
    from .commands import claims as command

    return command.claim(FleetArgs(inventory, None, json, recorder=c.recorder), area, note=note, host=host, who=who)


@fleet_task(help=CLAIM_HELP)
def checkin(c, area, host=None, who=None, inventory=None, json=False):
    """Check in on your claim so it does not go stale (after claim_ttl, default 4h)."""
    from .commands import claims as command

    return command.checkin(FleetArgs(inventory, None, json, recorder=c.recorder), area, host=host, who=who)


@fleet_task(help=CLAIM_HELP)
def release(c, area, host=None, who=None, force=False, inventory=None, json=False):
    """Release your claim on an area."""
    from .commands import claims as command

    return command.release(FleetArgs(inventory, None, json, recorder=c.recorder), area, host=host, who=who, force=force)


@fleet_task(help=CLAIM_HELP)
def claims(c, host=None, inventory=None, json=False):
    """List who claims which area (read from origin), with stale claims marked."""
    from .commands import claims as command

    return command.listing(FleetArgs(inventory, None, json, recorder=c.recorder), host=host)


HISTORY_HELP = {
    "inventory": "inventory whose state dir holds the journal (default: $AGENTSYNC_INVENTORY, "
                 "else inventory/fleet.yaml if present, else $AGENTSYNC_STATE_DIR / ~/.local/state/agentsync)",
    "limit": "show at most this many runs, newest first (default 20)",
    "host": "only runs that touched this host",
    "status": "only runs with this status: ok, failed, error, refused, interrupted, running",
    "task": "only runs of this task (e.g. sync-all)",
    "run": "a run id, a unique prefix of one, or `last`",
    "file": "where to write the JSON (- for stdout)",
}


@fleet_task(help=HISTORY_HELP, journal=False, name="list", default=True)
def history_list(c, limit=None, host=None, status=None, task=None, inventory=None, json=False):
    """Recorded runs, newest first: task, when, how long, status, hosts, who (the default `history` task)."""
    from .commands import history as command

    return command.listing(FleetArgs(inventory, None, json, recorder=c.recorder),
                           limit=limit, host=host, status=status, task=task)


@fleet_task(help=HISTORY_HELP, journal=False, name="show")
def history_show(c, run, inventory=None, json=False):
    """One run in full: arguments, who, inventory hash, every host and step with commands, exit codes, errors."""
    from .commands import history as command

    return command.show(FleetArgs(inventory, None, json, recorder=c.recorder), run)


@fleet_task(help=HISTORY_HELP, journal=False, name="stats")
def history_stats(c, task=None, inventory=None, json=False):
    """Runs, success rate, median step time per host and step, and each host's last success."""
    from .commands import history as command

    return command.stats(FleetArgs(inventory, None, json, recorder=c.recorder), task=task)


@fleet_task(help=HISTORY_HELP, journal=False, name="export")
def history_export(c, file, inventory=None):
    """Write every recorded run (hosts, steps, commands) to a JSON file."""
    from .commands import history as command

    return command.export(FleetArgs(inventory, None, False, recorder=c.recorder), file)


SANDBOX_HELP = {
    "root": "where the sandbox lives (default: $AGENTSYNC_SANDBOX or ~/.local/share/agentsync/sandbox); "
            "up: a new or empty directory; down: only one sandbox.up made",
    "subnet": "the hosts' addresses are 127.SUBNET.0.x (default 77; pick another for a second sandbox)",
}


@fleet_task(help=SANDBOX_HELP, name="up", journal=False)
def sandbox_up(c, root=None, subnet=None):
    """Start the practice fleet (laptop + cloud + gpu: real sshd hosts on loopback) and write its inventory."""
    from .commands import sandbox as command

    return command.up(root, subnet)


@fleet_task(help=SANDBOX_HELP, name="down", journal=False)
def sandbox_down(c, root=None):
    """Stop the practice fleet and remove its directory (only one that sandbox.up made; says which)."""
    from .commands import sandbox as command

    return command.down(root)


RELAY_HELP = {
    "from_": "the host whose new commits to relay (e.g. one with git_access: false)",
    "to": "the host that applies them (default: the local host)",
    "push": "push the result to origin afterwards (never forced)",
    "dry_run": "show what would travel and the exact commands; change nothing",
    "allow_running": "change guard.critical_files on the target even while a guard process runs",
}


@fleet_task(help=RELAY_HELP, name="patch-relay")
def patch_relay(c, from_=None, to=None, push=False, dry_run=False, allow_running=False, inventory=None,
                json=False):
    """Carry a host's new commits to another host as patches: backup branch, git am -3, validate, optional push."""
    from .commands import relay as command

    return command.run(FleetArgs(inventory, None, json, recorder=c.recorder), from_, to, push=push, dry_run=dry_run,
                       allow_running=allow_running)


JOB_HELP = {
    "host": "the host to run on (an inventory host name)",
    "command": "the command line, run on the host by its login shell exactly as typed (quote it as one "
               "argument), or the name of one of the host's `jobs:` presets",
    "name": "the job's name (default: the command's program, or the preset's name); one running job per name "
            "and host",
    "cwd": "working directory on the host (default: its repo; relative paths are relative to the repo)",
    "env": "NAME=VALUE for the job's environment (repeat for several)",
    "then_results": "wait for the job to end, then bring the host's results back (as `agentsync results`)",
    "allow_busy": "start even when other processes hold most of the GPU's memory",
    "protect": "a path relative to the host's repo (file, directory/, glob) that sync-all and push-code leave "
               "alone while the job runs, unless --allow-running (repeat for several; adds to a preset's protect:)",
    "literal": "run COMMAND as typed, never as a preset (on a host with presets, a one-word COMMAND that is not "
               "a preset is refused as a typo of one unless the host has that program; --literal runs it anyway)",
    "job": "a job id, a unique prefix of one, or a job name",
    "all": "also jobs that ended more than a day ago",
    "follow": "keep printing as the job writes, until it ends (Ctrl-C stops following, never the job)",
    "tail": "only the last N lines",
    "timeout": "give up waiting after this long (seconds, or 90s, 15m, 4h); the job goes on",
    "grace": "seconds between SIGTERM and SIGKILL (default 10)",
}


@fleet_task(help=JOB_HELP, iterable=["env", "protect"])
def run(c, host, command, name=None, cwd=None, env=None, then_results=False, allow_busy=False, literal=False,
        protect=None, inventory=None, json=False):
    """Start COMMAND on HOST, detached (tmux when there, else its own session); returns at once with the job id."""
    from .commands import jobs as command_

    return command_.run(FleetArgs(inventory, None, json, recorder=c.recorder, early=c.early), host, command, name=name,
                        cwd=cwd, env=env, then_results=then_results, allow_busy=allow_busy, literal=literal,
                        protect=protect)


@fleet_task(help={**JOB_HELP, "host": "only this host's jobs (comma-separated for several)"})
def jobs(c, host=None, all=False, inventory=None, json=False, workers=None):  # noqa: A002 - the flag is --all
    """The fleet's jobs: state, run time, last line of output, GPU memory; one round trip per host."""
    from .commands import jobs as command

    return command.listing(FleetArgs(inventory, None, json, workers, recorder=c.recorder), host=host, show_all=all)


@fleet_task(help={**JOB_HELP, "host": "look for JOB on this host only"})
def logs(c, job, follow=False, tail=None, host=None, inventory=None, json=False):
    """Print a job's output (stdout and stderr); --follow streams it until the job ends."""
    from .commands import jobs as command

    return command.logs(FleetArgs(inventory, None, json, recorder=c.recorder), job, follow=follow, tail=tail, host=host)


@fleet_task(help={**JOB_HELP, "host": "look for JOB on this host only"})
def wait(c, job, timeout=None, then_results=False, host=None, inventory=None, json=False):
    """Wait for a job to end and exit with its exit status; --then-results brings the host's results back."""
    from .commands import jobs as command

    return command.wait(FleetArgs(inventory, None, json, recorder=c.recorder), job, timeout=timeout, then_results=then_results,
                        host=host)


@fleet_task(help={**JOB_HELP, "host": "look for JOB on this host only"})
def cancel(c, job, grace=None, host=None, inventory=None, json=False):
    """Stop a job: SIGTERM to its whole process group, SIGKILL after --grace; never a process that is not the job."""
    from .commands import jobs as command

    return command.cancel(FleetArgs(inventory, None, json, recorder=c.recorder), job, grace=grace, host=host)


def build_collection() -> Collection:
    ns = Collection()
    for item in (health, status, sync_all, plan, pull, push, trust, push_code, results, artifacts, patch_relay,
                 unlock, disconnect, recover, claim, checkin, release, claims, run, jobs, logs, wait, cancel):
        ns.add_task(item)
    ns.add_collection(Collection("history", history_list, history_show, history_stats, history_export))
    ns.add_collection(Collection("sandbox", sandbox_up, sandbox_down))
    return ns


ns = build_collection()
program = FleetProgram(namespace=ns, version=__version__, name="agentsync", binary="agentsync")


def main(early: tuple = ()) -> None:
    """Run the program; `early`: connections launch.py began before this module was even imported."""
    program.early = early
    try:
        program.run()
    except BrokenPipeError:  # `agentsync --help | head`: the reader left; not an error worth a traceback
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
