"""Immutable values shared by every layer: hosts, command results, reports.

Nothing here does I/O; these are the nouns the planner, the executor and the
renderer pass between each other.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import UsageError
from .secrets import SECRET_PATTERNS
from .settings import TIMEOUTS


@dataclass(frozen=True)
class Guard:
    """Production processes on a host, and the files they must not see change under them."""

    processes: tuple[str, ...] = ()
    critical_files: tuple[str, ...] = ()
    expect_running: bool = False  # a guard process that is not running fails the health gate


@dataclass(frozen=True)
class WorktreeSpec:
    """A `git worktree` on a host kept in step with another branch (e.g. main)."""

    path: str
    branch: str
    merge: str | None = None
    strategy: str = "merge"  # merge | rebase
    push: bool = False


@dataclass(frozen=True)
class S3Entry:
    """One artifact sync on a host: a directory there kept in step with an S3 prefix, one way.

    The settings (`profile`, `region`, `endpoint_url`, `timeout`) are already
    resolved: entry over the host's `s3_settings` over the top-level `s3:`.
    """

    path: str  # as written: relative to the host's repo, absolute, or ~/…
    url: str  # s3://bucket[/prefix], without a trailing slash
    direction: str  # up (host → S3) | down (S3 → host)
    exclude: tuple[str, ...] = ()
    delete: bool = False
    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    timeout: float = TIMEOUTS.s3_entry
    secrets: tuple[str, ...] = SECRET_PATTERNS  # never uploaded; the inventory's list (secrets.secret_patterns)

    @property
    def bucket(self) -> str:
        return self.url[len("s3://"):].split("/", 1)[0]


@dataclass(frozen=True)
class RsyncEntry:
    """One rsync transfer a host declares: `push` into that host, or `pull` out of it.

    `src`/`dest` are as written in the inventory (a path, or `host:path`); see
    `transfer/plan.py` for how they resolve to machines and paths.
    """

    name: str
    direction: str  # push | pull
    src: str
    dest: str
    exclude: tuple[str, ...] = ()
    delete: bool = False
    direct: bool = False
    kind: str = "rsync"  # rsync | results (the `results:` shorthand)


@dataclass(frozen=True)
class MetricSpec:
    """A number read from a file on the host (JSON, YAML or key=value text), compared to bounds."""

    file: str
    key: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class HttpSpec:
    url: str
    expect: int = 200


@dataclass(frozen=True)
class CheckSpec:
    """One check of a host's gate: exactly one of `run`, `metric`, `http` is set."""

    name: str
    run: str | None = None
    metric: MetricSpec | None = None
    http: HttpSpec | None = None
    timeout: float = TIMEOUTS.check_run

    @property
    def kind(self) -> str:
        return "run" if self.run is not None else "metric" if self.metric is not None else "http"


@dataclass(frozen=True)
class JobPreset:
    """A named job in the inventory (`hosts.<h>.jobs.<name>`), so `agentsync run HOST NAME` runs it."""

    name: str
    run: str
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    results: bool = False  # bring the host's results back when it ends (`run` waits for it)
    protect: tuple[str, ...] = ()  # paths relative to the repo sync-all and push-code leave alone while it runs


@dataclass(frozen=True)
class Host:
    """One machine of the fleet, as the inventory describes it."""

    name: str
    repo: str
    branch: str = "main"
    remote: str = "origin"
    local: bool = False
    ssh: str | None = None
    guard: Guard = field(default_factory=Guard)
    zerotier: str | None = None
    gpu: bool = False
    push: bool = True
    slow: bool = False
    git_access: bool = True
    validate: str | None = None  # shell command run in the repo before a relayed result is kept
    worktrees: tuple[WorktreeSpec, ...] = ()
    connect_timeout: float = TIMEOUTS.connect
    command_timeout: float = TIMEOUTS.command
    s3: tuple[S3Entry, ...] = ()
    rsync: tuple[RsyncEntry, ...] = ()
    results: tuple[RsyncEntry, ...] = ()  # `results: [{remote, local}]`, as pull entries
    push_code: bool = False
    checks: tuple[CheckSpec, ...] = ()  # the team's own deploy gate (gate/)
    allow_untracked: tuple[str, ...] = ()  # untracked files that do not fail the gate
    jobs: tuple[JobPreset, ...] = ()  # named job presets

    @property
    def target(self) -> str:
        """What to show a person for this host: `local` or its ssh target."""
        return "local" if self.local else (self.ssh or self.name)


@dataclass(frozen=True)
class Inventory:
    """A validated inventory: hosts in sync order plus fleet-wide settings."""

    path: Path
    hosts: dict[str, Host]
    order: tuple[str, ...]
    ssh_config: Path | None = None
    sha256: str = ""
    settings: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def host_names(self, value: str | None, flag: str = "--hosts") -> list[str]:
        """The hosts a comma-separated command-line value names, checked; [] when the flag was not given.

        An empty value is refused rather than read as "every host": `--hosts "$UNSET_VAR"` must not
        widen a run to the whole fleet.
        """
        if value is None:
            return []
        names = [n.strip() for n in str(value).split(",") if n.strip()]
        if not names:
            raise UsageError(f"{flag} is empty ({value!r}); name at least one host",
                             hint=f"hosts in {self.path}: {', '.join(self.order)} (leave {flag} out for all of them)")
        unknown = [n for n in names if n not in self.hosts]
        if unknown:
            raise UsageError(f"{flag} names {', '.join(repr(n) for n in unknown)}, not in {self.path}",
                             hint=f"hosts defined there: {', '.join(self.order)}")
        return names

    def select(self, names: list[str] | None) -> list[Host]:
        """Hosts in sync order, limited to `names` when given."""
        if not names:
            return [self.hosts[n] for n in self.order]
        return [self.hosts[n] for n in self.order if n in set(names)]


@dataclass(frozen=True)
class CommandResult:
    """What one command did on one host."""

    host: str
    command: str
    exit_code: int
    stdout: str
    stderr: str
    duration: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def tail(self, lines: int = 12) -> str:
        text = (self.stdout + ("\n" if self.stdout and self.stderr else "") + self.stderr).strip()
        return "\n".join(text.splitlines()[-lines:])


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples and paths to plain JSON types."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: to_jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
