"""Signals during a move: held until the move is finished or rolled back, then re-raised.

SIGINT raises KeyboardInterrupt and SIGTERM/SIGHUP raise `Terminated` (see
`taskrun`) wherever the main thread happens to be, which could be between
`git stash` and `git stash pop`: the user's work would stay in a stash. Inside
`held()` a signal is only noted; when the block ends (each command in it has
its own deadline) it is raised as it would have been. A second signal while
held changes nothing: one is enough to stop, none is needed to finish.
Worker threads never receive signals; they are stopped between moves by
the pool (`pool.run_each`).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_depth = 0  # signal handlers are process-wide: only the outermost `held()` installs and re-raises


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the main thread is, so everything unwinds as for Ctrl-C."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def raise_for(signum: int) -> None:
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(signum)


@contextlib.contextmanager
def held() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP for the block (main thread only); re-raise the first one after it."""
    global _depth
    if threading.current_thread() is not threading.main_thread() or _depth:  # no signals here, or held already
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum)) for sig in SIGNALS
                if signal.getsignal(sig) is not signal.SIG_IGN}  # `nohup` ignores SIGHUP on purpose: keep that
    _depth = 1
    try:
        yield
    finally:
        _depth = 0
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if caught:
            raise_for(caught[0])
