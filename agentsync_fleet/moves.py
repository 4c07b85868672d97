"""A checkout move as a transaction: read the facts, decide (`moveplan.plan_move`), execute that plan.

Execution re-checks what the plan depends on (HEAD is still the commit read:
`reset --keep` runs only then, and refuses over a change made meanwhile) and
leaves an *intent record* in the checkout's git dir (`steps.git.INTENT`)
before its first change: run, HEAD before, target, the stash it is about to
make and the paths in it. The record goes when the checkout is whole again;
a record left behind (a `kill -9`, a lost host) is healed by the next run
(`heal.py`). Signals are held while a move is under way (`interrupts.held`),
so Ctrl-C finishes the move instead of leaving the work in a stash.

Only the paths in `plan.stash_paths` are stashed (pathspecs): every other
change stays in place, untouched. If the update itself fails midway (disk
full, an unwritable directory), the files it wrote are put back from HEAD
and the stash popped where it was made: the checkout is as it was.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from .errors import FleetError
from .gitfacts import CheckoutFacts, Process, overlap
from .gitops import Checkout, git_reason
from .interrupts import held
from .models import CommandResult, Host
from .moveplan import MoveFacts, MovePlan, needs_replay, plan_move, stash_paths
from .steps import git as G

# touched paths -> (the critical ones, guard processes running now, why they cannot be seen); None: no guard
GuardReader = Callable[[set[str]], tuple[tuple[str, ...], tuple[Process, ...], str]]
INTENT_WRITE_FAILED = 90  # exit status of `G.with_intent` when the record could not be written


@dataclass(frozen=True)
class Move:
    """How moving a checkout ended."""

    status: str  # ok | conflict | guarded | failed | skipped | unreachable
    head: str
    stash_used: bool = False
    files: tuple[str, ...] = ()
    message: str = ""
    plan: MovePlan | None = None


def read_move_facts(co: Checkout, facts: CheckoutFacts, branch: str | None, *, to: str | None = None,
                    strategy: str = "rebase", guard: GuardReader | None = None,
                    allow_running: bool = False) -> MoveFacts:
    """Complete `facts` with what only a rehearsal tells: the replayed commit, the files that move writes, the
    rehearsed stash pop, the guard processes running now. Stops reading as soon as the plan is settled."""
    mf = MoveFacts(facts, branch, strategy=strategy, to=to, allow_running=allow_running)
    if needs_replay(mf):
        replay = co.rebased(facts.head, facts.target) if strategy == "rebase" else \
            co.merged(facts.head, facts.target, f"Merge {facts.target[:8]} (agentsync)")
        mf = _with(mf, replay=replay)
    first = plan_move(mf)
    if not first.moves:
        return mf
    new = first.new
    if new != facts.target:  # a rebase or merge: it writes other files than origin's diff
        changed = tuple(co.changed(facts.head, new))
        mf = _with(mf, changed=changed, in_the_way=tuple(co.in_the_way(facts.head, new)) if changed else (),
                   identical=tuple(co.identical(facts.head, new)) if changed else ())
    changed = mf.changed if mf.changed is not None else facts.changed
    stash = stash_paths(mf, changed)
    if stash and overlap(stash, changed) and plan_move(mf).outcome == "ok":
        mf = _with(mf, pop_conflicts=co.pop_would_conflict(new))
    if guard is not None and plan_move(mf).outcome == "ok":
        critical, running, blind = guard(set(changed) | set(stash))
        mf = _with(mf, critical=critical, guard_running=running, guard_blind=blind)
    return mf


def _with(mf: MoveFacts, **changes) -> MoveFacts:
    from dataclasses import replace

    return replace(mf, **changes)


def move(co: Checkout, head: str, new: str, run_id: str, guard: GuardReader | None = None,
         allow_running: bool = False) -> Move:
    """Move a checkout from `head` to a commit already made (a merge, relayed patches, a roll-back)."""
    if head == new:
        return Move("ok", head)
    facts = co.facts("", "", fetch=False, target=new)
    if facts.head != head:
        return _head_moved(co, head)
    mf = read_move_facts(co, facts, None, to=new, guard=guard, allow_running=allow_running)
    return execute(co, plan_move(mf), run_id, facts.git_dir)


def execute(co: Checkout, plan: MovePlan, run_id: str, git_dir: str) -> Move:
    """Carry out `plan` on the checkout, holding signals until the checkout is whole again."""
    if not plan.moves:
        return Move(plan.outcome, plan.head or "", files=plan.files, message=plan.reason, plan=plan)
    with held():
        if not plan.stash_paths:
            return _update(co, plan, git_dir)
        return _move_with_stash(co, plan, run_id, git_dir)


def intent_record(plan: MovePlan, run_id: str, stash_name: str = "") -> str:
    return json.dumps({"version": 1, "run": run_id, "head": plan.head, "new": plan.new, "stash": stash_name,
                       "paths": list(plan.stash_paths), "replaced": list(plan.replaced), "started": int(time.time()),
                       "by": f"{socket.gethostname()} pid {os.getpid()}"}, separators=(",", ":"))


def _update(co: Checkout, plan: MovePlan, git_dir: str, record: str | None = None) -> Move:
    """Move the checkout with nothing (left) to stash; the record goes with success."""
    head, new = plan.head or "", plan.new or ""
    reset = G.reset_keep(co.path, new, expect=head, replace=plan.replaced)
    moved = co.try_run(G.with_intent(git_dir, record or intent_record(plan, ""), reset, clear_on_success=True),
                       f"update to {new[:8]}")
    if moved.ok:
        return Move("ok", new, plan=plan)
    if moved.exit_code == INTENT_WRITE_FAILED:
        return _no_record(co, plan, moved)
    if moved.exit_code in (G.HEAD_MOVED, G.IDENTICAL_CHANGED):
        co.try_run(G.clear_intent(git_dir))
        return _head_moved(co, head) if moved.exit_code == G.HEAD_MOVED else _identical_changed(plan, moved)
    return _undo_update(co, plan, git_dir, moved, stash=None)


def _identical_changed(plan: MovePlan, result: CommandResult, stash_used: bool = False) -> Move:
    return Move("failed", plan.head or "", stash_used=stash_used, plan=plan,
                message=f"{result.tail(1)} (an untracked file that held the incoming bytes); run it again")


def _no_record(co: Checkout, plan: MovePlan, result: CommandResult) -> Move:
    return Move("failed", plan.head or "", plan=plan,
                message=f"could not write the move's intent record, so nothing was changed: {git_reason(result)}")


def _head_moved(co: Checkout, head: str, stash_used: bool = False) -> Move:
    now = co.rev("HEAD") or head
    return Move("failed", now, stash_used=stash_used,
                message=f"HEAD moved from {head[:8]} to {now[:8]} while agentsync worked (a commit or checkout on "
                        "the host); agentsync changed nothing, run it again")


def _undo_update(co: Checkout, plan: MovePlan, git_dir: str, failed: CommandResult, stash: str | None) -> Move:
    """The update stopped midway (disk full, an unwritable directory, a filter): put back from HEAD what it
    wrote, pop the stash, clear the record. `reset --keep` moves HEAD and the index only at the very end, so
    HEAD is still the old commit and every path the update writes was clean (or absent) before it began."""
    head = plan.head or ""
    reason = git_reason(failed)
    if co.rev("HEAD") != head:
        return Move("failed", co.rev("HEAD") or head, stash_used=bool(stash), plan=plan,
                    message=f"update to {(plan.new or '')[:8]} failed ({reason}) and HEAD is no longer "
                            f"{head[:8]}; left as it is{_stash_note(co, stash)}")
    changed = tuple(co.changed(head, plan.new or head))
    restored = co.try_run(G.restore_paths(co.path, changed), "put back what the failed update wrote")
    if restored.ok and plan.replaced:  # they held the incoming bytes: written back from the target, untracked
        restored = co.try_run(G.restore_identical(co.path, plan.new or head, plan.replaced),
                              "put back the untracked files it replaced")
    if not restored.ok:
        return Move("failed", head, stash_used=bool(stash), files=changed, plan=plan,
                    message=f"update failed ({reason}), and putting back its files failed too "
                            f"({git_reason(restored)}){_stash_note(co, stash)}")
    if stash:
        popped = co.try_run(G.stash_pop_ours(co.path, stash), "restore stash")
        if not popped.ok:
            return Move("failed", head, stash_used=True, plan=plan,
                        message=f"update failed ({reason}); the files are back but the stash did not pop "
                                f"({git_reason(popped)}){_stash_note(co, stash)}")
    co.try_run(G.clear_intent(git_dir))
    return Move("failed", head, stash_used=bool(stash), plan=plan,
                message=f"update to {(plan.new or '')[:8]} failed, checkout put back as it was: {reason}")


def _stash_note(co: Checkout, stash: str | None) -> str:
    if not stash:
        return ""
    return (f"; your uncommitted changes are safe in stash {stash[:12]}: restore with `agentsync recover --hosts "
            f"{co.host}` (or by hand: git -C {co.path} stash list, then git stash pop --index stash@{{N}})")


def _move_with_stash(co: Checkout, plan: MovePlan, run_id: str, git_dir: str) -> Move:
    new = plan.new or ""
    name = f"agentsync {run_id} {uuid.uuid4().hex[:8]}: autostash before update to {new[:8]}"
    try:
        return _stash_and_move(co, plan, run_id, git_dir, name)
    except FleetError as exc:  # cut off (a timeout, a lost host) once a stash may exist: say where to look
        exc.message += (f"; uncommitted changes not in the checkout are in the stash '{name}' (git stash list); "
                        f"`agentsync recover --hosts {co.host}` puts them back")
        raise


def _stash_and_move(co: Checkout, plan: MovePlan, run_id: str, git_dir: str, name: str) -> Move:
    head, new = plan.head or "", plan.new or ""
    record = intent_record(plan, run_id, name)
    stashed = co.try_run(G.with_intent(git_dir, record, G.stash_push_paths(co.path, name, plan.stash_paths)),
                         f"stash {len(plan.stash_paths)} path(s) the update touches")
    if stashed.exit_code == INTENT_WRITE_FAILED:
        return _no_record(co, plan, stashed)
    stash = stashed.stdout.strip() or None if stashed.ok else None
    if stash is None:
        if not stashed.ok:
            co.try_run(G.clear_intent(git_dir))
            return Move("failed", head, plan=plan, message=f"could not stash: {git_reason(stashed)}; nothing "
                                                           "was changed")
        return _update(co, plan, git_dir, record)  # committed or discarded meanwhile: nothing of ours to pop
    moved = co.try_run(G.reset_keep(co.path, new, expect=head, replace=plan.replaced), f"update to {new[:8]}")
    if not moved.ok:
        if moved.exit_code in (G.HEAD_MOVED, G.IDENTICAL_CHANGED):  # HEAD is where the stash was made: pops cleanly
            restored = co.try_run(G.clear_intent(git_dir, G.stash_pop_ours(co.path, stash)), "restore stash")
            if restored.ok and moved.exit_code == G.IDENTICAL_CHANGED:
                return _identical_changed(plan, moved, stash_used=True)
            if restored.ok:
                return _head_moved(co, head, stash_used=True)
            return Move("failed", co.rev("HEAD") or head, stash_used=True, plan=plan,
                        message=f"could not update, nor restore the stash{_stash_note(co, stash)}")
        return _undo_update(co, plan, git_dir, moved, stash)
    popped = co.try_run(G.clear_intent(git_dir, G.stash_pop_ours(co.path, stash)), "restore stash")
    if popped.ok:
        return Move("ok", new, stash_used=True, plan=plan)
    files = tuple(co.try_run(G.conflicted(co.path)).stdout.splitlines())
    return _put_back(co, plan, git_dir, stash, files, popped)


def _put_back(co: Checkout, plan: MovePlan, git_dir: str, stash: str, files: tuple[str, ...],
              popped: CommandResult) -> Move:
    """A pop failed after the move: return to the old HEAD and re-apply the stash where it was made.

    Safe because a failed pop keeps the stash: every change to a stashed path
    is in it, and the other paths were never touched. `reset --merge`, not
    `--hard`: it drops what the partial pop merged in, but keeps a change
    someone made meanwhile, which is in no stash, or refuses.
    """
    head, new = plan.head or "", plan.new or ""
    if co.rev("refs/stash") != stash:
        return Move("failed", co.rev("HEAD") or head, stash_used=True, files=files, plan=plan,
                    message=f"stash pop failed and the stash moved{_stash_note(co, stash)}")
    back_to_head = co.try_run(G.reset_merge(co.path, head, expect=new), "put HEAD back (changes are in the stash)")
    if not back_to_head.ok:
        return Move("failed", co.rev("HEAD") or new, stash_used=True, files=files, plan=plan,
                    message=f"stash pop failed, and going back to {head[:8]} would discard changes made meanwhile; "
                            f"the checkout is at {new[:8]}{_stash_note(co, stash)}")
    back = co.try_run(G.clear_intent(git_dir, G.stash_pop_ours(co.path, stash)), "re-apply stash at old HEAD")
    if not back.ok:
        return Move("failed", head, stash_used=True, files=files, plan=plan,
                    message=f"could not re-apply the stash{_stash_note(co, stash)}")
    return Move("conflict", head, stash_used=True, files=files, plan=plan,
                message=f"restoring uncommitted edits conflicted ({popped.tail(2)}); host put back as it was")


def move_commands(host: Host, plan: MovePlan | None, target: str = "<new HEAD>", replay: bool = True) -> tuple[str, ...]:
    """The commands `moves.execute` runs for `plan` (None: a move decided only at run time, to `target`).

    Bookkeeping is summarised: the scratch worktree around a rebase, the intent record's text."""
    if plan is not None and not plan.moves:
        return (f"# no move: {plan.predicted}",)
    git_dir, record = "<.git>", "<intent record>"
    head = (plan.head if plan else None) or "<HEAD>"
    new = (plan.new if plan else None) or target
    commands: list[str] = []
    if (plan is None and replay) or (plan is not None and plan.action in ("rebase", "merge")):
        scratch = "<.git>/agentsync-scratch-<id>"
        commands += [G.scratch_add(host.repo, scratch, head), G.rebase(scratch, G.origin_ref(host)),
                     G.scratch_remove(host.repo, scratch)]
    paths = plan.stash_paths if plan else ()
    if plan is None:
        commands.append("# staged paths and edits the update overlaps are stashed (those paths only) around it:")
        paths = ("<paths>",)
    replace = plan.replaced if plan else ()
    reset = G.reset_keep(host.repo, new, expect=head, replace=replace)
    if not paths:
        return (*commands, G.with_intent(git_dir, record, reset, True))
    return (*commands, G.with_intent(git_dir, record, G.stash_push_paths(host.repo, "agentsync <run>: autostash",
                                                                         paths)),
            reset, G.clear_intent(git_dir, G.stash_pop_ours(host.repo, "<stash>")))
