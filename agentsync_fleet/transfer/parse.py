"""Read rsync's output: `--itemize-changes` lines, `--info=progress2` updates, backups, held-back files, `--stats`.

Pure functions from text to values, tested against captured rsync 3.2 output
(tests/test_rsync_units.py). rsync runs with LC_ALL=C, so every byte of a file
name outside printable ASCII arrives escaped as `\\#ooo`; `unescape` restores
the exact name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ESCAPE = re.compile(r"\\#([0-7]{3})")
PROGRESS = re.compile(r"^\s*([\d,]+)\s+(\d+)%\s+\S+/s\s+[\d:]+\s*(?:\(xfr#(\d+), (?:to|ir)-chk=(\d+)/(\d+)\))?\s*$")
ITEM = re.compile(r"^([<>ch.][fdLDS][.+ ?a-zA-Z]{9}) (.+)$")
DELETING = re.compile(r"^\*deleting   (.+)$")  # %i is 11 wide, then a space
HIDING = re.compile(r"^\[sender\] hiding (file|directory) (.+) because of pattern (.+)$")
STAT = re.compile(r"^(Number of files|Number of created files|Number of deleted files|Number of regular files "
                  r"transferred|Total file size|Total transferred file size|Literal data|Matched data|Total bytes "
                  r"sent|Total bytes received): ([\d,]+)")
STAT_KEYS = {"Number of files": "files_total", "Number of created files": "created",
             "Number of deleted files": "deleted", "Number of regular files transferred": "files",
             "Total file size": "size_total", "Total transferred file size": "bytes", "Literal data": "literal",
             "Matched data": "matched", "Total bytes sent": "sent", "Total bytes received": "received"}


def unescape(text: str) -> str:
    """rsync's `\\#ooo` escapes back to the original bytes, decoded as UTF-8 (undecodable bytes kept)."""
    if "\\#" not in text:
        return text
    raw = ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), text).encode("latin-1", errors="surrogateescape")
    return raw.decode("utf-8", errors="surrogateescape")


@dataclass(frozen=True)
class Change:
    """One itemized change: what happens to `path` on the receiving side."""

    action: str  # new | update | delete | mkdir | link | attrs
    path: str
    flags: str = ""


@dataclass(frozen=True)
class Progress:
    bytes: int
    percent: int
    transferred: int | None = None  # files sent so far (xfr#)
    remaining: int | None = None  # files still to check
    total: int | None = None  # files in the list (grows while rsync still scans)


@dataclass
class RsyncOutput:
    changes: list[Change] = field(default_factory=list)
    backed_up: list[tuple[str, str]] = field(default_factory=list)  # (path, where its old version went)
    hidden: list[tuple[str, str]] = field(default_factory=list)  # (path, pattern) the sender held back
    stats: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False
    other: list[str] = field(default_factory=list)


def split_records(buffer: str) -> tuple[list[str], str]:
    """Complete records (lines, or progress updates ended by \\r) and the unfinished rest."""
    parts = re.split(r"[\r\n]", buffer)
    return [p for p in parts[:-1] if p.strip()], parts[-1]


def parse_progress(line: str) -> Progress | None:
    match = PROGRESS.match(line)
    if not match:
        return None
    numbers = [int(g) if g else None for g in match.group(3, 4, 5)]
    return Progress(int(match.group(1).replace(",", "")), int(match.group(2)), *numbers)


def parse_change(line: str) -> Change | None:
    deleting = DELETING.match(line)
    if deleting:
        return Change("delete", unescape(deleting.group(1)), "*deleting")
    match = ITEM.match(line)
    if not match:
        return None
    flags, name = match.groups()
    if flags[1] == "L" and " -> " in name:
        name = name.split(" -> ", 1)[0]
    return Change(_action(flags), unescape(name), flags)


def _action(flags: str) -> str:
    kind, new = flags[1], flags[2:] == "+" * 9
    if flags[0] in "<>":
        return "new" if new else "update"
    if flags[0] == "c":
        return {"d": "mkdir", "L": "link"}.get(kind, "new") if new else "update"
    if flags[0] == "h":
        return "link"
    return "attrs"


def parse_backup(line: str) -> tuple[str, str] | None:
    """`backed up NAME to DIR/NAME`; the name may itself contain ' to ', so split where DIR/NAME ends in NAME."""
    if not line.startswith("backed up "):
        return None
    rest = line[len("backed up "):]
    start = 0
    while (at := rest.find(" to ", start)) != -1:
        name, where = rest[:at], rest[at + 4:]
        if where.endswith("/" + name):
            return unescape(name), unescape(where)
        start = at + 1
    return None


def parse_output(text: str) -> RsyncOutput:
    """Everything rsync printed on stdout (the records split on \\r and \\n)."""
    out = RsyncOutput()
    records, rest = split_records(text)
    for line in records + ([rest] if rest.strip() else []):
        feed(out, line)
    return out


def feed(out: RsyncOutput, line: str) -> Progress | Change | None:
    """Add one record to `out`; return it parsed if it is a progress update or a change (for live display)."""
    if (progress := parse_progress(line)) is not None:
        return progress
    if (change := parse_change(line)) is not None:
        out.changes.append(change)
        return change
    if (backup := parse_backup(line)) is not None:
        out.backed_up.append(backup)
    elif (hidden := HIDING.match(line)) is not None:
        out.hidden.append((unescape(hidden.group(2)), hidden.group(3)))
    elif (stat := STAT.match(line)) is not None:
        out.stats[STAT_KEYS[stat.group(1)]] = int(stat.group(2).replace(",", ""))
    elif line.startswith(("sent ", "total size is ")) and "(DRY RUN)" in line:
        out.dry_run = True
    elif not line.startswith(("[generator] protecting", "[receiver] ", "(new) backup_dir", "backup_dir is",
                              "created directory", "sent ", "total size is ", "File list ")):
        out.other.append(line)
    return None


@dataclass(frozen=True)
class Diagnosis:
    reason: str  # host key ... | auth | refused | timeout | dns | network | cut off | no rsync | files | failed
    message: str
    detail: str = ""  # the last lines rsync/ssh printed on stderr
    partial: bool = False  # a file that was being moved is kept in the partial dir for the next run
    path: str = ""  # the path that is not there (no source, no parent)


ERROR_SIGNS = (
    ("host key changed", ("REMOTE HOST IDENTIFICATION HAS CHANGED",)),
    ("host key unknown", ("Host key verification failed", "No ED25519 host key is known", "host key is known for")),
    ("auth", ("Permission denied (",)),
    ("refused", ("Connection refused",)),
    ("dns", ("Could not resolve hostname",)),
    ("timeout", ("Connection timed out", "Operation timed out", "timed out during banner exchange")),
    ("network", ("No route to host", "Network is unreachable")),
    ("no rsync", ("rsync: command not found", "rsync: not found", "rsync: No such file or directory")),
)


MISSING = re.compile(r'^rsync: (?:\[\w+\] )?(change_dir|link_stat|mkdir) "(.+)" failed: No such file or directory',
                     re.M)


def missing_path(stderr: str) -> tuple[str, str] | None:
    """("source", path) when the sender found no `path`; ("parent", dir) when the receiver could not create the
    destination because `dir` above it does not exist."""
    match = MISSING.search(stderr)
    if match is None:
        return None
    path = re.sub(r"\\([*?[\\])", r"\1", unescape(match.group(2)))  # as written: without remote_spec's escapes
    if match.group(1) == "mkdir":
        return "parent", path.rstrip("/").rsplit("/", 1)[0] or "/"
    return "source", path


def diagnose(code: int, stderr: str, where: str, sender: str = "the sender", receiver: str = "the receiver"
             ) -> Diagnosis | None:
    """What a non-zero rsync exit means, in words; None for success (0) and vanished source files (24).
    `where` is the remote side; `sender`/`receiver` name the machines that hold the source and the destination."""
    if code in (0, 24):
        return None
    tail = _tail(stderr)
    for reason, signs in ERROR_SIGNS:
        if any(sign in stderr for sign in signs):
            return Diagnosis(reason, f"{_REASONS[reason].format(where=where)}", tail)
    missing = missing_path(stderr) if code in (23, 11, 3) else None
    if missing is not None and missing[0] == "source":
        return Diagnosis("no source", f"the source {sender}:{missing[1]} does not exist", tail, path=missing[1])
    if missing is not None:
        return Diagnosis("no parent", f"{receiver}:{missing[1]} does not exist (rsync creates only the last "
                                      "directory of the destination)", tail, path=missing[1])
    if code == 30:
        return Diagnosis("timeout", f"the transfer with {where} stalled (no data within the I/O timeout)", tail,
                         partial=True)
    if code in (23, 11):  # checked before the connection signs: rsync adds a "Broken pipe" line to these
        return Diagnosis("files", "some files could not be transferred", tail)
    if code in (12, 255, 10, 35) or "connection unexpectedly closed" in stderr:
        return Diagnosis("cut off", f"the transfer with {where} was cut off mid-way (connection lost)", tail,
                         partial=True)
    if code == 20:
        return Diagnosis("interrupted", "the transfer was interrupted", tail, partial=True)
    if code < 0:  # the laptop's own rsync was killed (out of memory, kill): no exit code of its own
        return Diagnosis("interrupted", f"rsync on the laptop was killed (signal {-code}) mid-way", tail,
                         partial=True)
    return Diagnosis("failed", f"rsync exited with code {code}", tail)


_REASONS = {
    "host key changed": "{where}'s host key has CHANGED; refusing to connect (someone may be intercepting)",
    "host key unknown": "{where}'s host key is not in known_hosts; refusing to connect",
    "auth": "authentication to {where} failed",
    "refused": "connection to {where} refused",
    "dns": "{where}'s host name does not resolve",
    "timeout": "{where} did not answer in time",
    "network": "no network route to {where}",
    "no rsync": "rsync is not installed on {where}",
}


def _tail(stderr: str, lines: int = 6) -> str:
    kept = [line for line in stderr.strip().splitlines() if line.strip()]
    return "\n".join(kept[-lines:])
