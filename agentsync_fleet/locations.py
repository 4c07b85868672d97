"""Where agentsync looks before it has read anything: the inventory's path.

Its own module, importing nothing, because two readers need it: the
inventory loader, and the start-up peek that runs before the program has
loaded (`_startup.run_target`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

INVENTORY_ENV = "AGENTSYNC_INVENTORY"
DEFAULT_INVENTORY = "inventory/fleet.yaml"


def inventory_path(given: str | os.PathLike | None, environ: Mapping[str, str] = os.environ) -> str:
    """The inventory to use: the one given, else $AGENTSYNC_INVENTORY, else inventory/fleet.yaml (`~` expanded)."""
    return os.path.expanduser(os.fspath(given or environ.get(INVENTORY_ENV) or DEFAULT_INVENTORY))
