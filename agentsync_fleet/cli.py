"""The command line: Invoke tasks for `inv` (via tasks.py) and the `agentsync` program.

Thin by design: each task turns its flags into a `FleetArgs`, imports its
command module lazily (so `--help` and `--list` never import paramiko), runs
it, and turns the result into an exit status. A `FleetError` (a problem the
user can fix) is printed without a traceback; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from invoke import Collection, Exit, Program, task

from . import __version__
from .commands import FleetArgs

FLEET_HELP = {
    "inventory": "inventory file (default: $AGENTSYNC_INVENTORY, else inventory/fleet.yaml)",
    "hosts": "comma-separated host names to limit the run to (default: all)",
    "json": "print a machine-readable JSON report on stdout (and nothing else there)",
    "workers": "how many hosts to work on at once (default 0: one per host, at most 32)",
}


def _guarded(body: Callable[..., int]) -> Callable[..., int]:
    """Map a command's return value to the exit status; print FleetErrors without a traceback."""

    @functools.wraps(body)
    def wrapper(c, *args, **kwargs):
        from .errors import FleetError, InventoryError, UsageError

        try:
            code = body(c, *args, **kwargs)
        except (InventoryError, UsageError) as exc:
            from .output import error

            error(str(exc))
            raise Exit(code=2) from None
        except FleetError as exc:
            from .output import error

            error(str(exc))
            raise Exit(code=1) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None
        if code:
            raise Exit(code=code)
        return 0

    return wrapper


def fleet_task(help: dict[str, str] | None = None, **kwargs):  # noqa: A002 - Invoke's own keyword
    """@task with the shared fleet flags documented, no auto short flags, and error handling."""

    def decorate(body):
        params = body.__code__.co_varnames[: body.__code__.co_argcount]
        texts = {k: v for k, v in {**FLEET_HELP, **(help or {})}.items() if k in params}
        return task(help=texts, auto_shortflags=False, **kwargs)(_guarded(body))

    return decorate


@fleet_task(help={"no_fetch": "skip `git fetch` (faster; ahead/behind then use the last fetched state)"})
def health(c, inventory=None, hosts=None, json=False, workers=0, no_fetch=False):
    """Deploy gate: reachability, repo state, guard processes, disk, load, GPU and ZeroTier per host."""
    from .commands import health as command

    return command.run(FleetArgs(inventory, hosts, json, workers), fetch=not no_fetch)


@fleet_task(help={"no_fetch": "skip `git fetch`"})
def status(c, inventory=None, hosts=None, json=False, workers=0, no_fetch=False):
    """Per host: ahead of / behind origin and uncommitted files (read-only)."""
    from .commands import status as command

    return command.run(FleetArgs(inventory, hosts, json, workers), fetch=not no_fetch)


SYNC_HELP = {
    "dry_run": "print the plan (stages, hosts, exact commands) and change nothing",
    "strict": "abort everything if any host is unreachable (default: skip it and go on)",
    "allow_running": "change guard.critical_files even while a guard process runs",
}


@fleet_task(help=SYNC_HELP, name="sync-all")
def sync_all(c, inventory=None, hosts=None, json=False, workers=0, dry_run=False, strict=False,
             allow_running=False):
    """Bring every checkout to the same commit: preflight, publish, converge, worktrees; never loses work."""
    from .commands import sync as command

    return command.run(FleetArgs(inventory, hosts, json, workers), dry_run=dry_run, strict=strict,
                       allow_running=allow_running)


@fleet_task(help=SYNC_HELP)
def plan(c, inventory=None, hosts=None, json=False, workers=0, strict=False):
    """Show what sync-all would do, command by command, without changing anything (= sync-all --dry-run)."""
    from .commands import sync as command

    return command.run(FleetArgs(inventory, hosts, json, workers), dry_run=True, strict=strict)


@fleet_task(help=SYNC_HELP)
def pull(c, inventory=None, hosts=None, json=False, workers=0, dry_run=False, allow_running=False):
    """Bring hosts onto origin's branch (the converge stage alone), keeping uncommitted work."""
    from .commands import sync as command

    return command.run(FleetArgs(inventory, hosts, json, workers), dry_run=dry_run, allow_running=allow_running,
                       only_stages=("converge",))


@fleet_task(help=SYNC_HELP)
def push(c, inventory=None, hosts=None, json=False, workers=0, dry_run=False, allow_running=False):
    """Publish hosts' local commits to origin, one host at a time in order (the publish stage alone)."""
    from .commands import sync as command

    return command.run(FleetArgs(inventory, hosts, json, workers), dry_run=dry_run, allow_running=allow_running,
                       only_stages=("publish",))


TRANSFER_HELP = {
    "host": "the host(s) to transfer with, comma-separated (default: every host that has something to transfer)",
    "dry_run": "show the itemized changes (rsync -n -i) and move nothing",
    "allow_running": "send guard.critical_files even while a guard process runs on the host",
}


@fleet_task(help=TRANSFER_HELP, name="push-code")
def push_code(c, host=None, inventory=None, json=False, workers=0, dry_run=False, allow_running=False):
    """Send the laptop's working tree (tracked + untracked-not-ignored files, never .git or secrets) to a host."""
    from .commands import push_code as command

    return command.run(FleetArgs(inventory, host, json, workers), dry_run=dry_run, allow_running=allow_running)


@fleet_task(help=TRANSFER_HELP)
def results(c, host=None, inventory=None, json=False, workers=0, dry_run=False):
    """Bring results back from a host to the laptop (its results: and rsync pull entries), backing up what they replace."""
    from .commands import results as command

    return command.run(FleetArgs(inventory, host, json, workers), dry_run=dry_run)


@fleet_task(help={"host": "the host whose key to trust", "yes": "do not ask for confirmation"})
def trust(c, host, inventory=None, yes=False, json=False):
    """Show a host's key fingerprint and add it to known_hosts on purpose (never replaces a changed key)."""
    from .commands import trust as command

    return command.run(FleetArgs(inventory, None, json), host, yes=yes)


@fleet_task(help={"root": "where the sandbox lives (default: $AGENTSYNC_SANDBOX or ~/.local/share/agentsync/sandbox)"},
            name="up")
def sandbox_up(c, root=None):
    """Start the practice fleet (laptop + cloud + gpu: real sshd hosts on loopback) and write its inventory."""
    from .commands import sandbox as command

    return command.up(root)


@fleet_task(help={"root": "where the sandbox lives"}, name="down")
def sandbox_down(c, root=None):
    """Stop the practice fleet and remove its files."""
    from .commands import sandbox as command

    return command.down(root)


def build_collection() -> Collection:
    ns = Collection()
    for item in (health, status, sync_all, plan, pull, push, trust, push_code, results):
        ns.add_task(item)
    ns.add_collection(Collection("sandbox", sandbox_up, sandbox_down))
    return ns


ns = build_collection()
program = Program(namespace=ns, version=__version__, name="agentsync", binary="agentsync")


def main() -> None:
    try:
        program.run()
    except BrokenPipeError:  # `agentsync --help | head`: the reader left; not an error worth a traceback
        import os
        import sys

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
