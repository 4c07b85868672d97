"""The fleet lock on a host: `.git/agentsync.lock` in its repo, through the host's session.

Each operation is one small `sh` script (one round trip). The lock file is
created complete and atomically: the holder record is written to a
temporary file which is then hard-linked to the lock's name — `ln` fails if
the name exists, so of two runs exactly one gets it. Taking over a stale
lock never moves the lock file: the taker first hard-links it to a name
derived from the stale record (`ln` again: one taker per stale record), and
removes the lock only if that link is the stale record itself. Moving the
lock aside to look at it would leave the name free for a moment, and a run
that just took the lock over could then find a third run holding it too.

Whenever a script shows a lock held, it also prints the lock's age by the
host's own clock (`date +%s` minus the file's mtime, both read there): how
stale a lock is never depends on the controllers' clocks (locks/model.py).
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass

from ..shell import SECTION_MARK, path_arg, script, section, split_sections
from ..steps import git as G
from .model import REMOTE_NAME, Holder


@dataclass(frozen=True)
class RemoteState:
    """What a lock script found on a host."""

    status: str  # acquired | held | changed | released | removed | absent | kept | norepo | gitfailed
    text: str = ""  # the lock file's content when it matters (held, changed, present)
    detail: str = ""
    age_s: float | None = None  # how old the lock file is by the host's own clock (None: not known)
    also: str = ""  # what the read-only script sent along with `acquire_script` printed (its `also` section)

    @property
    def holder(self) -> Holder | None:
        return Holder.from_json(self.text) if self.text else None


def _prelude(repo: str) -> list[str]:
    """Find the repo's common git dir. No checkout at `repo` at all is `norepo` (a host that keeps no lock);
    a checkout whose git fails to answer is `gitfailed`: its lock is not taken, and the run must not touch it."""
    return [
        f"d=$({G.common_dir(repo)} 2>&1) || {{ if [ -e {path_arg(repo)}/.git ]; then {section('gitfailed')}; "
        f"else {section('norepo')}; fi; printf '%s\\n' \"$d\"; exit 0; }}",
        f'lock="$d/{REMOTE_NAME}"',
    ]


def _show_lock() -> str:
    """The lock's content, then its age by the host's clock (GNU/busybox `stat -c`, BSD `stat -f`)."""
    return ('cat "$lock" 2>/dev/null; m=$(stat -c %Y "$lock" 2>/dev/null || stat -f %m "$lock" 2>/dev/null) && '
            + section("age") + ' && echo $(( $(date +%s) - m ))')


def _create(holder: Holder) -> list[str]:
    return [
        'tmp="$lock.$$.tmp"',
        f"printf '%s\\n' {shlex.quote(holder.to_json())} > \"$tmp\" || exit 3",
        f'if ln "$tmp" "$lock" 2>/dev/null; then rm -f "$tmp"; {section("acquired")}; '
        f'else rm -f "$tmp"; {section("held")}; {_show_lock()}; fi',
    ]


def acquire_script(repo: str, holder: Holder, also: str = "") -> str:
    """Take the lock; `also`, a read-only script the task needs anyway, runs in the same round trip after it
    (its output under the `also` section)."""
    return script(_prelude(repo) + _create(holder) + ([section("also"), also] if also else []))


def takeover_script(repo: str, holder: Holder, stale_text: str) -> str:
    """Remove the lock only if it still holds `stale_text`; then create ours as usual.

    `changed`: the lock is no longer that stale record, or another run is
    taking it over right now; the caller judges whatever lock is there.
    """
    claim = f'"$lock.takeover.{hashlib.sha256(stale_text.encode()).hexdigest()[:16]}"'
    return script(_prelude(repo) + [
        f'if ln "$lock" {claim} 2>/dev/null; then',
        # The link is the inode that was the lock: if it is the stale record, only we may remove it.
        f'  if [ "$(cat {claim})" = {shlex.quote(stale_text)} ] && [ "$lock" -ef {claim} ]; then '
        f'rm -f "$lock" {claim}; else rm -f {claim}; {section("changed")}; {_show_lock()}; exit 0; fi',
        f'elif [ -e "$lock" ]; then {section("changed")}; {_show_lock()}; exit 0',
        "fi",
    ] + _create(holder))


def release_script(repo: str, expected_text: str) -> str:
    """Remove the lock only if it holds exactly `expected_text` (ours, or what `unlock` showed)."""
    return script(_prelude(repo) + [
        f'if [ "$(cat "$lock" 2>/dev/null)" = {shlex.quote(expected_text)} ]; then rm -f "$lock"; '
        f'{section("removed")}; elif [ -e "$lock" ]; then {section("kept")}; cat "$lock"; '
        f'else {section("absent")}; fi',
    ])


def refresh_script(repo: str, expected_text: str) -> str:
    """The lock's heartbeat: set its mtime to the host's "now" only if it holds exactly `expected_text` (ours);
    `touch -c` never creates it, should a release remove it meanwhile."""
    return script(_prelude(repo) + [
        f'if [ "$(cat "$lock" 2>/dev/null)" = {shlex.quote(expected_text)} ] && touch -c "$lock"; then '
        f'{section("refreshed")}; elif [ -e "$lock" ]; then {section("kept")}; else {section("absent")}; fi',
    ])


def read_script(repo: str) -> str:
    return script(_prelude(repo) + [
        f'if [ -e "$lock" ]; then {section("held")}; {_show_lock()}; else {section("absent")}; fi',
    ])


def parse(output: str) -> RemoteState:
    """The first section a lock script printed, with the text under it."""
    parts = split_sections(output)
    for line in output.splitlines():
        if line.startswith(SECTION_MARK):
            name = line[len(SECTION_MARK):].strip()
            text = parts.get(name, "").strip()
            age = parts.get("age", "").strip()
            failed = name in ("norepo", "gitfailed")
            return RemoteState(name, "" if failed else text, text if failed else "",
                               float(age) if age.lstrip("-").isdigit() else None, parts.get("also", ""))
    return RemoteState("error", detail=output.strip()[-400:])


def run_script(session, host, text: str, timeout: float = 60) -> RemoteState:
    result = session.run_script(text, timeout=min(host.command_timeout, timeout))
    state = parse(result.stdout)
    if state.status == "error":
        return RemoteState("error", detail=(result.tail(4) or f"exit {result.exit_code}"))
    return state
