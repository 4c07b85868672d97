"""Invoke entry point: `inv --list`, `inv health`, `inv sync-all`, ...

The tasks live in the package (`agentsync_fleet/cli.py`) so the installed
`agentsync` command offers exactly the same ones.
"""

from agentsync_fleet.cli import ns  # noqa: F401 - Invoke looks for `ns`
