"""Git command lines for one checkout, built from argv and quoted.

Every function returns the exact shell text that will run on the host, so the
dry-run plan shows precisely what a real run does. Prompts are disabled
(`GIT_TERMINAL_PROMPT=0`, `BatchMode`) so a credential question can never
hang a run.
"""

from __future__ import annotations

from ..models import Host
from ..shell import Raw, join, path_arg, section

ENV = "GIT_TERMINAL_PROMPT=0 GIT_SSH_COMMAND='ssh -o BatchMode=yes' LC_ALL=C"


def git(path: str, *args: str) -> str:
    """`git -C <path> args...` with prompts disabled; `path` may start with ~/ (the host's home)."""
    return join([Raw(ENV), "git", "-C", path_arg(path), *args])


def fetch(path: str, remote: str, branch: str) -> str:
    return git(path, "fetch", "--quiet", remote, branch)


def rev_parse(path: str, ref: str) -> str:
    return git(path, "rev-parse", "--verify", "--quiet", ref + "^{commit}")


def is_ancestor(path: str, older: str, newer: str) -> str:
    return git(path, "merge-base", "--is-ancestor", older, newer)


def count(path: str, range_: str) -> str:
    return git(path, "rev-list", "--count", range_)


def changed_files(path: str, old: str, new: str) -> str:
    return git(path, "-c", "core.quotepath=off", "diff", "--name-only", "--no-renames", old, new)


def status(path: str) -> str:
    """Porcelain status, NUL-separated so any file name parses."""
    return git(path, "status", "--porcelain=v1", "-z", "--untracked-files=all")


# A path that is a file or a symlink here (not a real directory), printed NUL-terminated: run on every path
# an update adds, it finds the local files that sit where an incoming *directory* must go.
_NOT_A_DIRECTORY = 'for p; do { [ -L "$p" ] || { [ -e "$p" ] && [ ! -d "$p" ]; }; } && printf "%s\\0" "$p"; done; :'


def _in_the_way_candidates(old: str, new: str) -> str:
    """Shell text: the untracked or ignored files at paths an update from `old` to `new` writes, one per line."""
    changed = join(["git", "diff", "-z", "--name-only", "--no-renames", Raw(old), Raw(new)])
    added = join(["git", "diff-tree", "-r", "-t", "-z", "--name-only", "--no-renames", "--diff-filter=A",
                  Raw(old), Raw(new)])
    not_dirs = join(["xargs", "-0", "-r", "sh", "-c", _NOT_A_DIRECTORY, "sh"])
    others = join(["xargs", "-0", "-r", "git", "--literal-pathspecs", "-c", "core.quotepath=off", "ls-files",
                   "--others", "--"])
    return f"{{ {changed}; {added} | {not_dirs}; }} | {others}"


def same_as_incoming(new: str) -> str:
    """Shell condition on "$p" (run in the checkout's top directory): a regular file there holds exactly what
    commit `new` (a shell word) has at that path — the same bytes as git would write, the same executable bit.

    Such an untracked file is not in the way of the update: it is replaced by the very same bytes (a file
    push-code sent and the laptop then committed). A file that differs in a byte or its mode still is.
    """
    return ('{ [ -f "$p" ] && [ ! -L "$p" ] && '
            f'm=$(git --literal-pathspecs ls-tree {new} -- "$p" | cut -c1-6) && '
            f'b=$(git rev-parse --verify --quiet {new}":$p") && '
            '{ { [ "$m" = 100755 ] && [ -x "$p" ]; } || { [ "$m" = 100644 ] && [ ! -x "$p" ]; }; } && '
            '[ "$(git hash-object -- "$p")" = "$b" ]; }')


def in_the_way(old: str, new: str) -> str:
    """Shell text, run in the checkout's top directory: the untracked or ignored files an update from `old` to
    `new` would have to overwrite or delete, one per line — except those already identical to what it writes
    (`identical_untracked`).

    Those are files at a path the update changes, files inside a directory it turns into a file, and files
    (or symlinks) where it needs a directory: `reset --keep` refuses the untracked ones but silently
    replaces ignored ones. `old` and `new` are shell words (a quoted id, or "$h"). Pathspecs are literal,
    so a file named like pathspec magic (`:notes`, `*`) means itself.
    """
    keep = f"{same_as_incoming(new)} || printf '%s\\n' \"$p\""
    return f"{_in_the_way_candidates(old, new)} | while IFS= read -r p; do {keep}; done"


def identical_untracked(old: str, new: str) -> str:
    """Shell text like `in_the_way`: the untracked or ignored files at paths the update writes that already
    hold exactly the bytes (and executable bit) it writes there."""
    same = f"if {same_as_incoming(new)}; then printf '%s\\n' \"$p\"; fi"
    return f"{_in_the_way_candidates(old, new)} | while IFS= read -r p; do {same}; done"


IDENTICAL_CHANGED = 5  # exit status of `reset_keep(replace=...)` when a file to replace changed since it was read


def _replace_identical(new: str, paths: tuple[str, ...]) -> str:
    """Shell text, run in the checkout's top directory: check that every untracked file in `paths` still holds
    what `new` has there, then remove them so that `reset --keep` writes the same bytes back. Nothing is
    removed unless all still match."""
    if not paths:
        return ""
    words = join(list(paths))
    changed = 'echo "$p changed since agentsync read it; nothing was changed" >&2'
    return (f"for p in {words}; do {same_as_incoming(join([new]))} || {{ {changed}; exit {IDENTICAL_CHANGED}; }}; "
            f"done; rm -f -- {words}; ")


def restore_identical(path: str, new: str, paths: tuple[str, ...]) -> str:
    """After a failed update: write the untracked files `_replace_identical` removed back (they are `new`'s
    blobs), untracked again (out of the index)."""
    return join(["sh", "-c", f"cd {path_arg(path)} && export {ENV} && git --literal-pathspecs checkout -q "
                             f"{join([new])} -- \"$@\" && git --literal-pathspecs reset -q -- \"$@\"",
                 "sh", *paths])


def stash_push(path: str, message: str) -> str:
    """Stash changes to tracked files (staged or not), printing the new stash's id: nothing when there was
    nothing to stash, so that a stash the user already had on top is never taken for ours (and popped).

    Untracked files stay where they are: `reset --keep` leaves them alone (files in the way of incoming
    ones are a conflict before anything moves), and a process may be writing to one through an open file
    descriptor (`nohup.out`) — stashing would unlink it under the process, and copy every big untracked
    file into .git on each sync.
    """
    top = join(["git", "-C", path_arg(path), "rev-parse", "--verify", "--quiet", "refs/stash"])
    push = git(path, "stash", "push", "--message", message)
    return join(["sh", "-c", f'b=$({top}); {push} >&2 || exit; a=$({top}); [ "$a" = "$b" ] || echo "$a"'])


def stash_push_paths(path: str, message: str, paths: tuple[str, ...]) -> str:
    """Like `stash_push`, but only these paths (literal pathspecs): every other change stays in place, unread
    and unrewritten, so a file a process appends to is never swapped under it."""
    top = join(["git", "-C", path_arg(path), "rev-parse", "--verify", "--quiet", "refs/stash"])
    push = join([Raw(ENV), "git", "--literal-pathspecs", "-C", path_arg(path), "stash", "push", "--message",
                 message, "--", *paths])
    return f'b=$({top}); {push} >&2 || exit; a=$({top}); [ "$a" = "$b" ] || echo "$a"'


def with_intent(git_dir: str, record: str, command: str, clear_on_success: bool = False) -> str:
    """`command` (shell text) preceded by writing the intent record (atomically: temp file + rename) into the
    checkout's git dir; with `clear_on_success` the record goes once the command succeeded."""
    intent = join([f"{git_dir}/{INTENT}"])
    write = f"printf '%s\\n' {join([record])} > {intent}.tmp && mv -f {intent}.tmp {intent}"
    tail = f"; rc=$?; [ $rc -ne 0 ] || rm -f {intent}; exit $rc" if clear_on_success else ""
    return join(["sh", "-c", f"{write} || exit 90; {command}{tail}"])


def clear_intent(git_dir: str, command: str | None = None) -> str:
    """Remove the intent record (after `command`, shell text, succeeded)."""
    intent = join([f"{git_dir}/{INTENT}"])
    return join(["sh", "-c", f"{command} && rm -f {intent}" if command else f"rm -f {intent}"])


def stash_pop_ours(path: str, stash: str) -> str:
    """Pop the top stash with `--index`, only while it is still `stash` (ours): a stash the user pushed
    meanwhile is never popped in its place."""
    top = join(["git", "-C", path_arg(path), "rev-parse", "--verify", "--quiet", "refs/stash"])
    theirs = join(["echo", "the top stash is no longer agentsync's; nothing popped"])
    return join(["sh", "-c", f'[ "$({top})" = {join([stash])} ] || {{ {theirs} >&2; exit 4; }}; '
                             f'{stash_pop(path)}'])


# After an update failed midway: check out from HEAD every path it changes that HEAD has, delete the files it
# created (untracked now: nothing was there before, `in_the_way` made sure) and the directories left empty.
_RESTORE = (
    'git ls-tree -z -r --name-only HEAD -- "$@" | xargs -0 -r git --literal-pathspecs checkout -q HEAD -- && '
    'git --literal-pathspecs ls-files -z --others --exclude-standard -- "$@" | xargs -0 -r rm -f -- && '
    'git --literal-pathspecs ls-files -z --others --ignored --exclude-standard -- "$@" | xargs -0 -r rm -f -- && '
    'for p; do d=$(dirname -- "$p"); while [ "$d" != . ] && rmdir -- "$d" 2>/dev/null; do d=$(dirname -- "$d"); '
    'done; done; :'
)


# After a crash mid-update (git killed half-way through `reset --keep`): which of the paths the update changes
# hold exactly what the update writes (`ours`: their content is the target commit's, or they are gone where the
# target deletes them) and which hold something else (`theirs`: somebody's, never touched). NUL-separated.
_UPDATE_WRITES = (
    'n=$1; shift; for p; do want=$(git rev-parse -q --verify "$n:$p" 2>/dev/null); have=; '
    'if [ -e "$p" ] || [ -L "$p" ]; then have=$(git hash-object --path="$p" -- "$p" 2>/dev/null) || have=?; fi; '
    'if [ "$have" = "$want" ]; then w=ours; else w=theirs; fi; printf "%s\\t%s\\0" "$w" "$p"; done'
)


def update_writes(path: str, new: str, paths: tuple[str, ...] | list[str]) -> str:
    return join(["sh", "-c", f"cd {path_arg(path)} && export {ENV} && {_UPDATE_WRITES}", "sh", new, *paths])


# A crashed git leaves `index.lock`, which blocks every git write. It is the crashed move's own, and removed,
# only if it is no older than the move's intent record and no process has it open; where that cannot be seen
# (no /proc to look at, a path find's -lname would read as a pattern), it stays.
_CRASHED_LOCK = (
    'cd "$1" && gd=$(pwd -P) && lock="$gd/index.lock" && rec="$gd/$2"; '
    '[ -e "$lock" ] || { echo absent; exit 0; }; '
    '{ [ -f "$rec" ] && ! [ "$rec" -nt "$lock" ]; } || { echo older; exit 0; }; '
    'case $lock in *[][*?\\]*) echo unseen; exit 0;; esac; '
    'ls /proc/1/fd >/dev/null 2>&1 || { echo unseen; exit 0; }; '
    'held=$(find /proc/[0-9]*/fd -maxdepth 1 -type l -lname "$lock" 2>/dev/null | head -n 1); '
    'if [ -n "$held" ]; then p=${held#/proc/}; echo "held ${p%%/*}"; else rm -f "$lock" && echo removed; fi'
)


def remove_crashed_index_lock(git_dir: str) -> str:
    """Prints `absent`, `older`, `unseen`, `held <pid>` or `removed` (see `_CRASHED_LOCK`)."""
    return join(["sh", "-c", _CRASHED_LOCK, "sh", git_dir, INTENT])


def restore_paths(path: str, paths: tuple[str, ...] | list[str]) -> str:
    return join(["sh", "-c", f"cd {path_arg(path)} && export {ENV} && {_RESTORE}", "sh", *paths])


def stash_create(path: str) -> str:
    """A stash commit of tracked changes, without touching the working tree (used to predict a pop)."""
    return git(path, "stash", "create")


def stash_pop(path: str) -> str:
    return git(path, "stash", "pop", "--index")


HEAD_MOVED = 3  # exit status of `reset_keep(expect=...)` when HEAD is no longer the commit expected


def reset_keep(path: str, commit: str, expect: str | None = None, replace: tuple[str, ...] = ()) -> str:
    """Move the branch to `commit`; git refuses (and changes nothing) if local changes would be lost.

    With `expect`, only while HEAD is still that commit: someone may commit on the host while we work,
    and `reset` would move the branch from *their* commit, leaving it only in the reflog. `replace`: untracked
    files that already hold exactly what `commit` has there (`identical_untracked`); checked again, then
    removed just before the reset writes the same bytes back (`reset --keep` refuses any untracked file).
    """
    return _reset(path, "--keep", commit, expect, replace)


def reset_merge(path: str, commit: str, expect: str) -> str:
    """Back to `commit` after a failed stash pop, like `git merge --abort`: unmerged and merged-in entries go,
    but a change made in the working tree meanwhile (in no stash) is kept, or git refuses."""
    return _reset(path, "--merge", commit, expect)


def _reset(path: str, mode: str, commit: str, expect: str | None, replace: tuple[str, ...] = ()) -> str:
    reset = git(path, "reset", "--quiet", mode, commit)
    if replace:
        reset = f"( cd {path_arg(path)} && export {ENV} && {_replace_identical(commit, replace)}) && {reset}"
    if expect is None:
        return join(["sh", "-c", reset]) if replace else reset
    head = join(["git", "-C", path_arg(path), "rev-parse", "--verify", "--quiet", "HEAD"])
    moved = join(["echo", f"HEAD is no longer {expect[:8]}: it moved while agentsync worked"])
    return join(["sh", "-c", f'[ "$({head})" = {join([expect])} ] || {{ {moved} >&2; exit {HEAD_MOVED}; }}; {reset}'])


def push(path: str, remote: str, commit: str, branch: str) -> str:
    """Publish `commit` as `branch`; never forced, so a non-fast-forward is refused by the server."""
    return git(path, "push", "--porcelain", remote, f"{commit}:refs/heads/{branch}")


NO_HOOKS = ("-c", "core.hooksPath=/dev/null")  # scratch worktrees run no hook (post-checkout, pre-rebase, ...)


def scratch_add(path: str, scratch: str, commit: str) -> str:
    return git(path, *NO_HOOKS, "worktree", "add", "--quiet", "--detach", scratch, commit)


def scratch_remove(path: str, scratch: str) -> str:
    # --force only concerns the scratch tree agentsync itself created a moment ago. No `worktree prune`:
    # it would also drop the HEAD and index of the user's worktrees whose directory is away right now
    # (an unmounted disk), which git itself keeps for months.
    return git(path, "worktree", "remove", "--force", scratch)


def rebase(path: str, onto: str) -> str:
    """Only ever run in a scratch worktree: hooks off."""
    return git(path, *NO_HOOKS, "rebase", "--quiet", onto)


def rebase_abort(path: str) -> str:
    return git(path, "rebase", "--abort")


def merge(path: str, ref: str, message: str) -> str:
    """Only ever run in a scratch worktree: hooks off."""
    return git(path, *NO_HOOKS, "merge", "--no-edit", "-m", message, ref)


def merge_abort(path: str) -> str:
    return git(path, "merge", "--abort")


def conflicted(path: str) -> str:
    return git(path, "-c", "core.quotepath=off", "diff", "--name-only", "--diff-filter=U")


def stash_apply_index(path: str, stash: str) -> str:
    return git(path, "stash", "apply", "--index", stash)


def worktree_list(path: str) -> str:
    return git(path, "worktree", "list", "--porcelain")


def worktree_add(path: str, worktree: str, branch: str, start: str | None, track: bool) -> str:
    if start is None:
        return git(path, "worktree", "add", "--quiet", worktree, branch)
    return git(path, "worktree", "add", "--quiet", *(["--track"] if track else []), "-b", branch, worktree, start)


def common_dir(path: str) -> str:
    """The repo's common git dir as an absolute, symlink-free path. Not `rev-parse --path-format=absolute`:
    git before 2.31 prints that option back as a line of output (Debian 11 has 2.30)."""
    return f"{{ cd {path_arg(path)} && d=$({ENV} git rev-parse --git-common-dir) && cd \"$d\" && pwd -P; }}"


INTENT = "agentsync-move.json"  # in a checkout's git dir while a move is under way (see `gitops`)
SCRATCH_PREFIX = "agentsync-scratch-"  # scratch worktrees live in the common git dir under this prefix
INCOMING_SHOWN = 50

# Files of the checkout some process holds open, with the open flags and who: `w <pid> <flags> <top>\t<path>`
# and `c <pid> <command>` lines (parsed by `gitfacts.parse_writers`). Only fds whose target is in the tree.
WRITERS = (
    'top=$(pwd -P); find /proc/[0-9]*/fd -maxdepth 1 -type l -lname "$top/*" 2>/dev/null | '
    'while IFS= read -r fd; do p=${fd#/proc/}; p=${p%%/*}; '
    'f=$(sed -n "s/^flags:[[:space:]]*//p" "/proc/$p/fdinfo/${fd##*/}" 2>/dev/null); '
    'printf "w %s %s %s\\t%s\\n" "$p" "${f:-0}" "$top" "$(readlink "$fd")"; '
    'printf "c %s %s\\n" "$p" "$(tr "\\0" " " < "/proc/$p/cmdline" 2>/dev/null | cut -c1-200)"; done'
)


def checkout_state_lines() -> list[str]:
    """Shell lines, run in the checkout: its git dir, an operation in progress, a stale index.lock (age in
    seconds), a leftover intent record and leftover scratch worktrees."""
    return [
        "x=$(git rev-parse --absolute-git-dir --path-format=absolute --git-common-dir 2>/dev/null); nl='\n'; "
        'gd=${x%%"$nl"*}; common=${x#*"$nl"}',  # one per line: paths may hold spaces
        section("git_dir"), 'echo "$gd"',
        section("in_progress"),
        'for n in rebase-merge rebase-apply MERGE_HEAD CHERRY_PICK_HEAD REVERT_HEAD; do '
        '[ -e "$gd/$n" ] && echo "$n"; done',
        section("index_lock"),
        '[ -e "$gd/index.lock" ] && echo $(( $(date +%s) - $(stat -c %Y "$gd/index.lock") ))',
        section("intent"), f'[ -f "$gd/{INTENT}" ] && {{ cat "$gd/{INTENT}"; echo; }}',
        section("scratch"), f'for d in "$common"/{SCRATCH_PREFIX}*; do [ -e "$d" ] && echo "$d"; done',
        ":",
    ]


def facts_script(path: str, remote: str, branch: str, fetch: bool, target: str | None = None) -> str:
    """One round trip: (fetch,) HEAD and its branch, origin's branch, how they relate, incoming files, what is
    in the way.

    Output sections are parsed by `gitfacts.parse_facts`. Everything a move
    needs to decide is read here, so the common case (a fast-forward) costs
    this script plus one `reset --keep`.
    """
    ref = f"{target}^{{commit}}" if target else f"refs/remotes/{remote}/{branch}^{{commit}}"
    lines = [
        f"cd {path_arg(path)} 2>/dev/null || {{ {section('missing')}; exit 0; }}",
        f"export {ENV}",
    ]
    if fetch:
        lines += [section("fetch"), f"err=$(git fetch --quiet {join([remote, branch])} 2>&1); echo \"rc $?\"",
                  "printf '%s\\n' \"$err\" | tail -n 3"]
    lines += checkout_state_lines()
    lines += [
        f"h=$(git rev-parse --verify --quiet HEAD); t=$(git rev-parse --verify --quiet {join([ref])})",
        section("refs"), "echo \"head $h\"", "echo \"target $t\"", "echo \"branch $(git symbolic-ref -q HEAD)\"",
        "if [ -n \"$h\" ] && [ -n \"$t\" ]; then",
        "  git merge-base --is-ancestor \"$h\" \"$t\" && echo head_in_target",
        "  git merge-base --is-ancestor \"$t\" \"$h\" && echo target_in_head",
        "  echo \"counts $(git rev-list --left-right --count \"$h...$t\")\"",
        f"  {section('changed')}",
        "  changed=$(git -c core.quotepath=off diff --name-only --no-renames \"$h\" \"$t\")",
        "  [ -n \"$changed\" ] && printf '%s\\n' \"$changed\"",
        f"  {section('in_the_way')}",
        "  [ -n \"$changed\" ] && " + in_the_way('"$h"', '"$t"'),
        f"  {section('identical')}",
        "  [ -n \"$changed\" ] && " + identical_untracked('"$h"', '"$t"'),
        f"  {section('incoming')}",
        f"  git log --format=%h%x09%an%x09%s -n {INCOMING_SHOWN} \"$h..$t\"",
        f"  {section('diffstat')}",
        "  git diff --stat=100 \"$h...$t\" | tail -n 40",
        "fi",
        section("writers"), WRITERS,
        section("status"), "git status --porcelain=v1 -z --untracked-files=all; echo",
        section("end"),
    ]
    return "\n".join(lines) + "\n"


def origin_ref(host: Host) -> str:
    return f"refs/remotes/{host.remote}/{host.branch}"
