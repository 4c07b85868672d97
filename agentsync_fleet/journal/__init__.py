"""The run journal: every fleet task is recorded in SQLite, steps as they finish.

The CLI makes a `RunRecorder` for each task (`cli._guarded`) and passes it
in: the task's `FleetArgs.recorder`. `FleetArgs.load()` attaches it to the
inventory, which opens the journal in that inventory's state dir. sync-all
hands the same recorder to the engine as `RunContext.observer`, so steps are
journaled the moment `engine.stage.step()` finishes them; other tasks hand
their results over through `commands/journaling.py`. Stages that move data
put `bytes` and `files` (counts) into `StepRecord.data`; the journal keeps
the whole dict and shows those two. A task that is not recorded gets a
`NullRecorder`. The journal is memory, not a voice: it prints nothing.
"""

from __future__ import annotations

from .recorder import NullRecorder, RunRecorder

__all__ = ["NullRecorder", "RunRecorder"]
