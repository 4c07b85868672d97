"""The shape of the house: what a module may load, checked by importing it in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys

import pytest

SHOW_MODULES = ["agentsync_fleet.output", "agentsync_fleet.output.health", "agentsync_fleet.output.sync",
                "agentsync_fleet.output.history", "agentsync_fleet.output.transfer", "agentsync_fleet.output.relay",
                "agentsync_fleet.output.artifacts", "agentsync_fleet.output.claims",
                "agentsync_fleet.output.locks", "agentsync_fleet.output.status", "agentsync_fleet.records"]


def imported_modules(module: str) -> set[str]:
    """Every module `import module` loads, as `python -X importtime` lists them."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def test_rendering_a_health_report_does_not_load_paramiko():
    loaded = imported_modules("agentsync_fleet.output.health")
    assert "agentsync_fleet.output.health" in loaded  # the listing is real
    assert not {m for m in loaded if m.split(".")[0] in ("paramiko", "fabric")}


@pytest.mark.parametrize("module", SHOW_MODULES)
def test_show_and_records_load_without_the_wire(module):
    loaded = imported_modules(module)
    assert module in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("paramiko", "fabric")
                or m.startswith(("agentsync_fleet.connection", "agentsync_fleet.remote"))}
