"""What a checkout looks like, parsed: pure functions from git's output to values (no I/O).

`gitops.py` decides and acts on these; keeping them apart lets the parsing be
tested against golden text.
"""

from __future__ import annotations

from dataclasses import dataclass

from .shell import SECTION_MARK, split_sections


@dataclass(frozen=True)
class Dirty:
    """Uncommitted state of a checkout: tracked changes (staged or not) and untracked files."""

    tracked: tuple[str, ...] = ()
    untracked: tuple[str, ...] = ()
    staged: tuple[str, ...] = ()  # of `tracked`, those whose index entry differs from HEAD (or `add -N`)
    renames: tuple[tuple[str, str], ...] = ()  # (new path, source path) of each staged rename

    @property
    def any(self) -> bool:
        return bool(self.tracked or self.untracked)

    @property
    def paths(self) -> set[str]:
        return set(self.tracked) | set(self.untracked)


@dataclass(frozen=True)
class Commit:
    """One incoming commit, as `plan` shows it."""

    id: str
    author: str
    subject: str


@dataclass(frozen=True)
class Process:
    """A running process, as a guard or an open file names it."""

    pid: int
    command: str
    pattern: str = ""  # the guard pattern that matched, for guard processes


@dataclass(frozen=True)
class Writer:
    """A process holding a file of the checkout open for writing."""

    path: str  # relative to the checkout
    process: Process


@dataclass(frozen=True)
class CheckoutFacts:
    """A checkout and its origin branch, read in one round trip."""

    present: bool
    head: str | None = None
    branch: str = ""  # the checked-out branch's full ref name; empty on a detached HEAD
    target: str | None = None
    head_in_target: bool = False
    target_in_head: bool = False
    ahead: int = 0
    behind: int = 0
    changed: tuple[str, ...] = ()  # files that differ between HEAD and the target
    in_the_way: tuple[str, ...] = ()  # of those, the ones present here untracked or ignored
    identical: tuple[str, ...] = ()  # untracked or ignored ones already holding the incoming bytes: not in the way
    dirty: Dirty = Dirty()
    fetch_rc: int | None = None
    fetch_error: str = ""
    git_dir: str = ""  # absolute: where this checkout's intent record lives
    in_progress: tuple[str, ...] = ()
    index_lock_age: float | None = None
    incoming: tuple[Commit, ...] = ()
    diffstat: str = ""
    writers: tuple[Writer, ...] = ()
    intent: str = ""  # a leftover intent record (JSON text) of a move that did not finish
    scratch: tuple[str, ...] = ()  # leftover scratch worktrees (paths)


def parse_status_z(text: str) -> Dirty:
    """`git status --porcelain=v1 -z` → tracked (staged or not) and untracked paths.

    A rename is followed by its source path, which is changed too (the stash brings it back for a
    moment); a copy's source is not.
    """
    tracked, untracked, staged, renames = [], [], [], []
    source_of = ""
    for entry in text.rstrip("\n").split("\0"):
        if source_of:
            if source_of == "R":
                tracked.append(entry)
                renames.append((tracked[-2], entry))
            source_of = ""
            continue
        if len(entry) < 4:
            continue
        code, name = entry[:2], entry[3:]
        if code == "??":
            untracked.append(name)
            continue
        tracked.append(name)
        if code[0] != " " or code[1] == "A":
            staged.append(name)
        source_of = code[0] if code[0] in "RC" else ""
    return Dirty(tuple(tracked), tuple(untracked), tuple(staged), tuple(renames))


def parse_facts(output: str) -> CheckoutFacts:
    # `status` holds raw file names (`-z`), and a name may contain a newline and a line that looks like a
    # section of ours (`head <sha>`): it is cut out by position, last, so no name can pose as a section.
    before, marker, status = output.partition(f"\n{SECTION_MARK}status\n")
    status = status[:status.rfind(f"\n{SECTION_MARK}end")] if marker else ""
    parts = split_sections(before)
    if "missing" in parts:
        return CheckoutFacts(present=False)
    refs = dict(line.split(" ", 1) if " " in line else (line, "") for line in parts.get("refs", "").splitlines())
    counts = refs.get("counts", "").split()
    fetch = parts.get("fetch", "").splitlines()
    fetch_rc = int(fetch[0].split()[1]) if fetch and fetch[0].startswith("rc ") else None
    return CheckoutFacts(
        present=True, head=refs.get("head") or None, target=refs.get("target") or None, branch=refs.get("branch", ""),
        head_in_target="head_in_target" in refs, target_in_head="target_in_head" in refs,
        ahead=int(counts[0]) if len(counts) == 2 else 0, behind=int(counts[1]) if len(counts) == 2 else 0,
        changed=tuple(line for line in parts.get("changed", "").splitlines() if line),
        in_the_way=tuple(line for line in parts.get("in_the_way", "").splitlines() if line),
        identical=tuple(line for line in parts.get("identical", "").splitlines() if line),
        dirty=parse_status_z(status), fetch_rc=fetch_rc,
        fetch_error=" ".join(fetch[1:]).strip(), git_dir=parts.get("git_dir", "").strip(),
        in_progress=tuple(IN_PROGRESS.get(n, n) for n in _lines(parts.get("in_progress", ""))),
        index_lock_age=_number(parts.get("index_lock", "")),
        incoming=tuple(parse_commits(parts.get("incoming", ""))), diffstat=parts.get("diffstat", "").strip("\n"),
        writers=tuple(parse_writers(parts.get("writers", ""), parts.get("git_dir", "").strip())),
        intent=parts.get("intent", "").strip(), scratch=tuple(sorted(set(_lines(parts.get("scratch", ""))))),
    )


IN_PROGRESS = {"rebase-merge": "rebase", "rebase-apply": "rebase (am)", "MERGE_HEAD": "merge",
               "CHERRY_PICK_HEAD": "cherry-pick", "REVERT_HEAD": "revert"}


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def _number(text: str) -> float | None:
    try:
        return float(text.strip()) if text.strip() else None
    except ValueError:
        return None


def parse_commits(text: str) -> list[Commit]:
    """`git log --format=%h%x09%an%x09%s` lines."""
    commits = []
    for line in _lines(text):
        short, _, rest = line.partition("\t")
        author, _, subject = rest.partition("\t")
        commits.append(Commit(short, author, subject))
    return commits


def parse_writers(text: str, git_dir: str) -> list[Writer]:
    """`w <pid> <octal flags> <top>\t<path>` and `c <pid> <command line>` lines: the files of the checkout held
    open for writing (O_WRONLY or O_RDWR), by whom. Files inside .git (git's own locks) are not the user's."""
    commands: dict[int, str] = {}
    opened: list[tuple[int, str]] = []
    for line in text.splitlines():
        kind, _, rest = line.partition(" ")
        pid_text, _, rest = rest.partition(" ")
        if not pid_text.isdigit():
            continue
        if kind == "c":
            commands[int(pid_text)] = rest.strip()
            continue
        flags, _, paths = rest.partition(" ")
        top, _, path = paths.partition("\t")
        try:
            writable = int(flags, 8) & 3 in (1, 2)
        except ValueError:
            continue
        inside = path.startswith(top.rstrip("/") + "/")
        if kind == "w" and writable and inside and not (git_dir and path.startswith(git_dir.rstrip("/") + "/")):
            opened.append((int(pid_text), path[len(top.rstrip("/")) + 1:]))
    return [Writer(path, Process(pid, commands.get(pid, "?"))) for pid, path in opened]



def overlap(local: tuple[str, ...], incoming: list[str] | tuple[str, ...]) -> bool:
    """Do local changes touch what the update changes: the same path, or one is a directory of the other
    (a staged new file `data` where the update adds `data/x.csv`)?"""
    return bool(_with_parents(local) & set(incoming) or set(local) & _with_parents(incoming))


def _with_parents(paths) -> set[str]:
    parts = [path.split("/") for path in paths]
    return {"/".join(p[:i]) for p in parts for i in range(1, len(p) + 1)}
