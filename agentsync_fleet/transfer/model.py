"""What a transfer did, as data: per transfer, per run. Rendered by `output/transfer.py`, stored as JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What each transfer task does, in the journal's words: the sync-all stage and the task of the same name share it.
ACTIONS = {"push-code": "push code and push entries", "results": "bring results back"}


@dataclass
class LegResult:
    """One rsync run of a transfer (a relay has two)."""

    label: str
    command: str
    exit_code: int | None = None
    duration_s: float = 0.0
    files: int = 0
    bytes: int = 0
    wire_bytes: int = 0
    matched: int = 0  # bytes rsync did not have to send: found in the old file or a resumed partial


@dataclass
class TransferResult:
    """One transfer (push-code, an rsync entry, a results entry) from start to end."""

    host: str  # the host whose entry it is
    name: str
    kind: str  # code | rsync | results
    source: str
    dest: str
    mode: str  # local | relay | direct
    dry_run: bool = False
    status: str = "ok"  # ok | failed | unreachable
    files: int = 0  # regular files moved (in a dry run: would move)
    bytes: int = 0  # their size
    wire_bytes: int = 0  # bytes on the wire (after delta and compression)
    deleted: int = 0
    changes: list[dict[str, str]] = field(default_factory=list)  # itemized: {action, path}
    backed_up: list[dict[str, str]] = field(default_factory=list)  # {path, backup, restore}
    backup_dir: str = ""
    restore_all: str = ""
    held_back: list[dict[str, Any]] = field(default_factory=list)  # {path, pattern|pid, reason: secret|guard}
    excluded: int = 0  # files left out by the entry's own exclude patterns
    legs: list[LegResult] = field(default_factory=list)
    duration_s: float = 0.0
    error: str = ""
    hint: str = ""
    detail: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.host}.{self.name}"

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def fail(self, status: str, error: str, hint: str = "", detail: str = "") -> None:
        self.status, self.error, self.hint, self.detail = status, error, hint, detail


@dataclass(frozen=True)
class TransferReport:
    task: str  # push-code | results
    run_id: str
    dry_run: bool
    transfers: tuple[TransferResult, ...]
    duration_s: float
    problems: tuple[str, ...] = ()  # host-level trouble outside any one transfer

    @property
    def ok(self) -> bool:
        return not self.problems and all(t.ok for t in self.transfers)


@dataclass(frozen=True)
class TransferEvent:
    """Sent to the display while transfers run: start, progress, change, end."""

    key: str
    kind: str  # start | progress | change | end
    label: str = ""
    progress: Any = None  # parse.Progress
    change: Any = None  # parse.Change
    result: TransferResult | None = None


def totals(results: list[TransferResult] | tuple[TransferResult, ...]) -> dict[str, int]:
    """What the run journal stores for a step: files and bytes moved, backed up, held back."""
    return {"files": sum(t.files for t in results), "bytes": sum(t.bytes for t in results),
            "wire_bytes": sum(t.wire_bytes for t in results), "deleted": sum(t.deleted for t in results),
            "backed_up": sum(len(t.backed_up) for t in results),
            "held_back": sum(len(t.held_back) for t in results), "count": len(results)}
