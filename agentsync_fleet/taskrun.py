"""How one CLI task runs: its exit status, its error message, and how the journal hears it ended.

`cli._guarded` wraps every task with this. Exit status 2 is bad input
(`InventoryError`, `UsageError`), 1 a fleet that is not where it should be
(or any other `FleetError`), 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP. A bug keeps
its traceback, and is recorded as `error` first.

SIGTERM and SIGHUP (a supervisor's stop, an agent harness's timeout, a
closed terminal) unwind the task like Ctrl-C instead of ending the process
on the spot, so the fleet lock is released and the journal says why.
"""

from __future__ import annotations

import contextlib
import inspect
import signal
import threading
from collections.abc import Callable, Iterator

from .errors import FleetError, InventoryError, UsageError
from .interrupts import Terminated
from .output import emit_error_json, error


def arguments(body: Callable[..., int], c, args: tuple, kwargs: dict) -> dict:
    """The task's arguments by name, as the journal records them."""
    try:
        bound = inspect.signature(body).bind_partial(c, *args, **kwargs).arguments
    except TypeError:
        return dict(kwargs)
    return {k: v for k, v in list(bound.items())[1:]}


INTERRUPTED = (128 + signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGHUP)  # exit statuses


def _terminate(signum: int, frame) -> None:
    raise Terminated(signum)


@contextlib.contextmanager
def _stop_signals_unwind() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield
        return
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGTERM, signal.SIGHUP)
                if signal.getsignal(sig) is not signal.SIG_IGN}  # `nohup` ignores SIGHUP on purpose: keep that
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def refuse_invoke_options(c) -> None:
    """`inv --dry TASK` (or --command-timeout) would read as a dry run (a timeout) and be ignored: refuse it.

    The `agentsync` program has no such options; under `inv` they reach the
    task only through Invoke's config.
    """
    config = getattr(getattr(c, "invoke", c), "config", None)  # c: the TaskRun, or Invoke's context itself
    if config is None:
        return
    if config.get("run", {}).get("dry"):
        raise UsageError("--dry is Invoke's echo-only mode and means nothing to agentsync; nothing was done",
                         hint="this tool's dry run is TASK --dry-run (or the `plan` task)")
    if config.get("timeouts", {}).get("command"):
        raise UsageError("--command-timeout is Invoke's and means nothing to agentsync; nothing was done",
                         hint="set defaults.command_timeout (or a host's command_timeout) in the inventory")


def run_body(body: Callable[..., int], recorder, c, /, *args, **kwargs) -> int:
    """Run the task; return its exit status and tell the journal how the run ended.

    With `--json`, a failure that ends the task before its report still puts
    one JSON document on stdout: `{"ok": false, "error": {message, hint, host}}`.
    """

    def finish(status: str, code: int | None, message: str = "") -> None:
        if recorder is not None:
            recorder.finish(status, code, message)

    def fail(exc: FleetError) -> None:
        if kwargs.get("json"):
            emit_error_json(exc)
        error(str(exc))

    try:
        with _stop_signals_unwind():
            refuse_invoke_options(c)
            code = body(c, *args, **kwargs) or 0
    except (InventoryError, UsageError) as exc:
        fail(exc)
        finish("error", 2, str(exc))
        return 2
    except FleetError as exc:
        fail(exc)
        finish(getattr(exc, "run_status", "failed"), 1, str(exc))
        return 1
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        finish("interrupted", 128 + signum,
               f"interrupted ({'Ctrl-C' if signum == signal.SIGINT else signal.Signals(signum).name})")
        return 128 + signum
    except BaseException as exc:  # a bug: recorded, then shown with its traceback
        finish("error", None, f"internal error: {exc!r}")
        raise
    finish("ok" if code == 0 else "failed", code)
    return code
