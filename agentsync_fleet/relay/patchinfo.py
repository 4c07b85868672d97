"""Pure parsers for patch relay: git's output in, plain values out (no I/O, unit-tested).

`git format-patch` file names, `--numstat -z`, the commit list, the paths a
patch writes (for the secret check), the `.rej` files `git apply --reject`
reports, and whether a patch is empty.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..shell import unquote_git_path

PATCH_NAME = re.compile(r"^[0-9]{4,}-[A-Za-z0-9._-]*\.patch$")
FIELD_SEP, RECORD_SEP = "\x1f", "\x1e"
@dataclass(frozen=True)
class FileStat:
    """One file of a range: lines added and removed (None for a binary file)."""

    path: str
    insertions: int | None
    deletions: int | None


@dataclass(frozen=True)
class CommitInfo:
    sha: str
    author: str
    email: str
    date: str
    subject: str


@dataclass(frozen=True)
class RelayMeta:
    """What travels beside the patches (meta.json): where they come from and what they change."""

    source: str
    source_branch: str
    source_head: str
    base: str
    base_how: str
    target: str
    target_head: str
    commit_count: int
    commits: tuple[CommitInfo, ...] = ()
    files: tuple[FileStat, ...] = ()
    patches: tuple[str, ...] = field(default=())

    @property
    def insertions(self) -> int:
        return sum(f.insertions or 0 for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions or 0 for f in self.files)

    def as_json(self) -> dict:
        return {
            "source": self.source, "source_branch": self.source_branch, "source_head": self.source_head,
            "base": self.base, "base_how": self.base_how, "target": self.target, "target_head": self.target_head,
            "commit_count": self.commit_count, "insertions": self.insertions, "deletions": self.deletions,
            "files": [{"path": f.path, "insertions": f.insertions, "deletions": f.deletions} for f in self.files],
            "commits": [{"sha": c.sha, "author": c.author, "email": c.email, "date": c.date, "subject": c.subject}
                        for c in self.commits],
            "patches": list(self.patches),
        }


def _count(text: str) -> int | None:
    return None if text == "-" else int(text)


def parse_numstat_z(text: str) -> list[FileStat]:
    """`git diff --numstat -z`: `add\\tdel\\tpath\\0`, or `add\\tdel\\t\\0old\\0new\\0` for a rename."""
    items = text.split("\0")
    stats: list[FileStat] = []
    i = 0
    while i < len(items):
        entry = items[i].lstrip("\n")
        i += 1
        if not entry:
            continue
        added, deleted, path = entry.split("\t", 2)
        if path == "":  # a rename or copy: the old and new names follow as their own fields
            path = items[i + 1]
            i += 2
        stats.append(FileStat(path, _count(added), _count(deleted)))
    return stats


def parse_commits(text: str) -> list[CommitInfo]:
    """`git log --format=LOG_FORMAT` output, in the order git printed it."""
    commits = []
    for record in text.split(RECORD_SEP):
        record = record.strip("\n")
        if not record:
            continue
        sha, author, email, date, subject = (record.split(FIELD_SEP) + [""] * 5)[:5]
        commits.append(CommitInfo(sha, author, email, date, subject))
    return commits


def parse_format_patch_names(stdout: str) -> list[str]:
    """The patch file names `git format-patch -o DIR` printed (one path per line), checked for safety.

    git names patches NNNN-<subject with everything but [A-Za-z0-9._] turned into '-'>.patch; a name
    that does not look like that is refused rather than used in a path.
    """
    names = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line:
            continue
        name = line.rsplit("/", 1)[-1]
        if not PATCH_NAME.match(name):
            raise ValueError(f"unexpected patch file name from git format-patch: {name!r}")
        names.append(name)
    return names


def parse_name_list_z(text: str) -> list[str]:
    """`git log -z --format= --name-only`: every path named, in order, without duplicates."""
    seen: dict[str, None] = {}
    for item in text.split("\0"):
        item = item.strip("\n")
        if item:
            seen.setdefault(item, None)
    return list(seen)


def _strip_prefix(name: str, prefix: str) -> str:
    name = unquote_git_path(name.rstrip("\t"))
    return name[len(prefix):] if name.startswith(prefix) else name


def _header_names(rest: str) -> tuple[str, str]:
    """The a/ and b/ paths of a `diff --git` line (names may be quoted or contain spaces)."""
    if rest.startswith('"'):
        end = re.match(r'"(?:[^"\\]|\\.)*"', rest)
        a = rest[: end.end()] if end else rest
        b = rest[len(a):].lstrip(" ")
    elif rest.endswith('"') and ' "' in rest:
        a, b = rest[: rest.index(' "')], rest[rest.index(' "') + 1:]
    else:
        half = (len(rest) - 1) // 2  # same name twice: `a/NAME b/NAME`
        if rest[half] == " " and rest[2:half] == rest[half + 3:]:
            a, b = rest[:half], rest[half + 1:]
        else:
            a, _, b = rest.rpartition(" b/")
            b = "b/" + b
    return _strip_prefix(a, "a/"), _strip_prefix(b, "b/")


def written_paths(patch_text: str) -> list[str]:
    """Every path a patch creates or changes (rename/copy targets included, deletions left out).

    Only the header of each file section is read (from `diff --git` to its first hunk or binary
    block), so no line of file content can be mistaken for a header.
    """
    written: dict[str, None] = {}
    current: dict[str, str | bool] = {}
    in_header = False

    def close() -> None:
        if current and not current.get("deleted"):
            written.setdefault(str(current.get("to") or current["b"]), None)

    for line in patch_text.splitlines():
        if line.startswith("diff --git "):
            close()
            current = {"b": _header_names(line[len("diff --git "):])[1]}
            in_header = True
        elif not in_header:
            continue
        elif line.startswith(("@@", "GIT binary patch", "Binary files ")):
            in_header = False
        elif line.startswith("deleted file mode"):
            current["deleted"] = True
        elif line.startswith(("rename to ", "copy to ")):
            current["to"] = unquote_git_path(line.split(" to ", 1)[1])
        elif line.startswith("+++ ") and line[4:].strip() != "/dev/null":
            current["to"] = current.get("to") or _strip_prefix(line[4:], "b/")
    close()
    return list(written)


REJECT_LINE = re.compile(r"^Applying patch (.+) with \d+ rejects?\.\.\.$")


def parse_rejects(output: str) -> list[str]:
    """The `.rej` files `git apply --reject` wrote, from its messages ("Applying patch F with N reject...")."""
    found = []
    for line in output.splitlines():
        match = REJECT_LINE.match(line.strip())
        if match:
            found.append(unquote_git_path(match.group(1)) + ".rej")
    return found


def is_empty_patch(patch_text: str) -> bool:
    """A patch of a commit that changes nothing (format-patch --always writes those too)."""
    return not any(line.startswith("diff --git ") for line in patch_text.splitlines())
