"""Load and validate the YAML inventory into immutable `Host` objects.

Every mistake is found before any connection is made and reported in one
message that names the file, the line, the host, the key, what was expected
and a hint. Validation is driven by the specs in `schema.py`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .entries import build_results_entries, build_rsync_entries, check_transfers
from .errors import InventoryError
from .gate.model import build_checks
from .locations import DEFAULT_INVENTORY, INVENTORY_ENV, inventory_path
from .models import Guard, Host, Inventory, JobPreset, S3Entry, WorktreeSpec
from .schema import HOST_KEYS, HOST_NAME, TOP_KEYS, Field
from .secrets import SECRET_PATTERNS, secret_patterns
from .settings import TIMEOUTS

BUILTIN_DEFAULTS = {"branch": "main", "remote": "origin", "connect_timeout": TIMEOUTS.connect,
                    "command_timeout": TIMEOUTS.command}


class LineDict(dict):
    """A YAML mapping that remembers the line of each key, for error messages."""

    line: int = 0
    key_lines: dict[Any, int]


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    mapping = LineDict()
    mapping.line = node.start_mark.line + 1
    mapping.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, (str, int, float, bool)) or key is None:
            raise yaml.constructor.ConstructorError(None, None, "a key must be a plain word",
                                                    key_node.start_mark)
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"key '{key}' appears twice (first on line {mapping.key_lines[key]})",
                key_node.start_mark)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = line
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


@dataclass
class _Problems:
    """Collects every problem so the user fixes them all in one go."""

    path: Path
    items: list[str] = field(default_factory=list)

    def add(self, line: int | None, host: str | None, key: str | None, problem: str, hint: str = "") -> None:
        where = [f"line {line}"] if line else []
        if host:
            where.append(f"host '{host}'")
        if key:
            where.append(f"key '{key}'")
        text = f"{', '.join(where)}: {problem}" if where else problem
        self.items.append(text + (f"\n      hint: {hint}" if hint else ""))

    def raise_if_any(self) -> None:
        if self.items:
            count = len(self.items)
            head = f"{self.path}: invalid inventory ({count} problem{'s' if count > 1 else ''})"
            raise InventoryError(head + "\n" + "\n".join(f"  - {item}" for item in self.items))


def resolve_path(path: str | os.PathLike | None) -> Path:
    """The inventory to use: the argument, else $AGENTSYNC_INVENTORY, else inventory/fleet.yaml."""
    return Path(inventory_path(path))


def load(path: str | os.PathLike | None = None) -> Inventory:
    """Read, validate and build an inventory; raise `InventoryError` with every problem found."""
    file = resolve_path(path)
    raw = _read(file)
    data = _parse(file, raw)
    problems = _Problems(file)
    _check_document(data, problems)
    problems.raise_if_any()
    return _build(file, data, hashlib.sha256(raw).hexdigest())


def _read(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except FileNotFoundError:
        raise InventoryError(
            f"{file}: inventory not found",
            hint=f"pass --inventory PATH, set ${INVENTORY_ENV}, or copy inventory/example.yaml to {DEFAULT_INVENTORY}; "
                 "`agentsync sandbox.up` writes one for a local practice fleet") from None
    except OSError as exc:
        raise InventoryError(f"{file}: cannot read inventory: {exc.strerror}") from None


def _parse(file: Path, raw: bytes) -> LineDict:
    try:
        data = yaml.load(raw, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InventoryError(f"{file}: {where}not valid YAML: {problem}",
                             hint="check indentation and that every 'key: value' has a space after the colon"
                             ) from None
    if not isinstance(data, dict):
        raise InventoryError(f"{file}: expected a mapping with a 'hosts:' key at the top, found "
                             f"{_kind(data)}", hint="see inventory/example.yaml")
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return {bool: "true/false", int: "a number", float: "a number", str: f"the text '{value}'",
            list: "a list", LineDict: "a mapping", dict: "a mapping"}.get(type(value), type(value).__name__)


def _check_mapping(data: dict, keys: dict[str, Field], host: str | None, prefix: str, problems: _Problems,
                   skip: tuple[str, ...] = ()) -> None:
    lines = getattr(data, "key_lines", {})
    for key, value in data.items():
        name = f"{prefix}{key}"
        if key in skip:
            continue
        if key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1)
            problems.add(lines.get(key), host, name, "unknown key; expected one of: " + ", ".join(keys),
                         f"did you mean '{close[0]}'?" if close else "")
            continue
        _check_value(value, keys[key], lines.get(key), host, name, problems)
    for key, spec in keys.items():
        if spec.required and key not in data:
            problems.add(getattr(data, "line", None), host, f"{prefix}{key}", f"missing; expected {spec.expected}",
                         spec.hint)


def _check_value(value: Any, spec: Field, line: int | None, host: str | None, name: str,
                 problems: _Problems) -> None:
    if isinstance(value, bool) and bool not in spec.types or not isinstance(value, spec.types):
        problems.add(line, host, name, f"expected {spec.expected}, found {_kind(value)}", spec.hint)
        return
    if spec.choices and value not in spec.choices:
        problems.add(line, host, name, f"expected one of {', '.join(map(str, spec.choices))}, found '{value}'",
                     spec.hint)
        return
    problem = spec.check(value) if spec.check else None
    if problem:
        shown = re.sub(r"(://[^/\s:@]*:)[^/\s@]+@", r"\1***@", value) if isinstance(value, str) else ""
        problems.add(line, host, name, f"'{shown}' {problem}" if isinstance(value, str) else problem, spec.hint)
        return
    if spec.keys is not None:
        _check_mapping(value, spec.keys, host, f"{name}.", problems)
    if spec.values is not None:
        for key, item in value.items():
            key_line = getattr(value, "key_lines", {}).get(key) or line
            bad_name = spec.names(key) if spec.names else None
            if bad_name:
                problems.add(key_line, host, f"{name}.{key}", bad_name, spec.hint)
                continue
            _check_value(item, spec.values, key_line, host, f"{name}.{key}", problems)
    if spec.items is not None:
        for index, item in enumerate(value):
            item_line = getattr(item, "line", None) or line
            _check_value(item, spec.items, item_line, host, f"{name}[{index}]", problems)


def _check_document(data: LineDict, problems: _Problems) -> None:
    _check_mapping(data, TOP_KEYS, None, "", problems, skip=("hosts",))
    hosts = data.get("hosts")
    if "hosts" not in data or not isinstance(hosts, dict) or not hosts:
        found = "no 'hosts:' key" if "hosts" not in data else f"'hosts:' holding {_kind(hosts)}"
        problems.add(data.key_lines.get("hosts"), None, "hosts", f"expected a mapping of host names to settings, "
                     f"found {found}", "add at least one host, see inventory/example.yaml")
        return
    for name, settings in hosts.items():
        _check_host(name, settings, hosts.key_lines.get(name), problems)
    _check_order(data, hosts, problems)
    check_transfers(hosts, problems.add)


def _check_host(name: Any, settings: Any, line: int | None, problems: _Problems) -> None:
    if not isinstance(name, str) or not HOST_NAME.match(name):
        problems.add(line, str(name), None, "host names may use letters, digits and '._-' and must not start "
                     "with '-' or '.'")
        return
    if not isinstance(settings, dict):
        problems.add(line, name, None, f"expected a mapping of host settings, found {_kind(settings)}",
                     "a host needs at least `repo:` and either `ssh:` or `local: true`")
        return
    _check_mapping(settings, HOST_KEYS, name, "", problems)
    if settings.get("local") is True and "ssh" in settings:
        problems.add(settings.key_lines.get("ssh"), name, "ssh", "a host cannot be both `local: true` and "
                     "reached over `ssh:`", "remove one of the two")


def _check_order(data: LineDict, hosts: dict, problems: _Problems) -> None:
    order = data.get("order")
    if not isinstance(order, list):
        return
    line = data.key_lines.get("order")
    seen: set[str] = set()
    for name in order:
        if not isinstance(name, str):
            continue
        if name not in hosts:
            close = difflib.get_close_matches(name, [str(h) for h in hosts], n=1)
            problems.add(line, None, "order", f"names host '{name}', which is not defined under hosts",
                         f"did you mean '{close[0]}'?" if close else "define it under hosts: or remove it")
        if name in seen:
            problems.add(line, None, "order", f"lists host '{name}' twice")
        seen.add(name)
    for name in hosts:
        if isinstance(name, str) and name not in seen:
            problems.add(line, name, "order", "this host is missing from order", "add it to order: (order "
                         "decides the sync order) or remove order: to use file order")


def _build(file: Path, data: dict, digest: str) -> Inventory:
    defaults = {**BUILTIN_DEFAULTS, **(data.get("defaults") or {})}
    secrets = secret_patterns(data)
    hosts = {name: _build_host(name, settings, defaults, data.get("s3") or {}, secrets)
             for name, settings in data["hosts"].items()}
    order = tuple(data.get("order") or hosts)
    ssh_config = data.get("ssh_config")
    config_path = _resolve_relative(file, ssh_config) if ssh_config else None
    if config_path is not None and not config_path.is_file():
        raise InventoryError(f"{file}: line {data.key_lines['ssh_config']}, key 'ssh_config': "
                             f"file {config_path} does not exist",
                             hint="fix the path or remove ssh_config to use ~/.ssh/config")
    settings = {k: v for k, v in data.items() if k not in ("hosts", "order", "ssh_config")}
    settings["defaults"] = defaults
    return Inventory(path=file, hosts={n: hosts[n] for n in order}, order=order, ssh_config=config_path,
                     sha256=digest, settings=settings)


def _resolve_relative(file: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (file.parent / path).resolve()


def _build_host(name: str, s: dict, defaults: dict, s3_defaults: dict | None = None,
                secrets: tuple[str, ...] = SECRET_PATTERNS) -> Host:
    guard = s.get("guard") or {}
    return Host(
        name=name,
        repo=s["repo"],
        branch=s.get("branch", defaults["branch"]),
        remote=s.get("remote", defaults["remote"]),
        local=s.get("local", False),
        ssh=None if s.get("local") else s.get("ssh", name),
        guard=Guard(tuple(guard.get("processes", ())), tuple(guard.get("critical_files", ())),
                    guard.get("expect_running", False)),
        zerotier=s.get("zerotier"),
        gpu=s.get("gpu", False),
        push=s.get("push", True),
        slow=s.get("slow", False),
        git_access=s.get("git_access", True),
        validate=s.get("validate"),
        worktrees=tuple(_build_worktree(w) for w in s.get("worktrees", ())),
        connect_timeout=float(s.get("connect_timeout", defaults["connect_timeout"])),
        command_timeout=float(s.get("command_timeout", defaults["command_timeout"])),
        s3=tuple(_build_s3_entry(e, {**(s3_defaults or {}), **(s.get("s3_settings") or {})}, secrets)
                 for e in s.get("s3", ())),
        rsync=build_rsync_entries(s.get("rsync", ())),
        results=build_results_entries(s.get("results", ())),
        push_code=s.get("push_code", False),
        checks=build_checks(defaults.get("checks"), s.get("checks")),
        allow_untracked=tuple(dict.fromkeys([*defaults.get("allow_untracked", ()), *s.get("allow_untracked", ())])),
        jobs=tuple(_build_job_preset(n, p) for n, p in (s.get("jobs") or {}).items()),
    )


def _build_job_preset(name: str, p: dict) -> JobPreset:
    env = tuple((k, str(v).lower() if isinstance(v, bool) else str(v)) for k, v in (p.get("env") or {}).items())
    return JobPreset(name=name, run=p["run"], cwd=p.get("cwd"), env=env, results=p.get("results", False),
                     protect=tuple(dict.fromkeys(x.removeprefix("./") for x in p.get("protect") or ())))


def _build_worktree(w: dict) -> WorktreeSpec:
    return WorktreeSpec(path=w["path"], branch=w["branch"], merge=w.get("merge"),
                        strategy=w.get("strategy", "merge"), push=w.get("push", False))


S3_SETTING_NAMES = ("profile", "region", "endpoint_url", "timeout")


def _build_s3_entry(e: dict, settings: dict, secrets: tuple[str, ...] = SECRET_PATTERNS) -> S3Entry:
    """An entry's own settings win over the host's `s3_settings`, which win over the top-level `s3:`."""
    merged = {k: e.get(k, settings.get(k)) for k in S3_SETTING_NAMES}
    return S3Entry(path=e["path"], url=e["url"].rstrip("/"), direction=e["direction"],
                   exclude=tuple(e.get("exclude", ())), delete=e.get("delete", False),
                   profile=merged["profile"], region=merged["region"], endpoint_url=merged["endpoint_url"],
                   timeout=float(merged["timeout"] or TIMEOUTS.s3_entry), secrets=secrets)
