"""`notify:` — after each sync-all, run a command on the controller with the JSON report on its stdin.

For a chat webhook, a pager, a log shipper. The command line is split with
`shlex` and run without a shell, in the inventory's directory, with the
user's environment (where a webhook token would live). It has a timeout;
whatever happens to it is reported and recorded, never fatal to the run.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .settings import Notify


@dataclass(frozen=True)
class NotifyOutcome:
    ok: bool
    command: str
    exit_code: int | None = None
    detail: str = ""
    duration_s: float = 0.0


def run_notify(spec: Notify, report_json: str, cwd: str | Path | None = None) -> NotifyOutcome:
    shown = " ".join(spec.argv)
    start = time.monotonic()

    def done(ok: bool, code: int | None, detail: str) -> NotifyOutcome:
        return NotifyOutcome(ok, shown, code, detail, round(time.monotonic() - start, 3))

    try:
        proc = subprocess.run(list(spec.argv), input=report_json, capture_output=True, text=True,
                              timeout=spec.timeout, cwd=cwd, errors="replace")
    except subprocess.TimeoutExpired:  # subprocess.run has already stopped our own child
        return done(False, None, f"timed out after {spec.timeout:g}s")
    except FileNotFoundError:
        return done(False, None, f"command not found: {spec.argv[0]}")
    except OSError as exc:
        return done(False, None, f"could not start: {exc.strerror or exc}")
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr.strip() or proc.stdout.strip()).splitlines()[-5:])
        return done(False, proc.returncode, f"exited {proc.returncode}" + (f": {tail}" if tail else ""))
    return done(True, 0, "")
