"""Which guard processes run on a host: a probe that needs no procps, and fails closed.

A guard that cannot look must say so, never report "nothing runs": a slim
image has no `pgrep`/`ps`, busybox's `ps` knows no `-o etime`, and a /proc
that cannot be listed makes every tool see nothing. So the probe:

1. reads `/proc` itself (one `cat` of every `stat`, one `grep` of every
   `cmdline`, matched by one `awk`), the way `pgrep -f` does, when the probe can
   see its own process there;
2. else asks `ps` (POSIX `-A -o`, then busybox's `-o pid,ppid,args`), again only
   trusted when the probe's own pid is in the answer;
3. else reports `method none` with what went wrong: the state is `unknown`,
   and callers refuse (health fails the gate, sync-all leaves critical files).

Our own processes are left out by ancestry, not by a text marker: the probe's
shell, everything it started, and the processes it runs under (sshd's
session, the login shell, on the laptop the controller itself). A fork of the
probe that has not exec'd yet when the command lines are read, and so is
missing from the earlier `stat` listing, still carries the probe's own
command line: that is how it is known. Patterns reach
`awk` through the environment, never through its program text.
"""

from __future__ import annotations

from .models import Host
from .records import GuardState, ProcessInfo, RunningJob
from .shell import join, section

# This machine and PID namespace: a home shared by several hosts (NFS) holds their jobs side by side, and a
# host only ever looks at (or signals) its own.
MACHINE = "_m=; read -r _m 2>/dev/null < /etc/machine-id; machine=\"$_m/$(readlink /proc/self/ns/pid 2>/dev/null)\""
# /proc/<pid>/stat after the ")" that ends the command name: $1 state, $3 pgrp, $4 session, $20 start time.
# Shell builtins only where they run often (`read`, not `cat`): on a loaded host every fork costs.
PROC_HELPERS = [
    'mine() { _m=; read -r _m 2>/dev/null < "$1/machine"; [ "$_m" = "$machine" ]; }',
    # stat_in PID: that process's stat fields after the command name, in $_st (no fork)
    "stat_in() { _st=; read -r _st 2>/dev/null < \"/proc/$1/stat\" || return 1; _st=${_st##*) }; }",
    "stat_of() { stat_in \"$1\" && printf '%s\\n' \"$_st\"; }",
    # alive PID START: that very process (same start time) exists and is not a zombie
    "alive() { _w=$2; stat_in \"$1\" || return 1; set -- $_st; [ \"$1\" != Z ] || return 1; shift 19; "
    "[ -n \"$_w\" ] && [ \"$1\" = \"$_w\" ]; }",
    # started PID: its start time (zombies too)
    "started() { stat_in \"$1\" || return 1; set -- $_st; shift 19; printf '%s\\n' \"$1\"; }",
]
PROC_FUNCTIONS = [MACHINE, *PROC_HELPERS]

# Jobs running on a host (`agentsync run`) declare themselves here, one file per job, for the guard to see:
# line 1 the machine (PROC_FUNCTIONS' `machine`), line 2 "<job pid> <start> <wrapper pid> <start>", line 3
# "<job id> <job name>", then the paths relative to the repo it protects (`protect:`), one a line. The job's
# wrapper (jobs/scripts.py) writes it before the job's pid (so it is there when `run` returns) and removes it
# when the job ends; one whose processes are both gone is ignored. Beside the jobs' own directories.
RUNNING_DIR = '"${XDG_STATE_HOME:-$HOME/.local/state}/agentsync/running"'

PATTERN_VAR = "AGENTSYNC_GUARD_"
CMDLINES = "@@cmdlines"

# Input: `stat` lines, a CMDLINES line, then one `/proc/<pid>/cmdline:<arg>` line per argument (mode "proc":
# `grep -z` splits at the NULs, `tr` turns newlines inside an argument into \001 first, so an argument such as
# `-c 'import x\n...'` can neither hide the rest of its command line nor pass for another process); or
# `<pid> <ppid> [<etime>] <args>` lines (mode "ps", "bbps"). Output: `<pattern index> <pid> <age> <args>`,
# age being the start time in clock ticks (proc), [[dd-]hh:]mm:ss (ps) or `-` (busybox: unknown).
AWK = r"""
function ours(pid,   p, d) {
  if (pid in above) return 1
  for (p = ppid[pid]; p != "" && p > 1 && d < 128; d++) { if (p == me) return 1; p = ppid[p] }
  return 0
}
mode == "proc" && !seen && $0 == "@@cmdlines" { seen = 1; next }
mode == "proc" && !seen {
  rest = $0
  while ((i = index(rest, ") ")) > 0) rest = substr(rest, i + 2)
  split(rest, f, " "); ppid[$1] = f[2]; age[$1] = f[20]; next
}
mode == "proc" {
  if ($0 !~ /^\/proc\/[0-9]+\/cmdline:/) next
  s = substr($0, 7); j = index(s, "/"); pid = substr(s, 1, j - 1); a = substr(s, j + 9); gsub("\001", " ", a)
  if (pid in cmd) cmd[pid] = cmd[pid] " " a; else { cmd[pid] = a; order[++n] = pid }
  next
}
$1 ~ /^[0-9]+$/ && $2 ~ /^[0-9]+$/ {
  pid = $1; ppid[pid] = $2; c = $0
  sub(/^[ \t]*[0-9]+[ \t]+[0-9]+[ \t]+/, "", c)
  if (mode == "ps") { age[pid] = c; sub(/[ \t].*$/, "", age[pid]); sub(/^[^ \t]+[ \t]+/, "", c) }
  else age[pid] = "-"
  cmd[pid] = c; order[++n] = pid
}
END {
  if (!(me in cmd)) { print "blind"; exit }
  for (p = me; p != "" && p > 0 && !(p in above); p = ppid[p]) above[p] = 1
  for (k = 1; k <= n; k++) {
    pid = order[k]; c = cmd[pid]
    if (c == "" || c == cmd[me] || ours(pid)) continue
    for (i = 0; i < count; i++) if (c ~ ENVIRON["AGENTSYNC_GUARD_" i]) print i, pid, age[pid], c
  }
  print "done"
}
"""


def guard_probe(host: Host) -> list[str]:
    """Shell lines printing the `guard` section: the method used, then matching processes (see module doc)."""
    if not host.guard.processes:
        return []
    env = " ".join(f"{PATTERN_VAR}{i}={join([p])}" for i, p in enumerate(host.guard.processes))
    awk = f"{env} awk -v me=\"$me\" -v count={len(host.guard.processes)} -v mode=\"$mode\" {join([AWK])}"
    return [
        section("guard"),
        "me=$$; mode=none; why=''",
        "for tool in cat grep tr awk; do command -v $tool >/dev/null 2>&1 || why=\"$why no $tool;\"; done",
        "if [ -z \"$why\" ] && [ -r /proc/$me/stat ] && [ -r /proc/$me/cmdline ]; then mode=proc",
        "  read -r up _ < /proc/uptime; echo \"uptime $up\"; echo \"hz $(getconf CLK_TCK 2>/dev/null || echo 100)\"",
        "  while read -r _ mnt _ opts _; do [ \"$mnt\" = /proc ] && echo \"mount $opts\"; done < /proc/mounts",
        "  while read -r key uid _; do [ \"$key\" = Uid: ] && echo \"uid $uid\"; done < /proc/$me/status",
        "elif [ -z \"$why\" ]; then why='cannot read /proc;'",
        "  if out=$(ps -A -o pid= -o ppid= -o etime= -o args= 2>&1); then mode=ps",
        "  elif out=$(ps -A -o pid,ppid,args 2>&1); then mode=bbps",
        "  else why=\"$why ps: $(printf '%s' \"$out\" | head -n 1)\"; fi",
        "fi",
        "echo \"method $mode\"; [ -n \"$why\" ] && echo \"why $why\"",
        "if [ $mode = proc ]; then",
        f"  {{ cat /proc/[0-9]*/stat 2>/dev/null; echo {CMDLINES}; "
        f"grep -a -H -z '' /proc/[0-9]*/cmdline 2>/dev/null | tr '\\n\\000' '\\001\\n'; }} | {awk} 2>&1",
        f"elif [ $mode != none ]; then printf '%s\\n' \"$out\" | {awk} 2>&1; fi",
    ]


def parse_guard(text: str, patterns: tuple[str, ...]) -> GuardState:
    """The `guard` section → GuardState; anything short of a probe that saw itself is `unknown`."""
    if not patterns:
        return GuardState("ok")
    facts: dict[str, str] = {}
    rows: list[list[str]] = []
    for line in text.splitlines():
        parts = line.split(None, 3)
        if len(parts) == 4 and parts[0].isdigit() and parts[1].isdigit():
            rows.append(parts)
        elif parts:
            facts.setdefault(parts[0], line[len(parts[0]):].strip())
    method = facts.get("method", "")
    if method not in ("proc", "ps", "bbps"):
        return GuardState("unknown", "", facts.get("why", "") or "the process probe did not run")
    if "blind" in facts:  # the listing came back without the probe itself: failed, empty or cut short
        return GuardState("unknown", method, f"{_METHOD[method]} does not show the probe's own process")
    if "done" not in facts:  # awk stopped half-way (a pattern it cannot compile, say): what it said, if anything
        said = next((line.strip() for line in text.splitlines() if "awk" in line), "")
        return GuardState("unknown", method, f"the process probe did not finish {said}".strip())
    hidden = _hidden_processes(facts)
    if hidden:
        return GuardState("unknown", method, hidden)
    found = tuple(ProcessInfo(patterns[int(i)], int(pid), _age(method, age, facts), cmd)
                  for i, pid, age, cmd in rows if int(i) < len(patterns))
    return GuardState("ok", _METHOD[method], "", found)


_METHOD = {"proc": "proc", "ps": "ps", "bbps": "busybox-ps"}


def _hidden_processes(facts: dict[str, str]) -> str:
    """/proc mounted with hidepid shows a user only its own processes: the guard would see nothing."""
    options = facts.get("mount", "")
    hidepid = next((o.split("=", 1)[1] for o in options.split(",") if o.startswith("hidepid=")), "0")
    if hidepid not in ("0", "off") and facts.get("uid", "") != "0":
        return f"/proc is mounted hidepid={hidepid}: other users' processes are invisible to this user"
    return ""


def _age(method: str, age: str, facts: dict[str, str]) -> int | None:
    if method == "ps":
        return parse_etime(age)
    if method != "proc" or not age.isdigit():
        return None
    try:
        uptime, hz = float((facts.get("uptime", "").split() or [""])[0]), int(facts.get("hz", "") or 100)
    except ValueError:
        return None
    return max(0, int(uptime - int(age) / hz))


def parse_etime(text: str) -> int | None:
    """POSIX `ps -o etime`: [[dd-]hh:]mm:ss → seconds."""
    days, _, rest = text.rpartition("-")
    fields = rest.split(":")
    if not 2 <= len(fields) <= 3 or not all(f.isdigit() for f in fields) or (days and not days.isdigit()):
        return None
    seconds = 0
    for part in fields:
        seconds = seconds * 60 + int(part)
    return seconds + int(days or 0) * 86400


def running_probe() -> list[str]:
    """Shell lines printing the `running` section: `job <pid> <id> <name>` then its `path <path>` lines, for
    every job running on this machine, and `done` at the end (a listing without it is not to be trusted)."""
    return [
        section("running"),
        *PROC_FUNCTIONS,
        f"for f in {RUNNING_DIR}/*; do",
        '  [ -f "$f" ] || continue',
        '  { read -r m; read -r jp js wp ws; read -r id name; } < "$f" || continue',
        '  [ "$m" = "$machine" ] || continue',
        '  alive "$jp" "$js" || alive "$wp" "$ws" || continue',
        "  printf 'job %s %s %s\\n' \"$jp\" \"$id\" \"$name\"",
        "  tail -n +4 \"$f\" | sed 's/^/path /'",
        "done",
        "echo done",
    ]


def parse_running(text: str) -> tuple[RunningJob, ...] | None:
    """The `running` section → the jobs running there; None when the listing did not finish."""
    jobs: list[RunningJob] = []
    done = False
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key == "job":
            parts = rest.split(" ", 2)
            if len(parts) == 3 and parts[0].isdigit():
                jobs.append(RunningJob(parts[1], parts[2], int(parts[0])))
        elif key == "path" and jobs and rest:
            last = jobs[-1]
            jobs[-1] = RunningJob(last.id, last.name, last.pid, (*last.protect, rest))
        elif key == "done":
            done = True
    return tuple(jobs) if done else None

