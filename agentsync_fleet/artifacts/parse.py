"""Pure parsers of `aws s3 sync` output: what moved, how far along it is, and what went wrong.

What the AWS CLI prints (awscli/customizations/s3/results.py; v1 and v2 alike):

* stdout: `upload: ./a to s3://b/p/a`, `download: s3://b/p/a to sub/a`,
  `delete: s3://b/p/a` or `delete: ./a`, each optionally prefixed `(dryrun) `;
  local paths are relative to where the CLI runs (`./a` at the top, `sub/a`
  below). Progress, `Completed 1.0 MiB/4.0 MiB (2.1 MiB/s) with 3 file(s)
  remaining`, ends in a carriage return so a terminal overwrites it.
* stderr: `upload failed: ./a to s3://b/p/a <exception>`, `fatal error:
  <exception>`, `warning: Skipping file ...`. Service errors read `An error
  occurred (Code) when calling the Operation operation: Message`.

File names may contain " to ", so a line is split where both sides name the
same relative path, not at the first " to ".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TRANSFER = re.compile(r"^(?P<dry>\(dryrun\) )?(?P<kind>upload|download|copy|move|delete): (?P<rest>.+)$")
FAILED = re.compile(r"^(?P<kind>upload|download|copy|move|delete) failed: (?P<rest>.+)$")
FATAL = re.compile(r"^fatal error: (?P<text>.+)$")
PROGRESS = re.compile(r"^Completed (?P<text>.+?) with ~?\d+ file\(s\) remaining")
AWS_ERROR = re.compile(r"An error occurred \((?P<code>[^)]+)\) when calling the (?P<op>\w+) operation"
                       r"(?: \(reached max retries: \d+\))?: (?P<message>.*)")


@dataclass(frozen=True)
class Transfer:
    """One file the CLI moved (or would move): its path relative to the entry's directory and prefix."""

    kind: str  # upload | download | copy | move | delete
    path: str
    dry_run: bool = False


@dataclass(frozen=True)
class AwsError:
    code: str  # NoSuchBucket, AccessDenied, ExpiredToken, 403, ...
    operation: str
    message: str


@dataclass(frozen=True)
class SyncOutput:
    """Everything one `aws s3 sync` said, sorted."""

    transfers: tuple[Transfer, ...] = ()
    failed: tuple[str, ...] = ()  # "upload failed: ..." lines
    fatal: str = ""  # the text after "fatal error: "
    warnings: tuple[str, ...] = ()
    errors: tuple[AwsError, ...] = ()  # service errors found in failed/fatal lines, in order
    progress: str = ""  # the last progress figure, e.g. "28.6 MiB/28.6 MiB (81.6 MiB/s)"
    other: tuple[str, ...] = ()  # other stderr lines: "The config profile (x) could not be found", usage errors

    @property
    def moved(self) -> tuple[Transfer, ...]:
        """Files copied one way or the other (deletions are counted apart)."""
        return tuple(t for t in self.transfers if t.kind != "delete")

    @property
    def deleted(self) -> tuple[Transfer, ...]:
        return tuple(t for t in self.transfers if t.kind == "delete")


def segments(text: str) -> list[str]:
    """Output to statements: progress lines end in \\r, statements in \\n; padding spaces dropped."""
    return [part.rstrip() for part in re.split(r"[\r\n]", text) if part.strip()]


def _local(display: str) -> str:
    return display[2:] if display.startswith("./") else display


def _names_same_file(local: str, rel: str) -> bool:
    return local in (rel, "./" + rel) or local.endswith("/" + rel)


def _split_points(text: str, marker: str) -> list[int]:
    return [m.start() for m in re.finditer(f"(?={re.escape(marker)})", text)]


def relative_path(kind: str, rest: str, url: str) -> str:
    """The file's path inside the entry, from `<src> to <dest>` (or the single path of a delete)."""
    prefix = url.rstrip("/") + "/"
    if kind == "delete":
        return rest[len(prefix):] if rest.startswith(prefix) else _local(rest)
    if rest.startswith(prefix):  # from S3: "s3://b/p/rel to <local>"
        for i in _split_points(rest, " to "):
            rel = rest[len(prefix):i]
            if rel and _names_same_file(rest[i + 4:], rel):
                return rel
        end = rest.find(" to ")
        return rest[len(prefix):end if end >= 0 else None]
    marker = " to " + prefix  # to S3: "<local> to s3://b/p/rel"
    for i in _split_points(rest, marker):
        rel = rest[i + len(marker):]
        if rel and _names_same_file(rest[:i], rel):
            return rel
    i = rest.rfind(marker)
    return rest[i + len(marker):] if i >= 0 else _local(rest)


def parse_transfer(line: str, url: str) -> Transfer | None:
    match = TRANSFER.match(line)
    if not match:
        return None
    return Transfer(match["kind"], relative_path(match["kind"], match["rest"], url), bool(match["dry"]))


def parse_progress(line: str) -> str | None:
    match = PROGRESS.match(line)
    return match["text"] if match else None


def parse_sync_output(stdout: str, stderr: str, url: str) -> SyncOutput:
    """Sort what the CLI printed into transfers, failures, warnings and service errors."""
    transfers, failed, warnings, errors, other = [], [], [], [], []
    fatal = progress = ""
    lines = [(line, False) for line in segments(stdout)] + [(line, True) for line in segments(stderr)]
    for line, on_stderr in lines:
        if (transfer := parse_transfer(line, url)) is not None:
            transfers.append(transfer)
        elif (text := parse_progress(line)) is not None:
            progress = text
        elif FAILED.match(line):
            failed.append(line)
        elif match := FATAL.match(line):
            fatal = fatal or match["text"]
        elif line.startswith("warning:"):
            warnings.append(line)
        elif on_stderr:
            other.append(line)
        if error := AWS_ERROR.search(line):
            errors.append(AwsError(error["code"], error["op"], error["message"].strip()))
    return SyncOutput(tuple(transfers), tuple(failed), fatal, tuple(warnings), tuple(errors), progress,
                      tuple(other))


def parse_sizes(text: str) -> dict[str, int]:
    """`<bytes> <path>` lines (GNU `find -printf '%s %P'`, BSD `stat -f '%z %N'`) → {path: bytes}."""
    sizes = {}
    for line in text.splitlines():
        size, _, path = line.partition(" ")
        if size.isdigit() and path:
            sizes[_local(path)] = int(size)
    return sizes


class ProgressCounter:
    """Counts files as the CLI reports them, from raw output chunks as they arrive over SSH."""

    def __init__(self, url: str):
        self.url = url
        self.files = 0
        self.deleted = 0
        self.progress = ""
        self._pending = b""

    def feed(self, chunk: bytes) -> bool:
        """Take a chunk; True if something a display shows (files, progress figure) changed."""
        *complete, self._pending = re.split(rb"[\r\n]", self._pending + chunk)
        changed = False
        for raw in complete:
            line = raw.decode(errors="replace").rstrip()
            if (transfer := parse_transfer(line, self.url)) is not None:
                if transfer.kind == "delete":
                    self.deleted += 1
                else:
                    self.files += 1
                changed = True
            elif (text := parse_progress(line)) is not None:
                self.progress, changed = text, True
        return changed
