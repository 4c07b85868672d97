"""Helpers the job tests share: run the CLI for JSON, wait for a job's state, look at a host's processes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

from agentsync_fleet.sandbox import MOUNT_POINT

JOBS_DIR = ".state/agentsync/jobs"  # under the host's disk (XDG_STATE_HOME is set per sandbox host)
HOSTS = ("cloud", "gpu", "nocli")


def as_json(result) -> dict:
    """The one JSON document a --json run printed (and nothing else on stdout)."""
    assert result.stdout.strip(), f"no stdout; stderr: {result.stderr}"
    return json.loads(result.stdout)


def start(fleet, inv, host: str, command: str, *extra: str) -> dict:
    result = fleet.agentsync("run", host, command, *extra, "--json", inventory=inv)
    assert result.returncode == 0, result.stdout + result.stderr
    return as_json(result)["job"]


def jobs_by_id(fleet, inv, *extra: str) -> dict[str, dict]:
    result = fleet.agentsync("jobs", "--all", "--json", *extra, inventory=inv)
    assert result.returncode == 0, result.stdout + result.stderr
    return {j["id"]: j for j in as_json(result)["jobs"]}


def wait_for_state(fleet, inv, job_id: str, predicate, timeout: float = 60) -> dict:
    """Poll `jobs` (a new controller process each time) until the job matches; fail with its last state."""
    deadline = time.monotonic() + timeout
    job: dict = {}
    while time.monotonic() < deadline:
        job = jobs_by_id(fleet, inv).get(job_id, {})
        if job and predicate(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never reached the expected state; last seen: {job}")


def wait_until(condition, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def job_file(fleet, host: str, job_id: str, name: str) -> Path:
    return fleet.sandbox.hosts[host].path(f"{JOBS_DIR}/{job_id}/{name}")


def group_members(fleet, host: str, pgid: int) -> list[str]:
    """Processes (not zombies) in a process group on a host, as `pid state comm` lines."""
    out = fleet.sandbox.ssh(host, f"ps -o pid=,stat=,comm= -g {int(pgid)} || true", check=False)
    return [line for line in out.splitlines() if line.split()[1:2] != ["Z"]]


def session_processes(fleet, host: str) -> list[int]:
    """The host's per-connection sshd processes (children of its sshd, which is the namespace's init)."""
    init = fleet.sandbox.hosts[host].pid
    children = Path(f"/proc/{init}/task/{init}/children").read_text().split()
    found = []
    for pid in children:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sshd"):
                found.append(int(pid))
        except OSError:
            pass
    return found


def cut_connections(fleet, host: str) -> int:
    """Kill every SSH connection's server side on `host` (the cable pulled mid-session); how many were cut."""
    cut = 0
    for pid in session_processes(fleet, host):
        try:
            os.kill(pid, signal.SIGKILL)
            cut += 1
        except ProcessLookupError:
            pass
    return cut


def kill_all_jobs(fleet) -> None:
    """End every job the test left behind (their process groups and wrappers) on the sandbox hosts."""
    base = f"{MOUNT_POINT}/{JOBS_DIR}"
    script = (f'for f in {base}/*/pid; do [ -f "$f" ] && read p g s < "$f" && kill -KILL "-$g"; done 2>/dev/null; '
              f'for f in {base}/*/wrapper; do [ -f "$f" ] && read p s < "$f" && kill -KILL "$p"; done 2>/dev/null; '
              "tmux kill-server 2>/dev/null; true")
    for host in HOSTS:
        fleet.sandbox.ssh(host, script, check=False)


def inventory(fleet, **gpu):
    """laptop, cloud, gpu (gpu: true, plus `gpu`'s extra settings) and nocli."""
    return fleet.inventory({"laptop": {}, "cloud": {}, "gpu": {"gpu": True, **gpu}, "nocli": {}})


@contextlib.contextmanager
def gpu_reports(fleet, script: str):
    """gpu's test nvidia-smi answers with `script` for the block, then as before."""
    smi = fleet.sandbox.hosts["gpu"].bin_dir / "nvidia-smi"
    original = smi.read_text()
    smi.write_text(script)
    try:
        yield
    finally:
        smi.write_text(original)


def write_old_jobs(jobs_dir: Path, machine: str, count: int, ended: int, status: int = 0, first: int = 0) -> list[str]:
    """`count` job records that ended at `ended` (host epoch), written straight to a host's disk as the start
    script and the wrapper leave them (see jobs/scripts.py): ids `01d00000`, `01d00001`..., names `old0`...
    (numbered from `first`); each log's last line is `last words of old<n>`."""
    ids = []
    for i in range(first, first + count):
        job_id, name = f"01d{i:05x}", f"old{i}"
        record = {"id": job_id, "host": "", "name": name, "command": f"echo {name}", "cwd": "/srv/agentsync/crpbot",
                  "env": [], "results": False, "preset": "", "who": "test@laptop", "protect": []}
        directory = jobs_dir / job_id
        directory.mkdir(parents=True)
        files = {"job.json": json.dumps(record, separators=(",", ":")) + "\n", "command": f"echo {name}",
                 "name": f"{name}\n", "machine": f"{machine}\n", "facts": f"{ended - 60} - -\n",
                 "pid": f"{4000000 + i} {4000000 + i} 1\n", "wrapper": f"{4100000 + i} 1\n",
                 "exit": f"{status} {ended}\n", "log": f"starting {name}\nlast words of {name}\n"}
        for file, text in files.items():
            (directory / file).write_text(text)
        ids.append(job_id)
    return ids
