"""One checkout on one host, driven command by command: facts, stash, scratch worktrees, rehearsals.

The move itself (decide with `moveplan.plan_move`, then execute with an
intent record) is in `moves.py`; this module is its hands. New commits are
always made in a *scratch* worktree (a detached `git worktree` inside .git,
hooks off), never in the user's checkout: a rebase or merge that conflicts is
aborted there and the user's files were never touched.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from .errors import StepFailed
from .gitfacts import CheckoutFacts, Dirty, parse_facts, parse_status_z
from .interrupts import held
from .models import CommandResult
from .moveplan import Replay
from .records import CommandRecord, StepLog
from .shell import join, path_arg
from .steps import git as G


class Checkout:
    """One checkout (main repo or a worktree) on one host, driven command by command."""

    def __init__(self, session, path: str, timeout: float, log: StepLog, host: str):
        self.session = session
        self.path = path
        self.timeout = timeout
        self.log = log
        self.host = host

    def try_run(self, command: str, what: str = "") -> CommandResult:
        if what:
            self.log.announce(what)
        result = self.session.run(command, timeout=self.timeout)
        self.log.records.append(CommandRecord(command, result.exit_code, result.duration, result.tail(8)))
        return result

    def run(self, command: str, what: str = "") -> CommandResult:
        return self.ensure(self.try_run(command, what), what)

    def ensure(self, result: CommandResult, what: str = "") -> CommandResult:
        if not result.ok:
            raise StepFailed(f"{what or 'git'} failed", command=result.command, exit_code=result.exit_code,
                             output_tail=result.tail(), host=self.host)
        return result

    # ------------------------------------------------------------ facts

    def rev(self, ref: str) -> str | None:
        result = self.try_run(G.rev_parse(self.path, ref))
        return result.stdout.strip() or None if result.ok else None

    def is_ancestor(self, older: str, newer: str) -> bool:
        return self.try_run(G.is_ancestor(self.path, older, newer)).exit_code == 0

    def count(self, range_: str) -> int:
        result = self.try_run(G.count(self.path, range_))
        return int(result.stdout.strip() or 0) if result.ok else 0

    def dirty(self) -> Dirty:
        return parse_status_z(self.run(G.status(self.path)).stdout)

    def facts(self, remote: str, branch: str, fetch: bool, target: str | None = None) -> CheckoutFacts:
        """Everything a move decides on, in one round trip (see `steps.git.facts_script`); the target is
        `remote`/`branch`, or the commit `target`."""
        result = self.run(join(["sh", "-c", G.facts_script(self.path, remote, branch, fetch, target)]),
                          "fetch + read state" if fetch else "read state")
        return parse_facts(result.stdout)

    def stash(self, message: str) -> str | None:
        """Stash uncommitted changes; the new stash's id, or None if there was nothing (left) to stash."""
        return self.run(G.stash_push(self.path, message), "stash uncommitted changes").stdout.strip() or None

    def changed(self, old: str, new: str) -> list[str]:
        return [line for line in self.run(G.changed_files(self.path, old, new)).stdout.splitlines() if line]

    def in_the_way(self, old: str, new: str) -> list[str]:
        """Untracked or ignored files that moving from `old` to `new` would overwrite or delete."""
        script = f"cd {path_arg(self.path)} && {G.in_the_way(join([old]), join([new]))}"
        return [line for line in self.run(join(["sh", "-c", script])).stdout.splitlines() if line]

    def identical(self, old: str, new: str) -> list[str]:
        """Untracked or ignored files at paths that move writes, already holding exactly what `new` has there."""
        script = f"cd {path_arg(self.path)} && {G.identical_untracked(join([old]), join([new]))}"
        return [line for line in self.run(join(["sh", "-c", script])).stdout.splitlines() if line]

    # ------------------------------------------------------------ scratch worktrees

    def _scratch_path(self) -> str:
        common = self.run(G.common_dir(self.path)).stdout.strip()
        return f"{common}/agentsync-scratch-{uuid.uuid4().hex[:10]}"

    def in_scratch(self, start: str, work: Callable[[str], tuple[str | None, tuple[str, ...], str]]):
        """Run `work(scratch_path)` in a throwaway detached worktree at `start`; always removed after."""
        scratch = self._scratch_path()
        with held():  # a signal waits until the scratch is gone again (each command has its deadline)
            self.run(G.scratch_add(self.path, scratch, start), "prepare scratch worktree")
            try:
                return work(scratch)
            finally:
                self.try_run(G.scratch_remove(self.path, scratch))

    def rebased(self, head: str, onto: str) -> Replay:
        """`head`'s own commits replayed on `onto` in a scratch worktree: the new commit, or why not."""
        return self._in_scratch_or_abort(head, lambda scratch: G.rebase(scratch, onto), G.rebase_abort,
                                         f"rebase onto {onto[:8]} (scratch)")

    def merged(self, head: str, ref: str, message: str) -> Replay:
        """The merge commit of `ref` into `head` (made in a scratch worktree), or why not."""
        return self._in_scratch_or_abort(head, lambda scratch: G.merge(scratch, ref, message), G.merge_abort,
                                         f"merge {ref} (scratch)")

    def _in_scratch_or_abort(self, start: str, command: Callable[[str], str], abort: Callable[[str], str],
                             what: str) -> Replay:
        """Run a history-rewriting command in a scratch worktree; on failure list the files and abort it.

        No conflicted file after a failure means git could not *commit* (gpg signing, no identity): that is
        not a conflict, and git's own words say why.
        """

        def work(scratch: str) -> Replay:
            result = self.try_run(command(scratch), what)
            if result.ok:
                return Replay(Checkout(self.session, scratch, self.timeout, self.log, self.host).rev("HEAD"))
            files = tuple(self.try_run(G.conflicted(scratch)).stdout.splitlines())
            self.try_run(abort(scratch))
            if not files:
                return Replay(None, output=result.tail(), refused=git_reason(result))
            return Replay(None, files, result.tail())

        return self.in_scratch(start, work)

    def pop_would_conflict(self, new: str) -> tuple[str, ...]:
        """Rehearse 'stash, move to `new`, pop --index' in a scratch worktree; the conflicting files."""
        stash = self.run(G.stash_create(self.path)).stdout.strip()
        if not stash:
            return ()

        def work(scratch: str):
            result = self.try_run(G.stash_apply_index(scratch, stash), "rehearse stash pop (scratch)")
            if result.ok:
                return ()
            files = tuple(self.try_run(G.conflicted(scratch)).stdout.splitlines())
            return files or ("(index could not be restored)",)

        return self.in_scratch(new, work)


def git_reason(result: CommandResult) -> str:
    """git's own explanation of a failure: its `error:`/`fatal:` lines, else the output tail. A Git LFS
    smudge failure says which object is missing, not only that "a filter failed"."""
    lines = [line.strip() for line in (result.stderr + "\n" + result.stdout).splitlines()]
    lfs = _lfs_reason(lines)
    if lfs:
        return lfs
    said = [line for line in lines if line.startswith(("error:", "fatal:"))]
    return " ".join(said[-3:]) if said else (result.tail(3) or f"exit {result.exit_code}")


_LFS_SMUDGE = re.compile(r"^fatal: (.+): smudge filter lfs failed$")


def _lfs_reason(lines: list[str]) -> str:
    """"missing Git LFS object for <path>" and git-lfs's own last word on it (the object id it could not get,
    or why git-lfs did not run at all), from the output of a checkout git-lfs's smudge filter failed."""
    paths = [m.group(1) for m in map(_LFS_SMUDGE.match, lines) if m]
    if not paths:
        return ""
    said = [line for line in lines if line and not line.startswith(("error:", "fatal:", "Downloading ", "Errors logged",
                                                                    "Use `git lfs logs"))]
    detail = said[-1].rsplit("): ", 1)[-1] if said else "no output from git-lfs"
    return (f"missing Git LFS object for {paths[-1]}: git-lfs could not get it ({detail[:200]}); fetch it where "
            "it exists (git lfs fetch / git lfs push --all), then sync again")
