"""Pure parts of how commands reach a host and how their output comes back: the one-argument wrapper, the
nonce-framed output, the git version rule. (The real login shells run them in test_real_hosts.py.)"""

from __future__ import annotations

import base64
import re
import subprocess

from agentsync_fleet.gitversion import parse_git_version, refusal, too_old
from agentsync_fleet.shell import Framing, sh_argument

F = Framing("0123abcd")


def test_the_argument_uses_only_characters_no_login_shell_interprets():
    hostile = "printf '%s' \"$HOME\" `id` \\' \n ü; exit 3"
    argument = F.argument(hostile)
    prefix, encoded, suffix = re.match(r"^(sh -c 'eval \"\$\(printf %s )([A-Za-z0-9+/=]+)( \| base64 -d\)\"' "
                                       r"agentsync-0123abcd)$", argument).groups()
    assert hostile in base64.b64decode(encoded).decode()
    assert sh_argument("true", "x").endswith("' x")


def test_output_outside_the_markers_is_noise_and_never_output():
    out = f"Welcome to vm!\n{F.start}\nabc123\nsecond\n\n{F.end}\n"
    err = f"stty: not a tty\n{F.start}\nwarning: x\n\n{F.end}\nbye\n"
    framed = F.unframe(out, err)
    assert framed.stdout == "abc123\nsecond\n" and framed.stderr == "warning: x\n"
    assert framed.noise == "Welcome to vm!"


def test_a_command_cut_off_keeps_what_it_printed_and_a_wrapper_that_never_ran_shows_its_error():
    assert F.unframe(f"{F.start}\npartial", "").stdout == "partial"
    never = F.unframe("", "sh: 1: base64: not found\n")
    assert never.stderr == "sh: 1: base64: not found\n" and never.noise == ""
    assert F.unframe(f"{F.start}\nno newline\n{F.end}\n", "").stdout == "no newline"


def test_the_streaming_filter_passes_on_only_what_follows_the_start_marker():
    seen: list[bytes] = []
    feed = F.stream(seen.append)
    for chunk in (b"Welcome ", b"to vm!\n@@agentsync-0123", b"abcd@@ start\nupl", b"oad: a\n"):
        feed(chunk)
    assert b"".join(seen) == b"upload: a\n"


def test_the_wrapper_runs_the_command_exactly_under_sh():
    hostile = "x='a b'; printf '%s|' \"$x\" \"$0\" 'it'\\''s'; echo; exit 7"
    proc = subprocess.run(["sh", "-c", F.argument(hostile)], capture_output=True, text=True)
    framed = F.unframe(proc.stdout, proc.stderr)
    assert proc.returncode == 7 and framed.stdout == "a b|agentsync-0123abcd|it's|\n"


def test_git_versions_are_read_and_refused_with_what_they_have_and_need():
    assert parse_git_version("git version 2.30.2") == (2, 30)
    assert parse_git_version("git version 2.39.3 (Apple Git-146)") == (2, 39)
    assert parse_git_version("git version 2.41.0.windows.1") == (2, 41)
    assert parse_git_version("") is None
    assert too_old((2, 30), "patch relay (`git am --empty=keep`)", (2, 35)) == (
        "git 2.30 is too old for patch relay (`git am --empty=keep`); need ≥ 2.35")
    assert refusal((2, 25), relayed=False) == "git 2.25 is too old for agentsync; need ≥ 2.30"
    assert refusal((2, 30), relayed=False) is None and refusal((2, 30), relayed=True).startswith("git 2.30")
    assert refusal(None, relayed=True) is None
