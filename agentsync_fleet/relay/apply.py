"""The target side of a relay: apply the patches in a scratch worktree, never in the user's checkout.

Like every change sync-all makes, the new commits are computed in a throwaway
worktree inside .git at the target's HEAD (see `gitops`): `git am -3` first;
if that fails, `git am --abort` and `git apply --3way` patch by patch, each
committed with the patch's own author, date and message (`git mailinfo`);
if a patch still does not apply, `git apply --reject` shows which hunks fail
and the `.rej` files are kept under .git for the user. The checkout itself
only moves once there is a finished commit to move to, so a patch that does
not apply leaves it exactly as it was.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from ..gitops import Checkout
from ..shell import join
from ..steps import git as G
from ..steps import relay as R
from .patchinfo import parse_mailinfo, parse_rejects


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
    attempts: list[str] = field(default_factory=list)  # e.g. ["am: failed", "apply-3way: failed"]


def apply_patches(co: Checkout, head: str, relay_dir: str, names: list[str]) -> Applied:
    """Apply `relay_dir/names` on top of `head` in a scratch worktree; the checkout is not touched."""

    def work(scratch: str) -> Applied:
        sc = Checkout(co.session, scratch, co.timeout, co.log, co.host)
        am = sc.try_run(R.am(scratch, [f"{relay_dir}/{n}" for n in names]), f"git am -3 {len(names)} patch(es)")
        if am.ok:
            new = sc.rev("HEAD")
            return Applied(True, "am", new, sc.count(f"{head}..{new}"), attempts=["am: ok"])
        sc.try_run(R.am_abort(scratch), "git am --abort")
        fallback = _apply_each(sc, head, relay_dir, names)
        fallback.attempts.insert(0, "am: failed")
        fallback.output = f"git am -3:\n{am.tail(8)}\n" + (f"git apply --3way:\n{fallback.output}"
                                                           if fallback.output else "")
        return fallback

    return co.in_scratch(head, work)


def _apply_each(sc: Checkout, head: str, relay_dir: str, names: list[str]) -> Applied:
    """`git apply --3way` one patch at a time, committing each with its original author, date and message."""
    for index, name in enumerate(names, 1):
        patch = f"{relay_dir}/{name}"
        split = f"{relay_dir}/split/{index:04d}"
        sc.run(R.make_dir(split))
        sc.run(R.mailsplit(sc.path, split, patch))
        info = parse_mailinfo(sc.run(R.mailinfo(sc.path, f"{split}/msg", f"{split}/diff", f"{split}/0001")).stdout)
        empty = sc.try_run(join(["test", "-s", f"{split}/diff"])).exit_code != 0
        if not empty:
            applied = sc.try_run(R.apply_3way(sc.path, patch), f"git apply --3way {name}")
            if not applied.ok:
                return _rejected(sc, name, patch, relay_dir, applied.tail(8))
            if sc.try_run(R.index_changed(sc.path)).ok:
                continue  # nothing left to change: the target already has this patch
        message = join(["printf", r"%s\n\n", info.get("subject", "")]) + "; " + join(["cat", "--", f"{split}/msg"])
        commit = R.commit_as(sc.path, info.get("author", ""), info.get("email", ""), info.get("date", ""))
        sc.run("{ " + message + "; } | " + commit, f"commit {name} as its author")
    new = sc.rev("HEAD")
    return Applied(True, "apply-3way", new, sc.count(f"{head}..{new}"), attempts=["apply-3way: ok"])


def _rejected(sc: Checkout, name: str, patch: str, relay_dir: str, output: str) -> Applied:
    """The patch does not apply even 3-way: list its conflicts and keep its rejected hunks as .rej files."""
    conflicts = tuple(p for p in sc.try_run(G.conflicted(sc.path)).stdout.splitlines() if p)
    sc.run(G.git(sc.path, "reset", "--quiet", "--hard"))  # the scratch worktree only
    sc.run(G.git(sc.path, "clean", "--quiet", "--force", "-d"))
    rejected = sc.try_run(R.apply_reject(sc.path, patch), f"git apply --reject {name} (to list rejected hunks)")
    rejects = tuple(_keep_rejects(sc, parse_rejects(rejected.stdout + "\n" + rejected.stderr), relay_dir))
    return Applied(False, "", None, failed_patch=name, conflicts=conflicts, rejects=rejects, output=output,
                   attempts=["apply-3way: failed"])


def _keep_rejects(sc: Checkout, rejects: list[str], relay_dir: str) -> list[str]:
    """Copy the .rej files out of the scratch worktree (which is removed) into relay_dir/rejects."""
    kept = []
    for rej in rejects:
        if rej.startswith("/") or ".." in rej.split("/"):
            continue  # git would not write outside the tree; never follow such a name
        if sc.try_run(R.copy_file(f"{sc.path}/{rej}", posixpath.join(relay_dir, "rejects", rej))).ok:
            kept.append(rej)
    return kept
