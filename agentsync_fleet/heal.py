"""Put right what a cut-off move left on a host: its stash, its scratch worktrees, its intent record.

A move writes an intent record into the checkout's git dir before its first
change (`moves.py`) and removes it when the checkout is whole again. A record
still there means the move was cut off (`kill -9`, a lost host, a power cut).
The next sync-all, pull or push heals it before anything else, and
`agentsync recover` does it on purpose:

- scratch worktrees (`<common dir>/agentsync-scratch-*`) are removed: only
  agentsync makes them, and only for the length of one command sequence;
- an `index.lock` the crashed git left is removed, only when it is no older
  than the record and no process has it open (`steps.git.remove_crashed_index_lock`);
- an update cut off half-way (HEAD still the commit before it) is put back:
  every path the update changes that holds exactly what the update writes
  returns to HEAD. Before the move those paths were clean (or stashed), so
  that content is the update's, never anyone's work; a path holding anything
  else stops the healing and is named;
- the stash the record names is popped with `--index` where it can only pop
  cleanly: HEAD is the commit it was made on or the move's target (whose pop
  was rehearsed), and none of its paths has been changed since. Otherwise it is
  left alone, and the host is reported with the exact command to restore it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .gitfacts import CheckoutFacts, Dirty, parse_status_z
from .gitops import Checkout, git_reason
from .shell import join, path_arg
from .steps import git as G


@dataclass(frozen=True)
class Healed:
    """What healing did on one checkout, and what it could not do safely."""

    actions: tuple[str, ...] = ()
    problem: str = ""
    stashes: tuple[dict, ...] = ()  # agentsync stashes still on the list: {ref, message, files}

    @property
    def ok(self) -> bool:
        return not self.problem


def heal(co: Checkout, facts: CheckoutFacts) -> Healed:
    """Heal `co` as `facts` (read just now, the fleet lock held) describe it."""
    actions = [_remove_scratch(co, path) for path in facts.scratch]
    if not facts.intent:
        return Healed(tuple(actions))
    try:
        record = json.loads(facts.intent)
    except ValueError:
        return Healed(tuple(actions), f"unreadable intent record {facts.git_dir}/{G.INTENT}; look at it, then remove "
                                      "it by hand")
    done, problem = _restore(co, facts, record)
    if not problem:
        co.run(G.clear_intent(facts.git_dir), "clear the intent record")
    return Healed(tuple(actions + done), problem)


def _remove_scratch(co: Checkout, path: str) -> str:
    """`worktree remove --force` (agentsync's own scratch, never the user's); a directory git no longer knows is
    deleted outright, only under the scratch prefix of the common git dir."""
    if co.try_run(G.scratch_remove(co.path, path), "remove a leftover scratch worktree").ok:
        return f"removed leftover scratch worktree {path}"
    if f"/{G.SCRATCH_PREFIX}" not in path:
        return f"left {path} (not an agentsync scratch path)"
    co.run(join(["rm", "-rf", "--", path]), "remove a leftover scratch directory")
    return f"removed leftover scratch directory {path}"


def _restore(co: Checkout, facts: CheckoutFacts, record: dict) -> tuple[list[str], str]:
    run, name = record.get("run", "?"), record.get("stash", "")
    head, new = record.get("head"), record.get("new")
    where = f"HEAD is at {(facts.head or '?')[:8]}"
    done, problem = _crashed_git(co, facts, run)
    if not problem and head and new and facts.head == head != new:
        more, problem = _put_back_update(co, head, new, run, tuple(record.get("replaced") or ()))
        done += more
    if problem:
        return done, problem
    if not name:
        return done + [f"cleared the record of move {run} (no stash was involved; {where})"], ""
    more, problem = _pop_stash(co, facts, record, where)
    return done + more, problem


def _crashed_git(co: Checkout, facts: CheckoutFacts, run: str) -> tuple[list[str], str]:
    """Remove the `index.lock` a git killed during the move left; any other lock is reported, not touched."""
    if facts.index_lock_age is None:
        return [], ""
    verdict = co.run(G.remove_crashed_index_lock(facts.git_dir), "remove the index.lock of a crashed git").stdout
    verdict = verdict.strip()
    if verdict == "removed":
        return [f"removed {facts.git_dir}/index.lock left by the git that move {run} was running"], ""
    if verdict == "absent":
        return [], ""
    why = {"older": "it is older than the move", "unseen": "no way to see whether a process holds it"}.get(
        verdict, f"process {verdict.removeprefix('held ')} has it open")
    return [], (f"move {run} was cut off, and {facts.git_dir}/index.lock blocks git ({why}); if no git command "
                f"is running there, remove it (rm {path_arg(facts.git_dir + '/index.lock')}) and run again")


def _put_back_update(co: Checkout, head: str, new: str, run: str, replaced: tuple[str, ...]) -> tuple[list[str], str]:
    """HEAD is still the commit before the update: return what the update wrote half-way to HEAD. The untracked
    files it was replacing with the same bytes (`replaced`) are written back, untracked, as `moves` does."""
    changed = co.changed(head, new)
    touched = _touched(co, changed).paths if changed else set()
    if not touched:
        return _put_back_replaced(co, new, replaced)
    verdicts = [item.split("\t", 1) for item in co.run(G.update_writes(co.path, new, sorted(touched))).stdout
                .split("\0") if "\t" in item]
    theirs = [p for w, p in verdicts if w != "ours"]
    if theirs:
        return [], (f"move {run} was cut off half-way through its update to {new[:8]}, and {', '.join(theirs)} "
                    f"hold(s) changes that are not the update's; left as it is for you to look at (HEAD is "
                    f"{head[:8]}; the update's files: git -C {path_arg(co.path)} diff --stat {head[:8]} {new[:8]})")
    ours = [p for _, p in verdicts if p not in replaced]
    if ours:
        co.run(G.restore_paths(co.path, ours), "put back what a cut-off update wrote")
    done = [f"put back {len(ours)} file(s) the cut-off update of move {run} wrote: {', '.join(ours[:5])}"
            + (" ..." if len(ours) > 5 else "")] if ours else []
    return done + _put_back_replaced(co, new, replaced)[0], ""


def _put_back_replaced(co: Checkout, new: str, replaced: tuple[str, ...]) -> tuple[list[str], str]:
    if not replaced:
        return [], ""
    co.run(G.restore_identical(co.path, new, replaced), "put back the untracked files the update was replacing")
    return [f"put back {len(replaced)} untracked file(s) the cut-off update was replacing with the same bytes"], ""


def _touched(co: Checkout, paths) -> Dirty:
    """Which of `paths` differ from HEAD (staged or not), or are untracked."""
    return parse_status_z(co.run(G.git(co.path, "--literal-pathspecs", "status", "--porcelain=v1", "-z",
                                       "--untracked-files=all", "--", *paths)).stdout)


def _pop_stash(co: Checkout, facts: CheckoutFacts, record: dict, where: str) -> tuple[list[str], str]:
    run, name = record.get("run", "?"), record.get("stash", "")
    head, new, paths = record.get("head"), record.get("new"), tuple(record.get("paths") or ())
    ref = find_stash(co, name)
    if ref is None:
        return [f"cleared the record of move {run} (its stash was already restored or never made; {where})"], ""
    if facts.head not in (head, new):
        return [], (f"move {run} was cut off and HEAD has moved since ({where}); its stash {ref} is kept: "
                    f"{restore_command(co.path, ref)}")
    touched = _touched(co, paths)
    if touched.tracked or touched.untracked:
        return [], (f"move {run} was cut off, and {', '.join(touched.paths)} changed since; its stash {ref} is "
                    f"kept rather than merged over them: {restore_command(co.path, ref)}")
    popped = co.try_run(G.git(co.path, "stash", "pop", "--index", ref), "restore the stash of a cut-off move")
    if not popped.ok:
        return [], (f"could not restore the stash {ref} of cut-off move {run} ({git_reason(popped)}): "
                    f"{restore_command(co.path, ref)}")
    return [f"restored the stash of cut-off move {run} ({len(paths)} path(s)) at {(facts.head or '')[:8]}"], ""


def find_stash(co: Checkout, message: str) -> str | None:
    """`stash@{n}` of the stash whose message is `message`, or None."""
    for ref, subject in _agentsync_stashes(co):
        if subject.endswith(message):
            return ref
    return None


def _agentsync_stashes(co: Checkout) -> list[tuple[str, str]]:
    out = co.try_run(G.git(co.path, "stash", "list", "--format=%gd%x09%gs")).stdout
    pairs = [tuple(line.split("\t", 1)) for line in out.splitlines() if "\t" in line]
    return [(ref, subject) for ref, subject in pairs if ": agentsync " in subject]


def agentsync_stashes(co: Checkout) -> tuple[dict, ...]:
    """Every agentsync stash still on the list, with the files it holds (for `recover`)."""
    found = []
    for ref, subject in _agentsync_stashes(co):
        files = co.try_run(G.git(co.path, "-c", "core.quotepath=off", "stash", "show", "--name-status",
                                 "--include-untracked", ref)).stdout
        found.append({"ref": ref, "message": subject, "files": [line for line in files.splitlines() if line]})
    return tuple(found)


def restore_command(path: str, ref: str) -> str:
    return f"restore it with: cd {path_arg(path)} && git stash pop --index '{ref}'"
