"""The inventory's transfer keys: `rsync:` entries, the `results:` shorthand, and their cross-host checks.

A push entry moves files *into* the host that declares it, a pull entry *out
of* it. The declaring host's side is always that host; the other side is the
laptop (the `local: true` host) unless the path names another host as
`host:path`. Everything a user can get wrong here (an unknown host, both sides
on one machine, `direct` without two remote hosts, a name used twice) is
reported with the inventory's other problems, before any connection.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from typing import Any

from .models import RsyncEntry

HOST_REF = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_.-]*):(.*)$", re.S)

AddProblem = Callable[..., None]  # _Problems.add(line, host, key, problem, hint="")


def split_ref(value: str) -> tuple[str | None, str]:
    """`gpu:data/` → ("gpu", "data/"); a plain path → (None, path). `./a:b` is a path."""
    match = HOST_REF.match(value)
    return (match.group(1), match.group(2)) if match else (None, value)


def build_rsync_entries(items: Iterable[dict]) -> tuple[RsyncEntry, ...]:
    return tuple(RsyncEntry(name=i["name"], direction=i["direction"], src=i["src"], dest=i["dest"],
                            exclude=tuple(i.get("exclude", ())), delete=i.get("delete", False),
                            direct=i.get("direct", False)) for i in items)


def results_name(index: int, count: int) -> str:
    return "results" if count == 1 else f"results-{index + 1}"


def build_results_entries(items: Iterable[dict]) -> tuple[RsyncEntry, ...]:
    items = list(items)
    return tuple(RsyncEntry(name=results_name(n, len(items)), direction="pull", src=i["remote"], dest=i["local"],
                            exclude=tuple(i.get("exclude", ())), kind="results") for n, i in enumerate(items))


def check_transfers(hosts: dict, add: AddProblem) -> None:
    """Cross-host checks of every host's `rsync:` and `results:` (types were checked already)."""
    names = [n for n in hosts if isinstance(n, str)]
    local = [n for n, s in hosts.items() if isinstance(s, dict) and s.get("local") is True]
    for name, settings in hosts.items():
        if not isinstance(settings, dict):
            continue
        lines = getattr(settings, "key_lines", {})
        checker = _HostChecker(name, names, local[0] if local else None, add)
        checker.rsync(_dicts(settings.get("rsync")), lines.get("rsync"))
        checker.results(_dicts(settings.get("results")), lines.get("results"))


def _dicts(value: Any) -> list[tuple[int, dict]]:
    return [(i, v) for i, v in enumerate(value) if isinstance(v, dict)] if isinstance(value, list) else []


class _HostChecker:
    """Checks one host's entries; `local` is the controller's host name (None if the inventory has none)."""

    def __init__(self, host: str, names: list[str], local: str | None, add: AddProblem):
        self.host, self.names, self.local, self.add = host, names, local, add
        # names key the backup dir of a run (<run>/<host>.<name>): a second transfer there would overwrite backups
        self.seen: dict[str, str] = {"push-code": "push-code itself (the laptop's working tree)"}

    def problem(self, item: dict, line: int | None, key: str, text: str, hint: str = "") -> None:
        self.add(getattr(item, "line", None) or line, self.host, key, text, hint)

    def rsync(self, items: list[tuple[int, dict]], line: int | None) -> None:
        for index, item in items:
            key = f"rsync[{index}]"
            if isinstance(item.get("name"), str):
                self._unique(item, line, key, item["name"])
            if item.get("direction") not in ("push", "pull"):
                continue
            src, dest = item.get("src"), item.get("dest")
            if not isinstance(src, str) or not isinstance(dest, str):
                continue
            own, other = ("dest", "src") if item["direction"] == "push" else ("src", "dest")
            sides = {own: self._own_side(item, line, f"{key}.{own}", item[own], item["direction"]),
                     other: self._other_side(item, line, f"{key}.{other}", item[other])}
            if None in sides.values():
                continue
            if sides["src"] == sides["dest"]:
                self.problem(item, line, key, f"src and dest are both on '{sides['src']}'",
                             "a transfer moves files between two machines; name the other one as host:path")
            elif item.get("direct") and self.local in sides.values():
                self.problem(item, line, f"{key}.direct", "direct: true only applies between two remote hosts "
                             "(a transfer with the laptop on one side is always direct)", "remove direct")

    def results(self, items: list[tuple[int, dict]], line: int | None) -> None:
        if items and self.host == self.local:
            self.problem(items[0][1], line, "results", "the local host cannot bring results back to itself",
                         "list results: under the remote host that produces them")
            return
        for index, item in items:
            key = f"results[{index}]"
            self._unique(item, line, key, results_name(index, len(items)))
            if isinstance(item.get("remote"), str):
                self._own_side(item, line, f"{key}.remote", item["remote"], "results")
            if isinstance(item.get("local"), str):
                ref, path = split_ref(item["local"])
                if ref is not None:
                    self.problem(item, line, f"{key}.local", f"'{item['local']}' names host '{ref}'; results "
                                 "always come back to the laptop", "use an rsync: pull entry to send them elsewhere")
                else:
                    self._controller_path(item, line, f"{key}.local", path)

    def _unique(self, item: dict, line: int | None, key: str, name: str) -> None:
        if name in self.seen:
            self.problem(item, line, f"{key}.name", f"transfer name '{name}' is already used by {self.seen[name]}",
                         "give every rsync entry of a host its own name ('push-code' is taken, and 'results', "
                         "'results-N' by the results: shorthand)")
        self.seen.setdefault(name, key)

    def _own_side(self, item: dict, line: int | None, key: str, value: str, direction: str) -> str | None:
        ref, path = split_ref(value)
        if ref is not None and ref != self.host:
            where = {"push": "a push always lands on", "pull": "a pull always starts from",
                     "results": "results always come from"}[direction]
            self.problem(item, line, key, f"'{value}' names host '{ref}', but {where} this host ('{self.host}')",
                         f"write the path without '{ref}:' here; name '{ref}' on the other side instead")
            return None
        return self.host if self._path_ok(item, line, key, path) else None

    def _other_side(self, item: dict, line: int | None, key: str, value: str) -> str | None:
        ref, path = split_ref(value)
        if ref is None:
            return (self.local or "(laptop)") if self._controller_path(item, line, key, path) else None
        if ref not in self.names:
            close = difflib.get_close_matches(ref, self.names, n=1)
            self.problem(item, line, key, f"'{value}' names host '{ref}', which is not defined under hosts",
                         f"did you mean '{close[0]}:'?" if close else f"define '{ref}' under hosts:, or write "
                         f"./{value} for a file name that contains ':'")
            return None
        return ref if self._path_ok(item, line, key, path) else None

    def _controller_path(self, item: dict, line: int | None, key: str, path: str) -> bool:
        if not self._path_ok(item, line, key, path):
            return False
        if self.local is None and not path.startswith(("/", "~")):
            self.problem(item, line, key, f"'{path}' is relative to the laptop's repo, but no host has `local: true`",
                         "add the laptop as a host with local: true, or give an absolute path")
            return False
        return True

    def _path_ok(self, item: dict, line: int | None, key: str, path: str) -> bool:
        if not path:
            self.problem(item, line, key, "the path is empty", "write '.' for the repo itself")
            return False
        if path.startswith("~") and not (path == "~" or path.startswith("~/")):
            self.problem(item, line, key, f"'{path}': only ~/ (the user's own home) is understood",
                         "write the absolute path instead")
            return False
        if any(ord(c) < 32 for c in path):
            self.problem(item, line, key, "the path contains a control character (newline, tab...)")
            return False
        return True
