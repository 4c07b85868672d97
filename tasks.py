"""Invoke entry point: `inv --list`, `inv health`, `inv sync-all`, ...

The tasks live in the package (`agentsync_fleet/cli.py`) so the installed
`agentsync` command offers exactly the same ones.
"""

import invoke.main

from agentsync_fleet.cli import ns  # noqa: F401 - Invoke looks for `ns`
from agentsync_fleet.program import bad_input_exits_2

bad_input_exits_2(invoke.main.program)  # `inv no-such-task` / an unknown flag: exit 2, like `agentsync`
