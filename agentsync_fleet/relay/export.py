"""The source side of a relay: which commits the target lacks, and the patches that carry them.

The target's HEAD id is shipped to the source and checked there with
`git merge-base`. When the source does not have that commit (the target has
work the source never saw), the target's copy of origin's branch is tried,
then the source's own copy of it (what it last received); `git am` skips
patches the target already has. Every step says which base it used and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import FleetError
from ..gitops import Checkout
from ..models import Host
from ..steps import git as G
from ..steps import relay as R
from ..steps.git import origin_ref
from . import copies
from .patchinfo import (
    CommitInfo,
    FileStat,
    RelayMeta,
    parse_commits,
    parse_format_patch_names,
    parse_name_list_z,
    parse_numstat_z,
)


class RelayError(FleetError):
    """A relay that cannot go on; `status` is how it ends (refused, failed)."""

    def __init__(self, message: str, *, status: str = "failed", hint: str | None = None, host: str | None = None,
                 files: list[str] | tuple[str, ...] = ()):
        super().__init__(message, hint=hint, host=host)
        self.status = status
        self.files = tuple(files)


@dataclass(frozen=True)
class Range:
    """The commits to carry: `base..head` on the source's branch."""

    base: str
    head: str
    how: str  # how the base was found, in words, for the report
    commits: tuple[CommitInfo, ...]
    files: tuple[FileStat, ...]
    written: tuple[str, ...]  # every path any of the commits adds or changes
    merges: int


def _merge_base(src: Checkout, sha: str, head: str) -> str | None:
    if not src.try_run(R.has_commit(src.path, sha)).ok:
        return None
    found = src.try_run(R.merge_base(src.path, sha, head))
    return found.stdout.strip() or None if found.ok else None


def find_base(src: Checkout, host: Host, head: str, candidates: list[tuple[str, str | None]]) -> tuple[str, str]:
    """(base commit, how it was found). `candidates`: (label, commit id) from the target, best first."""
    missing = []
    for label, sha in candidates:
        if not sha:
            continue
        base = _merge_base(src, sha, head)
        if base:
            also = f" ({'; '.join(missing)})" if missing else ""
            return base, f"{label} {sha[:8]} is known on {host.name}; merge-base {base[:8]}{also}"
        missing.append(f"{label} {sha[:8]} is not on {host.name}")
    own = src.rev(origin_ref(host))
    base = _merge_base(src, own, head) if own else None
    if base:
        return base, (f"{'; '.join(missing) or 'the target sent no commit'}, so the base is {host.name}'s own "
                      f"{host.remote}/{host.branch} ({own[:8]}, the last state it received); patches the target "
                      "already has are skipped when applied")
    raise RelayError(f"{host.name} shares no known commit with the target ({'; '.join(missing)}; and no "
                     f"{host.remote}/{host.branch} on {host.name})", host=host.name,
                     hint="bring the two checkouts onto a common commit once by hand (e.g. with a git bundle)")


def find_range(src: Checkout, host: Host, candidates: list[tuple[str, str | None]]) -> Range:
    """Read-only: the source's commits the target lacks, with their files and line counts."""
    head = src.rev(f"refs/heads/{host.branch}")
    if head is None:
        raise RelayError(f"branch '{host.branch}' does not exist in {host.repo}", host=host.name)
    base, how = find_base(src, host, head, candidates)
    if base == head:
        return Range(base, head, how, (), (), (), 0)
    commits = parse_commits(src.run(R.commits(src.path, base, head), "list commits to relay").stdout)
    merges = int(src.run(R.merges(src.path, base, head)).stdout.strip() or 0)
    written = parse_name_list_z(src.run(R.written_names(src.path, base, head)).stdout)
    files = parse_numstat_z(src.run(R.numstat(src.path, base, head)).stdout)
    return Range(base, head, how, tuple(commits), tuple(files), tuple(written), merges)


def common_dir(co: Checkout) -> str:
    return co.run(G.common_dir(co.path)).stdout.strip()


def export_patches(src: Checkout, host: Host, rng: Range, meta: RelayMeta, out_dir: str) -> dict[str, bytes]:
    """Write the patches and meta.json under the source's .git, fetch them to the controller, remove them there."""
    src.run(R.make_dir(out_dir))
    try:
        out = src.run(R.format_patch(src.path, out_dir, rng.base, rng.head),
                      f"git format-patch {len(rng.commits)} commit(s)")
        try:
            names = parse_format_patch_names(out.stdout)
        except ValueError as exc:
            raise RelayError(str(exc), host=host.name) from None
        if len(names) != len(rng.commits):
            raise RelayError(f"git format-patch wrote {len(names)} patch(es) for {len(rng.commits)} commit(s)",
                             host=host.name)
        src.run(R.write_messages(src.path, out_dir, [c.sha for c in rng.commits]), "keep exact commit messages")
        meta_json = json.dumps({**meta.as_json(), "patches": names}, indent=2).encode()
        copies.write_files(src.session, {f"{out_dir}/meta.json": meta_json}, src.timeout)
        src.log.announce(f"fetch {len(names)} patch(es) over SFTP")
        wanted = names + [R.message_file("", i).lstrip("/") for i in range(1, len(names) + 1)]
        data = copies.read_files(src.session, [f"{out_dir}/{n}" for n in wanted], src.timeout)
        return {name: data[f"{out_dir}/{name}"] for name in wanted} | {"meta.json": meta_json}
    finally:
        src.try_run(R.remove_relay_dir(out_dir))
