"""The run journal on disk: one SQLite file (WAL mode) in the state dir.

Every statement commits on its own (autocommit), so a row is on disk the
moment a step finishes: a run killed with `kill -9` keeps everything it had
recorded. WAL lets `history` read while a sync writes, and several
agentsync processes share the file (`busy_timeout` waits for the writer).
A run whose row still says `running` but whose process is gone is marked
`interrupted` by `reconcile()`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from ..errors import FleetError
from ..identity import controller, process_alive
from ..settings import TIMEOUTS

FILE_NAME = "journal.sqlite3"
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    args TEXT NOT NULL DEFAULT '{}',
    started REAL NOT NULL,
    ended REAL,
    status TEXT NOT NULL,            -- running | ok | failed | error | refused | interrupted
    exit_code INTEGER,
    who TEXT NOT NULL,
    controller TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT NOT NULL DEFAULT '',
    inventory TEXT NOT NULL,
    inventory_sha256 TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started);
CREATE TABLE IF NOT EXISTS steps (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs(id),
    host TEXT NOT NULL,
    stage TEXT NOT NULL,
    action TEXT NOT NULL,
    status TEXT NOT NULL,
    started REAL,
    ended REAL,
    duration_s REAL,
    exit_code INTEGER,
    head_before TEXT NOT NULL DEFAULT '',
    head_after TEXT NOT NULL DEFAULT '',
    bytes INTEGER,
    files INTEGER,
    commands TEXT NOT NULL DEFAULT '[]',
    data TEXT NOT NULL DEFAULT '{}',
    detail TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS steps_run ON steps(run_id);
CREATE INDEX IF NOT EXISTS steps_host ON steps(host);
CREATE TABLE IF NOT EXISTS hosts (
    run_id TEXT NOT NULL REFERENCES runs(id),
    host TEXT NOT NULL,
    status TEXT NOT NULL,
    head_before TEXT NOT NULL DEFAULT '',
    head_after TEXT NOT NULL DEFAULT '',
    pulled INTEGER NOT NULL DEFAULT 0,
    pushed INTEGER NOT NULL DEFAULT 0,
    duration_s REAL,
    message TEXT NOT NULL DEFAULT '',
    warnings TEXT NOT NULL DEFAULT '[]',
    ended REAL,
    PRIMARY KEY (run_id, host)
);
"""

JSON_COLUMNS = ("args", "extra", "commands", "data", "warnings")
RUN_COLUMNS = ("id", "task", "args", "started", "ended", "status", "exit_code", "who", "controller", "pid",
               "pid_start", "inventory", "inventory_sha256", "message", "extra")
STEP_COLUMNS = ("run_id", "host", "stage", "action", "status", "started", "ended", "duration_s", "exit_code",
                "head_before", "head_after", "bytes", "files", "commands", "data", "detail", "error")
HOST_COLUMNS = ("run_id", "host", "status", "head_before", "head_after", "pulled", "pushed", "duration_s",
                "message", "warnings", "ended")


# What a row holds when the writer left a column out (the NOT NULL columns of the schema).
DEFAULTS = {
    "runs": {"message": "", "extra": {}, "args": {}, "pid_start": ""},
    "steps": {"head_before": "", "head_after": "", "commands": [], "data": {}, "detail": "", "error": ""},
    "hosts": {"head_before": "", "head_after": "", "pulled": 0, "pushed": 0, "message": "", "warnings": []},
}


class JournalError(FleetError):
    """The journal file cannot be opened, read or written."""


def _dump(value: Any) -> str:
    return json.dumps(value, default=str, sort_keys=True)


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in JSON_COLUMNS:
        if key in out and isinstance(out[key], str):
            try:
                out[key] = json.loads(out[key])
            except ValueError:
                pass  # keep the text: a hand-edited row must not make history unreadable
    return out


class Journal:
    """One open journal file; safe to use from the engine's worker threads."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not path.exists():  # commands and their output tails are nobody else's business
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
            self._db = sqlite3.connect(str(path), timeout=TIMEOUTS.journal_busy, isolation_level=None, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute(f"PRAGMA busy_timeout = {int(TIMEOUTS.journal_busy * 1000)}")
            self._set_up(time.monotonic() + TIMEOUTS.journal_busy)
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open the run journal {path}: {exc}",
                               hint="set state_dir in the inventory or $AGENTSYNC_STATE_DIR to a writable "
                                    "directory") from None

    def _set_up(self, deadline: float) -> None:
        """WAL mode and the schema. Two processes creating the file at once (a first run of two commands)
        get SQLITE_BUSY from the switch to WAL without the busy handler ever waiting: try again until
        the other is done, within the same journal_busy."""
        while True:
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
                self._db.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable against a killed process
                self._db.executescript(SCHEMA)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @classmethod
    def in_dir(cls, state_dir: str | os.PathLike) -> Journal:
        return cls(Path(state_dir) / FILE_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _execute(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"run journal {self.path}: {exc}") from None

    # ------------------------------------------------------------ writing

    def _insert(self, table: str, columns: tuple[str, ...], row: dict[str, Any], verb: str = "INSERT") -> None:
        row = {**DEFAULTS[table], **row}
        values = [_dump(row[c]) if c in JSON_COLUMNS else row.get(c) for c in columns]
        self._execute(f"{verb} INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values)

    def start_run(self, run: dict[str, Any]) -> None:
        self._insert("runs", RUN_COLUMNS, run)

    def finish_run(self, run_id: str, status: str, exit_code: int | None, message: str = "",
                   extra: dict[str, Any] | None = None) -> None:
        self._execute("UPDATE runs SET status = ?, exit_code = ?, ended = ?, message = ?, extra = ? WHERE id = ?",
                      (status, exit_code, time.time(), message, _dump(extra or {}), run_id))

    def set_extra(self, run_id: str, extra: dict[str, Any]) -> None:
        self._execute("UPDATE runs SET extra = ? WHERE id = ?", (_dump(extra), run_id))

    def add_step(self, row: dict[str, Any]) -> None:
        self._insert("steps", STEP_COLUMNS, row)

    def put_host(self, row: dict[str, Any]) -> None:
        self._insert("hosts", HOST_COLUMNS, row, "INSERT OR REPLACE")

    def reconcile(self, here: str | None = None) -> list[str]:
        """Mark runs of this controller whose process is gone (killed, crashed) as `interrupted`."""
        here = here or controller()
        gone = []
        for row in self._execute("SELECT id, pid, pid_start, started FROM runs WHERE status = 'running' "
                                 "AND controller = ?", (here,)):
            if process_alive(row["pid"], row["pid_start"]):
                continue
            last = self._execute("SELECT MAX(ended) AS ended FROM steps WHERE run_id = ?", (row["id"],))
            ended = (last[0]["ended"] if last else None) or row["started"]
            self._execute("UPDATE runs SET status = 'interrupted', ended = ?, message = ? "
                          "WHERE id = ? AND status = 'running'",
                          (ended, f"process {row['pid']} ended without finishing the run (killed or crashed)",
                           row["id"]))
            gone.append(row["id"])
        return gone

    # ------------------------------------------------------------ reading

    def runs(self, *, limit: int | None = None, host: str | None = None, status: str | None = None,
             task: str | None = None, inventory: str | None = None) -> list[dict[str, Any]]:
        """Runs, newest first, optionally only those touching `host`, with `status`, of `task`."""
        where, params = [], []
        if host:
            where.append("(id IN (SELECT run_id FROM hosts WHERE host = ?) "
                         "OR id IN (SELECT run_id FROM steps WHERE host = ?))")
            params += [host, host]
        for column, value in (("status", status), ("task", task), ("inventory", inventory)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY started DESC, rowid DESC"
        if limit:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_decode(r) for r in self._execute(sql, params)]

    def find(self, ref: str) -> dict[str, Any] | None:
        """A run by id, by a unique id prefix, or `last`; None if nothing (or more than one) matches."""
        if ref == "last":
            rows = self._execute("SELECT * FROM runs ORDER BY started DESC, rowid DESC LIMIT 1")
        else:
            rows = self._execute("SELECT * FROM runs WHERE id = ?", (ref,)) or self._execute(
                "SELECT * FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 2",
                (ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",))
        return _decode(rows[0]) if len(rows) == 1 else None

    def hosts_of(self, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
        return self._rows("hosts", run_ids, "rowid")

    def steps_of(self, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
        return self._rows("steps", run_ids, "id")

    def _rows(self, table: str, run_ids: list[str] | None, order: str) -> list[dict[str, Any]]:
        if run_ids is None:
            return [_decode(r) for r in self._execute(f"SELECT * FROM {table} ORDER BY {order}")]
        out: list[dict[str, Any]] = []
        for start in range(0, len(run_ids), 500):  # stay under SQLite's bound-parameter limit
            chunk = run_ids[start:start + 500]
            out += [_decode(r) for r in self._execute(
                f"SELECT * FROM {table} WHERE run_id IN ({', '.join('?' * len(chunk))}) ORDER BY {order}", chunk)]
        return out

    def detail(self, run: dict[str, Any]) -> dict[str, Any]:
        """A run with its host rows and step rows."""
        return {**run, "hosts": self.hosts_of([run["id"]]), "steps": self.steps_of([run["id"]])}
