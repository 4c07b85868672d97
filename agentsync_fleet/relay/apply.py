"""The target side of a relay: apply the patches in a scratch worktree, never in the user's checkout.

Like every change sync-all makes, the new commits are computed in a throwaway
worktree inside .git at the target's HEAD (see `gitops`): `git am -3`, patch
by patch so each new commit is known to come from its patch (and gets the
original's exact message back where format-patch/am would cut it). If that
fails: `git am --abort`, back to the start, and `git apply --3way` patch by
patch, each committed with the original author, date and message. If a patch
still does not apply, `git apply --reject` shows which hunks fail and the
`.rej` files are kept under .git for the user. The checkout itself only moves
once there is a finished commit to move to, so a patch that does not apply
leaves it exactly as it was.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from ..gitops import Checkout
from ..steps import git as G
from ..steps import relay as R
from .patchinfo import CommitInfo, parse_rejects


@dataclass
class Applied:
    """How applying the patches ended (in the scratch worktree)."""

    ok: bool
    method: str = ""  # am | apply-3way
    new_head: str | None = None
    created: int = 0  # commits made; patches already present on the target are skipped
    failed_patch: str = ""
    conflicts: tuple[str, ...] = ()
    rejects: tuple[str, ...] = ()
    output: str = ""
    attempts: list[str] = field(default_factory=list)  # e.g. ["am: failed", "apply-3way: ok"]


@dataclass(frozen=True)
class Patch:
    """One patch on the target, with the commit it was made from (for the fallback's metadata)."""

    name: str
    path: str
    message: str  # file with the commit's exact message
    commit: CommitInfo
    empty: bool  # no diff at all (an empty commit)


def patches_in(relay_dir: str, names: list[str], commits: list[CommitInfo], empty: list[bool]) -> list[Patch]:
    return [Patch(name, f"{relay_dir}/{name}", R.message_file(relay_dir, index), commit, is_empty)
            for index, (name, commit, is_empty) in enumerate(zip(names, commits, empty, strict=True), 1)]


def apply_patches(co: Checkout, head: str, patches: list[Patch], rejects_dir: str) -> Applied:
    """Apply `patches` on top of `head` in a scratch worktree; the checkout is not touched."""

    def work(scratch: str) -> Applied:
        sc = Checkout(co.session, scratch, co.timeout, co.log, co.host)
        am = _am_each(sc, patches)
        if am.ok:
            return _finish(sc, head, am)
        sc.run(G.git(scratch, "reset", "--quiet", "--hard", head), "back to the start (scratch)")
        sc.run(G.git(scratch, "clean", "--quiet", "--force", "-d"))
        fallback = _apply_each(sc, patches, rejects_dir)
        fallback.attempts.insert(0, "am: failed")
        fallback.output = f"git am -3 ({am.failed_patch}):\n{am.output}\n" + (
            f"git apply --3way ({fallback.failed_patch}):\n{fallback.output}" if fallback.output else "")
        return _finish(sc, head, fallback) if fallback.ok else fallback

    return co.in_scratch(head, work)


def _finish(sc: Checkout, head: str, applied: Applied) -> Applied:
    applied.new_head = sc.rev("HEAD")
    applied.created = sc.count(f"{head}..{applied.new_head}")
    return applied


def _am_each(sc: Checkout, patches: list[Patch]) -> Applied:
    """`git am -3` one patch at a time; a patch already present makes no commit and is skipped."""
    for patch in patches:
        before = sc.rev("HEAD")
        am = sc.try_run(R.am(sc.path, [patch.path]), f"git am -3 {patch.name}")
        if not am.ok:
            sc.try_run(R.am_abort(sc.path), "git am --abort")
            return Applied(False, failed_patch=patch.name, output=am.tail(8), attempts=["am: failed"])
        if sc.rev("HEAD") != before:
            sc.run(R.keep_message(sc.path, patch.message), f"keep the exact message of {patch.name}")
    return Applied(True, "am", attempts=["am: ok"])


def _apply_each(sc: Checkout, patches: list[Patch], rejects_dir: str) -> Applied:
    """`git apply --3way` one patch at a time, committing each as the original commit (author, date, message)."""
    for patch in patches:
        if not patch.empty:
            applied = sc.try_run(R.apply_3way(sc.path, patch.path), f"git apply --3way {patch.name}")
            if not applied.ok:
                return _rejected(sc, patch, rejects_dir, applied.tail(8))
            if sc.try_run(R.index_changed(sc.path)).ok:
                continue  # nothing left to change: the target already has this patch
        c = patch.commit
        sc.run(R.commit_as(sc.path, c.author, c.email, c.date, patch.message), f"commit {patch.name} as {c.author}")
    return Applied(True, "apply-3way", attempts=["apply-3way: ok"])


def _rejected(sc: Checkout, patch: Patch, rejects_dir: str, output: str) -> Applied:
    """The patch does not apply even 3-way: list its conflicts and keep its rejected hunks as .rej files."""
    conflicts = tuple(p for p in sc.try_run(G.conflicted(sc.path)).stdout.splitlines() if p)
    sc.run(G.git(sc.path, "reset", "--quiet", "--hard"))  # the scratch worktree only
    sc.run(G.git(sc.path, "clean", "--quiet", "--force", "-d"))
    rejected = sc.try_run(R.apply_reject(sc.path, patch.path), f"git apply --reject {patch.name} (lists the hunks)")
    rejects = tuple(_keep_rejects(sc, parse_rejects(rejected.stdout + "\n" + rejected.stderr), rejects_dir))
    return Applied(False, failed_patch=patch.name, conflicts=conflicts, rejects=rejects, output=output,
                   attempts=["apply-3way: failed"])


def _keep_rejects(sc: Checkout, rejects: list[str], rejects_dir: str) -> list[str]:
    """Copy the .rej files out of the scratch worktree (which is removed) into `rejects_dir`."""
    kept = []
    for rej in rejects:
        if rej.startswith("/") or ".." in rej.split("/"):
            continue  # git would not write outside the tree; never follow such a name
        if sc.try_run(R.copy_file(f"{sc.path}/{rej}", posixpath.join(rejects_dir, rej))).ok:
            kept.append(rej)
    return kept
