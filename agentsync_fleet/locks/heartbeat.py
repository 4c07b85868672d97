"""The lock's heartbeat: a run keeps its locks young on every host it holds them, for as long as it runs.

Another controller judges a lock it meets by the lock's age on the host that keeps it (`model.stale_reason`:
the lock file's mtime against that host's own clock), because it cannot see whether the holder's process
still runs. A run longer than `lock_ttl` would look stale there while it is still at work. So while a run
holds the fleet lock, a background thread refreshes the mtime of each host's lock every `lock_ttl / 4`
(`remote.refresh_script`: only while the file still holds this run's record, never creating one), and the
lock's age stays under a quarter of `lock_ttl` plus one command. When the holder dies, the beats stop and
its locks go stale `lock_ttl` later, as before.

The heartbeat never holds the run up: it runs beside it, every refresh has its own deadline, a host that
cannot be reached just misses that beat, and stopping it does not wait for a refresh under way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

MIN_INTERVAL_S = 1.0


def interval(ttl: float) -> float:
    """How often to refresh: four beats per `lock_ttl`, so one or two missed beats still keep the lock young."""
    return max(ttl / 4, MIN_INTERVAL_S)


class Heartbeat:
    """Calls `beat()` every `every` seconds in a daemon thread until `stop()`; a failing beat is only missed."""

    def __init__(self, beat: Callable[[], object], every: float):
        self._beat = beat
        self._every = every
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agentsync-lock-heartbeat", daemon=True)
        self.beats = 0  # beats completed (for tests and the journal)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stopped.wait(self._every):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - a missed beat; the next one tries again, the run goes on
                continue
            self.beats += 1

    def stop(self, wait: float = 0.0) -> bool:
        """No further beat starts; one under way finishes by its own deadline, waited for at most `wait`
        seconds (the run waits for none). True when the thread has ended."""
        self._stopped.set()
        if wait > 0:
            self._thread.join(wait)
        return not self._thread.is_alive()
