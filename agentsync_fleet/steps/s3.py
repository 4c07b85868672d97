"""`aws s3 sync` command lines for one artifact entry, built from argv and quoted.

The sync runs on the host that holds the files, so data goes between that
host and S3 directly. One remote round trip per entry does everything:

1. `command -v aws`: a missing CLI is reported by name, not as "exit 127";
2. go into the entry's directory (created for a real download; for an upload
   it must exist). The CLI prints local paths relative to where it runs, so
   running it inside the directory makes `./a` and `sub/b` easy to read;
3. `aws s3 sync` with options in `--name=value` form, so no inventory value
   (a pattern starting with `-`, say) can be taken for an option; under
   `timeout` where the host has it, because a command on a host outlives
   the SSH channel the controller gives up on: an upload past its deadline
   would go on while the downloads after it run;
4. a size listing of the directory afterwards: the bytes we report are what
   is on the host's disk for the files the CLI says it moved.

Credentials never appear here: the CLI on the host finds its own (profile,
environment, instance role). We only name a profile. Secret files never
leave: an upload excludes every secret pattern (`secret_excludes`) after the
entry's own patterns, so nothing an entry says can let one through.
"""

from __future__ import annotations

from ..models import Host, S3Entry
from ..secrets import protected_paths
from ..settings import TIMEOUTS
from ..shell import Raw, join, path_arg, script, section
from .rsync import nocase

AWS_ENV = "AWS_PAGER=''"  # CLI v2 would page some output through `less`; never wait for a key press
NO_CLI = "no-aws-cli"
NO_DIR = "no-dir"
SYNC = "sync"
SIZES = "sizes"
TIMED_OUT = "timed-out"
KILL_AFTER_S = TIMEOUTS.s3_kill_after  # after the deadline's TERM, a sync that still runs gets KILL this much later

# GNU find prints sizes itself; BSD/macOS find has no -printf, its stat does the same job. -L: the CLI
# follows symlinks, so the listing does too (and sizes are the targets').
SIZE_LISTING = ("if find . -maxdepth 0 -printf '' >/dev/null 2>&1; then find -L . -type f -printf '%s %P\\n' "
                "2>/dev/null; else find -L . -type f -exec stat -L -f '%z %N' {} + 2>/dev/null; fi")


def local_dir(host: Host, entry: S3Entry) -> str:
    """Absolute and ~/ paths stand; relative ones are relative to the host's repo."""
    if entry.path.startswith(("/", "~/")) or entry.path == "~":
        return entry.path
    return f"{host.repo.rstrip('/')}/{entry.path.removeprefix('./')}"


def s3_dir(entry: S3Entry) -> str:
    """The prefix as a "directory": with the trailing slash, so `s3://b/models` never matches `models2/`."""
    return entry.url + "/"


def sync_argv(entry: S3Entry, dry_run: bool, local: str = ".") -> list[str]:
    """`aws s3 sync SRC DST [options]` for the entry's direction; `local` is the host-side directory."""
    source, dest = (local, s3_dir(entry)) if entry.direction == "up" else (s3_dir(entry), local)
    argv = ["aws", "s3", "sync", source, dest]
    argv += [f"--exclude={pattern}" for pattern in entry.exclude]
    if entry.direction == "up":  # after the entry's own: in the CLI the later filter wins
        argv += [f"--exclude={rule}" for rule in secret_excludes(entry.secrets)]
    if entry.delete:
        argv.append("--delete")
    if dry_run:
        argv.append("--dryrun")
    for option, value in (("profile", entry.profile), ("region", entry.region),
                          ("endpoint-url", entry.endpoint_url)):
        if value:
            argv.append(f"--{option}={value}")
    return argv


def secret_excludes(patterns: tuple[str, ...]) -> list[str]:
    """`aws s3 sync --exclude` rules that hold back each secret pattern at any depth, in any letter case.

    The CLI matches a rule against the whole path under the synced directory
    with Python's `fnmatch` (case-sensitive; `*` crosses `/`), so a name
    pattern P becomes four rules: P itself and anywhere below (`*/P`), and
    everything inside a directory of that name at the top or below
    (`P/*`, `*/P/*`) — what `secrets.is_protected` calls protected.
    """
    rules: list[str] = []
    for pattern in patterns:
        name = nocase(pattern.strip("/"))
        rules += [name, f"*/{name}", f"{name}/*", f"*/{name}/*"]
    return list(dict.fromkeys(rules))


def held_back(entry: S3Entry, files: list[str]) -> list[str]:
    """The files of an upload's directory that the secret rules keep out of S3 (for the report)."""
    return protected_paths(files, entry.secrets) if entry.direction == "up" else []


def sync_command(host: Host, entry: S3Entry, dry_run: bool = False) -> str:
    """The one line a person needs to see (plan, report): where it runs and the exact sync."""
    return join([Raw("cd"), path_arg(local_dir(host, entry)), Raw("&&"), Raw(AWS_ENV), *sync_argv(entry, dry_run)])


def _enter_dir(directory: Raw, entry: S3Entry, dry_run: bool) -> list[str]:
    if entry.direction == "up":
        return [f"[ -d {directory} ] || {{ {section(NO_DIR)}; exit 3; }}", f"cd {directory} || exit 3"]
    if not dry_run:
        return [f"[ -d {directory} ] || created=yes",
                f"mkdir -p {directory} && cd {directory} || {{ {section(NO_DIR)}; exit 3; }}"]
    # A dry run changes nothing, yet the CLI creates a missing destination even with --dryrun:
    # compare against an empty scratch directory instead (a missing directory *is* empty).
    return [f"if [ -d {directory} ]; then cd {directory} || exit 3; else",
            "  scratch=$(mktemp -d) || exit 3; trap 'rm -rf \"$scratch\"' EXIT; cd \"$scratch\" || exit 3; fi"]


def sync_script(host: Host, entry: S3Entry, dry_run: bool = False) -> str:
    """The whole remote round trip for one entry (run with `run_script`); sections split its output."""
    directory = path_arg(local_dir(host, entry))
    measure = entry.direction == "up" or not dry_run  # a download that did not happen has nothing to measure
    lines = [
        f"command -v aws >/dev/null 2>&1 || {{ {section(NO_CLI)}; exit 127; }}",
        *_enter_dir(directory, entry, dry_run),
        # GNU coreutils or a recent busybox; elsewhere only the controller's deadline applies
        f"if timeout -k {KILL_AFTER_S} 1 true >/dev/null 2>&1; then limit='timeout -k {KILL_AFTER_S} "
        f"{entry.timeout:g}'; else limit=''; fi",
        section(SYNC),
        join([Raw(AWS_ENV), Raw("$limit"), *sync_argv(entry, dry_run)]),
        "rc=$?",
        # a failed download leaves no empty directory behind that this run made (rmdir: only if empty)
        *([f'[ "$rc" -ne 0 ] && [ -n "${{created:-}}" ] && rmdir {directory} 2>/dev/null']
          if entry.direction == "down" and not dry_run else []),
        "echo",  # the CLI may end on a progress line without a newline; keep the marker on its own line
        f'if [ -n "$limit" ] && {{ [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; }}; then {section(TIMED_OUT)}; fi',
        *([section(SIZES), SIZE_LISTING] if measure else []),
        "exit $rc",
    ]
    return script(lines)
