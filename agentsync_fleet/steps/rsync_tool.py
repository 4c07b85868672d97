"""Which rsync runs at each end of a transfer, and whether it takes the options we pass. Pure: the probe and
its parser, and the choice.

Both ends need rsync 3.1.0 or newer: we pass `--info` and `--debug` (to the far end too, through
`--remote-option`), both added in 3.1.0, and `-s`, added in 3.0.0; and we read 3.1's `--stats` and
`--itemize-changes` output. Debian 12 has 3.2.7 or, from its security archive, 3.5.0: both fine.

macOS ships no such rsync: /usr/bin/rsync is openrsync from macOS 15 on (it has none of `--info`, `--debug`,
`--remote-option`, `-s`, `--itemize-changes`, so it could neither keep inventory paths away from the remote
shell nor tell us which secrets it held back), and rsync 2.6.9 before. Dropping those options would drop those
guarantees, so instead we look for a real rsync where Homebrew puts it (`brew install rsync`:
/opt/homebrew/bin on Apple silicon, /usr/local/bin on Intel) — ssh's non-interactive PATH on a Mac has
neither — and use the first good one; without one the error says exactly that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FleetError

MINIMUM = (3, 1, 0)
CANDIDATES = ("rsync", "/opt/homebrew/bin/rsync", "/usr/local/bin/rsync")
MARK = "@@agentsync-rsync@@ "
END = "@@agentsync-rsync-end@@"
VERSION = re.compile(r"^rsync\s+version\s+v?(\d+)\.(\d+)\.(\d+)", re.MULTILINE)
INSTALL = "Debian/Ubuntu: apt-get install rsync; macOS: brew install rsync"


@dataclass(frozen=True)
class Found:
    """What `PATH --version` said: flavor `rsync`, `openrsync`, `missing` or `unknown`."""

    path: str
    flavor: str
    version: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        if self.flavor == "rsync":
            return f"rsync {'.'.join(map(str, self.version))} ({self.path})"
        return f"{self.flavor} ({self.path})"


@dataclass(frozen=True)
class RsyncTool:
    """The rsync to run at one end: `path` as given to the shell (`rsync`, or an absolute path), its version."""

    path: str
    version: tuple[int, ...]


def parse_version(path: str, text: str) -> Found:
    """`rsync --version` output → what it is. openrsync says `openrsync: protocol version 29` and then claims
    to be `rsync version 2.6.9 compatible`: it is named first, before any version number is trusted."""
    if "openrsync" in text:
        return Found(path, "openrsync")
    match = VERSION.search(text)
    if match is None:
        return Found(path, "missing" if not text.strip() else "unknown")
    return Found(path, "rsync", tuple(int(part) for part in match.groups()))


def version_script() -> str:
    """POSIX sh: each candidate's `--version` (first lines), framed, or nothing for one that is not there."""
    names = " ".join(CANDIDATES)
    return (f"for r in {names}; do printf '{MARK}%s\\n' \"$r\"; "
            "if command -v \"$r\" >/dev/null 2>&1; then \"$r\" --version 2>&1 | head -n 3; fi; done; "
            f"echo '{END}'\n")


def parse_versions(output: str) -> list[Found]:
    """The probe's answer; whatever a login script printed around it is ignored."""
    found, path, lines = [], None, []
    for line in output.splitlines():
        if line.startswith(MARK) or line == END:
            if path is not None:
                found.append(parse_version(path, "\n".join(lines)))
            path, lines = (line[len(MARK):], []) if line.startswith(MARK) else (None, [])
            if line == END:
                break
        elif path is not None:
            lines.append(line)
    return found


def choose(found: list[Found], where: str) -> RsyncTool:
    """The first rsync ≥ 3.1.0 among the candidates, else a FleetError that says what is there and what to do."""
    for item in found:
        if item.flavor == "rsync" and item.version >= MINIMUM:
            return RsyncTool(item.path, item.version)
    present = [item for item in found if item.flavor != "missing"]
    need = ".".join(map(str, MINIMUM))
    if not present:
        raise FleetError(f"rsync is not installed on {where}", hint=f"install rsync {need} or newer there ({INSTALL})")
    if all(item.flavor == "openrsync" for item in present):
        raise FleetError(f"{where} has only openrsync ({present[0].path}, macOS's built-in rsync), which lacks options "
                         "agentsync relies on (-s, --info, --debug, --remote-option, --itemize-changes)",
                         hint="install rsync 3 there: brew install rsync (agentsync finds it in /opt/homebrew/bin "
                              "or /usr/local/bin by itself; nothing else to configure)")
    seen = ", ".join(item.label for item in present)
    raise FleetError(f"{where} has {seen}; agentsync needs rsync {need} or newer (it passes --info and --debug, "
                     f"added in {need})", hint=f"upgrade rsync there ({INSTALL})")
