"""`ssh` for rsync's `-e`, deaf to what the host's login shell prints before rsync starts.

rsync speaks its protocol over ssh's stdout; a `~/.bashrc` that prints a
banner puts bytes in front of it and rsync stops with "protocol version
mismatch -- is your shell clean?". This wrapper, which rsync runs in place of
ssh, has the remote side print a marker with a fresh nonce right before
rsync's own command, and passes on only what follows the marker. stdin and
stderr go straight through.

    python -m agentsync_fleet.quietssh N ssh -F cfg ... [-l user] host rsync --server ...

N is how many words of the ssh command line are ours; rsync appends the
rest (an optional `-l user`, the host, the remote command).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys


def split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the ssh command up to and including the host, the remote command's words)."""
    count = int(argv[0])
    ssh, rest = argv[1:count + 1], argv[count + 1:]
    if rest[:1] == ["-l"]:
        ssh, rest = ssh + rest[:2], rest[2:]
    return ssh + rest[:1], rest[1:]


def marked(command: list[str], marker: str) -> str:
    """The remote command (ssh joins words with spaces, as here), after a marker line. `printf` and `;` mean
    the same in every login shell we meet (sh, bash, zsh, fish, tcsh, ash)."""
    return f"printf '%s\\n' {marker}; " + " ".join(command)


def pump(source: int, marker: bytes) -> None:
    """Copy `source` to stdout, leaving out everything up to and including the marker line."""
    held = b""
    while True:
        chunk = os.read(source, 65536)
        if not chunk:
            if held:  # no marker ever came: the command never ran; let rsync see what there was
                os.write(1, held)
            return
        if held is not None:
            held += chunk
            at = held.find(marker)
            if at == -1:
                continue
            chunk, held = held[at + len(marker):], None
        while chunk:
            chunk = chunk[os.write(1, chunk):]


def main(argv: list[str]) -> int:
    ssh, command = split(argv)
    marker = f"agentsync-{secrets.token_hex(8)}"
    proc = subprocess.Popen([*ssh, marked(command, marker)], stdout=subprocess.PIPE)
    try:
        pump(proc.stdout.fileno(), (marker + "\n").encode())
    except BrokenPipeError:
        pass  # rsync went away; ssh's own status says the rest
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
