"""Start-up time: what every `agentsync` command pays before it does anything.

Invoke's `context.py` imports `unittest.mock` (for its `MockContext`, which no
task here uses), and `unittest.mock` imports `asyncio`: about a fifth of
Invoke's import time, on every command. `without_unittest_mock` lets Invoke
import a stand-in whose `Mock` loads the real one on first use, then takes
the stand-in away, so any later `import unittest.mock` (a test, say) gets the
real module.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager

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
