"""Wire: the only code that reaches hosts.

One resolution per host per run (`ssh -G`, resolve.py), one ControlMaster per
host and per jump hop (connector.py, master.py, control.py), sessions with
one interface for OpenSSH and local hosts (session.py), ssh's failures told
apart (diagnose.py), host keys and `trust` (hostkeys.py). Every connection is
the user's own `ssh`: whatever `ssh HOST true` accepts, we accept; whatever
it refuses, we refuse — and we never add a host key on our own.
"""

from __future__ import annotations

from .connector import Connector, close_master
from .control import control_dir, disconnect_all
from .hostkeys import PresentedKey, append_known_host, fingerprint, read_host_key, trust_file
from .process import OutputFn
from .resolve import Resolution, Target, split_port
from .session import LocalSession, OpenSSHSession, Session

__all__ = ["Connector", "LocalSession", "OpenSSHSession", "OutputFn", "PresentedKey", "Resolution", "Session",
           "Target", "append_known_host", "close_master", "control_dir", "disconnect_all", "fingerprint",
           "read_host_key", "split_port", "trust_file"]
