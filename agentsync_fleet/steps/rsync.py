"""Exact ssh and rsync argv for a transfer, built from argv and never from shell text.

Why each fixed option is there:

* `-rlpt`: recurse, symlinks as symlinks, permissions, times. Not `-a`: owners,
  groups and device files of one machine mean nothing on another.
* `-s` (secluded args): paths and options reach the remote rsync through the
  protocol, not the remote shell's command line, so no inventory value can be
  word-split or run as shell on any rsync version. Every path we pass is
  absolute or starts with `./`, so none can be read as an option either.
* `--keep-dirlinks`, only when the laptop's own files go out: a symlink to a
  directory on the receiving host (a GPU box's `data -> /mnt/nvme/data`) stays
  a symlink and files go where it points. Never when the files come from a host:
  a link it sent in one run and a directory of that name in the next would
  write through the link anywhere on the laptop (or on a relay's target).
  rsync 3.5 follows only links that stay inside the tree, so a push also sends
  into each symlinked directory of the receiving host by its own run
  (transfer/dirlinks.py); `--keep-dirlinks` still serves links inside the tree.
* `--partial-dir`: an interrupted file is kept aside (not over the old one) and
  the next run resumes from it; rsync excludes and protects that dir itself.
* `--backup --backup-dir`: a file the transfer overwrites or deletes on the
  receiving side is moved into a timestamped dir first.
* Secret patterns come first among the excludes: rsync uses the first rule that
  matches, so nothing later can let a secret through. rsync matches case-
  sensitively and, with `--files-from`, checks only the listed name, never the
  directories above it, so each secret pattern becomes two rules (`secret_rules`):
  the pattern with every letter as `[xX]`, and the same with `/**` (anything
  inside a directory that matches).
* `-e`: OpenSSH with the inventory's ssh_config, its known_hosts files plus the
  user's, BatchMode and strict host-key checking (never auto-add).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..secrets import SECRET_PATTERNS
from ..settings import TIMEOUTS
from ..shell import Raw, join, quote_path, sh_argument

PARTIAL_DIR = ".agentsync-partial"
PORT_SUFFIX = re.compile(r"^(.*):(\d{1,5})$")
RSH_SAFE = re.compile(r"^[A-Za-z0-9_@%+=:,./~-]+$")
GLOB_CHARS = re.compile(r"[*?[\\]")
WILDCARDS = re.compile(r"[*?[]")


@dataclass(frozen=True)
class SshTarget:
    """How OpenSSH reaches one host: the inventory's target, and the client settings that apply to it."""

    target: str  # alias or user@host (the port, if the inventory gave one, is in `port`)
    port: int | None = None
    config: str | None = None  # -F: the inventory's ssh_config
    known_hosts: tuple[str, ...] = ()  # UserKnownHostsFile: ssh_config's files plus the user's
    connect_timeout: float = TIMEOUTS.connect
    address: str = ""  # user@hostname as ssh_config resolves it (what another host must dial)
    resolved_port: int | None = None
    proxy_jump: str = ""
    argv: tuple[str, ...] = ()  # the run's own ssh argv for this host (its master, its hops); wins when set


def split_port(ssh: str) -> tuple[str, int | None]:
    """`user@host:2222` → ("user@host", 2222); OpenSSH and rsync take the port as `-p`."""
    match = PORT_SUFFIX.match(ssh)
    if match and not ssh.endswith("]"):
        return match.group(1), int(match.group(2))
    return ssh, None


def ssh_argv(t: SshTarget, *, first_hop: bool = True) -> list[str]:
    """The OpenSSH client command (without the target). `first_hop=False`: on another host (no -F, no files)."""
    if first_hop and t.argv:
        return list(t.argv)
    argv = ["ssh"]
    if first_hop and t.config:
        argv += ["-F", t.config]
    argv += ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if first_hop and t.known_hosts:
        argv += ["-o", "UserKnownHostsFile=" + " ".join(t.known_hosts)]
    argv += ["-o", f"ConnectTimeout={max(1, math.ceil(t.connect_timeout))}",
             "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
    if t.port:
        argv += ["-p", str(t.port)]
    return argv


def rsh_quote(arg: str) -> str:
    """Quote one word for rsync's own -e splitter: quotes group, a doubled quote is a literal one."""
    return arg if RSH_SAFE.match(arg) else "'" + arg.replace("'", "''") + "'"


def rsh_string(argv: list[str]) -> str:
    return " ".join(rsh_quote(a) for a in argv)


def nocase(pattern: str) -> str:
    """The rsync pattern that matches whatever the letter case: `.env` → `.[eE][nN][vV]`.

    A `[...]` class and a `\\x` escape are kept as written."""
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        end = _class_end(pattern, i) if char == "[" else -1
        if char == "\\" or end != -1:
            stop = i + 2 if end == -1 else end + 1
            out.append(pattern[i:stop])
            i = stop
            continue
        out.append(f"[{char.lower()}{char.upper()}]" if char.isascii() and char.isalpha() else char)
        i += 1
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """Where the `[...]` class opening at `start` ends (a `]` right after `[`, `[!` or `[^` is a member), or -1."""
    i = start + 1
    i += pattern[i:i + 1] in ("!", "^")
    i += pattern[i:i + 1] == "]"
    return pattern.find("]", i)


def secret_rules(patterns: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The exclude rules that hold back `patterns`, each mapped to the secret pattern it stands for.

    A pattern with a class or an escape stays a rule as written too: however `nocase` reads it, no secret
    rule is ever weakened."""
    rules: dict[str, str] = {}
    for pattern in patterns:
        kept = (pattern,) if "[" in pattern or "\\" in pattern else ()
        for rule in dict.fromkeys((*kept, nocase(pattern))):
            rules.setdefault(rule, pattern)
            rules.setdefault(rule.rstrip("/") + "/**", pattern)
    return rules


@dataclass(frozen=True)
class RsyncCall:
    """One rsync run. `src`/`dest` are absolute local paths or `target:path` (path absolute or ./relative)."""

    src: str
    dest: str
    rsh: tuple[str, ...] = ()  # ssh argv for -e (empty: both sides local)
    remote: str = ""  # which side the remote rsync is: "sender", "receiver" or "" (none)
    dry_run: bool = False
    delete: bool = False
    compress: bool = False
    bwlimit: int | None = None
    io_timeout: int = int(TIMEOUTS.command)
    excludes: tuple[str, ...] = tuple(secret_rules(SECRET_PATTERNS))
    backup_dir: str | None = None  # on the receiving side; "~/..." is that host's home
    files_from: bool = False  # read NUL-separated relative names from stdin
    checksum: bool = False  # compare content, not size + mtime (see push-code in transfer/plan.py)
    keep_dirlinks: bool = False  # the sender is the laptop's own tree (see the module docstring)
    program: str = "rsync"  # the rsync this run starts (steps/rsync_tool.py chooses it)
    remote_program: str = "rsync"  # the rsync the far end starts (--rsync-path when not plain `rsync`)


def rsync_argv(call: RsyncCall) -> list[str]:
    argv = [call.program, "-rlpt", "-s", f"--partial-dir={PARTIAL_DIR}", "--itemize-changes", "--stats",
            "--info=progress2,backup", "--debug=FILTER1", f"--timeout={call.io_timeout}"]
    if call.remote == "sender":
        argv.append("--remote-option=--debug=FILTER1")  # which files the remote sender held back
    if call.remote == "receiver":
        argv.append("--remote-option=--info=backup")  # which files the remote receiver backed up
    if call.dry_run:
        argv.append("--dry-run")
    if call.delete:
        argv.append("--delete")
    if call.compress:
        argv.append("--compress")
    if call.checksum:
        argv.append("--checksum")
    if call.keep_dirlinks:
        argv.append("--keep-dirlinks")
    if call.bwlimit:
        argv.append(f"--bwlimit={call.bwlimit}")
    if call.backup_dir:
        argv += backup_args(call.backup_dir, remote_receiver=call.remote == "receiver", program=call.remote_program)
    if call.remote_program != "rsync" and not any(a.startswith("--rsync-path=") for a in argv):
        argv.append("--rsync-path=" + join([call.remote_program]))
    if call.files_from:
        argv += ["--files-from=-", "--from0"]
    argv += [f"--exclude={pattern}" for pattern in call.excludes]
    if call.rsh:
        argv += ["-e", rsh_string(list(call.rsh))]
    return [*argv, call.src, call.dest]


def backup_args(backup_dir: str, *, remote_receiver: bool, program: str = "rsync") -> list[str]:
    """`--backup-dir` is read by the receiver. For a remote `~/` dir, the remote shell must expand the home:
    -s keeps option values away from that shell, so the option rides on --rsync-path (quoted, $HOME only)."""
    if remote_receiver and (backup_dir == "~" or backup_dir.startswith("~/")):
        return ["--backup", "--rsync-path=" + join([program, Raw("--backup-dir=" + quote_path(backup_dir))])]
    return ["--backup", f"--backup-dir={backup_dir}"]


def remote_spec(target: str, path: str, *, sender: bool = False) -> str:
    """`target:path`. A remote *sender* expands wildcards in its paths itself (with -s no shell does it first):
    escaped, `run[1]/` names only that directory (not `run1/`), as a path on the laptop does."""
    if sender and WILDCARDS.search(path):  # without a wildcard rsync takes the path as it is (a backslash stays one)
        path = GLOB_CHARS.sub(lambda m: "\\" + m.group(0), path)
    return f"{target}:{path}"


def remote_command(argv: list[str]) -> str:
    """argv for a command run on a host through ssh: one argument its login shell, whichever it is, hands to
    `sh` unchanged (shell.sh_argument)."""
    return sh_argument(join(argv))
