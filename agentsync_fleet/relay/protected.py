"""Files that must never travel in a relayed patch: environment files, keys, credentials.

Kept in one small pure module on purpose: the rsync transfer has the same
list (configurable there), and the two are meant to become one at merge time.
"""

from __future__ import annotations

import fnmatch
import posixpath
from collections.abc import Iterable

# Matched against the file's base name, case-insensitively (`.ENV` is `.env` on many disks).
PROTECTED_PATTERNS: tuple[str, ...] = (
    ".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "*_secrets.json", "credentials*",
)


def is_protected(path: str, patterns: Iterable[str] = PROTECTED_PATTERNS) -> bool:
    """True if `path` (repo-relative, `/`-separated) names a protected file anywhere in the tree."""
    name = posixpath.basename(path.rstrip("/")).lower()
    return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in patterns)


def protected_paths(paths: Iterable[str], patterns: Iterable[str] = PROTECTED_PATTERNS) -> list[str]:
    """The protected ones among `paths`, sorted and without duplicates."""
    patterns = tuple(patterns)
    return sorted({p for p in paths if is_protected(p, patterns)})
