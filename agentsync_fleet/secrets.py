"""Files that must never travel: environment files, keys, credentials.

One list for every way files move: rsync transfers exclude these patterns
(`steps/rsync.py`), patch relay refuses commits that add or change them
(`relay/core.py`). The built-in patterns always apply; an inventory adds its
own under `transfers: {secrets: [...]}`.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable

# Matched against the file's base name, case-insensitively (`.ENV` is `.env` on many disks).
SECRET_PATTERNS: tuple[str, ...] = (
    ".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "*_secrets.json", "credentials*",
)
PROTECTED_PATTERNS = SECRET_PATTERNS  # the name patch relay uses


def secret_patterns(settings: dict) -> tuple[str, ...]:
    """The built-in patterns plus the inventory's `transfers.secrets` (never fewer than the built-ins)."""
    extra = (settings.get("transfers") or {}).get("secrets", ())
    return tuple(dict.fromkeys((*SECRET_PATTERNS, *extra)))


def is_protected(path: str, patterns: Iterable[str] = PROTECTED_PATTERNS) -> bool:
    """True if `path` (repo-relative, `/`-separated) names a protected file anywhere in the tree."""
    name = posixpath.basename(path.rstrip("/")).lower()
    return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in patterns)


def protected_paths(paths: Iterable[str], patterns: Iterable[str] = PROTECTED_PATTERNS) -> list[str]:
    """The protected ones among `paths`, sorted and without duplicates."""
    patterns = tuple(patterns)
    return sorted({p for p in paths if is_protected(p, patterns)})
