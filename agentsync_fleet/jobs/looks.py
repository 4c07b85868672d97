"""What this controller has already seen of the hosts' jobs: which ends it journaled, what `health` last showed.

Kept in the controller's state dir (`<state>/jobs/`), never on the hosts:
each laptop remembers what *it* was shown.

* `ended/<job id>` — an empty file, created (O_EXCL) by the first command that
  journals the job's end: `jobs` and `health` journal an end they see only if
  they create it; `wait` and `cancel` create it too (they always journal the
  end they waited for or caused), so nothing journals it again.
* `looks/<host>.json` — health's last look at a host: the host's clock then and
  the ids of the died jobs it showed; the next look shows a job that died
  (exited N≠0, killed) only if it ended since (`died_since`).
* `listed/<host>` — the host's clock at the last complete listing by `jobs` or
  `health` whose every end was journaled (once, as above). A job that ended
  well before it (`SETTLE_S`) was in that listing, so its end is journaled:
  the next listings leave such a job out unless they show it (`listing_window`),
  and a host's thousands of old records cost a `read` each, not a fork.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .model import RECENT_S, Job, Window

SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")  # a job id or host name usable as a file name
# An exit status is stamped (`date +%s`) a moment before its file appears: a job stamped just before a listing's
# clock may not have been in it. Ends this much older than the last listing are sure to have been.
SETTLE_S = 600


@dataclass(frozen=True)
class Look:
    """One host at health's last look: its clock (`date +%s` there) and the died jobs shown."""

    now: float
    shown: frozenset[str] = frozenset()


def died_since(jobs: list[Job] | tuple[Job, ...], now: float | None, last: Look | None) -> list[Job]:
    """The jobs health shows as died: every `lost` one, and those that ended badly since the last look.

    With no last look (the first, or its marker gone): those that ended within a day. A job shown at the
    last look is not shown again, even if it ended in the very second of that look.
    """
    died = []
    for job in jobs:
        if job.state == "lost":
            died.append(job)
        elif job.state != "running" and job.status_code != 0 and job.ended is not None and now is not None:
            recent = job.ended >= last.now and job.id not in last.shown if last else now - job.ended <= RECENT_S
            if recent:
                died.append(job)
    return died


def next_look(jobs: list[Job] | tuple[Job, ...], now: float, last: Look | None, died: list[Job]) -> Look:
    """What to remember of this look: the host's clock, and every job the next look must not show again —
    those shown now, and those shown before that ended in this very second (clocks are whole seconds)."""
    before = last.shown if last else frozenset()
    again = {j.id for j in jobs if j.id in before and j.ended is not None and j.ended >= now}
    return Look(now, frozenset({j.id for j in died if j.state != "lost"} | again))


def listing_window(listed: float | None, last: Look | None = None) -> Window:
    """Which ended jobs a `jobs` (or, with its `last` look, `health`) listing reads in full (`model.Window`).

    In full: those it may show (ended within a day; for health, also since its last look) and those whose
    end may not be journaled yet (since the last listing, `listed`). The older ones are left out when there
    was such a listing (their ends are journaled, and neither command shows them); without one (this
    controller never listed the host) they are listed with builtins only, without their log's last line,
    and journaled so.
    """
    since = ([int(last.now)] if last is not None else []) + ([int(listed) - SETTLE_S] if listed is not None else [])
    return Window(RECENT_S, tuple(since), omit_older=listed is not None)


class Looks:
    """The markers under `<state dir>/jobs/` (see the module docstring)."""

    def __init__(self, state_dir: str | os.PathLike):
        self.root = Path(state_dir) / "jobs"

    def first_end(self, job: Job) -> bool:
        """True exactly once per job end (across processes): the caller journals it."""
        if job.running or not SAFE.match(job.id):
            return False
        ended = self.root / "ended"
        try:
            ended.mkdir(parents=True, exist_ok=True)
            os.close(os.open(ended / job.id, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return False
        except OSError:
            return True  # the marker cannot be written: journal (twice, maybe) rather than never
        return True

    def listed(self, host: str) -> float | None:
        """The host's clock at this controller's last complete listing of it (see the module docstring)."""
        if not SAFE.match(host):
            return None
        try:
            listed = float((self.root / "listed" / host).read_text())
        except (OSError, ValueError):
            return None
        return listed if math.isfinite(listed) else None

    def remember_listed(self, host: str, now: float) -> None:
        """Call only once every end that listing saw is journaled; a failure only forgets it."""
        self._write("listed", host, "", str(int(now)))

    def last(self, host: str) -> Look | None:
        if not SAFE.match(host):
            return None
        try:
            data = json.loads((self.root / "looks" / f"{host}.json").read_text())
            return Look(float(data["now"]), frozenset(str(i) for i in data.get("shown", ())))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remember(self, host: str, look: Look) -> None:
        """Write the look atomically (a reader sees the old one or the new one); a failure only forgets it."""
        self._write("looks", host, ".json", json.dumps({"now": look.now, "shown": sorted(look.shown)}))

    def _write(self, kind: str, host: str, suffix: str, text: str) -> None:
        """`<kind>/<host><suffix>`, atomically (a reader sees the old file or the new one)."""
        if not SAFE.match(host):
            return
        folder = self.root / kind
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = folder / f".{host}.{os.getpid()}.tmp"
            tmp.write_text(text)
            os.replace(tmp, folder / f"{host}{suffix}")
        except OSError:
            pass
