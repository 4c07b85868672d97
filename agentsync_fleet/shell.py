"""Build remote shell text from argv, safely.

Every command that reaches a host is built here from a list of arguments and
quoted with `shlex`, so no inventory value (a path, a branch, a pattern) can
inject shell. The only unquoted text is our own fixed control structure.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Sequence

Argv = Sequence[str]


def quote_path(path: str) -> str:
    """Quote a path, keeping a leading `~/` meaning the remote user's home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def join(argv: Argv) -> str:
    """argv to one shell-safe command line. Items of type `Raw` are inserted as they are."""
    return " ".join(item.text if isinstance(item, Raw) else shlex.quote(item) for item in argv)


class Raw(str):
    """A fragment of our own fixed shell text (never user input), inserted unquoted."""

    @property
    def text(self) -> str:
        return str(self)


def path_arg(path: str) -> Raw:
    """A path argument that keeps `~/` expansion on the remote side."""
    return Raw(quote_path(path))


def script(lines: Iterable[str]) -> str:
    """Join already-safe lines into a POSIX sh script."""
    return "\n".join(lines) + "\n"


def section(name: str) -> str:
    """A marker line that splits a batched script's output into named parts."""
    return f"echo {shlex.quote(SECTION_MARK + name)}"


SECTION_MARK = "@@agentsync@@ "


def split_sections(output: str) -> dict[str, str]:
    """Inverse of `section`: output text → {section name: its text}."""
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(SECTION_MARK):
            current = parts.setdefault(line[len(SECTION_MARK):].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in parts.items()}
