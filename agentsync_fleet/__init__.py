"""agentsync_fleet: keep a small fleet of development machines in step over SSH."""

__version__ = "0.1.0"
