"""`python -m agentsync_fleet` is the `agentsync` command."""

from .launch import main

main()
