"""The one decision about moving a checkout: facts in, a `MovePlan` out (pure, no I/O).

`plan`/`--dry-run` print the plan this function returns; a real run executes
that very plan (`gitops.execute`), re-checking at each step the facts it
depends on (HEAD still where it was read, `reset --keep` refusing over a
change made meanwhile). The dry run and the run cannot disagree because
there is only one description of what will happen: this function.

Rules, in the order they apply:
1. A checkout that is missing, on another branch, in the middle of a rebase or
   merge, or whose origin branch does not exist, is left alone.
2. At origin or ahead of it: nothing to do.
3. A stale `index.lock` makes every git write fail: say so, name it, change nothing.
4. Own commits not on origin are replayed in a scratch worktree first (the
   rehearsal, one of the facts); a conflict there is a conflict, a refused commit
   (signing, identity, a hook) is a failure with git's words.
5. Untracked or ignored files where the update writes are a conflict — unless they
   already hold exactly the bytes (and executable bit) it writes there (a file
   push-code sent, then committed on the laptop): those are replaced by the same.
6. Only staged paths and paths the update touches are stashed (pathspecs,
   never the whole tree); a file a running process holds open for writing is
   never rewritten: refused, the process named.
7. Guards: a critical file would change while its production process runs.
8. A stash pop that would conflict (rehearsed) is a conflict before anything moves.
"""

from __future__ import annotations

from dataclasses import dataclass

from .gitfacts import CheckoutFacts, Commit, Process, Writer, overlap

__all__ = ["Commit", "GuardVerdict", "MoveFacts", "MovePlan", "Process", "Replay", "Writer", "plan_move"]


@dataclass(frozen=True)
class Replay:
    """Own commits replayed onto the target in a scratch worktree: the new commit, or why not."""

    new: str | None
    conflicts: tuple[str, ...] = ()
    output: str = ""
    refused: str = ""  # git could not *commit* (gpg signing, identity, a hook): its own words


@dataclass(frozen=True)
class MoveFacts:
    """Everything the decision needs about one checkout, read just before."""

    checkout: CheckoutFacts
    branch: str | None  # the branch the inventory expects checked out (None: any)
    strategy: str = "rebase"  # how own commits are combined with the target: rebase | merge
    to: str | None = None  # move to this commit, made already (a merge, relayed patches, a roll-back)
    replay: Replay | None = None  # when HEAD is not in the target: the rehearsal
    changed: tuple[str, ...] | None = None  # files the move writes (HEAD → new); None: checkout.changed
    in_the_way: tuple[str, ...] | None = None  # untracked/ignored files there; None: checkout.in_the_way
    identical: tuple[str, ...] | None = None  # of those, the ones holding the incoming bytes; None: checkout's
    pop_conflicts: tuple[str, ...] = ()  # the rehearsed stash pop at the new commit
    critical: tuple[str, ...] = ()  # touched paths that are guard-critical
    guard_running: tuple[Process, ...] = ()  # guard processes running now (read only when `critical`)
    guard_blind: str = ""  # why the guard cannot see the host's processes: it refuses then (fail closed)
    allow_running: bool = False
    reachable: bool = True
    unreachable_reason: str = ""


@dataclass(frozen=True)
class GuardVerdict:
    files: tuple[str, ...]
    process: Process
    allowed: bool
    unknown: str = ""  # the processes could not be seen: refused unless allowed


@dataclass(frozen=True)
class MovePlan:
    """What will happen to one checkout, and why."""

    action: str  # nothing | fast-forward | rebase | merge | move | refuse
    outcome: str  # ok | conflict | guarded | failed | skipped | unreachable
    head: str | None = None
    target: str | None = None
    new: str | None = None  # the commit HEAD ends at (the target, or the rehearsed rebase/merge)
    reason: str = ""
    files: tuple[str, ...] = ()
    stash_paths: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()  # untracked files already holding the incoming bytes: replaced by the same
    guard: GuardVerdict | None = None
    incoming: tuple[Commit, ...] = ()
    diffstat: str = ""
    kept: int = 0  # own commits kept on top (not on origin)

    @property
    def moves(self) -> bool:
        return self.action in ("fast-forward", "rebase", "merge", "move")

    @property
    def predicted(self) -> str:
        """The outcome as one line: `ok`, `conflict in a, b`, `guarded by X on f`, `skipped: why`."""
        if self.outcome == "conflict":
            return f"conflict in {', '.join(self.files)}" if self.files else "conflict"
        if self.outcome == "guarded" and self.guard is not None and self.guard.unknown:
            return f"guarded: {self.guard.unknown}"
        if self.outcome == "guarded" and self.guard is not None:
            return f"guarded by {self.guard.process.pattern or self.guard.process.command} on " \
                   f"{', '.join(self.guard.files)}"
        if self.outcome == "guarded" and self.files:
            return f"guarded: {self.reason}"
        return self.outcome if self.outcome == "ok" else f"{self.outcome}: {self.reason}"


def stash_paths(facts: MoveFacts, changed: tuple[str, ...]) -> tuple[str, ...]:
    """Paths that must leave the tree for the update: staged ones (`reset --keep` would unstage them) and
    tracked edits that overlap what the update writes. Everything else stays in place, untouched."""
    dirty = facts.checkout.dirty
    must = set(dirty.staged) | {p for p in dirty.tracked if overlap((p,), changed)}
    if not must:
        return ()
    sources = {source for new, source in dirty.renames if new in must}  # a staged rename takes its source along
    return tuple(p for p in dirty.tracked if p in must | sources)


def plan_move(facts: MoveFacts) -> MovePlan:
    """Decide; see the module docstring for the rules."""
    c = facts.checkout
    base = dict(head=c.head, target=c.target, incoming=c.incoming, diffstat=c.diffstat)
    left_alone = _left_alone(facts)
    if left_alone:
        outcome, reason = left_alone
        return MovePlan("refuse", outcome, reason=reason, **base)
    if c.head == c.target or (c.target_in_head and facts.to is None):
        return MovePlan("nothing", "ok", new=c.head, kept=c.ahead, reason="up to date", **base)
    if c.index_lock_age is not None:
        return MovePlan("refuse", "failed", reason=_index_lock_reason(c.index_lock_age), **base)
    if facts.to is not None:
        action, new = "move", facts.to
    elif c.head_in_target:
        action, new = "fast-forward", c.target
    else:
        refused = _replay_refusal(facts, base)
        if refused is not None:
            return refused
        action, new = facts.strategy, facts.replay.new  # type: ignore[union-attr]
    return _check_tree(facts, action, new, base)


def needs_replay(facts: MoveFacts) -> bool:
    """Must own commits be replayed (in a scratch worktree) before the plan can be made?"""
    c = facts.checkout
    return (facts.replay is None and facts.to is None and _left_alone(facts) is None and c.head != c.target
            and not c.target_in_head and not c.head_in_target and c.index_lock_age is None)


def _left_alone(facts: MoveFacts) -> tuple[str, str] | None:
    c = facts.checkout
    if not facts.reachable:
        return "unreachable", facts.unreachable_reason
    if not c.present:
        return "failed", "the repo does not exist"
    if c.head is None:
        return "failed", "the checkout has no commit yet"
    if facts.branch is not None and c.branch != f"refs/heads/{facts.branch}":
        now = c.branch.removeprefix("refs/heads/") or "(detached)"
        return "skipped", f"checked out on '{now}', inventory expects '{facts.branch}'; left alone"
    if c.in_progress:
        return "skipped", f"{', '.join(c.in_progress)} in progress; left alone (finish or abort it by hand)"
    if c.fetch_rc:
        return "failed", f"git fetch failed: {c.fetch_error or 'no output'}"
    if c.target is None:
        return "failed", "the origin branch does not exist (is the branch pushed?)"
    return None


def _index_lock_reason(age: float) -> str:
    return (f"a stale .git/index.lock ({_age(age)} old) blocks every git write; if no git command is running "
            "there, remove it: rm .git/index.lock")


def _age(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _replay_refusal(facts: MoveFacts, base: dict) -> MovePlan | None:
    replay = facts.replay
    what = "rebasing local commits onto" if facts.strategy == "rebase" else "merging"
    if replay is None:
        return MovePlan("refuse", "failed", reason="own commits were not rehearsed", **base)
    if replay.refused:
        return MovePlan("refuse", "failed", reason=f"git could not commit while {what} origin (not a conflict): "
                                                   f"{replay.refused}", **base)
    if replay.new is None:
        return MovePlan("refuse", "conflict", files=replay.conflicts,
                        reason=f"{what} origin conflicts; nothing was changed\n{replay.output}".rstrip(), **base)
    return None


def _check_tree(facts: MoveFacts, action: str, new: str, base: dict) -> MovePlan:
    c = facts.checkout
    changed = c.changed if facts.changed is None else facts.changed
    in_the_way = c.in_the_way if facts.in_the_way is None else facts.in_the_way
    kept = c.ahead
    if in_the_way:
        return MovePlan("refuse", "conflict", files=tuple(in_the_way), kept=kept,
                        reason="incoming commits need paths taken here by untracked or ignored files; move them "
                               "away", **base)
    stash = stash_paths(facts, changed)
    touched = set(changed) | set(stash)
    writers = sorted({w for w in c.writers if w.path in touched}, key=lambda w: (w.path, w.process.pid))
    if writers:
        w = writers[0]
        return MovePlan("refuse", "guarded", files=tuple(x.path for x in writers), kept=kept,
                        reason=f"{w.path} is open for writing by pid {w.process.pid} ({w.process.command}); "
                               "the move would rewrite it under that process. Nothing was changed", **base)
    verdict = _guard(facts)
    if verdict is not None and verdict.unknown and not verdict.allowed:
        return MovePlan("refuse", "guarded", files=verdict.files, guard=verdict, kept=kept,
                        reason=f"refused: {verdict.unknown}, so {', '.join(verdict.files)} may be in use by a guard "
                               "process; nothing was changed. Fix what the guard needs on that host (see `agentsync "
                               "health`), or rerun with --allow-running", **base)
    if verdict is not None and not verdict.allowed:
        p = verdict.process
        return MovePlan("refuse", "guarded", files=verdict.files, guard=verdict, kept=kept,
                        reason=f"refused: {', '.join(verdict.files)} would change while '{p.pattern}' runs "
                               f"(pid {p.pid}: {p.command}); nothing was changed. Stop it yourself first, or "
                               "rerun with --allow-running", **base)
    if stash and facts.pop_conflicts:
        return MovePlan("refuse", "conflict", files=facts.pop_conflicts, kept=kept, guard=verdict,
                        reason="uncommitted edits conflict with incoming commits; nothing was changed", **base)
    identical = c.identical if facts.identical is None else facts.identical
    return MovePlan(action, "ok", new=new, stash_paths=stash, replaced=tuple(identical), guard=verdict, kept=kept,
                    **base)


def _guard(facts: MoveFacts) -> GuardVerdict | None:
    if facts.critical and facts.guard_blind:
        return GuardVerdict(tuple(sorted(facts.critical)), Process(0, "?"), facts.allow_running, facts.guard_blind)
    if not facts.critical or not facts.guard_running:
        return None
    return GuardVerdict(tuple(sorted(facts.critical)), facts.guard_running[0], facts.allow_running)
