"""The sh scripts that start, list, follow and cancel jobs on a host, each beside the parser of its output.

Every value from the user (command, name, cwd, env) reaches the host quoted
once by `shlex.quote` and is written to a file in the job's directory; the
job then runs `$SHELL -c "<command as typed>"`, exactly what `ssh HOST
'<command>'` would have run. Output is framed by `shell.section` markers and
every value line starts with a key, so a job's own output can never be read
as one of ours.

On the host a job is a directory `${XDG_STATE_HOME:-~/.local/state}/agentsync/jobs/<id>/`:

    job.json   what the controller knew (id, name, command, cwd, who, preset...)
    command    the command, byte for byte        wrapper.sh  the detached wrapper
    facts      "<started epoch> <HEAD> <dirty 0|1>" (written by the start script)
    pid        "<pid> <pgid> <start time>"       (the job's process, /proc/<pid>/stat field 22)
    wrapper    "<pid> <start time>"              (the wrapper that waits for it)
    exit       "<status> <ended epoch>"          (written when the job ends, by the wrapper)
    cancel     "<SIGNAL> <epoch>"                (what `cancel` sent)
    tmux       the tmux session's name, when the job runs in one
    log        stdout and stderr

Beside the job directories, `.start.lock` is the host's start lock: a `run`
holds it (flock) from its name check until its job has recorded its pid, so
two runs of one name never both start.

And beside `jobs/`, `running/<id>` says to the guard that the job runs and
which paths it protects (format: `guardprobe.RUNNING_DIR`); the wrapper
writes it before the job's pid and removes it when the job ends.

The wrapper is not in the job's process group: `cancel` signals the group,
and the wrapper survives to write the exit status even after a SIGKILL.
"""

from __future__ import annotations

import json
import re
import shlex

from ..guardprobe import PROC_FUNCTIONS, PROC_HELPERS
from ..probes import GPU_QUERY
from ..shell import quote_path, script, section, split_sections
from .model import GpuUse, Job, JobSpec, Window, state_of

BASE = '"${XDG_STATE_HOME:-$HOME/.local/state}/agentsync/jobs"'
START_WAIT_S = 10  # how long the start script waits for the wrapper to record the job's pid
CLAIM_WAIT_S = START_WAIT_S + 20  # how long it waits for another `run` on the host to finish starting its job
SPINS = 200  # checks in a tight loop before a wait falls back to sleeping (`wait_until`)
SHORT_SLEEPS = 50  # then checks 2 ms apart (a `sleep` process each), then every 10 ms


def job_dir(job_id: str) -> str:
    return f'{BASE}/{shlex.quote(job_id)}'


def wait_until(test: str, limit_s: float) -> str:
    """A loop that waits until `test` (builtins only) holds, at most about `limit_s` seconds.

    What `run` waits for on the host (a setsid, the wrapper recording the
    job's pid) usually takes a few milliseconds: polling with `sleep 0.01`
    from the start made every start pay a 10 ms step or two. The first
    SPINS checks run back to back (a stat each, no fork); then every 10 ms.
    """
    short = SPINS + SHORT_SLEEPS
    return (f'n=0; until {test}; do n=$((n + 1)); [ "$n" -le {SPINS} ] && continue; '
            f'if [ "$n" -le {short} ]; then sleep 0.002; continue; fi; '
            f'[ "$n" -le {short + int(limit_s * 100)} ] || break; sleep 0.01; done')


def wrapper_text(spec: JobSpec) -> str:
    """The detached wrapper: start the command in its own session, record it, wait, write the status.

    Traps: Ctrl-C in an attached tmux pane is passed on to the job's group;
    HUP (the tmux session closed) is ignored, so the status is still written.
    """
    env = "".join(f" {shlex.quote(f'{k}={v}')}" for k, v in spec.env)
    protect = "".join(f" {shlex.quote(p)}" for p in spec.protect)
    return script([
        'd=${0%/*}',
        'pid=',
        "trap '[ -n \"$pid\" ] && kill -INT \"-$pid\" 2>/dev/null' INT",
        "trap ':' HUP",
        *PROC_HELPERS,
        '_m=; read -r _m < "$d/machine"; machine=$_m',  # as the start script found it (no fork here)
        'stat_in $$; set -- $_st; shift 19; ws=$1; printf \'%s %s\\n\' "$$" "$ws" > "$d/wrapper"',
        f"cd {quote_path(spec.cwd)} || {{ printf '126 %s\\n' \"$(date +%s)\" > \"$d/exit\"; exit 0; }}",
        # the command as typed, quoted once (the `command` file holds the same bytes, for people and `jobs`)
        f'setsid env{env} "${{SHELL:-/bin/sh}}" -c {shlex.quote(spec.command)} </dev/null >>"$d/log" 2>&1 &',
        'pid=$!',
        # setsid() runs in the child just after the fork: wait until it is its own process group (or gone)
        wait_until('{ ! stat_in "$pid" || { set -- $_st; [ "$3" = "$pid" ]; }; }', 5),
        'stat_in "$pid" && { set -- $_st; pg=$3; shift 19; st=$1; } || { pg=$pid; st=; }',
        # the guard's view of running jobs (guardprobe.RUNNING_DIR, beside the jobs' directories), before the pid
        f'r=${{d%/*/*}}/running/{shlex.quote(spec.id)}',
        '{ [ -d "${r%/*}" ] || mkdir -p "${r%/*}"; } && printf \'%s\\n\' "$machine" "$pid $st $$ $ws" '
        f'{shlex.quote(spec.id + " " + spec.name)}{protect} > "$r.tmp" && mv -f "$r.tmp" "$r"',
        'printf \'%s %s %s\\n\' "$pid" "$pg" "$st" > "$d/pid.tmp" && mv -f "$d/pid.tmp" "$d/pid"',
        'tpid=',
        'if [ -n "${TMUX:-}" ]; then tail -n +1 -f "$d/log" & tpid=$!; fi',
        # `wait` returns early when a trapped signal arrives: wait again while the job is still there
        'rc=',
        'while :; do wait "$pid"; r=$?; [ "$r" = 127 ] && [ -n "$rc" ] && break; rc=$r; '
        'kill -0 "$pid" 2>/dev/null || break; done',
        'printf \'%s %s\\n\' "$rc" "$(date +%s)" > "$d/exit.tmp" && mv -f "$d/exit.tmp" "$d/exit"',
        'rm -f "$r"',
        '[ -n "$tpid" ] && kill "$tpid" 2>/dev/null',
        'exit 0',
    ])


def _running_with_name(name: str) -> list[str]:
    """Lines that print `duplicate <id>` and stop when a job of this name is still running."""
    return [
        f'for j in {BASE}/*/; do',
        '  [ -f "$j/name" ] && [ ! -f "$j/exit" ] && mine "$j" || continue',
        f'  _n=; read -r _n < "$j/name"; [ "$_n" = {shlex.quote(name)} ] || continue',
        '  read p g s < "$j/pid" 2>/dev/null || { read p s < "$j/wrapper" 2>/dev/null || continue; }',
        '  if alive "$p" "$s"; then id=${j%/}; printf \'duplicate\\t%s\\n\' "${id##*/}"; exit 0; fi',
        'done',
    ]


def _claim() -> list[str]:
    """Hold the host's start lock (fd 9) from the name check until the job has recorded its pid.

    Two `run`s of one name at the same moment would both pass the name check
    and both start; under `flock` the second waits, then finds the first
    running. The kernel drops the lock when this script ends, however it
    ends (a cut connection, kill -9): it can never be left behind. The job
    and tmux are started with fd 9 closed, so they never hold it.
    """
    return [
        "command -v flock >/dev/null 2>&1 || { printf 'noflock\\t\\n'; exit 0; }",
        f"[ -d {BASE} ] || mkdir -p {BASE} || {{ printf 'nodir\\t%s\\n' {BASE}; exit 0; }}",
        f'exec 9>>{BASE}/.start.lock || {{ printf \'nodir\\t%s\\n\' {BASE}; exit 0; }}',
        f"flock -w {CLAIM_WAIT_S} 9 || {{ printf 'claimed\\t\\n'; exit 0; }}",
    ]


def _program_check(program: str) -> list[str]:
    """A one-word COMMAND on a host with presets (`model.plan`): refuse unless the host knows the program."""
    if not program:
        return []
    return [f"command -v {shlex.quote(program)} >/dev/null 2>&1 || {{ printf 'noprogram\\t%s\\n' "
            f"{shlex.quote(program)}; exit 0; }}"]


def _gpu_check() -> list[str]:
    """Refuse when compute processes hold more than half of the GPUs' memory; print who they are."""
    return [
        'if command -v nvidia-smi >/dev/null 2>&1; then',
        "  apps=$(nvidia-smi --query-compute-apps=pid,process_name,used_memory --format=csv,noheader,nounits "
        "2>/dev/null)",
        f"  gpus=$(nvidia-smi --query-gpu={GPU_QUERY} --format=csv,noheader,nounits 2>/dev/null)",
        "  total=$(printf '%s\\n' \"$gpus\" | awk -F', *' 'NF >= 3 { t += $3 } END { print t + 0 }')",
        "  used=$(printf '%s\\n' \"$apps\" | awk -F', *' 'NF >= 2 { u += $NF } END { print u + 0 }')",
        "  if awk -v u=\"$used\" -v t=\"$total\" 'BEGIN { exit !(t > 0 && u * 2 > t) }'; then",
        "    printf 'busy\\t%s\\n' \"$total\"; printf '%s\\n' \"$apps\" | sed 's/^/app\\t/'; exit 0",
        "  fi",
        'fi',
    ]


def _repo_facts(repo: str) -> list[str]:
    """`head` (the commit, or - when there is none) and `dirty` (1, 0, or - without a repo), from one `git`.

    `status --porcelain=v2 --branch` prints `# branch.oid <commit>` (or
    `(initial)`), then a line per change, none of which starts with `#`.
    """
    return [
        f"head=-; dirty=-; if _g=$(git -C {quote_path(repo)} status --porcelain=v2 --branch --no-ahead-behind "
        "2>/dev/null); then",
        '  head=${_g#*"# branch.oid "}; head=${head%%[!0-9a-f]*}; [ -n "$head" ] || head=-',
        '  case "',
        '$_g" in *"',
        '"[!#]*) dirty=1 ;; *) dirty=0 ;; esac',
        'fi',
    ]


def start_script(spec: JobSpec, repo: str, *, check_gpu: bool, use_tmux: bool = True) -> str:
    """Check, then start the job detached, and wait (briefly) until it has recorded its pid."""
    d = job_dir(spec.id)
    record = json.dumps(spec.record(), separators=(",", ":"))  # ASCII: one line whatever the command holds
    launch_tmux = [  # tmux >= 3.0 passes the arguments on as they are (no shell in between)
        f"  s={shlex.quote(spec.name)}",
        # the job's name, or (a session of that name exists) name-id; no `has-session` first: one tmux less
        '  if tmux new-session -d -s "$s" sh "$d/wrapper.sh" </dev/null >/dev/null 2>&1 9>&-; then :',
        f'  elif s="$s-{spec.id}"; tmux new-session -d -s "$s" sh "$d/wrapper.sh" </dev/null >/dev/null 2>&1 9>&-; '
        'then :',
        '  else',
        '    s=; setsid sh "$d/wrapper.sh" </dev/null >/dev/null 2>&1 9>&- &',
        '  fi',
        '  [ -z "$s" ] || printf \'%s\\n\' "$s" > "$d/tmux"',
    ]
    return script([
        "umask 077",
        *PROC_FUNCTIONS,
        f"cd {quote_path(spec.cwd)} 2>/dev/null || {{ printf 'nocwd\\t%s\\n' {shlex.quote(spec.cwd)}; exit 0; }}",
        "command -v setsid >/dev/null 2>&1 || { printf 'nosetsid\\t\\n'; exit 0; }",
        *_program_check(spec.program),
        *_claim(),
        *_running_with_name(spec.name),
        *(_gpu_check() if check_gpu else []),
        f"mkdir {d} || {{ printf 'nodir\\t%s\\n' {d}; exit 0; }}",
        f"d={d}; case $d in /*) ;; *) d=$(cd \"$d\" && pwd) ;; esac",  # absolute (no subshell when it is)
        'printf \'%s\\n\' "$machine" > "$d/machine"',
        f"printf '%s' {shlex.quote(spec.command)} > \"$d/command\"",
        f"printf '%s\\n' {shlex.quote(spec.name)} > \"$d/name\"",
        f"printf '%s\\n' {shlex.quote(record)} > \"$d/job.json\"",
        f"printf '%s' {shlex.quote(wrapper_text(spec))} > \"$d/wrapper.sh\"",
        *_repo_facts(repo),
        'printf \'%s %s %s\\n\' "$(date +%s)" "$head" "$dirty" > "$d/facts"',
        ": > \"$d/log\"",
        f"if {'command -v tmux >/dev/null 2>&1' if use_tmux else 'false'}; then",
        *launch_tmux,
        "else",
        '  setsid sh "$d/wrapper.sh" </dev/null >/dev/null 2>&1 9>&- &',
        "fi",
        wait_until('{ [ -f "$d/pid" ] || [ -f "$d/exit" ]; }', START_WAIT_S),
        section("job"),
        *_emit_job('"$d"', last_line=False),  # just started: its log's last line is `jobs`' business
    ])


def _emit_job(d: str, last_line: bool = True, windowed: bool = False) -> list[str]:
    """Print one job's record as `key<TAB>value` lines (liveness checked before the exit status is read).

    Each file holds one line (`job.json` is compact ASCII JSON): `read`, a builtin, not a `cat` per file.
    `windowed`: a job the listing's window marked `old` (ended before the cutoff, see `_window`) is printed
    with builtins only: its exit status decides its state, and its log's last line is left out.
    """
    fresh = '[ -z "$old" ] && ' if windowed else ""
    lines = [
        f'jd={d}',
        'for f in job.json facts pid wrapper cancel tmux; do',
        '  [ -f "$jd/$f" ] && { _v=; IFS= read -r _v < "$jd/$f"; printf \'%s\\t%s\\n\' "$f" "$_v"; }',
        'done',
        f'if {fresh}read p g s < "$jd/pid" 2>/dev/null && alive "$p" "$s"; then printf \'alive\\tprocess\\n\'; fi',
        f'if {fresh}read p s < "$jd/wrapper" 2>/dev/null && alive "$p" "$s"; then printf \'alive\\twrapper\\n\'; fi',
        '[ -f "$jd/exit" ] && { _v=; IFS= read -r _v < "$jd/exit"; printf \'exit\\t%s\\n\' "$_v"; }',
    ]
    if last_line:  # the log's last line travels as hex: no byte of the job's output can end a line or fake a marker;
        # od's lines follow `last<TAB>` as they are (`_last_hex`): three processes, no subshell and no `tr`
        lines.append(f'{fresh}{{ printf \'last\\t\'; tail -c 4000 "$jd/log" 2>/dev/null | tail -n 1 | '
                     'od -An -v -tx1; echo; }')
    return lines


def _window(window: Window | None) -> tuple[list[str], list[str]]:
    """(lines that set the cutoff `c`, lines at the top of each job's turn that set `old` and maybe skip it).

    `old` is set only for a job whose `exit` holds an ended epoch before the cutoff, read with the builtin
    `read`: a job without one (running, lost, a record being written) is always read in full.
    """
    if window is None or window.recent_s is None:
        return [], ["  old="]
    cutoff = [f'c=$((now - {int(window.recent_s)}))', *(f'[ {int(s)} -lt "$c" ] && c={int(s)}' for s in window.since)]
    turn = [
        '  old=; _e=; [ -f "$jd/exit" ] && read -r _x _e _y 2>/dev/null < "$jd/exit"',
        '  case $_e in ""|*[!0-9]*) ;; *) [ "$_e" -lt "$c" ] && old=1 ;; esac',
    ]
    if window.omit_older:
        turn.append('  [ -n "$old" ] && continue')
    return cutoff, turn


def _matching(ref: str | None) -> list[str]:
    """Skip every job `ref` cannot name (`model.resolve`: an id, a prefix of one, a name), with builtins."""
    if ref is None:
        return []
    quoted = shlex.quote(ref)
    return [f'  case ${{jd##*/}} in {quoted}*) ;; *) [ -f "$jd/name" ] && {{ _n=; read -r _n < "$jd/name"; '
            f'[ "$_n" = {quoted} ] || continue; }} ;; esac']


def list_script(gpu: bool, job_id: str | None = None, window: Window | None = None, match: str | None = None) -> str:
    """Every job on the host (or one), with the host's clock and, on GPU hosts, the compute processes.

    `window` (see `model.Window`): which ended jobs are read in full; None, and always for one job: all.
    `match`: only the jobs that reference may name (for `resolve`, which looks at no other).
    """
    cutoff, turn = _window(None if job_id else window)
    jobs = [f"for jd in {job_dir(job_id)}; do"] if job_id else [f"for jd in {BASE}/*/; do"]
    lines = [
        *PROC_FUNCTIONS,
        section("now"), "now=$(date +%s)", 'printf \'%s\\n\' "$now"',
        *cutoff,
        *jobs,
        '  jd=${jd%/}',
        *turn,
        *_matching(None if job_id else match),
        '  [ -f "$jd/job.json" ] && mine "$jd" || continue',
        f"  echo {shlex.quote('@@agentsync@@ ')}\"job ${{jd##*/}}\"",
        *("  " + line for line in _emit_job('"$jd"', windowed=True)),
        "done",
    ]
    if gpu:
        lines += [
            section("gpu"),
            "command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-compute-apps=pid,process_name,used_memory "
            "--format=csv,noheader,nounits 2>/dev/null | awk -F', *' 'NF >= 2 { print $1, $NF, $2 }' | "
            "while read p m n; do f=$(stat_of \"$p\") && set -- $f || set -- - - - 0; "
            "printf 'app\\t%s %s %s %s\\n' \"$p\" \"$m\" \"$4\" \"$n\"; done",
        ]
    lines.append(section("end"))
    return script(lines)


# ------------------------------------------------------------------ parsers


def _fields(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            out.setdefault(key, []).append(value)
    return out


def parse_job(host: str, job_id: str, text: str, now: float | None = None) -> Job:
    """One job's `key<TAB>value` lines → Job."""
    f = _fields(text)
    try:
        meta = json.loads(f.get("job.json", ["{}"])[0])
    except ValueError:
        meta = {}
    facts = (f.get("facts", [""])[0].split() + ["", "", ""])[:3]
    pid = (f.get("pid", [""])[0].split() + ["", "", ""])[:3]
    ended_raw = (f.get("exit", [""])[0].split() + ["", ""])[:2]
    exit_code = _int(ended_raw[0])
    started, ended = _float(facts[0]), _float(ended_raw[1])
    alive = set(f.get("alive", []))
    state, sig = state_of(exit_code, "process" in alive, "wrapper" in alive)
    end = ended if ended is not None else (now if state == "running" else None)
    last = _last_line(_last_hex(text))
    return Job(
        id=job_id, host=host, name=str(meta.get("name", "")), command=str(meta.get("command", "")),
        cwd=str(meta.get("cwd", "")), state=state, exit_code=exit_code, signal=sig, started=started, ended=ended,
        runtime_s=round(end - started, 1) if end is not None and started is not None else None,
        pid=_int(pid[0]), pgid=_int(pid[1]), process_start=pid[2], head="" if facts[1] == "-" else facts[1],
        dirty={"1": True, "0": False}.get(facts[2]), who=str(meta.get("who", "")),
        tmux=f.get("tmux", [""])[0], last_line=last[:300],
        results=bool(meta.get("results")), preset=str(meta.get("preset", "")),
        cancel=(f.get("cancel", [""])[0].split() or [""])[0], env=tuple(meta.get("env") or ()),
        protect=tuple(str(p) for p in meta.get("protect") or ()),
    )


HEX_LINE = re.compile(r"^(?: [0-9a-f]{2})+$")  # one line of `od -An -v -tx1`


def _last_hex(text: str) -> str:
    """The `last` value: od's first line of hex on `last`'s own line, its other lines (16 bytes each) after it."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("last\t")]
    if not starts:
        return ""
    found = [lines[starts[-1]][5:]]
    for line in lines[starts[-1] + 1:]:
        if not HEX_LINE.match(line):
            break
        found.append(line)
    return " ".join(found)


def _last_line(hex_text: str) -> str:
    """The log's last line, sent as hex: what a terminal would show of it (after the last carriage return)."""
    try:
        raw = bytes.fromhex(hex_text.strip())
    except ValueError:
        return ""
    text = raw.decode(errors="replace").rstrip("\n").rsplit("\r", 1)[-1]
    return "".join(c if c.isprintable() else " " for c in text).strip()


def parse_gpu_apps(text: str) -> list[GpuUse]:
    apps = []
    for value in _fields(text).get("app", []):
        parts = value.split(" ", 3) + ["", "", "", ""]
        pid, used = _int(parts[0]), _float(parts[1])
        if pid is not None and used is not None:
            apps.append(GpuUse(pid, used, _int(parts[2]) or 0, parts[3].strip()))
    return apps


def parse_list(host: str, output: str, gpu: bool) -> tuple[float | None, list[Job], bool]:
    """(the host's clock, its jobs with GPU memory filled in, whether the listing is complete)."""
    parts = split_sections(output)
    now = _float(parts.get("now", "").strip())
    apps = parse_gpu_apps(parts.get("gpu", "")) if gpu else []
    jobs = []
    for key, text in parts.items():
        if key.startswith("job "):
            job = parse_job(host, key[4:], text, now)
            if gpu and job.running:
                mine = [a.used_mib for a in apps if job.pid and a.session == job.pid]
                job = _with_gpu(job, sum(mine) if mine else 0.0)
            jobs.append(job)
    jobs.sort(key=lambda j: (j.started or 0.0, j.id))
    return now, jobs, "end" in parts


def _with_gpu(job: Job, mib: float) -> Job:
    from dataclasses import replace

    return replace(job, gpu_mib=mib)




def parse_start(host: str, job_id: str, output: str) -> tuple[str, str, Job | None]:
    """(outcome, detail, job): outcome is started | duplicate | busy | nocwd | nosetsid | noflock | noprogram |
    claimed | nodir | failed."""
    parts = split_sections(output)
    head = _fields(output.split("@@agentsync@@ ", 1)[0])
    for outcome in ("duplicate", "nocwd", "nosetsid", "noflock", "noprogram", "claimed", "nodir"):
        if outcome in head:
            return outcome, head[outcome][0], None
    if "busy" in head:
        return "busy", "\n".join([head["busy"][0], *head.get("app", [])]), None
    if "job" not in parts:
        return "failed", output.strip()[-500:], None
    job = parse_job(host, job_id, parts["job"])
    if job.pid is None and job.exit_code is None:
        return "failed", "the job did not record its process in time", job
    return "started", "", job


def parse_busy(detail: str) -> tuple[float, list[GpuUse]]:
    """`busy` detail (total MiB, then the compute apps as nvidia-smi printed them) → (total, apps)."""
    lines = detail.splitlines()
    total = _float(lines[0].strip()) if lines else None
    apps = []
    for line in lines[1:]:
        cells = [c.strip() for c in line.split(",")]
        if len(cells) >= 3 and _int(cells[0]) is not None:
            apps.append(GpuUse(_int(cells[0]) or 0, _float(cells[-1]) or 0.0, 0, ", ".join(cells[1:-1])))
    return total or 0.0, apps


SECTION_LOG = "@@agentsync@@ log\n"


def log_script(job_id: str, tail: int | None) -> str:
    """The job's log (its last `tail` lines) after a `log` marker: everything after it is the log, verbatim."""
    log = f"{job_dir(job_id)}/log"
    body = f"tail -n {int(tail)} {log}" if tail is not None else f"cat {log}"
    return script([f"[ -f {log} ] || {{ {section('missing')}; exit 0; }}", section("log"), body])


def follow_script(job_id: str, tail: int | None) -> str:
    """Stream the log until the job has an exit status (or its process and wrapper are gone), then stop.

    The output is the raw log (no framing): it is shown as it arrives. When
    the reader goes away (Ctrl-C), `tail` dies of SIGPIPE on its next write
    and the loop ends with it; the job itself is in another session and
    never sees any of this.
    """
    d = job_dir(job_id)
    start = f"-n {int(tail)}" if tail is not None else "-n +1"
    return script([
        *PROC_FUNCTIONS,
        f"d={d}",
        '[ -f "$d/log" ] || exit 3',
        f'tail {start} -f "$d/log" & t=$!',
        'gone() { [ -f "$d/exit" ] && return 0; read p g s < "$d/pid" 2>/dev/null && alive "$p" "$s" && return 1; '
        'read p s < "$d/wrapper" 2>/dev/null && alive "$p" "$s" && return 1; return 0; }',
        'while kill -0 "$t" 2>/dev/null && ! gone; do sleep 0.2; done',
        'sleep 0.3; kill "$t" 2>/dev/null; wait "$t" 2>/dev/null; exit 0',
    ])


def cancel_script(job_id: str, grace: float) -> str:
    """SIGTERM to the job's process group, SIGKILL after `grace` seconds — only if it is still the job's.

    The group is signalled only while its leader is the recorded process
    (same pid *and* start time), or, the leader gone, while the group still
    exists: the kernel does not hand out a pid that still names a group, so
    that group can only be the job's own.
    """
    d = job_dir(job_id)
    steps = max(1, int(grace * 10))
    return script([
        *PROC_FUNCTIONS,
        f"d={d}",
        f'[ -f "$d/job.json" ] && mine "$d" || {{ {section("missing")}; exit 0; }}',
        f'read pid pg st < "$d/pid" 2>/dev/null || {{ {section("nopid")}; exit 0; }}',
        f'if [ -f "$d/exit" ]; then {section("ended")}; exit 0; fi',
        f'alive "$pid" "$st" || {{ {section("gone")}; exit 0; }}',
        '[ "$pg" = "$pid" ] || { ' + section("nogroup") + '; exit 0; }',
        # a member of the group that is not a zombie (zombies wait for their parent, they run nothing)
        "group_alive() { cat /proc/[0-9]*/stat 2>/dev/null | awk -v g=\"$pg\" '{ s = $0; sub(/.*\\) /, \"\", s); "
        "split(s, a, \" \"); if (a[3] == g && a[1] != \"Z\") { f = 1; exit } } END { exit !f }'; }",
        'ours() { _now=$(started "$pg") || { group_alive; return; }; [ "$_now" = "$st" ]; }',
        'printf \'SIGTERM %s\\n\' "$(date +%s)" > "$d/cancel"',
        'kill -TERM "-$pg" 2>/dev/null',
        f'n=0; while group_alive && [ "$n" -lt {steps} ]; do sleep 0.1; n=$((n + 1)); done',
        'if group_alive && ours; then',
        '  printf \'SIGKILL %s\\n\' "$(date +%s)" > "$d/cancel"; kill -KILL "-$pg" 2>/dev/null',
        'fi',
        # the wrapper (not in the group) writes the exit status as soon as it has reaped the job
        'n=0; while [ ! -f "$d/exit" ] && [ "$n" -lt 100 ]; do sleep 0.05; n=$((n + 1)); done',
        section("done"), 'cat "$d/cancel"',
    ])


def parse_cancel(output: str) -> tuple[str, str]:
    """(outcome, signal sent): outcome is done | ended | gone | missing | nopid | nogroup | failed."""
    parts = split_sections(output)
    for outcome in ("done", "ended", "gone", "missing", "nopid", "nogroup"):
        if outcome in parts:
            return outcome, parts[outcome].split()[0] if parts[outcome].split() else ""
    return "failed", ""


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value not in (None, "", "-") else None
    except ValueError:
        return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value not in (None, "", "-") else None
    except ValueError:
        return None
