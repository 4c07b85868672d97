"""The inventory's keys, as data: what each accepts and how to explain a mistake.

`inventory.py` walks a loaded YAML document against these specs. Adding a key
to the inventory means adding a `Field` here (and a line in the README).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .secrets import SECRET_PATTERNS
from .settings import command_problem, duration_problem, persist_problem

Check = Callable[[Any], "str | None"]

HOST_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SSH_TARGET = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]*@)?(?:[A-Za-z0-9_][A-Za-z0-9_.-]*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$")


@dataclass(frozen=True)
class Field:
    """One inventory key: accepted YAML types, a human description, and optional checks."""

    types: tuple[type, ...]
    expected: str
    required: bool = False
    choices: tuple[Any, ...] = ()
    check: Check | None = None
    keys: dict[str, Field] | None = None  # for mappings: the allowed sub-keys
    items: Field | None = None  # for lists: the spec of each item
    values: Field | None = None  # for mappings with names of the user's choosing: the spec of each value
    names: Check | None = None  # ... and why such a name is not usable, or None
    hint: str = ""


def git_ref_problem(value: str) -> str | None:
    """Why `value` is not a usable branch name (git check-ref-format rules), or None."""
    bad = (
        not value or value.startswith(("-", "/", ".")) or value.endswith(("/", ".", ".lock"))
        or ".." in value or "//" in value or "@{" in value or value == "@"
        or any(c in value for c in " ~^:?*[\\") or any(ord(c) < 32 or ord(c) == 127 for c in value)
    )
    return "is not a valid git branch name" if bad else None


def ssh_target_problem(value: str) -> str | None:
    if not SSH_TARGET.match(value):
        return "is not an ssh_config alias, user@host or user@host:port (letters, digits, '._-' only)"
    port = value.rsplit(":", 1)[1] if re.search(r":\d+$", value) else None
    if port is not None and not 0 < int(port) < 65536:
        return f"has port {port}, outside 1-65535"
    return None


def positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def nonempty(value: Any) -> str | None:
    return None if len(value) > 0 else "must not be empty"


def checkout_path_problem(value: str) -> str | None:
    """A checkout's path is read back from git's line-based output on the host: one line, like a transfer path."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains a control character (newline, tab...); a checkout's path must be one line"
    return nonempty(value)


def text(expected: str = "a string", **kw: Any) -> Field:
    return Field((str,), expected, check=kw.pop("check", nonempty), **kw)


BOOL = Field((bool,), "true or false")
SECONDS = Field((int, float), "a number of seconds", check=positive)
BRANCH = text("a git branch name", check=git_ref_problem)
PATH = text("a path (absolute, ~/…, or relative to the repo)")
STRINGS = Field((list,), "a list of strings", items=text())

def pattern_problem(value: str) -> str | None:
    """Guard patterns are extended regular expressions; one `awk` cannot compile would blind the guard."""
    if not value:
        return "must not be empty"
    try:
        re.compile(value)
    except re.error as exc:
        return f"not a valid regular expression ({exc})"
    return None


GUARD = Field((dict,), "a mapping with processes and critical_files", keys={
    "processes": Field((list,), "a list of process patterns (matched like `pgrep -f`)",
                       items=text("an extended regular expression", check=pattern_problem)),
    "critical_files": Field((list,), "a list of paths relative to the repo", items=PATH),
    "expect_running": Field((bool,), "true or false",
                            hint="expect_running: true fails the health gate when a guard process is not running"),
})

WORKTREE = Field((dict,), "a mapping with path, branch, merge, strategy, push", keys={
    "path": Field((str,), "the worktree's path", required=True, check=checkout_path_problem),
    "branch": Field((str,), "the worktree's branch", required=True, check=git_ref_problem),
    "merge": BRANCH,
    "strategy": Field((str,), "merge or rebase", choices=("merge", "rebase")),
    "push": BOOL,
})

S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def s3_url_problem(value: str) -> str | None:
    """Why `value` is not `s3://bucket[/prefix]`, or None."""
    if not value.startswith("s3://"):
        return "is not an S3 URL; expected s3://bucket/prefix"
    bucket, _, prefix = value[len("s3://"):].partition("/")
    if not S3_BUCKET.match(bucket) or ".." in bucket:
        return (f"names bucket '{bucket}', which is not a valid bucket name (3-63 lowercase letters, digits, "
                "'.' and '-', starting and ending with a letter or digit)")
    if prefix.startswith("/") or "//" in prefix.rstrip("/"):
        return "has an empty path segment ('//') in its prefix"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "contains control characters"
    return None


def endpoint_problem(value: str) -> str | None:
    """An http(s) URL without embedded credentials."""
    match = re.fullmatch(r"https?://([^/\s]+)(/\S*)?", value)
    if not match:
        return "is not an http:// or https:// URL"
    if "@" in match.group(1):
        return "contains credentials (user:password@); keep them in the host's AWS profile instead"
    return None


S3_SETTINGS_KEYS: dict[str, Field] = {
    "profile": text("an AWS profile name (from the host's ~/.aws/config)",
                    check=lambda v: None if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*", v)
                    else "is not a profile name (letters, digits, '_.@+-')"),
    "region": text("an AWS region, e.g. eu-central-1",
                   check=lambda v: None if re.fullmatch(r"[a-z0-9][a-z0-9-]*", v)
                   else "is not a region name (lowercase letters, digits, '-')"),
    "endpoint_url": text("an http(s) URL of an S3-compatible endpoint (MinIO, R2, ...)", check=endpoint_problem),
    "timeout": SECONDS,
}

S3_ENTRY = Field((dict,), "a mapping with path, url, direction, exclude, delete", keys={
    "path": Field((str,), "a directory on that host (relative to repo, absolute or ~/…)", required=True,
                  check=nonempty, hint="e.g. path: models"),
    "url": Field((str,), "an S3 URL, s3://bucket/prefix", required=True, check=s3_url_problem,
                 hint="e.g. url: s3://my-bucket/crpbot/models"),
    "direction": Field((str,), "up (host → S3) or down (S3 → host)", required=True, choices=("up", "down")),
    "exclude": Field((list,), "a list of patterns, as `aws s3 sync --exclude` takes them", items=text()),
    "delete": Field((bool,), "true or false",
                    hint="delete: true removes files at the destination that the source does not have"),
    **S3_SETTINGS_KEYS,
})

ENTRY_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def entry_name_problem(value: str) -> str | None:
    return None if ENTRY_NAME.match(value) else "is not a valid name (letters, digits, '._-'; not starting with '.' or '-')"


def rsync_pattern_problem(value: str) -> str | None:
    """rsync reads `+ `/`- ` prefixes and a lone `!` even in --exclude (they would include or clear rules)."""
    if not value or "\n" in value or "\r" in value or "\0" in value:
        return "must be one non-empty line"
    if value.startswith(("!", "+ ", "- ", "+,", "-,", "+_", "-_")) or value in ("+", "-"):
        return "starts with an rsync filter prefix; give a plain pattern like '*.tmp' or 'cache/'"
    return None


def builtin_secret_problem(value: str) -> str | None:
    if value in SECRET_PATTERNS:
        return None
    return "not a built-in secret pattern; not_secret can only release one of: " + ", ".join(SECRET_PATTERNS)


def backup_dir_problem(value: str) -> str | None:
    """rsync would read `~other/...` as a dir named `~other` inside the destination (backups among the files)."""
    if value.startswith("~") and value != "~" and not value.startswith("~/"):
        return "names another user's home; only ~/ (your own home on each host) is understood, or an absolute path"
    return nonempty(value)


PATTERNS = Field((list,), "a list of rsync patterns", items=text("an rsync pattern, e.g. '*.tmp'",
                                                                 check=rsync_pattern_problem))

RSYNC_ENTRY = Field((dict,), "a mapping with name, direction, src, dest (exclude, delete, direct optional)", keys={
    "name": Field((str,), "a name for this transfer", required=True, check=entry_name_problem),
    "direction": Field((str,), "push (into this host) or pull (out of it)", required=True,
                       choices=("push", "pull")),
    "src": Field((str,), "a path, or host:path", required=True, check=nonempty),
    "dest": Field((str,), "a path, or host:path", required=True, check=nonempty),
    "exclude": PATTERNS,
    "delete": Field((bool,), "true or false", hint="delete: true removes files at dest that src no longer has "
                                                   "(they are backed up first)"),
    "direct": Field((bool,), "true or false", hint="direct: true runs rsync on the source host straight to the "
                                                   "target instead of relaying through the laptop"),
})

RESULTS_ENTRY = Field((dict,), "a mapping with remote and local", keys={
    "remote": Field((str,), "the path on this host (relative to its repo)", required=True, check=nonempty),
    "local": Field((str,), "the path on the laptop (relative to its repo)", required=True, check=nonempty),
    "exclude": PATTERNS,
})

# ---------------------------------------------------------------- the deploy gate (gate/)

CHECK_KINDS = ("run", "metric", "http")


def check_kind_problem(value: dict) -> str | None:
    """A check is exactly one of run / metric / http (a switched-off one may be just its name)."""
    kinds = [k for k in CHECK_KINDS if k in value]
    if value.get("enabled") is False and not kinds:
        return None
    if len(kinds) == 1:
        return None
    found = "none of them" if not kinds else " and ".join(kinds)
    return f"a check needs exactly one of run, metric, http; found {found}"


def bounds_problem(value: dict) -> str | None:
    if "min" not in value and "max" not in value:
        return "a metric check needs min, max or both"
    low, high = value.get("min"), value.get("max")
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
    return "min is greater than max" if numbers and low > high else None


def number_problem(value: float) -> str | None:
    return None if value == value and value not in (float("inf"), float("-inf")) else "must be a finite number"


def http_url_problem(value: str) -> str | None:
    match = re.fullmatch(r"https?://([^/\s?#]+)([/?#]\S*)?", value)
    if not match:
        return "is not an http:// or https:// URL (no spaces)"
    if "@" in match.group(1):
        return "contains credentials (user:password@); the gate never sends secrets"
    return None


def unique_names_problem(value: list) -> str | None:
    names = [item.get("name") for item in value if isinstance(item, dict)]
    twice = sorted({n for n in names if isinstance(n, str) and names.count(n) > 1})
    return f"names check {', '.join(repr(n) for n in twice)} more than once" if twice else None


NUMBER = Field((int, float), "a number, e.g. 0.68", check=number_problem)
CHECK = Field((dict,), "a mapping with name and one of run, metric, http", check=check_kind_problem,
              hint="e.g. {name: tests, run: make test} or {name: accuracy, metric: {file: results/metrics.json, "
                   "key: accuracy, min: 0.68}}",
              keys={
    "name": Field((str,), "a check name (letters, digits, '._-')", required=True, check=entry_name_problem),
    "run": text("a shell command, run in the repo with sh -c; passes on exit 0"),
    "metric": Field((dict,), "a mapping with file, key, min and/or max", check=bounds_problem, keys={
        "file": Field((str,), "a JSON, YAML or key=value file (relative to the repo)", required=True,
                      check=nonempty, hint="e.g. file: results/metrics.json"),
        "key": Field((str,), "a key; dots reach nested values (eval.accuracy)", required=True, check=nonempty),
        "min": NUMBER,
        "max": NUMBER,
    }),
    "http": Field((dict,), "a mapping with url and expect", keys={
        "url": Field((str,), "an http(s) URL, fetched on the host", required=True, check=http_url_problem,
                     hint="e.g. url: http://127.0.0.1:8050/health"),
        "expect": Field((int,), "an HTTP status code, e.g. 200",
                        check=lambda v: None if 100 <= v <= 599 else "is not an HTTP status (100-599)"),
    }),
    "timeout": SECONDS,
    "enabled": Field((bool,), "true or false", hint="enabled: false switches a default check off on this host"),
})
CHECKS = Field((list,), "a list of checks ({name, run | metric | http, timeout})", items=CHECK,
               check=unique_names_problem)
ALLOW_UNTRACKED = Field((list,), "a list of paths or globs relative to the repo (nohup.out, 'models/*.bin', logs/)",
                        items=PATH)


def protect_problem(path: object) -> str | None:
    """Why a job's protect path is not usable (None: it is): relative to the host's repo, like
    guard.critical_files (a file, a directory/, a glob). The rule for the inventory and `run --protect`."""
    if not isinstance(path, str) or not path.strip():
        return "must be a non-empty path"
    if any(c in path for c in "\0\n\r"):
        return "must be one line"
    if path.startswith(("/", "~")) or ".." in path.split("/"):
        return "must be relative to the host's repo, without '..'"
    return None


JOB_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
JOB_PRESET = Field((dict,), "a mapping with run (and optionally cwd, env, results, protect)", keys={
    "run": Field((str,), "the command to run (a shell command line)", required=True,
                 check=lambda v: None if v.strip() and "\0" not in v else "must be a non-empty command",
                 hint='e.g. run: "python -m sage.tirex_validation"'),
    "cwd": PATH,
    "env": Field((dict,), "a mapping of environment variable names to values",
                 check=lambda v: next((f"has '{k}', which is not a variable name" for k in v
                                       if not isinstance(k, str) or not ENV_NAME.match(k)), None)
                 or next((f"'{k}' must be a string, number or true/false" for k, x in v.items()
                          if not isinstance(x, (str, int, float, bool))), None)),
    "results": Field((bool,), "true or false", hint="results: true brings the host's results back when it ends"),
    "protect": Field((list,), "a list of paths relative to the repo (files, directories/, globs)",
                     items=text("a path relative to the repo", check=protect_problem),
                     hint="protect: [results/, data/*.parquet] — sync-all and push-code leave them alone while "
                          "the job runs"),
})


def job_name_problem(value: Any) -> str | None:
    if isinstance(value, str) and JOB_NAME.match(value):
        return None
    return f"preset name '{value}' is not a job name: letters, digits, '_' and '-' (at most 64), not starting with '-'"


HOST_KEYS: dict[str, Field] = {
    "local": Field((bool,), "true or false", hint="local: true means the controller itself (no SSH)"),
    "ssh": text("an ssh_config alias, user@host or user@host:port", check=ssh_target_problem),
    "repo": Field((str,), "the path of the git checkout on that host", required=True, check=checkout_path_problem,
                  hint="e.g. repo: ~/crpbot or repo: /root/crpbot"),
    "branch": BRANCH,
    "remote": text("a git remote name, e.g. origin", check=git_ref_problem),
    "guard": GUARD,
    "zerotier": Field((str,), "a 16-hex-digit ZeroTier network id",
                      check=lambda v: None if re.fullmatch(r"[0-9a-fA-F]{16}", v) else "is not 16 hex digits"),
    "gpu": BOOL,
    "push": Field((bool,), "true or false", hint="push: false marks a review-only host that never pushes"),
    "slow": BOOL,
    "git_access": BOOL,
    "validate": text("a shell command, e.g. make test",
                     hint="runs in the repo (sh -c) before relayed patches are kept; failure rolls them back"),
    "worktrees": Field((list,), "a list of worktree mappings", items=WORKTREE),
    "connect_timeout": SECONDS,
    "command_timeout": SECONDS,
    "s3": Field((list,), "a list of S3 sync entries ({path, url, direction, exclude, delete})", items=S3_ENTRY),
    "s3_settings": Field((dict,), "a mapping with profile, region, endpoint_url, timeout", keys=S3_SETTINGS_KEYS,
                         hint="overrides the top-level s3: settings for this host"),
    "rsync": Field((list,), "a list of rsync entries", items=RSYNC_ENTRY),
    "results": Field((list,), "a list of {remote, local} results to bring back to the laptop", items=RESULTS_ENTRY),
    "push_code": Field((bool,), "true or false", hint="push_code: true makes sync-all push the laptop's working "
                                                      "tree to this host after converge"),
    "checks": CHECKS,
    "allow_untracked": ALLOW_UNTRACKED,


    "jobs": Field((dict,), "a mapping of job preset names to {run, cwd, env, results}",
                  names=job_name_problem, values=JOB_PRESET, hint="e.g. jobs: {tirex: {run: 'python -m sage.tirex_validation'}}"),
}

DEFAULT_KEYS: dict[str, Field] = {
    "branch": BRANCH,
    "remote": HOST_KEYS["remote"],
    "connect_timeout": SECONDS,
    "command_timeout": SECONDS,
    "workers": Field((int,), "a whole number of parallel hosts", check=positive),
    "checks": CHECKS,
    "allow_untracked": ALLOW_UNTRACKED,
}

TOP_KEYS: dict[str, Field] = {
    "ssh_config": PATH,
    "defaults": Field((dict,), "a mapping", keys=DEFAULT_KEYS),
    "order": Field((list,), "a list of host names", items=text("a host name")),
    "hosts": Field((dict,), "a mapping of host name to host settings"),  # checked host by host
    "s3": Field((dict,), "a mapping with profile, region, endpoint_url, timeout (defaults for S3 syncs)",
                keys=S3_SETTINGS_KEYS),
    "transfers": Field((dict,), "a mapping with secrets, not_secret, bwlimit, backup_dir", keys={
        "secrets": Field((list,), "a list of extra secret patterns (added to the built-in ones)",
                         items=text("an rsync pattern, e.g. '*.p12'", check=rsync_pattern_problem)),
        "not_secret": Field((list,), "a list of built-in secret patterns this fleet may send (e.g. '.npmrc')",
                            items=text("a built-in secret pattern, written exactly", check=builtin_secret_problem)),
        "bwlimit": Field((int,), "a whole number of KiB per second", check=positive),
        "backup_dir": text("a path (absolute, ~/…, or relative to the home)", check=backup_dir_problem),
    }),
}

# Run journal, fleet lock, work claims and notify (see settings.py for defaults and units).
DURATION = Field((int, float, str), "a duration: seconds, or a number with s, m, h or d (e.g. 90m, 4h)",
                 check=duration_problem)
NOTIFY = Field((dict,), "a mapping with command (and optionally timeout)", keys={
    "command": Field((str,), "a command line, run without a shell, the JSON report on its stdin", required=True,
                     check=command_problem, hint='e.g. command: "/usr/local/bin/post-to-chat --channel fleet"'),
    "timeout": SECONDS,
})
TOP_KEYS.update({
    "state_dir": PATH,
    "lock_ttl": DURATION,
    "claim_ttl": DURATION,
    "notify": NOTIFY,
    "control_persist": Field((int, float, str, bool), "a duration (how long an ssh master outlives its last "
                             "command, e.g. 5m) or no", check=persist_problem),
})
