"""Bounded parallelism across hosts: results, not exceptions, cross host boundaries.

Fabric's ThreadingGroup starts one thread per host with no bound and joins
without a timeout; here a fixed-size pool runs one function per host and
returns, for every host, either its value or the error it raised.
"""

from __future__ import annotations

import sys
import threading
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .errors import FleetError
from .interrupts import held
from .settings import DEFAULT_WORKERS

T = TypeVar("T")
K = TypeVar("K")


def worker_count(requested: int | None, jobs: int) -> int:
    """A pool sized to the fleet: never more threads than hosts, never fewer than one."""
    return max(1, min(requested or DEFAULT_WORKERS, jobs))


def run_each(items: Iterable[K], fn: Callable[[K], T], workers: int | None = None,
             stop: threading.Event | None = None) -> dict[K, T | Exception]:
    """Run `fn(item)` for every item with at most `workers` at once; keep input order.

    A `FleetError` is an expected outcome and is returned as a value. Anything
    else is a bug: it is returned too (so other hosts still finish) and its
    traceback is printed to stderr so it is not hidden.

    On an interrupt (Ctrl-C, SIGTERM, SIGHUP reach the main thread only) items
    not started are dropped, `stop` is set (so a running item starts no new
    move) and the running ones are waited for, signals held: a move under way
    on a host is finished or rolled back, never abandoned halfway. Each
    command of theirs has its deadline, so the wait is bounded.
    """
    items = list(items)
    if not items:
        return {}

    def guarded(item: K) -> T | Exception:
        try:
            return fn(item)
        except FleetError as exc:
            return exc
        except Exception as exc:  # noqa: BLE001 - reported below, never swallowed silently
            traceback.print_exc(file=sys.stderr)
            return exc

    if len(items) == 1:
        return {items[0]: guarded(items[0])}
    pool = ThreadPoolExecutor(max_workers=worker_count(workers, len(items)), thread_name_prefix="host")
    futures = {item: pool.submit(guarded, item) for item in items}
    try:
        results = {item: future.result() for item, future in futures.items()}
    except BaseException:
        if stop is not None:
            stop.set()
        with held():
            pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return results
