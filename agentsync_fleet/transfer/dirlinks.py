"""Symlinked directories on the receiving host: find them, and send into what they point to. Pure.

A GPU box's checkout often has `data -> /mnt/nvme/data`. rsync up to 3.4 wrote
through such a link with `--keep-dirlinks`; rsync 3.5 (Debian 12's security
archive serves 3.5.0) resolves every path under the destination with an
`O_NOFOLLOW` walk and refuses a link that leaves the tree ("Too many levels of
symbolic links"), and without `--keep-dirlinks` any rsync replaces the link
with a new directory. Neither is acceptable, and `--insecure-links` would turn
the hardening off for the whole transfer. So, before a push, one probe on the
receiving host asks which of the directories we are about to send are
symlinks to directories there, and where they really lead (`cd -P; pwd -P`).
The transfer then becomes one rsync run per such link, straight into the
resolved directory (a path rsync 3.5 accepts: no link left in it), plus the
main run with the links excluded (so it neither replaces nor deletes them).
The same plan runs on every rsync version, so 3.2.7 and 3.5 behave alike.

Like rsync 3.5 (which follows a named destination link only when root or the
running user owns it), a link owned by someone else is refused: nothing of that
entry moves, and the error names the link and the fix.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

from ..errors import FleetError
from ..secrets import is_protected
from ..shell import join, path_arg
from .plan import Leg

MARK = b"@@agentsync-dirlinks@@\n"
WILDCARDS = "*?["


@dataclass(frozen=True)
class DirLink:
    """`path` (relative to the destination root) is a symlink to a directory; `target` is where it really leads."""

    path: str
    target: str
    owner: int
    trusted: bool  # owned by root or the login user (rsync 3.5 follows only those)


def sent_dirs(files: list[str]) -> list[str]:
    """Every directory a list of relative file names implies, parents first."""
    dirs: dict[str, None] = {}
    for name in files:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            dirs.setdefault("/".join(parts[:depth]))
    return list(dirs)


def walk_dirs(src: str) -> list[str]:
    """The directories rsync sends from a laptop path, relative to the destination root (links not followed:
    rsync -l sends them as links). A source without a trailing `/` lands as `dest/NAME`."""
    base = src.rstrip("/")
    if not os.path.isdir(base) or os.path.islink(base):
        return []
    lead = "" if src.endswith("/") else os.path.basename(base) + "/"
    out = [lead.rstrip("/")] if lead else []
    for root, dirs, _files in os.walk(base):
        rel = os.path.relpath(root, base)
        prefix = lead + ("" if rel == "." else rel + "/")
        out += [prefix + d for d in dirs if not os.path.islink(os.path.join(root, d))]
    return out


def probe_script(root: str, dirs: list[str]) -> str:
    """POSIX sh: for each candidate that is a symlink to a directory under `root`, its index, owner and resolved
    path (length-prefixed, so no name can break the framing). Candidates are quoted; `root` keeps `~/`."""
    lines = ["LC_ALL=C; export LC_ALL; unset CDPATH; set -f", f"cd {path_arg(root)} 2>/dev/null || exit 0",
             "me=$(id -u); printf '@@agentsync-dirlinks@@\\nme %s\\n' \"$me\"", "i=0"]
    body = ("[ -L \"$p\" ] && [ -d \"$p\" ] && { t=$(cd -P -- \"$p\" 2>/dev/null && pwd -P) || t=; "
            "set -- $(ls -ldn -- \"$p\"); printf 'link %s %s %s\\n%s\\n' \"$i\" \"$3\" \"${#t}\" \"$t\"; }; "
            "i=$((i+1))")
    for d in dirs:
        lines.append(f"p=./{join([d])}; {body}")
    return "\n".join(lines) + "\n"


def parse_probe(output: bytes, dirs: list[str]) -> list[DirLink]:
    """The probe's answer (after the marker; whatever a login script printed before it is ignored)."""
    start = output.find(MARK)
    if start < 0:
        return []
    text, links, me = output[start + len(MARK):], [], -1
    while text:
        head, _, text = text.partition(b"\n")
        fields = head.split(b" ")
        if fields[0] == b"me" and len(fields) == 2:
            me = int(fields[1])
        elif fields[0] == b"link" and len(fields) == 4:
            length = int(fields[3])
            target, text = text[:length], text[length + 1:]
            owner = int(fields[2]) if fields[2].isdigit() else -1
            links.append(DirLink(dirs[int(fields[1])], target.decode("utf-8", "surrogateescape"), owner,
                                 owner in (0, me)))
    return links


def anchored(path: str) -> str:
    """An rsync exclude rule matching exactly `path` from the transfer root (wildcards in the name escaped)."""
    if any(c in path for c in WILDCARDS):
        path = "".join("\\" + c if c in WILDCARDS + "\\" else c for c in path)
    return "/" + path


def followed(links: list[DirLink], left_out: tuple[str, ...]) -> list[DirLink]:
    """The links to send into. One inside a directory the transfer leaves out (a secret-named one, `.git`, an
    entry's own exclude) is not: nothing under it is sent anyway, and a run rooted below that name would no
    longer see the name its rule matches."""
    return [link for link in links if not is_protected(link.path, left_out)]


def check_excludes(links: list[DirLink], excludes: tuple[str, ...], where: str) -> None:
    """An exclude with a `/` inside is matched against the path from the transfer root, which a run rooted at a
    link's target does not have: refuse rather than send what it would have held back."""
    pathed = [rule for rule in excludes if "/" in rule.strip("/")]
    if links and pathed:
        raise FleetError(f"{where}: the receiving side has a symlinked directory ({links[0].path}) and the entry "
                         f"excludes by path ({pathed[0]}); nothing was sent",
                         hint="write the exclude as a name without `/` (e.g. '*.tmp'), or push into the link's "
                              f"target with its own entry (dest: {links[0].target}/)")


def check_trusted(links: list[DirLink], host: str, root: str) -> None:
    for link in links:
        if not link.trusted or not link.target:
            why = (f"is owned by uid {link.owner}, neither you nor root" if not link.trusted
                   else "cannot be resolved (no permission to enter it)")
            raise FleetError(f"{host}:{root.rstrip('/')}/{link.path} is a symlink to a directory that {why}; "
                             "rsync 3.5 refuses to write through such a link and so do we: nothing of this "
                             "entry was sent", host=host,
                             hint=f"on {host}, if the link is yours: chown -h \"$USER\" {link.path!r} (from the "
                                  "destination directory); or replace it with the directory it should be")


def split(leg: Leg, links: list[DirLink], files: list[str] | None) -> list[tuple[Leg, list[str] | None]]:
    """The main run (links excluded, their files taken out of the list) and one run per link into its target."""
    if not links:
        return [(leg, files)]
    paths = sorted((link.path for link in links), key=len, reverse=True)
    owner = {link.path: link for link in links}

    def home(name: str) -> str:
        return next((p for p in paths if name.startswith(p + "/")), "")

    out = []
    for prefix in ["", *sorted(paths)]:
        mine = None if files is None else [n[len(prefix) + 1:] if prefix else n for n in files if home(n) == prefix]
        if mine is not None and not mine and prefix:
            continue
        inner = [p[len(prefix) + 1:] if prefix else p for p in sorted(paths)
                 if p != prefix and (not prefix or p.startswith(prefix + "/"))]
        out.append((_sub_leg(leg, owner.get(prefix), inner), mine))
    return out


def _sub_leg(leg: Leg, link: DirLink | None, inner: list[str]) -> Leg:
    call = replace(leg.call, excludes=(*leg.call.excludes, *(anchored(p) for p in inner)))
    if link is None:
        return replace(leg, call=call)
    base = leg.call.src if leg.call.src.endswith("/") else os.path.dirname(leg.call.src) + "/"
    spec = leg.call.dest[: len(leg.call.dest) - len(leg.dest_dir)]  # "target:"
    call = replace(call, src=base + link.path + "/", dest=spec + link.target.rstrip("/") + "/",
                  backup_dir=f"{leg.call.backup_dir}/{link.path}" if leg.call.backup_dir else None)
    return replace(leg, call=call, label=f"{leg.label} ({link.path}/ → {link.target})", prefix=link.path + "/")
