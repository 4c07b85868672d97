"""Health probes: one batched shell script per host, and pure parsers of its output.

The script runs as `sh -c <script>`: the whole probe costs one remote round
trip. The guard part (which processes run) lives in `guardprobe.py`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .gitversion import parse_git_version
from .guardprobe import GuardState, ProcessInfo, guard_probe, parse_etime, parse_guard, parse_running, running_probe
from .models import Host
from .records import GpuInfo, GpuProcess, RepoState, SystemState, ToolState
from .shell import join, path_arg, section, split_sections
from .steps.git import ENV as GIT_ENV
from .steps.git import INTENT, SCRATCH_PREFIX, origin_ref

__all__ = ["GuardState", "ProcessInfo", "guard_probe", "parse_etime", "parse_guard"]  # their home: guardprobe.py

IN_PROGRESS = {
    "rebase-merge": "rebase", "rebase-apply": "rebase (am)", "MERGE_HEAD": "merge",
    "CHERRY_PICK_HEAD": "cherry-pick", "REVERT_HEAD": "revert", "BISECT_LOG": "bisect",
}
GPU_QUERY = "name,memory.used,memory.total,utilization.gpu,temperature.gpu"


# ---------------------------------------------------------------- the script


def git(host: Host, *args: str) -> str:
    """A git command line in the host's repo, with prompts disabled."""
    return f"{GIT_ENV} git -C {path_arg(host.repo)} " + join(list(args))


def repo_probe(host: Host, fetch: bool) -> list[str]:
    """Repo state with as few processes as possible (three git runs): each costs CPU on a busy host.

    One `git rev-parse` gives the paths that tell an operation in progress, the
    stash log, the HEAD file and HEAD's commit; the shell reads those files
    itself. `rev-list` counts ahead/behind; `status` lists dirty files.
    """
    ref = origin_ref(host)
    git_paths = " ".join(f"--git-path {name}" for name in [*IN_PROGRESS, "logs/refs/stash", "HEAD", INTENT])
    git_paths += f" --git-path {SCRATCH_PREFIX}"  # where scratch worktrees go (the common dir of a main checkout)
    lines = [
        section("repo"),
        "echo \"gitversion $(git --version 2>/dev/null)\"",
        f"if ! cd {path_arg(host.repo)} 2>/dev/null; then echo 'error missing'",
        # an unborn branch has no HEAD commit: ask again without it before calling it not a repo
        f"elif ! paths=$(git rev-parse {git_paths} HEAD -- 2>/dev/null) && "
        f"! paths=$(git rev-parse {git_paths} 2>/dev/null); then echo 'error not-a-repo'",
        "else",
    ]
    if fetch:
        lines += [
            f"  err=$({GIT_ENV} git fetch --quiet {join([host.remote, host.branch])} 2>&1); rc=$?",
            "  echo \"fetch $rc\"; [ $rc -eq 0 ] || printf 'fetch_error %s\\n' \"$(printf '%s' \"$err\" | tail -n 2"
            " | tr '\\n' ' ')\"",
        ]
    lines += [
        "  set -f; old_ifs=$IFS; IFS='\n'; set -- $paths; IFS=$old_ifs; set +f",
        "  for name in " + " ".join(IN_PROGRESS) + "; do [ -e \"$1\" ] && echo \"progress $name\"; shift; done",
        "  n=0; if [ -f \"$1\" ]; then while read -r _; do n=$((n + 1)); done < \"$1\"; fi; echo \"stashes $n\"",
        "  read -r headref < \"$2\" && echo \"headref $headref\"; echo \"head ${5:-}\"",
        # what a cut-off agentsync move left (see `heal.py`): its intent record, scratch worktrees
        "  [ -f \"$3\" ] && echo leftover_intent; for d in \"$4\"*; do [ -e \"$d\" ] && "
        "echo \"leftover_scratch $d\"; done",
        f"  if counts=$(git rev-list --left-right --count {join(['HEAD...' + ref])} 2>/dev/null); then",
        # quoted like every other value: a branch or remote name may hold `$(...)` and backticks (git allows them)
        f"    printf 'upstream %s\\n' {join([host.remote + '/' + host.branch])}; echo \"counts $counts\"",
        "  fi",
        f"  {section('status')}",  # raw porcelain lines: each starts with its two-letter code, never a marker
        # allowed untracked files (allow_untracked) are matched one by one, so list them, not their directory
        "  git -c core.quotepath=off status --porcelain=v1" + (" -uall" if host.allow_untracked else "")
        + " 2>/dev/null",
        "fi",
        "cd / 2>/dev/null",
    ]
    return lines


def system_probe(host: Host) -> list[str]:
    return [
        section("system"),
        f"d={path_arg(host.repo)}; [ -e \"$d\" ] || d=/",
        "[ -r /proc/loadavg ] && read -r load < /proc/loadavg && echo \"load $load\"",
        "[ -r /sys/devices/system/cpu/online ] && read -r cpus < /sys/devices/system/cpu/online && "
        "echo \"cpus $cpus\"",
        section("df"),
        "df -Pk \"$d\" 2>/dev/null",
    ]


def tools_probe(host: Host) -> list[str]:
    lines: list[str] = []
    if host.zerotier:
        lines += [
            section("zerotier"),
            "if command -v zerotier-cli >/dev/null 2>&1; then zerotier-cli listnetworks 2>&1; echo \"rc $?\"; "
            "else echo unavailable; fi",
        ]
    if host.gpu:
        lines += [
            section("gpu"),
            f"if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi --query-gpu={GPU_QUERY} "
            "--format=csv,noheader,nounits 2>&1; echo \"rc $?\"; else echo unavailable; fi",
            section("gpu_apps"),
            "command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-compute-apps=pid,process_name,used_memory"
            " --format=csv,noheader,nounits 2>/dev/null",
        ]
    return lines


def health_script(host: Host, fetch: bool = True, extra: Sequence[str] = ()) -> str:
    """The whole health probe for one host, as one POSIX sh script (`extra`: more sections, e.g. metric files)."""
    lines = repo_probe(host, fetch) + guard_probe(host) + running_probe() + system_probe(host) + tools_probe(host) \
        + list(extra)
    lines.append(section("end"))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- parsers


def _pairs(text: str) -> list[tuple[str, str]]:
    out = []
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        out.append((key, value))
    return out


def parse_repo(text: str, status: str = "") -> RepoState:
    """The `repo` section (key value lines) and the raw `git status --porcelain` lines of the `status` one."""
    values: dict[str, str] = {}
    progress: list[str] = []
    scratch: list[str] = []
    for key, value in _pairs(text):
        if key == "progress":
            progress.append(IN_PROGRESS.get(value, value))
        elif key == "leftover_scratch":
            scratch.append(value)
        else:
            values[key] = value
    version = parse_git_version(values.get("gitversion", ""))
    if "error" in values:
        reason = {"missing": "repo directory does not exist", "not-a-repo": "directory is not a git repository"}
        return RepoState(present=False, error=reason.get(values["error"], values["error"]), git_version=version)
    dirty = [line[3:] for line in status.splitlines() if len(line) > 3]
    ahead = behind = None
    counts = values.get("counts", "").split()
    if len(counts) == 2 and all(c.isdigit() for c in counts):
        ahead, behind = int(counts[0]), int(counts[1])
    return RepoState(
        present=True, branch=branch_of(values.get("headref", "")), head=values.get("head", "").strip(),
        upstream=values.get("upstream", ""), ahead=ahead, behind=behind, dirty=len(dirty),
        dirty_files=tuple(dirty[:20]), stashes=_int(values.get("stashes", "").strip()) or 0,
        in_progress=tuple(progress), fetched=values.get("fetch") == "0",
        fetch_error=values.get("fetch_error", "").strip(), git_version=version,
        leftover_intent="leftover_intent" in values, leftover_scratch=tuple(scratch),
    )


def parse_repo_probe(output: str) -> RepoState:
    """The output of a script made of `repo_probe` alone."""
    parts = split_sections(output)
    return parse_repo(parts.get("repo", ""), parts.get("status", ""))


def branch_of(headref: str) -> str:
    """The content of `.git/HEAD` → the branch name, or `(detached)`."""
    prefix = "ref: refs/heads/"
    return headref[len(prefix):].strip() if headref.startswith(prefix) else "(detached)"


def parse_cpus(text: str) -> int | None:
    """`/sys/devices/system/cpu/online`, e.g. `0-3,6` → 5."""
    total = 0
    for part in text.strip().split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return None
        total += int(high or low) - int(low) + 1
    return total or None


def parse_system(text: str, df: str = "") -> SystemState:
    """The `system` section (load, cpus) and the raw `df -Pk` output of the `df` one."""
    free = use = cpus = None
    load = None
    rows = [line.split() for line in df.splitlines()[1:]]  # POSIX: one line per filesystem after the header
    if rows and len(rows[-1]) >= 5:
        free = _int(rows[-1][3]) * 1024 if _int(rows[-1][3]) is not None else None
        use = _int(rows[-1][4].rstrip("%"))
    for key, value in _pairs(text):
        fields = value.split()
        if key == "load" and len(fields) >= 3:
            try:
                load = (float(fields[0]), float(fields[1]), float(fields[2]))
            except ValueError:
                load = None
        elif key == "cpus":
            cpus = parse_cpus(value)
    return SystemState(disk_free_bytes=free, disk_use_pct=use, load=load, cpus=cpus)


def parse_zerotier(text: str, network: str) -> ToolState:
    """`zerotier-cli listnetworks`: `200 listnetworks <nwid> <name> <mac> <status> <type> <dev> <ips>`."""
    body = text.strip()
    if body == "unavailable":
        return ToolState("unavailable", "zerotier-cli is not installed on this host")
    rc = re.search(r"^rc (\d+)$", body, re.M)
    if rc and rc.group(1) != "0":
        return ToolState("error", _first_line(body))
    for line in body.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0] == "200" and fields[1] == "listnetworks" and fields[2].lower() == network.lower():
            status = fields[5]
            name = fields[3]
            ips = fields[8] if len(fields) > 8 else ""
            state = "ok" if status == "OK" else "not-ok"
            return ToolState(state, f"{name} {status} {ips}".strip())
    return ToolState("missing-network", f"network {network} is not joined on this host")


def parse_gpu(text: str, apps: str = "") -> ToolState:
    body = text.strip()
    if body == "unavailable":
        return ToolState("unavailable", "nvidia-smi is not installed on this host")
    rc = re.search(r"^rc (\d+)$", body, re.M)
    lines = [line for line in body.splitlines() if not re.match(r"^rc \d+$", line)]
    if rc and rc.group(1) != "0":
        return ToolState("error", _first_line("\n".join(lines)) or f"nvidia-smi exited {rc.group(1)}")
    gpus = []
    for line in lines:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 5:
            gpus.append(GpuInfo(cells[0], _float(cells[1]), _float(cells[2]), _float(cells[3]), _float(cells[4])))
    procs = []
    for line in apps.splitlines():
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 3 and cells[0].isdigit():
            procs.append(GpuProcess(int(cells[0]), cells[1], _float(cells[2])))
    return ToolState("ok", f"{len(gpus)} GPU(s)", gpus=tuple(gpus), processes=tuple(procs))


def parse_health_output(host: Host, output: str) -> dict:
    """Split a health script's output into parsed parts; missing parts mean the script died early."""
    parts = split_sections(output)
    result = {
        "complete": "end" in parts,
        "repo": parse_repo(parts["repo"], parts.get("status", "")) if "repo" in parts
        else RepoState(False, "probe did not run"),
        "guard": parse_guard(parts.get("guard", ""), host.guard.processes),
        "running": parse_running(parts.get("running", "")),
        "system": parse_system(parts.get("system", ""), parts.get("df", "")),
        "zerotier": parse_zerotier(parts.get("zerotier", ""), host.zerotier) if host.zerotier else None,
        "gpu": parse_gpu(parts.get("gpu", ""), parts.get("gpu_apps", "")) if host.gpu else None,
        "sections": parts,  # the raw sections, for parsers that live elsewhere (gate/)
    }
    return result


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except ValueError:
        return None


def _float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None  # nvidia-smi prints "[N/A]" or "[Not Supported]"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
