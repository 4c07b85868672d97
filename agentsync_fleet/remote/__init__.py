"""Wire: the only code that reaches hosts.

One resolution per host per run (`ssh -G`, resolve.py), one ControlMaster per
host and per jump hop (connector.py, master.py, control.py), sessions with
one interface for OpenSSH and local hosts (session.py), ssh's failures told
apart (diagnose.py), host keys and `trust` (hostkeys.py), connections begun
before the program has loaded (early.py). Every connection is the user's own
`ssh`: whatever `ssh HOST true` accepts, we accept; whatever it refuses, we
refuse — and we never add a host key on our own.

The names below are loaded on first use (PEP 562): `remote.early` runs before
anything else of the program is imported, and must not pay for the rest.
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (2 ms before an early start)

if TYPE_CHECKING:
    from .connector import Connector, close_master
    from .control import control_dir, disconnect_all
    from .hostkeys import PresentedKey, append_known_host, fingerprint, read_host_key, trust_file
    from .process import OutputFn
    from .resolve import Resolution, Target, split_port
    from .session import LocalSession, OpenSSHSession, Session

_HOMES = {
    "Connector": "connector", "close_master": "connector",
    "control_dir": "control", "disconnect_all": "control",
    "PresentedKey": "hostkeys", "append_known_host": "hostkeys", "fingerprint": "hostkeys",
    "read_host_key": "hostkeys", "trust_file": "hostkeys",
    "OutputFn": "process",
    "Resolution": "resolve", "Target": "resolve", "split_port": "resolve",
    "LocalSession": "session", "OpenSSHSession": "session", "Session": "session",
}

__all__ = ["Connector", "LocalSession", "OpenSSHSession", "OutputFn", "PresentedKey", "Resolution", "Session",
           "Target", "append_known_host", "close_master", "control_dir", "disconnect_all", "fingerprint",
           "read_host_key", "split_port", "trust_file"]


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
