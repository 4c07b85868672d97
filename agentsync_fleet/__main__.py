"""`python -m agentsync_fleet` is the `agentsync` command."""

from .cli import main

main()
