"""Moving a checkout to a new commit without losing or disturbing anything.

The rules, in the order they are applied:

1. New commits are computed in a *scratch* worktree (a detached `git worktree`
   inside .git), never in the user's checkout: a rebase or merge that
   conflicts is aborted there and the user's files were never touched.
2. Before the checkout moves, we check that it can move cleanly: untracked or
   ignored files at incoming paths, or where an incoming directory goes, are a
   conflict (git would refuse or silently overwrite them); if uncommitted edits overlap the
   incoming change, the stash pop is rehearsed in a scratch worktree first.
3. The guard callback sees every path the move would change (incoming files
   plus, when a stash is needed, the uncommitted ones it briefly takes away)
   and may refuse.
4. The branch moves with `reset --keep` (which refuses rather than lose local
   changes, and only while HEAD is still the commit we read). It keeps
   unstaged edits of files it does not change in place, untouched, so only
   staged changes (which it would unstage) and edits overlapping the update
   are stashed first and popped with `--index` after, so staged stays
   staged. Untracked files are never stashed: the move does not touch them,
   and a running process may be writing to one.
5. If the pop still fails, the checkout is put back at its old HEAD and the
   stash re-applied where it was made; the stash is never dropped otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .errors import FleetError, StepFailed
from .gitfacts import CheckoutFacts, Dirty, overlap, parse_facts, parse_status_z
from .models import CommandResult, Host
from .records import CommandRecord, StepLog
from .shell import join, path_arg
from .steps import git as G


@dataclass(frozen=True)
class Move:
    """How moving a checkout ended."""

    status: str  # ok | conflict | guarded | failed
    head: str
    stash_used: bool = False
    files: tuple[str, ...] = ()
    message: str = ""


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

    def facts(self, remote: str, branch: str, fetch: bool) -> CheckoutFacts:
        """Everything a move decides on, in one round trip (see `steps.git.facts_script`)."""
        result = self.run(join(["sh", "-c", G.facts_script(self.path, remote, branch, fetch)]),
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

    # ------------------------------------------------------------ scratch worktrees

    def _scratch_path(self) -> str:
        common = self.run(G.common_dir(self.path)).stdout.strip()
        return f"{common}/agentsync-scratch-{uuid.uuid4().hex[:10]}"

    def in_scratch(self, start: str, work: Callable[[str], tuple[str | None, tuple[str, ...], str]]):
        """Run `work(scratch_path)` in a throwaway detached worktree at `start`; always removed after."""
        scratch = self._scratch_path()
        self.run(G.scratch_add(self.path, scratch, start), "prepare scratch worktree")
        try:
            return work(scratch)
        finally:
            self.try_run(G.scratch_remove(self.path, scratch))

    def rebased(self, head: str, onto: str) -> tuple[str | None, tuple[str, ...], str]:
        """(new commit, (), "") with `head`'s own commits replayed on `onto`, or (None, conflicts, output)."""
        return self._in_scratch_or_abort(head, lambda scratch: G.rebase(scratch, onto), G.rebase_abort,
                                         f"rebase onto {onto[:8]} (scratch)")

    def merged(self, head: str, ref: str, message: str) -> tuple[str | None, tuple[str, ...], str]:
        """(merge commit of `ref` into `head`, (), "") or (None, conflicts, output)."""
        return self._in_scratch_or_abort(head, lambda scratch: G.merge(scratch, ref, message), G.merge_abort,
                                         f"merge {ref} (scratch)")

    def _in_scratch_or_abort(self, start: str, command: Callable[[str], str], abort: Callable[[str], str],
                             what: str) -> tuple[str | None, tuple[str, ...], str]:
        """Run a history-rewriting command in a scratch worktree; on conflict list the files and abort it."""

        def work(scratch: str):
            result = self.try_run(command(scratch), what)
            if result.ok:
                return Checkout(self.session, scratch, self.timeout, self.log, self.host).rev("HEAD"), (), ""
            files = tuple(self.try_run(G.conflicted(scratch)).stdout.splitlines())
            self.try_run(abort(scratch))
            return None, files, result.tail()

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


Guard = Callable[[set[str]], str | None]  # paths the move touches -> refusal message, or None


def move(co: Checkout, head: str, new: str, guard: Guard, run_id: str, known: CheckoutFacts | None = None) -> Move:
    """Bring the checkout from `head` to `new`, keeping every uncommitted and untracked file.

    `known` (facts read just before) saves round trips when it already
    describes this move (same HEAD, target == new).
    """
    if head == new:
        return Move("ok", head)
    if known is not None and known.head == head and known.target == new:
        incoming, in_the_way, dirty = list(known.changed), list(known.in_the_way), known.dirty
    else:
        incoming = co.changed(head, new)
        in_the_way = co.in_the_way(head, new) if incoming else []
        dirty = known.dirty if known is not None and known.head == head else co.dirty()
    if in_the_way:
        return Move("conflict", head, files=tuple(in_the_way),
                    message="incoming commits need paths taken here by untracked or ignored files; move them away")
    overlapping = overlap(dirty.tracked, incoming)
    stash = bool(dirty.staged) or overlapping  # else reset --keep keeps every edit in place, untouched
    refusal = guard(set(incoming) | (set(dirty.tracked) if stash else set()))
    if refusal:
        return Move("guarded", head, message=refusal)
    if not stash:
        return _update(co, head, new)
    if overlapping:
        conflicts = co.pop_would_conflict(new)
        if conflicts:
            return Move("conflict", head, files=conflicts,
                        message="uncommitted edits conflict with incoming commits; nothing was changed")
    return _move_with_stash(co, head, new, run_id)


def _reset(co: Checkout, head: str, new: str) -> CommandResult:
    """`reset --keep` to `new`, only while HEAD is still `head` (see `steps.git.reset_keep`)."""
    return co.try_run(G.reset_keep(co.path, new, expect=head), f"update to {new[:8]}")


def _update(co: Checkout, head: str, new: str) -> Move:
    """Move a checkout with nothing to stash."""
    moved = _reset(co, head, new)
    if moved.exit_code == G.HEAD_MOVED:
        return _head_moved(co, head)
    co.ensure(moved, f"update to {new[:8]}")
    return Move("ok", new)


def _head_moved(co: Checkout, head: str, stash_used: bool = False) -> Move:
    now = co.rev("HEAD") or head
    return Move("failed", now, stash_used=stash_used,
                message=f"HEAD moved from {head[:8]} to {now[:8]} while agentsync worked (a commit or checkout on "
                        "the host); agentsync changed nothing, run it again")


def _move_with_stash(co: Checkout, head: str, new: str, run_id: str) -> Move:
    name = f"agentsync {run_id}: autostash before update to {new[:8]}"
    try:
        return _stash_and_move(co, head, new, name)
    except FleetError as exc:  # cut off (a timeout, a lost host) once a stash may exist: say where to look
        exc.message += f"; uncommitted changes not in the checkout are in the stash '{name}' (git stash list)"
        raise


def _stash_and_move(co: Checkout, head: str, new: str, name: str) -> Move:
    stash = co.stash(name)
    if stash is None:  # committed or discarded meanwhile; a stash already on the list is not ours to pop
        return _update(co, head, new)
    moved = _reset(co, head, new)
    if not moved.ok:  # HEAD is where the stash was made: it pops back cleanly
        restored = co.try_run(G.stash_pop(co.path), "restore stash")
        if not restored.ok:
            return Move("failed", co.rev("HEAD") or head, stash_used=True,
                        message=f"could not update, nor restore the stash; your changes are safe in stash {stash}")
        if moved.exit_code == G.HEAD_MOVED:
            return _head_moved(co, head, stash_used=True)
        return Move("failed", head, stash_used=True, message=f"could not update: {moved.tail(3)}")
    popped = co.try_run(G.stash_pop(co.path), "restore stash")
    if popped.ok:
        return Move("ok", new, stash_used=True)
    files = tuple(co.try_run(G.conflicted(co.path)).stdout.splitlines())
    return _put_back(co, head, new, stash, files, popped)


def _put_back(co: Checkout, head: str, new: str, stash: str | None, files: tuple[str, ...],
              popped: CommandResult) -> Move:
    """A pop failed after the move: return to `head` and re-apply the stash where it was made.

    Safe because a failed pop keeps the stash: every change to a tracked file
    the user had is in it (checked before anything is reset), and untracked
    files were never touched. `reset --merge`, not `--hard`: it drops what the
    partial pop merged in, but keeps a change someone made meanwhile, which is
    in no stash, or refuses.
    """
    if not stash or co.rev("refs/stash") != stash:
        return Move("failed", co.rev("HEAD") or head, stash_used=True, files=files,
                    message=f"stash pop failed and the stash moved; your changes are in stash {stash}")
    back_to_head = co.try_run(G.reset_merge(co.path, head, expect=new), "put HEAD back (changes are in the stash)")
    if not back_to_head.ok:
        return Move("failed", co.rev("HEAD") or new, stash_used=True, files=files,
                    message=f"stash pop failed, and going back to {head[:8]} would discard changes made meanwhile; "
                            f"the checkout is at {new[:8]}, your uncommitted changes are safe in stash {stash}")
    back = co.try_run(G.stash_pop(co.path), "re-apply stash at old HEAD")
    if not back.ok:
        return Move("failed", head, stash_used=True, files=files,
                    message=f"could not re-apply the stash; your changes are safe in stash {stash}")
    return Move("conflict", head, stash_used=True, files=files,
                message=f"restoring uncommitted edits conflicted ({popped.tail(2)}); host put back as it was")


def move_commands(host: Host, dirty: bool, rebase: bool, target: str) -> tuple[str, ...]:
    """The commands a move runs, for the plan (scratch bookkeeping commands are summarised)."""
    scratch = "<.git>/agentsync-scratch-<id>"
    commands = []
    if rebase:
        commands += [G.scratch_add(host.repo, scratch, "HEAD"), G.rebase(scratch, target),
                     G.scratch_remove(host.repo, scratch)]
        target = "<rebased HEAD>"
    if dirty:  # whether the stash is needed is known only once the incoming files are
        commands += ["# uncommitted edits stay in place; only staged changes and edits that overlap the update "
                     "are stashed around the reset:", G.stash_push(host.repo, "agentsync <run>: autostash")]
    commands.append(G.reset_keep(host.repo, target, expect="<HEAD>"))
    if dirty:
        commands.append(G.stash_pop(host.repo))
    return tuple(commands)
