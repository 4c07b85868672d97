"""Files that must never travel: environment files, keys, credentials.

One list for every way files move: rsync transfers exclude these patterns
(`steps/rsync.py`), patch relay refuses commits that add or change them
(`relay/core.py`). The built-in patterns always apply; an inventory adds its
own under `transfers: {secrets: [...]}`.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

# Matched against each path component, case-insensitively (`.ENV` is `.env` on many disks). The first
# eight are the list the project promises; the rest are the other private-key and password files an
# ssh or TLS setup leaves around (other key types, PKCS#12 bundles, ~/.netrc).
SECRET_PATTERNS: tuple[str, ...] = (
    ".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "*_secrets.json", "credentials*",
    "id_ecdsa*", "id_dsa*", "*.p12", "*.pfx", ".netrc",
)
PROTECTED_PATTERNS = SECRET_PATTERNS  # the name patch relay uses


def secret_patterns(settings: dict) -> tuple[str, ...]:
    """The built-in patterns plus the inventory's `transfers.secrets` (never fewer than the built-ins)."""
    extra = (settings.get("transfers") or {}).get("secrets", ())
    return tuple(dict.fromkeys((*SECRET_PATTERNS, *extra)))


def is_protected(path: str, patterns: Iterable[str] = PROTECTED_PATTERNS) -> bool:
    """True if `path` (repo-relative, `/`-separated) is a protected file, or lies in a protected directory
    (`credentials/aws.json`, `.env/production`): rsync's exclude of the same pattern leaves those out too."""
    parts = [part.lower() for part in path.strip("/").split("/") if part]
    return any(fnmatch.fnmatchcase(part, pattern.lower()) for pattern in patterns for part in parts)


def protected_paths(paths: Iterable[str], patterns: Iterable[str] = PROTECTED_PATTERNS) -> list[str]:
    """The protected ones among `paths`, sorted and without duplicates."""
    patterns = tuple(patterns)
    return sorted({p for p in paths if is_protected(p, patterns)})
