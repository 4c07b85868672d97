"""The worktree stage: keep `git worktree` branches (e.g. a GPU validation tree) up with main.

A missing worktree is created; `merge` (e.g. main) is brought into its branch
by merge or rebase, computed in a scratch worktree first like every other
change, so a conflict leaves the worktree untouched; with `push: true` the
branch is pushed (never forced).
"""

from __future__ import annotations

import dataclasses

from ..engine.context import RunContext
from ..engine.moves import checkout
from ..engine.stage import Stage, step
from ..errors import FleetError
from ..models import Host, WorktreeSpec
from ..moveplan import Replay
from ..moves import move
from ..probes import parse_repo_probe, repo_probe
from ..records import PlannedStep
from ..shell import join, script
from ..steps import git as G


def worktree_path(host: Host, spec: WorktreeSpec) -> str:
    """Absolute and ~/ paths stand; relative ones are relative to the host's repo."""
    if spec.path.startswith(("/", "~")):
        return spec.path
    return f"{host.repo.rstrip('/')}/{spec.path}"


def merge_ref(host: Host, spec: WorktreeSpec) -> str:
    return f"refs/remotes/{host.remote}/{spec.merge}"


class WorktreeStage(Stage):
    name = "worktrees"

    def hosts(self, ctx: RunContext) -> list[Host]:
        return [h for h in super().hosts(ctx) if h.worktrees]

    def plan(self, ctx: RunContext, host: Host) -> list[PlannedStep]:
        steps = []
        for spec in host.worktrees:
            path = worktree_path(host, spec)
            commands = [G.worktree_list(host.repo)]
            if spec.merge:
                commands.append(G.fetch(host.repo, host.remote, spec.merge))
                action = "merge" if spec.strategy == "merge" else "rebase"
                commands.append(f"# in a scratch worktree: {action} {host.remote}/{spec.merge} into {spec.branch}, "
                                "then update the worktree (stash/pop if it has edits)")
            if spec.push:
                commands.append(G.push(path, host.remote, "HEAD", spec.branch))
            steps.append(PlannedStep(self.name, host.name, f"worktree {path} ({spec.branch})", tuple(commands),
                                     "created first if missing"))
        return steps

    def run(self, ctx: RunContext, host: Host) -> None:
        for spec in host.worktrees:
            entry = {"path": worktree_path(host, spec), "branch": spec.branch, "status": "ok"}
            ctx.result(host).worktrees.append(entry)
            with step(ctx, host, self.name, f"worktree {spec.branch}") as (record, log):
                self._one(ctx, host, spec, entry, record, log)
            if not ctx.result(host).active:
                entry["status"] = ctx.result(host).status
                return

    def _one(self, ctx: RunContext, host: Host, spec: WorktreeSpec, entry: dict, record, log) -> None:
        repo = checkout(ctx, host, log)
        path = entry["path"]
        if not self._exists(repo, path):
            self._create(ctx, host, spec, repo, path, entry)
        wt = checkout(ctx, host, log, path)
        problem = self._not_movable(wt, host, spec, path)
        if problem:
            ctx.result(host).fail("skipped", f"worktree {path}: {problem}; left alone")
            return
        head = entry["head_before"] = wt.rev("HEAD")
        if spec.merge:
            if not self._bring_in(ctx, host, spec, wt, head, entry, record):
                return
        entry["head_after"] = wt.rev("HEAD")
        if spec.push:
            wt.run(G.push(path, host.remote, entry["head_after"], spec.branch), f"push {spec.branch}")
            entry["pushed"] = True

    @staticmethod
    def _not_movable(wt, host: Host, spec: WorktreeSpec, path: str) -> str | None:
        """Why a worktree must not move: another branch (or none), or a merge/rebase/... in progress there,
        which a stash and `reset` would wipe out (preflight checks this for the main checkout only)."""
        probe = wt.try_run(join(["sh", "-c", script(repo_probe(dataclasses.replace(host, repo=path), False))]),
                           "check the worktree's state")
        state = parse_repo_probe(probe.stdout)
        if not state.present:
            return state.error
        if state.in_progress:
            return f"{', '.join(state.in_progress)} in progress (finish or abort it by hand)"
        if state.branch != spec.branch:
            return f"it is on '{state.branch}', inventory expects '{spec.branch}'"
        return None

    @staticmethod
    def _exists(repo, path: str) -> bool:
        probe = repo.try_run(G.common_dir(path))
        if not probe.ok:
            return False
        return probe.stdout.strip() == repo.run(G.common_dir(repo.path)).stdout.strip()

    def _create(self, ctx: RunContext, host: Host, spec: WorktreeSpec, repo, path: str, entry: dict) -> None:
        exists = repo.try_run(f"test -e {G.path_arg(path)}")
        if exists.ok:
            raise FleetError(f"{path} exists but is not a worktree of {host.repo}; not touching it")
        if spec.merge:
            repo.run(G.fetch(host.repo, host.remote, spec.merge), f"fetch {spec.merge}")
        if repo.rev(f"refs/heads/{spec.branch}"):
            command = G.worktree_add(host.repo, path, spec.branch, None, False)
        elif repo.rev(f"refs/remotes/{host.remote}/{spec.branch}"):
            command = G.worktree_add(host.repo, path, spec.branch, f"{host.remote}/{spec.branch}", True)
        else:
            start = f"{host.remote}/{spec.merge}" if spec.merge else "HEAD"
            command = G.worktree_add(host.repo, path, spec.branch, start, False)
        repo.run(command, f"create worktree {path}")
        entry["created"] = True

    def _bring_in(self, ctx: RunContext, host: Host, spec: WorktreeSpec, wt, head: str, entry: dict,
                  record) -> bool:
        wt.run(G.fetch(wt.path, host.remote, spec.merge), f"fetch {spec.merge}")
        ref = wt.rev(merge_ref(host, spec))
        if ref is None or wt.is_ancestor(ref, head):
            entry["merged"] = 0
            return True
        entry["merged"] = wt.count(f"{head}..{ref}")
        if wt.is_ancestor(head, ref):
            replay = Replay(ref)
        elif spec.strategy == "rebase":
            replay = wt.rebased(head, ref)
        else:
            replay = wt.merged(head, ref, f"Merge {host.remote}/{spec.merge} into {spec.branch} (agentsync)")
        if replay.new is None:
            entry["status"] = "failed" if replay.refused else "conflict"
            why = f"git could not commit: {replay.refused}" if replay.refused else \
                f"{spec.merge} does not {spec.strategy} cleanly into {spec.branch}"
            ctx.result(host).fail(entry["status"], f"worktree {wt.path}: {why}; nothing was changed\n{replay.output}",
                                  replay.conflicts)
            return False
        outcome = move(wt, head, replay.new, ctx.run_id)
        ctx.result(host).stash_used |= outcome.stash_used
        if outcome.status != "ok":
            entry["status"] = outcome.status
            ctx.result(host).fail(outcome.status, f"worktree {wt.path}: {outcome.message}", outcome.files)
            return False
        return True
