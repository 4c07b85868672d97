"""Build remote shell text from argv, safely.

Every command that reaches a host is built here from a list of arguments and
quoted with `shlex`, so no inventory value (a path, a branch, a pattern) can
inject shell. The only unquoted text is our own fixed control structure.
"""

from __future__ import annotations

import base64
import re
import secrets
import shlex
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import AnyStr, BinaryIO

Argv = Sequence[str]


def quote_path(path: str) -> str:
    """Quote a path, keeping a leading `~/` meaning the remote user's home."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def join(argv: Argv) -> str:
    """argv to one shell-safe command line. Items of type `Raw` are inserted as they are."""
    return " ".join(item.text if isinstance(item, Raw) else shlex.quote(item) for item in argv)


class Raw(str):
    """A fragment of our own fixed shell text (never user input), inserted unquoted."""

    @property
    def text(self) -> str:
        return str(self)


def path_arg(path: str) -> Raw:
    """A path argument that keeps `~/` expansion on the remote side."""
    return Raw(quote_path(path))


def script(lines: Iterable[str]) -> str:
    """Join already-safe lines into a POSIX sh script."""
    return "\n".join(lines) + "\n"


def section(name: str) -> str:
    """A marker line that splits a batched script's output into named parts."""
    return f"echo {shlex.quote(SECTION_MARK + name)}"


SECTION_MARK = "@@agentsync@@ "


def split_sections(output: str) -> dict[str, str]:
    """Inverse of `section`: output text → {section name: its text}."""
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if line.startswith(SECTION_MARK):
            current = parts.setdefault(line[len(SECTION_MARK):].strip(), [])
        elif current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in parts.items()}


# ---------------------------------------------------------------- what the remote side receives
#
# sshd hands our command to the user's *login shell* as `$SHELL -c <command>`, and login shells disagree
# about quoting: fish reads `\'` inside single quotes as a quote, tcsh rejects `$(`, and every one of them
# may print a banner from its startup files before our command starts. So the remote side gets one fixed
# argument that bash, dash, zsh, fish, tcsh/csh and busybox ash all pass to `sh` unchanged: the command
# travels base64-encoded (letters, digits, `+/=`: no shell interprets any of them), `sh` decodes and
# evals it. Around the command, markers with a per-session nonce frame its output on stdout and stderr:
# whatever a startup file prints lies outside them and never reaches a parser (`Framing.unframe`).

WRAP_LIMIT = 120_000  # bytes of the wrapped argument; Linux refuses one argument over 128 KiB


@dataclass(frozen=True)
class Unframed:
    """A command's own output, and the first line anything else (a login shell's startup) printed."""

    stdout: str
    stderr: str
    noise: str = ""


@dataclass(frozen=True)
class Framing:
    """The wrapper for one session: `argument` builds what is sent, `unframe` takes the output apart."""

    nonce: str

    @classmethod
    def new(cls) -> Framing:
        return cls(secrets.token_hex(8))

    @property
    def start(self) -> str:
        return f"@@agentsync-{self.nonce}@@ start"

    @property
    def end(self) -> str:
        return f"@@agentsync-{self.nonce}@@ end"

    def argument(self, command: str) -> str:
        """The one argument for the remote login shell: `sh -c 'eval "$(printf %s BASE64 | base64 -d)"'`.

        `$0` of that `sh` is `agentsync-<nonce>`. The command runs in a subshell so that an `exit` in it
        still lets the end marker out; its exit status is the wrapper's.
        """
        body = (f"printf '%s\\n' '{self.start}'; printf '%s\\n' '{self.start}' >&2\n"
                f"(\n{command}\n)\nrc=$?\nprintf '\\n%s\\n' '{self.end}' >&2\n"
                "exit $rc\n")
        return sh_argument(body, f"agentsync-{self.nonce}")

    def fits(self, command: str) -> bool:
        """Whether `argument(command)` stays under the kernel's limit for one argument."""
        return (len(command.encode()) + 200) * 4 // 3 + 100 < WRAP_LIMIT

    def unframe(self, stdout: str, stderr: str) -> Unframed:
        out, noise_out = _between(stdout, self.start, self.end)
        err, noise_err = _between(stderr, self.start, self.end)
        return Unframed(out, err, first_line(noise_out + "\n" + noise_err))

    def unframe_bytes(self, stdout: bytes, stderr: bytes) -> tuple[bytes, bytes, str]:
        """`unframe` for raw output (file contents): (stdout, stderr, noise)."""
        start, end = self.start.encode(), self.end.encode()
        out, noise_out = _between(stdout, start, end)
        err, noise_err = _between(stderr, start, end)
        return out, err, first_line((noise_out + b"\n" + noise_err).decode(errors="replace"))

    def sink(self, out: BinaryIO) -> FramedSink:
        return FramedSink(self, out)

    def stream(self, callback: Callable[[bytes], None]) -> Callable[[bytes], None]:
        """A stdout callback that passes on only what the command printed (after the start marker)."""
        marker = (self.start + "\n").encode()
        held = bytearray()
        started = [False]

        def feed(chunk: bytes) -> None:
            if started[0]:
                callback(chunk)
                return
            held.extend(chunk)
            at = held.find(marker)
            if at != -1:
                started[0] = True
                rest = bytes(held[at + len(marker):])
                held.clear()
                if rest:
                    callback(rest)

        return feed


def sh_argument(command: str, name: str = "agentsync") -> str:
    """`command` as one argument any login shell hands to `sh` unchanged (see above); `name` is sh's `$0`."""
    encoded = base64.b64encode(command.encode()).decode()
    return f"sh -c 'eval \"$(printf %s {encoded} | base64 -d)\"' {name}"


class FramedSink:
    """Where a download's stdout goes: what precedes the start marker is dropped, and the last bytes are held
    back until the end so the end marker never reaches the file."""

    def __init__(self, framing: Framing, out: BinaryIO):
        self.out = out
        self.start, self.end = f"{framing.start}\n".encode(), f"\n{framing.end}\n".encode()
        self.head, self.tail = bytearray(), bytearray()
        self.started = False

    def write(self, chunk: bytes) -> None:
        if not self.started:
            self.head += chunk
            at = self.head.find(self.start)
            if at == -1:
                return
            self.started, chunk = True, bytes(self.head[at + len(self.start):])
            del self.head[at:]
        self.tail += chunk
        keep = next((k for k in range(min(len(self.tail), len(self.end)), 0, -1)
                     if self.tail.endswith(self.end[:k])), 0)  # only what may be the end marker's start waits
        if len(self.tail) > keep:
            self.out.write(bytes(self.tail[:len(self.tail) - keep]))
            del self.tail[:len(self.tail) - keep]

    def finish(self) -> str:
        """Write what is held back (less the end marker); the first line of noise, if any came before."""
        if self.tail.endswith(self.end):
            del self.tail[-len(self.end):]
        self.out.write(bytes(self.tail))
        self.tail.clear()
        return first_line(self.head.decode(errors="replace"))


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _between(text: AnyStr, start: AnyStr, end: AnyStr) -> tuple[AnyStr, AnyStr]:
    """(the text between the markers, what lies outside them). No start marker: the wrapper never ran (a
    host without `base64`, a login shell that failed): what it printed is all there is to show, kept as
    the output; no end marker: the command was cut off."""
    newline = "\n" if isinstance(text, str) else b"\n"
    head, found, rest = text.partition(start + newline)
    if not found:
        return text, text[:0]
    body, found_end, tail = rest.rpartition(newline + end + newline)
    if not found_end:
        return rest, head
    return body, head + tail


# ---------------------------------------------------------------- git's quoted paths in its output

_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def unquote_git_path(text: str) -> str:
    """Undo git's C-style quoting of a path (`"dir/\\303\\251t\\303\\251"` → `dir/été`); plain text passes."""
    if not (len(text) >= 2 and text.startswith('"') and text.endswith('"')):
        return text
    body, out, i = text[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char != "\\" or i + 1 == len(body):
            out += char.encode()
            i += 1
        elif body[i + 1] in _ESCAPES:
            out.append(_ESCAPES[body[i + 1]])
            i += 2
        elif re.match(r"[0-7]{3}", body[i + 1:i + 4]):
            out.append(int(body[i + 1:i + 4], 8))
            i += 4
        else:
            out += body[i + 1].encode()
            i += 2
    return out.decode("utf-8", errors="replace")
