"""Start-up time: what every `agentsync` command pays before it does anything, and what can overlap with it.

Invoke's `context.py` imports `unittest.mock` (for its `MockContext`, which no
task here uses), and `unittest.mock` imports `asyncio`: about a fifth of
Invoke's import time, on every command. `without_unittest_mock` lets Invoke
import a stand-in whose `Mock` loads the real one on first use, then takes
the stand-in away, so any later `import unittest.mock` (a test, say) gets the
real module.
"""

from __future__ import annotations

import os
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

from .locations import inventory_path

NAME = "unittest.mock"


def _mock(*args, **kwargs):
    """`unittest.mock.Mock`, imported when first called (Invoke's MockContext)."""
    import importlib

    return importlib.import_module(NAME).Mock(*args, **kwargs)


@contextmanager
def without_unittest_mock() -> Iterator[None]:
    if NAME in sys.modules:  # already imported (tests): nothing to save
        yield
        return
    stand_in = types.ModuleType(NAME)
    stand_in.Mock = _mock  # type: ignore[attr-defined]
    sys.modules[NAME] = stand_in
    try:
        yield
    finally:
        if sys.modules.get(NAME) is stand_in:
            del sys.modules[NAME]


# ------------------------------------------------------------------ `run`'s connection, begun before the program loads

RUN_VALUE_FLAGS = ("host", "command", "name", "cwd", "env", "protect", "inventory")  # the `run` task's flags
RUN_SWITCHES = ("json", "then-results", "allow-busy", "literal")


def run_target(argv: list[str], environ: dict[str, str]) -> tuple[str, str] | None:
    """(inventory path, host) when `argv` is a well-formed `run HOST COMMAND …`; None for anything else.

    A peek, not the parser: Invoke parses the command line afterwards, as
    always. Any doubt (help, an unknown flag, `--`, a missing COMMAND) is
    None, so bad input never begins a connection.
    """
    if len(argv) < 3 or argv[0] != "run" or any(w in ("-h", "--help", "--") for w in argv):
        return None
    values: dict[str, str] = {}
    positional: list[str] = []
    words = iter(argv[1:])
    for word in words:
        if not word.startswith("-"):
            positional.append(word)
            continue
        flag, has_value, value = word[2:].partition("=")
        if not word.startswith("--") or (flag not in RUN_VALUE_FLAGS and (flag not in RUN_SWITCHES or has_value)):
            return None
        if flag in RUN_VALUE_FLAGS:
            value = value if has_value else next(words, None)
            if value is None:
                return None
            values[flag] = value
    for name in ("host", "command"):
        if name not in values and positional:
            values[name] = positional.pop(0)
    if positional or not values.get("host") or "command" not in values:
        return None
    return inventory_path(values.get("inventory"), environ), values["host"]


def begin_early(argv: list[str]) -> tuple:
    """The connection `run` will need, begun now if this computer reached that host before (remote/early.py)."""
    target = run_target(argv, dict(os.environ))
    if target is None:
        return ()
    from .remote import early

    attempt = early.begin(target[0], target[1])
    return (attempt,) if attempt is not None else ()
