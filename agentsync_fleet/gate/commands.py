"""The shell text of each check, and the pure parsers of what it prints.

Every inventory value (a path, a URL, a `run:` command) reaches the host as
one shlex-quoted argument: a `run:` command is *meant* to be shell, so it is
handed whole to its own `sh -c`, in the repo, and nothing else of it is
interpreted. Output we parse is framed with marker lines; file contents come
back with every line prefixed by `|`, so no file can forge a marker.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from ..settings import TIMEOUTS
from ..shell import SECTION_MARK, join, path_arg, section
from .metrics import judge
from .model import CheckResult, CheckSpec, HttpSpec, MetricSpec, fmt

METRIC_INLINE_LIMIT = 64 * 1024  # bytes: a metric file this small is read inside the health probe itself
METRIC_READ_LIMIT = 4 * 1024 * 1024  # bytes: a larger one costs one more command, up to this size
TAIL_BYTES = 16 * 1024  # a run check's output is cut to its last bytes on the host ...
TAIL_LINES = 20  # ... and to its last lines in the report
KILL_AFTER = TIMEOUTS.check_kill_after  # seconds between `timeout`'s TERM and its KILL
RC = SECTION_MARK + "rc"
CODE = "http-code"  # curl reads a -w format starting with `@` from a file: this one must not look like a marker
TIMEOUT_EXITS = (124, 137)  # GNU timeout: the command timed out (TERM), or had to be killed


def _echo(word: str) -> str:
    return "echo " + shlex.quote(SECTION_MARK + word)


# ---------------------------------------------------------------- metric: read in the health probe


def metric_section(index: int) -> str:
    return f"metric-{index}"


def metric_files(metrics: Sequence[MetricSpec]) -> list[str]:
    """Each file once, however many checks read it; section `metric-<i>` holds file i of this list."""
    return list(dict.fromkeys(spec.file for spec in metrics))


def metric_probe(repo: str, metrics: Sequence[MetricSpec]) -> list[str]:
    """Lines for the batched health probe: each small metric file comes back framed, a large one by size only."""
    if not metrics:
        return []
    lines = [f"if cd {path_arg(repo)} 2>/dev/null; then inrepo=1; else inrepo=0; fi"]
    for index, file in enumerate(metric_files(metrics)):
        lines += [section(metric_section(index)), f"f={path_arg(file)}", _read_small_file()]
    return lines + ["cd / 2>/dev/null"]


def _read_small_file() -> str:
    return (
        "if [ $inrepo = 0 ]; then echo norepo; elif [ ! -e \"$f\" ]; then echo missing; "
        "elif [ -d \"$f\" ] || [ ! -r \"$f\" ]; then echo unreadable; "
        "else n=$(($(wc -c < \"$f\"))); "
        f"if [ \"$n\" -le {METRIC_INLINE_LIMIT} ]; then echo \"size $n\"; sed 's/^/|/' \"$f\"; echo; "
        "else echo \"large $n\"; fi; fi"
    )


def read_file_command(repo: str, file: str) -> str:
    """A metric file too large for the probe: its first METRIC_READ_LIMIT bytes, framed the same way."""
    return (f"cd {path_arg(repo)} && echo \"size $(($(wc -c < {path_arg(file)})))\" && "
            f"head -c {METRIC_READ_LIMIT} {path_arg(file)} | sed 's/^/|/'; echo")


def parse_file_section(text: str) -> tuple[str, str]:
    """A metric file section → (state, content). state: size | large | missing | unreadable | norepo."""
    lines = text.splitlines()
    if not lines:
        return "absent", ""
    state = lines[0].split()[0] if lines[0].split() else "absent"
    content = "\n".join(line[1:] for line in lines[1:] if line.startswith("|"))
    return state, content


def size_of(text: str) -> int | None:
    first = text.splitlines()[0].split() if text.strip() else []
    return int(first[1]) if len(first) == 2 and first[1].isdigit() else None


def metric_result(check: CheckSpec, state: str, content: str, duration: float = 0.0) -> CheckResult:
    """The check's verdict from what the host sent about its file."""
    spec = check.metric
    assert spec is not None
    bounds = {"min": spec.min, "max": spec.max}
    problems = {
        "missing": f"{spec.file}: no such file", "unreadable": f"{spec.file}: not a readable file",
        "norepo": "repo directory does not exist", "absent": f"{spec.file}: not read (the probe ended early)",
        "large": f"{spec.file}: larger than {METRIC_READ_LIMIT // (1024 * 1024)} MiB",
    }
    if state in problems:
        return CheckResult(check.name, "metric", "error", problems[state], duration_s=duration, **bounds)
    value, reason = judge(spec, content)
    status = "pass" if not reason else ("fail" if value is not None else "error")
    return CheckResult(check.name, "metric", status, reason, value=value, duration_s=duration, **bounds)


# ---------------------------------------------------------------- run: its own command


def run_command(repo: str, check: CheckSpec) -> str:
    """`sh -c <run>` in the repo, stdin closed, stopped by `timeout` where the host has it; output tail only."""
    inner = join(["sh", "-c", check.run or ""])
    limit = f"{check.timeout:g}"
    return "\n".join([
        _echo("begin"),
        f"cd {path_arg(repo)} 2>/dev/null || {{ {_echo('norepo')}; exit 0; }}",
        f"{{ if command -v timeout >/dev/null 2>&1; then timeout -k {KILL_AFTER} {limit} {inner}; "
        f"else {inner}; fi; echo \"{RC} $?\"; }} </dev/null 2>&1 | tail -c {TAIL_BYTES}",
    ]) + "\n"


def _framed(stdout: str) -> tuple[list[str], int | None, bool]:
    """(output lines between our markers, exit code from the last rc marker, whether the repo was missing)."""
    lines = stdout.splitlines()
    begin = max((i for i, line in enumerate(lines) if line == SECTION_MARK + "begin"), default=-1)
    body = lines[begin + 1:]
    if body and body[0] == SECTION_MARK + "norepo":
        return [], None, True
    code = None
    for index in range(len(body) - 1, -1, -1):
        if body[index].startswith(RC + " ") and body[index][len(RC) + 1:].strip().isdigit():
            code = int(body[index][len(RC) + 1:])
            body = body[:index]
            break
    return body, code, False


def tail(lines: Sequence[str], count: int = TAIL_LINES, chars: int = 4000) -> str:
    text = "\n".join(list(lines)[-count:]).rstrip()
    return text if len(text) <= chars else "…" + text[-chars:]


def run_result(check: CheckSpec, stdout: str, duration: float) -> CheckResult:
    body, code, norepo = _framed(stdout)
    output = tail(body)
    if norepo:
        return CheckResult(check.name, "run", "error", "repo directory does not exist", duration_s=duration)
    if code is None:
        return CheckResult(check.name, "run", "error", "ended without an exit status", duration_s=duration,
                           output_tail=output)
    if code in TIMEOUT_EXITS and duration >= check.timeout * 0.9:
        return timed_out(check, duration, output)
    if code:
        last = next((line.strip() for line in reversed(body) if line.strip()), "")
        return CheckResult(check.name, "run", "fail", f"exit {code}" + (f": {last}" if last else ""),
                           exit_code=code, duration_s=duration, output_tail=output)
    return CheckResult(check.name, "run", "pass", exit_code=0, duration_s=duration, output_tail=output)


def timed_out(check: CheckSpec, duration: float, output: str = "") -> CheckResult:
    return CheckResult(check.name, check.kind, "timeout", f"timeout after {fmt(check.timeout)} s",
                       duration_s=duration, output_tail=output)


# ---------------------------------------------------------------- http: fetched on the host


def http_command(spec: HttpSpec, timeout: float) -> str:
    """curl, else wget, on the host; `unavailable` when it has neither. Redirects are not followed."""
    url = shlex.quote(spec.url)
    limit = f"{timeout:g}"
    return "\n".join([
        "if command -v curl >/dev/null 2>&1; then",
        f"  curl -sS -o /dev/null --max-time {limit} -w '{CODE} %{{http_code}}\\n' {url} 2>&1; echo \"{RC} $?\"",
        "elif command -v wget >/dev/null 2>&1; then",
        f"  out=$(wget -S -O /dev/null -T {limit} -t 1 --max-redirect=0 {url} 2>&1); rc=$?",
        f"  printf '%s\\n' \"$out\" | sed -n 's/^ *HTTP\\/[0-9.]* \\([0-9][0-9][0-9]\\).*/{CODE} \\1/p'",
        "  printf '%s\\n' \"$out\" | tail -n 2; echo \"" + RC + " $rc\"",
        f"else {_echo('unavailable')}; fi",
    ]) + "\n"


def http_result(check: CheckSpec, stdout: str, duration: float) -> CheckResult:
    spec = check.http
    assert spec is not None
    lines = stdout.splitlines()
    if SECTION_MARK + "unavailable" in lines:
        return CheckResult(check.name, "http", "unavailable", "neither curl nor wget is installed on this host",
                           duration_s=duration)
    codes = [line[len(CODE) + 1:].strip() for line in lines if line.startswith(CODE + " ")]
    rcs = [line[len(RC) + 1:].strip() for line in lines if line.startswith(RC + " ")]
    other = [line.strip() for line in lines if line.strip() and not line.startswith((SECTION_MARK, CODE + " "))]
    code = codes[-1] if codes and codes[-1].isdigit() and codes[-1] != "000" else None
    if code is None:
        if rcs and rcs[-1] == "28":  # curl: operation timed out
            return timed_out(check, duration)
        why = other[-1] if other else f"exit {rcs[-1] if rcs else '?'}"
        return CheckResult(check.name, "http", "fail", f"no answer from {spec.url}: {why}", duration_s=duration,
                           output_tail=tail(other))
    value = float(code)
    if int(code) != spec.expect:
        return CheckResult(check.name, "http", "fail", f"HTTP {code}, expected {spec.expect}", value=value,
                           duration_s=duration)
    return CheckResult(check.name, "http", "pass", value=value, duration_s=duration)
