"""The controller's lock for one inventory: a file in the state dir, keyed by the inventory's path.

Created complete and atomically (written to a temporary file, then
hard-linked to its name: `link` fails if the name exists). Deciding that a
lock is stale and replacing it happens under an `fcntl` lock on a guard file,
so two runs that both find the same stale lock cannot both take it over.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from ..errors import FleetError
from .model import Holder


class LocalLock:
    def __init__(self, state_dir: str | os.PathLike, inventory_path: str | os.PathLike):
        inventory = os.path.abspath(inventory_path)
        key = hashlib.sha256(inventory.encode()).hexdigest()[:16]
        self.dir = Path(state_dir) / "locks"
        self.path = self.dir / f"{key}.lock"
        self.inventory = inventory

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.dir / f"{self.path.stem}.guard", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise FleetError(f"cannot create the lock in {self.dir}: {exc.strerror}",
                             hint="set state_dir in the inventory or $AGENTSYNC_STATE_DIR to a writable "
                                  "directory") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def read(self) -> tuple[bool, Holder | None, str]:
        """(exists, holder or None if unreadable, raw text)."""
        try:
            text = self.path.read_text(errors="replace").strip()
        except FileNotFoundError:
            return False, None, ""
        return True, Holder.from_json(text), text

    def _write_new(self, holder: Holder, replace: bool) -> bool:
        """Write the holder record; without `replace`, only if no lock exists (atomic link)."""
        tmp = self.dir / f"{self.path.stem}.{os.getpid()}.tmp"
        tmp.write_text(holder.to_json() + "\n")
        try:
            if replace:
                os.replace(tmp, self.path)
                return True
            os.link(tmp, self.path)
            return True
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)

    def acquire(self, holder: Holder, decide) -> str | None:
        """Take the lock. `decide(existing_holder)` returns a takeover reason, or raises to refuse.

        Returns the takeover reason when a stale lock was replaced, else None.
        """
        with self._guard():
            if self._write_new(holder, replace=False):
                return None
            _, existing, _ = self.read()
            reason = decide(existing)
            self._write_new(holder, replace=True)
            return reason

    def release(self, holder: Holder) -> bool:
        """Remove the lock if it is still ours (a takeover may have replaced it)."""
        with self._guard():
            _, existing, _ = self.read()
            if existing is not None and existing.run_id == holder.run_id and existing.pid == holder.pid:
                self.path.unlink(missing_ok=True)
                return True
            return False

    def remove_if(self, expected_text: str) -> bool:
        """`unlock`: remove the lock only if it still holds what the user was shown."""
        with self._guard():
            exists, _, text = self.read()
            if exists and text == expected_text:
                self.path.unlink(missing_ok=True)
                return True
            return False
