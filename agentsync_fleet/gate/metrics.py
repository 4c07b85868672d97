"""Read one number out of a metric file's text: JSON, YAML, or plain `key=value` / `key: value` lines.

Pure: the text comes from the host (read in the health probe); the answer is
a value or the reason there is none, in words a person can act on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from .model import MetricSpec, compare


@dataclass(frozen=True)
class Reading:
    """A metric's value, or why it could not be read (`problem`)."""

    value: float | None = None
    problem: str = ""


def read_metric(spec: MetricSpec, text: str) -> Reading:
    """Find `spec.key` in the file's text and turn it into a number."""
    data, problem = parse_document(spec.file, text)
    if problem:
        return Reading(problem=problem)
    found, raw = lookup(data, spec.key)
    if not found:
        return Reading(problem=f"{spec.file}: key '{spec.key}' not found")
    value = to_number(raw)
    if value is None:
        shown = raw if isinstance(raw, str) else json.dumps(raw)
        return Reading(problem=f"{spec.key}: {_short(shown)!r} is not a number")
    return Reading(value=value)


def judge(spec: MetricSpec, text: str) -> tuple[float | None, str]:
    """(value, reason it fails — empty when within bounds)."""
    reading = read_metric(spec, text)
    if reading.problem:
        return None, reading.problem
    return reading.value, compare(spec, reading.value)


def parse_document(file: str, text: str) -> tuple[Any, str]:
    """The file as data: by extension for .json / .yaml / .yml, else JSON, then YAML, then key=value lines."""
    lower = file.lower()
    if lower.endswith(".json"):
        try:
            return json.loads(text), ""
        except ValueError as exc:
            return None, f"{file}: not valid JSON ({exc})"
    if lower.endswith((".yaml", ".yml")):
        try:
            return yaml.safe_load(text), ""
        except yaml.YAMLError as exc:
            return None, f"{file}: not valid YAML ({_short(str(exc).splitlines()[0])})"
    try:
        return json.loads(text), ""
    except ValueError:
        pass
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    return (data if isinstance(data, dict) else key_values(text)), ""


KEY_VALUE = re.compile(r"^\s*(?:export\s+)?([^=:#\s][^=:]*?)\s*[=:]\s*(.*?)\s*$")


def key_values(text: str) -> dict[str, str]:
    """`key=value` or `key: value` lines (comments and blank lines skipped); the last one wins."""
    found = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = KEY_VALUE.match(line)
        if match:
            found[match.group(1)] = match.group(2).strip("'\"")
    return found


def lookup(data: Any, key: str) -> tuple[bool, Any]:
    """`key` as written (`val.loss` may be one key), else a dotted path (`eval.accuracy`, `runs.0.f1`)."""
    if isinstance(data, dict) and key in data:
        return True, data[key]
    node = data
    for part in key.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False, None
    return True, node


def to_number(raw: Any) -> float | None:
    """A finite number from an int, a float or numeric text ("0.68"); None for anything else."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
    else:
        return None
    return value if math.isfinite(value) else None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
