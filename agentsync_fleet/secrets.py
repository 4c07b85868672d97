"""Files that must never travel: environment files, keys, credentials.

One list for every way files leave a host: rsync transfers exclude these
patterns (`steps/rsync.py`), S3 uploads exclude them at any depth and in any
letter case (`steps/s3.py`), patch relay refuses commits that add or change
them (`relay/core.py`). An inventory adds its own under
`transfers: {secrets: [...]}`, and may release a built-in pattern it knows to be
harmless in its fleet (a project `.npmrc` without tokens, say) under
`transfers: {not_secret: [...]}`: only patterns named exactly, never by accident.
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
    # tokens and passwords other tools keep in dotfiles, and Terraform state (it holds every resource's secrets)
    ".git-credentials", ".pgpass", ".npmrc", ".pypirc", ".envrc", "*.tfstate", "*.tfstate.backup",
)
PROTECTED_PATTERNS = SECRET_PATTERNS  # the name patch relay uses


def secret_patterns(settings: dict) -> tuple[str, ...]:
    """The built-in patterns plus the inventory's `transfers.secrets`, less the built-ins it names under
    `transfers.not_secret` (the inventory check makes sure each of those names a built-in pattern)."""
    transfers = settings.get("transfers") or {}
    released = set(transfers.get("not_secret", ()))
    builtin = tuple(p for p in SECRET_PATTERNS if p not in released)
    return tuple(dict.fromkeys((*builtin, *transfers.get("secrets", ()))))


def is_protected(path: str, patterns: Iterable[str] = PROTECTED_PATTERNS) -> bool:
    """True if `path` (repo-relative, `/`-separated) is a protected file, or lies in a protected directory
    (`credentials/aws.json`, `.env/production`): rsync's exclude of the same pattern leaves those out too."""
    parts = [part.lower() for part in path.strip("/").split("/") if part]
    return any(fnmatch.fnmatchcase(part, pattern.lower()) for pattern in patterns for part in parts)


def protected_paths(paths: Iterable[str], patterns: Iterable[str] = PROTECTED_PATTERNS) -> list[str]:
    """The protected ones among `paths`, sorted and without duplicates."""
    patterns = tuple(patterns)
    return sorted({p for p in paths if is_protected(p, patterns)})
