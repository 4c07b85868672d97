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

    @property
    def any(self) -> bool:
        return bool(self.tracked or self.untracked)

    @property
    def paths(self) -> set[str]:
        return set(self.tracked) | set(self.untracked)


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
    dirty: Dirty = Dirty()
    fetch_rc: int | None = None
    fetch_error: str = ""


def parse_status_z(text: str) -> Dirty:
    """`git status --porcelain=v1 -z` → tracked (staged or not) and untracked paths.

    A rename is followed by its source path, which is changed too (the stash brings it back for a
    moment); a copy's source is not.
    """
    tracked, untracked, staged = [], [], []
    source_of = ""
    for entry in text.rstrip("\n").split("\0"):
        if source_of:
            if source_of == "R":
                tracked.append(entry)
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
    return Dirty(tuple(tracked), tuple(untracked), tuple(staged))


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
        dirty=parse_status_z(status), fetch_rc=fetch_rc,
        fetch_error=" ".join(fetch[1:]).strip(),
    )



def overlap(local: tuple[str, ...], incoming: list[str] | tuple[str, ...]) -> bool:
    """Do local changes touch what the update changes: the same path, or one is a directory of the other
    (a staged new file `data` where the update adds `data/x.csv`)?"""
    return bool(_with_parents(local) & set(incoming) or set(local) & _with_parents(incoming))


def _with_parents(paths) -> set[str]:
    parts = [path.split("/") for path in paths]
    return {"/".join(p[:i]) for p in parts for i in range(1, len(p) + 1)}
