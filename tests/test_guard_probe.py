"""The guard's process probe: pure parsing of each method's output (golden texts), and the fail-closed rule."""

from __future__ import annotations

from agentsync_fleet.guardprobe import parse_guard
from agentsync_fleet.health import guard_failures
from agentsync_fleet.models import Guard, Host

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
    blind = parse_guard("method bbps\nblind\ndone\n", PATTERNS)
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
