"""The `agentsync` program's entry point: begin what can begin before the program loads, then run it.

Loading Python, Invoke and the inventory takes about a tenth of a second.
For `run` on a host this computer has reached before, the SSH handshake
(0.4 s on a 50 ms link) begins first and overlaps with that
(`_startup.begin_early`, remote/early.py); the program then parses the
command line as always.
"""

from __future__ import annotations

import sys

INTERRUPTED = 130  # Ctrl-C, as the program itself exits on it (program.py)


def main() -> None:
    early: tuple = ()
    try:
        from ._startup import begin_early

        early = begin_early(sys.argv[1:])
        from .cli import main as run_program

        run_program(early)
    except KeyboardInterrupt:  # Ctrl-C while loading (the program itself exits 130 on it later on)
        sys.exit(INTERRUPTED)
    finally:
        for attempt in early:  # one still connecting (bad input after all, Ctrl-C): given up, nothing outlives us
            attempt.abandon()
