"""One relay from start to end: find, check, carry, back up, apply, move, validate, push.

Order matters for safety:
1. Read-only on the source: which commits, which files. Merge commits and
   protected files (`.env`, keys, ...) are refused here, before anything is
   written or transferred.
2. Patches are written under the source's .git, fetched over SFTP into memory,
   checked again (the patch text itself), and written under the target's .git.
3. On the target a backup branch marks HEAD; the patches are applied in a
   scratch worktree (`apply.py`). Only a finished commit moves the checkout,
   through `moves.move` (guards, stash, `reset --keep`, pop): uncommitted
   work is kept, and a patch that does not apply changes nothing.
4. `validate:` runs in the checkout; if it fails, the checkout moves back to
   the backup commit the same safe way.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from ..errors import CommandTimeout, FleetError
from ..gitops import Checkout
from ..guard import guard_reader
from ..models import Host
from ..moves import move, move_commands
from ..secrets import SECRET_PATTERNS, protected_paths
from ..shell import path_arg
from ..steps import git as G
from ..steps import relay as R
from ..steps.git import origin_ref
from . import copies
from .apply import Patch, apply_patches, patches_in
from .export import Range, RelayError, common_dir, export_patches, find_range
from .patchinfo import RelayMeta, is_empty_patch, written_paths

OK_STATUSES = ("ok", "nothing", "planned")
SECRET_HINT = ("secrets (.env, keys, credentials) never travel in a relay: take the file out of those commits on "
               "the source (e.g. git rebase -i) and keep it out of git")


@dataclass(frozen=True)
class End:
    """One end of a relay: the host and its checkout (whose log records every command run there)."""

    host: Host
    co: Checkout


@dataclass(frozen=True)
class RelayOptions:
    relay_id: str
    dry_run: bool = False
    push: bool = False
    allow_running: bool = False
    secrets: tuple[str, ...] = SECRET_PATTERNS  # built-ins + the inventory's transfers.secrets


@dataclass
class RelayResult:
    """Everything a person (or the journal) needs to know about one relay."""

    source: str
    target: str
    status: str = "ok"  # ok | nothing | planned | refused | conflict | guarded | validation-failed | failed | ...
    message: str = ""
    source_branch: str = ""
    base: str = ""
    base_how: str = ""
    commits: list[dict] = field(default_factory=list)
    patches: list[str] = field(default_factory=list)
    files: list[dict] = field(default_factory=list)
    insertions: int = 0
    deletions: int = 0
    protected: list[str] = field(default_factory=list)
    method: str = ""  # am | apply-3way
    attempts: list[str] = field(default_factory=list)
    applied: int = 0
    skipped: int = 0
    backup_branch: str = ""
    head_before: str = ""
    head_after: str = ""
    stash_used: bool = False
    conflicts: list[str] = field(default_factory=list)
    rejects: list[str] = field(default_factory=list)
    kept_in: str = ""  # where the patches (and .rej files) stay on the target after a failure
    validation: dict = field(default_factory=dict)
    pushed: bool = False
    plan: list[str] = field(default_factory=list)
    commands: list[dict] = field(default_factory=list)  # patch-relay's report: every command, per host

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES


def relay(src: End, dst: End, opts: RelayOptions) -> RelayResult:
    """Relay `src`'s new commits onto `dst`. A refusal or conflict is a status; other trouble raises,
    unless the target's checkout had already moved: then it is a `failed` result that says so."""
    result = RelayResult(src.host.name, dst.host.name, source_branch=src.host.branch)
    try:
        _relay(src, dst, opts, result)
    except RelayError as exc:
        result.status, result.message = exc.status, exc.message
        result.protected = list(exc.files)
    except FleetError as exc:
        if result.head_after == result.head_before:
            raise
        result.status = "failed"
        result.message = (f"{exc} — after {dst.host.name} had moved to {result.head_after[:8]}; its old state is "
                          f"branch {result.backup_branch}")
    return result


def _relay(src: End, dst: End, opts: RelayOptions, result: RelayResult) -> None:
    head = dst.co.rev("HEAD")
    if head is None:
        raise RelayError(f"{dst.host.repo} has no commit checked out", host=dst.host.name)
    result.head_before = result.head_after = head
    candidates = [(f"{dst.host.name}'s HEAD", head),
                  (f"{dst.host.name}'s {dst.host.remote}/{dst.host.branch}", dst.co.rev(origin_ref(dst.host)))]
    rng = find_range(src.co, src.host, candidates)
    _describe(result, rng)
    if not rng.commits:
        result.status = "nothing"
        result.message = f"{dst.host.name} already has every commit of {src.host.name}'s {src.host.branch}"
        return
    if rng.merges:
        raise RelayError(f"{src.host.name}'s new commits include {rng.merges} merge commit(s); patches cannot carry "
                         "merges, nothing was relayed", status="refused",
                         hint=f"make the history linear on {src.host.name} first (git rebase)")
    refuse_protected(rng.written, f"{src.host.name}'s commits", opts.secrets)
    if opts.dry_run:
        result.status = "planned"
        result.plan = plan_commands(src, dst, rng, head, opts)
        return
    meta = RelayMeta(src.host.name, src.host.branch, rng.head, rng.base, rng.how, dst.host.name, head,
                     len(rng.commits), rng.commits, rng.files)
    files = export_patches(src.co, src.host, rng, meta, R.relay_dir(common_dir(src.co), opts.relay_id))
    result.patches = names = [n for n in files if n.endswith(".patch")]
    for name in names:  # the text that will be applied, checked again: it is what really travels
        refuse_protected(written_paths(files[name].decode("utf-8", errors="replace")), f"patch {name} would",
                         opts.secrets, "nothing was applied")
    dst_dir = R.relay_dir(common_dir(dst.co), opts.relay_id)
    try:
        dst.co.run(R.make_dir(dst_dir))
        dst.co.log.announce(f"upload {len(names)} patch(es) over SFTP")
        copies.write_files(dst.co.session, {f"{dst_dir}/{n}": data for n, data in files.items()}, dst.co.timeout)
        result.kept_in = dst_dir
        result.backup_branch = backup_branch(dst.co, head)
        texts = [files[n].decode("utf-8", errors="replace") for n in names]
        patches = patches_in(dst_dir, names, list(rng.commits), [is_empty_patch(t) for t in texts])
        kept = _apply_and_keep(dst, opts, result, head, dst_dir, patches)
    except FleetError:
        if result.head_after == head:  # the checkout never moved: nothing worth keeping the patches for
            with contextlib.suppress(FleetError):
                dst.co.try_run(R.remove_relay_dir(dst_dir))
        raise
    if kept:
        dst.co.try_run(R.remove_relay_dir(dst_dir))
        result.kept_in = ""


def _describe(result: RelayResult, rng: Range) -> None:
    result.base, result.base_how = rng.base, rng.how
    result.commits = [{"sha": c.sha, "author": c.author, "email": c.email, "date": c.date, "subject": c.subject}
                      for c in rng.commits]
    result.files = [{"path": f.path, "insertions": f.insertions, "deletions": f.deletions} for f in rng.files]
    result.insertions = sum(f.insertions or 0 for f in rng.files)
    result.deletions = sum(f.deletions or 0 for f in rng.files)


def refuse_protected(paths, where: str, patterns: tuple[str, ...] = SECRET_PATTERNS,
                     stage: str = "nothing was transferred or applied") -> None:
    """Refuse (naming the files) if any of `paths` is a protected file such as `.env` or a key."""
    found = protected_paths(paths, patterns)
    if found:
        raise RelayError(f"refused: {where} add or change protected file(s): {', '.join(found)}; {stage}",
                         status="refused", hint=SECRET_HINT, files=found)


def backup_branch(co: Checkout, head: str) -> str:
    """`backup/before-relay-<timestamp>` at the target's HEAD (a numbered suffix if that name is taken)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 100):
        name = f"backup/before-relay-{stamp}" + (f"-{n}" if n > 1 else "")
        if co.rev(f"refs/heads/{name}") is None:
            co.run(R.create_branch(co.path, name, head), f"backup branch {name}")
            return name
    raise RelayError(f"could not pick a free backup branch name (backup/before-relay-{stamp}-*)")


def _apply_and_keep(dst: End, opts: RelayOptions, result: RelayResult, head: str, dst_dir: str,
                    patches: list[Patch]) -> bool:
    applied = apply_patches(dst.co, head, patches, f"{dst_dir}/rejects")
    result.method, result.attempts = applied.method, applied.attempts
    if not applied.ok:
        result.status = "conflict"
        result.conflicts, result.rejects = list(applied.conflicts), list(applied.rejects)
        saved = f"; rejected hunks: {', '.join(applied.rejects)} (kept in {dst_dir}/rejects)" if applied.rejects else ""
        result.message = (f"patch {applied.failed_patch} does not apply on {dst.host.name} (git am -3 and git apply "
                          f"--3way both failed){saved}; {dst.host.name} is exactly as before (backup branch "
                          f"{result.backup_branch}); the patches are in {dst_dir}\n{applied.output}")
        return False
    result.applied, result.skipped = applied.created, len(patches) - applied.created
    new = applied.new_head or head
    if new == head:
        result.message = f"{dst.host.name} already had all {len(patches)} patch(es); nothing changed"
        return True
    if not _move(dst, head, new, opts, result, "apply"):
        return False
    result.head_after = new
    if dst.host.validate and not validate(dst, result):
        _roll_back(dst, new, head, opts, result)
        return False
    if opts.push:
        return _push(dst, new, result)
    return True


def _move(dst: End, old: str, new: str, opts: RelayOptions, result: RelayResult, why: str) -> bool:
    outcome = move(dst.co, old, new, opts.relay_id, guard_reader(dst.co.session, dst.host), opts.allow_running)
    result.stash_used |= outcome.stash_used
    if outcome.status == "ok":
        return True
    result.status, result.conflicts = outcome.status, list(outcome.files)
    where = f"; the patches are kept in {result.kept_in}" if why == "apply" else ""
    result.message = f"{dst.host.name}: {outcome.message}{where} (backup branch {result.backup_branch})"
    return False


def validate(dst: End, result: RelayResult) -> bool:
    """Run the target's `validate:` command in its checkout; record the exit code and the output tail."""
    command = dst.host.validate or ""
    try:
        out = dst.co.try_run(R.validate(path_arg(dst.host.repo), command), f"validate: {command}")
        ok, code, tail = out.ok, out.exit_code, out.tail(20)
    except CommandTimeout as exc:
        ok, code, tail = False, None, exc.message
    result.validation = {"command": command, "ok": ok, "exit_code": code, "output_tail": tail}
    return ok


def _roll_back(dst: End, new: str, head: str, opts: RelayOptions, result: RelayResult) -> None:
    code = result.validation.get("exit_code")
    failed = f"validation `{result.validation['command']}` failed ({'timed out' if code is None else f'exit {code}'})"
    if _move(dst, new, head, opts, result, "roll back"):
        result.status, result.head_after = "validation-failed", head
        result.message = (f"{failed} on {dst.host.name}; it went back to {result.backup_branch} ({head[:8]}); "
                          f"the patches are kept in {result.kept_in}\n{result.validation['output_tail']}")
    else:
        result.status = "failed"
        result.message = (f"{failed}, and going back did not complete: {result.message}. The old state is branch "
                          f"{result.backup_branch}\n{result.validation['output_tail']}")


def _push(dst: End, new: str, result: RelayResult) -> bool:
    host = dst.host
    out = dst.co.try_run(G.push(dst.co.path, host.remote, new, host.branch), f"push to {host.remote}/{host.branch}")
    if out.ok:
        result.pushed = True
        return True
    result.status = "failed"
    result.message = (f"the relayed commits are on {host.name}, but pushing them to {host.remote}/{host.branch} "
                      f"failed (never forced); run `agentsync sync-all` to bring them together\n{out.tail(6)}")
    return False


def plan_commands(src: End, dst: End, rng: Range, head: str, opts: RelayOptions) -> list[str]:
    """What a real run would do, command by command (placeholders where ids are only known then)."""
    s, d = src.host, dst.host
    src_dir, dst_dir = R.relay_dir(f"<{s.name}:.git>", "<id>"), R.relay_dir(f"<{d.name}:.git>", "<id>")
    patches = [f"{dst_dir}/<{i:04d}-…>.patch" for i in range(1, len(rng.commits) + 1)]
    return [
        f"# on {s.name}", R.format_patch(s.repo, src_dir, rng.base, rng.head),
        f"# sftp: {s.name} → controller → {d.name}: {len(rng.commits)} patch(es) + meta.json into {dst_dir}",
        f"# on {d.name}", R.create_branch(d.repo, "backup/before-relay-<timestamp>", head),
        f"# in a scratch worktree at {head[:8]}, patch by patch (each commit then gets its exact message back):",
        *(R.am("<scratch>", [p]) for p in patches),
        "# if git am fails: git am --abort; then per patch: git apply --3way + commit as the original author, "
        "date and message; if that fails too: git apply --reject (lists the .rej files) and stop, nothing changed",
        *move_commands(d, None, "<new HEAD>", replay=False),
        *([R.validate(path_arg(d.repo), d.validate), "# if it fails: move back to the backup branch (stash/reset "
                                                     "--keep/pop)"] if d.validate else []),
        *([G.push(d.repo, d.remote, "<new HEAD>", d.branch)] if opts.push else []),
    ]
