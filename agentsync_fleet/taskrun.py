"""How one CLI task runs: its exit status, its error message, and how the journal hears it ended.

`cli._guarded` wraps every task with this. Exit status 2 is bad input
(`InventoryError`, `UsageError`), 1 a fleet that is not where it should be
(or any other `FleetError`), 130 Ctrl-C. A bug keeps its traceback, and is
recorded as `error` first.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from .errors import FleetError, InventoryError, UsageError
from .output import error


def arguments(body: Callable[..., int], c, args: tuple, kwargs: dict) -> dict:
    """The task's arguments by name, as the journal records them."""
    try:
        bound = inspect.signature(body).bind_partial(c, *args, **kwargs).arguments
    except TypeError:
        return dict(kwargs)
    return {k: v for k, v in list(bound.items())[1:]}


def run_body(body: Callable[..., int], recorder, c, /, *args, **kwargs) -> int:
    """Run the task; return its exit status and tell the journal how the run ended."""

    def finish(status: str, code: int | None, message: str = "") -> None:
        if recorder is not None:
            recorder.finish(status, code, message)

    try:
        code = body(c, *args, **kwargs) or 0
    except (InventoryError, UsageError) as exc:
        error(str(exc))
        finish("error", 2, str(exc))
        return 2
    except FleetError as exc:
        error(str(exc))
        finish(getattr(exc, "run_status", "failed"), 1, str(exc))
        return 1
    except KeyboardInterrupt:
        finish("interrupted", 130, "interrupted (Ctrl-C)")
        return 130
    except BaseException as exc:  # a bug: recorded, then shown with its traceback
        finish("error", None, f"internal error: {exc!r}")
        raise
    finish("ok" if code == 0 else "failed", code)
    return code
