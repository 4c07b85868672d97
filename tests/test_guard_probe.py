"""The guard's process probe: pure parsing of each method's output (golden texts), and the fail-closed rule."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import commands_without
from test_locks import wait_for

from agentsync_fleet.guardprobe import guard_probe, parse_guard
from agentsync_fleet.health import guard_failures
from agentsync_fleet.models import Guard, Host
from agentsync_fleet.shell import split_sections

PATTERNS = ("v7_runtime", "dashboard")
HOST = Host(name="cloud", repo="/r", guard=Guard(PATTERNS, ("apps/runtime/v7_runtime.py",)))


def test_proc_method_turns_start_ticks_into_uptime():
    text = ("uptime 1000.50 3.00\nhz 100\nmount rw,nosuid,relatime\nuid 0\nmethod proc\n"
            "0 4242 40050 python3 apps/runtime/v7_runtime.py --live \ndone\n")
    state = parse_guard(text, PATTERNS)
    assert not state.unknown and state.method == "proc"
    assert [(p.pattern, p.pid, p.uptime_s) for p in state.processes] == [("v7_runtime", 4242, 600)]


def test_busybox_ps_gives_processes_without_uptime():
    state = parse_guard("why cannot read /proc;\nmethod bbps\n1 77 - python3 dashboard.py\ndone\n", PATTERNS)
    assert state.method == "busybox-ps" and state.processes[0].uptime_s is None
    assert state.processes[0].pattern == "dashboard"


def test_no_method_a_blind_probe_hidepid_or_no_output_are_unknown_never_nothing_runs():
    none = parse_guard("why cannot read /proc; ps: Error, do this: mount -t proc proc /proc\nmethod none\n", PATTERNS)
    assert none.unknown and "cannot read /proc" in none.detail and "mount -t proc" in none.detail
    blind = parse_guard("method bbps\nblind\n", PATTERNS)  # awk stops there
    assert blind.unknown and "own process" in blind.detail
    hidden = parse_guard("uptime 5 5\nhz 100\nmount rw,hidepid=2\nuid 1000\nmethod proc\ndone\n", PATTERNS)
    assert hidden.unknown and "hidepid=2" in hidden.detail
    assert not parse_guard("mount rw,hidepid=2\nuid 0\nmethod proc\ndone\n", PATTERNS).unknown  # root sees all
    assert parse_guard("", PATTERNS).unknown  # the probe died before its guard part
    cut = parse_guard("method proc\nawk: line 1: regular expression compile failed (missing operand)\n", PATTERNS)
    assert cut.unknown and "did not finish" in cut.detail and "regular expression" in cut.detail


def test_an_unknown_guard_fails_the_gate_and_a_host_without_patterns_needs_none():
    state = parse_guard("method none\nwhy no awk;\n", PATTERNS)
    assert guard_failures(HOST, state) == ["cannot see processes: no awk;"]
    assert guard_failures(Host(name="gpu", repo="/r"), None) == []
    assert not parse_guard("", ()).unknown


# ---------------------------------------------------------------- the probe itself, run here on this machine's /proc


def probe_here(patterns: tuple[str, ...], path: str | None = None):
    """The guard probe as a host runs it (`sh`, this machine's /proc and tools; `path`: another PATH)."""
    host = Host(name="here", repo="/r", guard=Guard(patterns, ("apps/x.py",)))
    env = {**os.environ, **({"PATH": path} if path else {})}
    out = subprocess.run(["sh", "-c", "\n".join(guard_probe(host)) + "\n"], capture_output=True, text=True,
                         timeout=120, env=env).stdout
    return parse_guard(split_sections(out).get("guard", ""), patterns)


@contextmanager
def running(*argv: str) -> Iterator[subprocess.Popen]:
    """A process of ours with this command line, once it has really started (its /proc cmdline is `argv`)."""
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wanted = ("\0".join(argv) + "\0").encode()
        wait_for(lambda: Path(f"/proc/{proc.pid}/cmdline").read_bytes() == wanted, what="the process to start")
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_a_newline_inside_an_argument_hides_neither_the_pattern_after_it_nor_passes_for_another_process():
    pattern = f"v7_runtime_{uuid.uuid4().hex[:8]}"
    # Before: grep printed the rest of such a command line as lines of their own, and the probe dropped them.
    code = "import time\ntime.sleep(120)"
    spoof = "x\n/proc/1/cmdline:" + pattern  # a line that looks like another process's record
    with running(sys.executable, "-c", code, spoof, pattern) as proc:
        state = probe_here((pattern,))
    assert not state.unknown and state.method == "proc", state
    assert [p.pid for p in state.processes] == [proc.pid], state.processes
    assert state.processes[0].command == f"{sys.executable} -c import time time.sleep(120) x /proc/1/cmdline:" \
                                         f"{pattern} {pattern}"


@pytest.mark.parametrize("grep", ["#!/bin/sh\nexit 2\n", "#!/bin/sh\nexit 0\n"], ids=["errors", "prints-nothing"])
def test_a_listing_that_fails_or_comes_back_empty_is_unknown_while_the_process_runs(tmp_path, grep):
    pattern = f"v7_runtime_{uuid.uuid4().hex[:8]}"
    path = commands_without(tmp_path / "bin", "grep")
    (tmp_path / "bin" / "grep").write_text(grep)
    (tmp_path / "bin" / "grep").chmod(0o755)
    with running(sys.executable, "-c", "import time; time.sleep(120)", pattern):
        assert [p.pattern for p in probe_here((pattern,)).processes] == [pattern]  # the real grep sees it
        state = probe_here((pattern,), path)
    assert state.unknown and not state.processes, state
    assert "does not show the probe's own process" in state.detail
    assert guard_failures(Host(name="here", repo="/r", guard=Guard((pattern,), ("x",))), state) == \
        [f"cannot see processes: {state.detail}"]
