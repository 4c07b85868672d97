"""Jobs on 3 hosts behind the 50 ms-RTT proxy: `run` and `jobs` against the same steps typed as plain ssh.

    AGENTSYNC_BENCH_SUBNET=106 .venv/bin/python bench/bench_jobs.py [--rounds 5]

`run h00 true` (check the name and GPU, start detached, record pid + start
time, return the job id) against `ssh h00 'cd repo && setsid nohup sh -c true
> log 2>&1 < /dev/null &'`; `jobs` on 3 hosts (one round trip per host, in
parallel) against 3 sequential `ssh hNN 'cat exit_code; tail -1 log'`.
Each run is a fresh process. agentsync keeps its ssh master open between runs
(ControlPersist): "warm" reuses it, "cold" closes it first (`agentsync
disconnect`, untimed), so it pays the full handshake as plain ssh (ControlMaster
no) always does; its handshake begins before the program loads, as on any
host this computer reached before (remote/early.py). "cold, first contact" is
a host never reached from here (AGENTSYNC_EARLY=0: the handshake begins once
the program and inventory are loaded). Writes bench/results/jobs.md.

The package is byte-compiled first (`compileall`), as a pip install leaves it:
with PYTHONDONTWRITEBYTECODE set (as in some shells and CI), an editable
install otherwise compiles every module from source on every run, ~0.2 s of
CPU that no installed agentsync pays.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from fleet import REPO, BenchFleet  # noqa: E402
from measure import alternate, run_ok  # noqa: E402

AGENTSYNC = str(Path(sys.executable).parent / "agentsync")
HOSTS = ["h00", "h01", "h02"]


def commands(fleet: BenchFleet, link: str) -> dict[str, dict]:
    inventory = fleet.inventory(link, HOSTS)
    config = fleet.dir(link) / "ssh_config"
    plain_dir = "/tmp/agentsync-bench-plain-job"

    def agentsync_run(**env: str) -> Callable[[], None]:
        def run() -> None:
            run_ok([AGENTSYNC, "run", "h00", "true", "--json", "--inventory", str(inventory)],
                   lambda r: json.loads(r.stdout)["job"]["pid"] > 0, env={**os.environ, **env})
        return run

    def ssh_run() -> None:
        run_ok(["ssh", "-F", str(config), "h00", f"mkdir -p {plain_dir} && cd {REPO} && "
                f"(setsid nohup sh -c true > {plain_dir}/log 2>&1 < /dev/null &)"])

    def agentsync_jobs() -> None:
        run_ok([AGENTSYNC, "jobs", "--json", "--inventory", str(inventory)],
               lambda r: not json.loads(r.stdout)["problems"])

    def ssh_jobs() -> None:
        for host in HOSTS:
            run_ok(["ssh", "-F", str(config), host, f"cat {plain_dir}/exit_code 2>/dev/null; "
                    f"tail -n 1 {plain_dir}/log 2>/dev/null; true"])

    return {"run (start a job on 1 host)": {"agentsync run (cold)": agentsync_run(),
                                            "agentsync run (warm)": agentsync_run(),
                                            "agentsync run (cold, first contact)": agentsync_run(AGENTSYNC_EARLY="0"),
                                            "plain ssh setsid nohup": ssh_run},
            "jobs (list 3 hosts)": {"agentsync jobs (cold)": agentsync_jobs, "agentsync jobs (warm)": agentsync_jobs,
                                    "3 sequential ssh": ssh_jobs}}


def disconnect_before_cold(inventory: Path):
    def before(name: str) -> None:
        if "(cold" in name:
            run_ok([AGENTSYNC, "disconnect", "--inventory", str(inventory)])
    return before


def byte_compile() -> None:
    """Compile the agentsync package being measured (the one `agentsync` imports), as pip does at install."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("agentsync_fleet")
    assert spec is not None and spec.submodule_search_locations
    compileall.compile_dir(list(spec.submodule_search_locations)[0], quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--from-source", action="store_true",
                        help="do not byte-compile first (measure an editable install under PYTHONDONTWRITEBYTECODE)")
    args = parser.parse_args()
    if not args.from_source:
        byte_compile()
    root = Path(tempfile.mkdtemp(prefix="agentsync-bench-jobs-"))
    # agentsync's journal, sockets and cache for this bench only, never the user's own
    os.environ.update(AGENTSYNC_STATE_DIR=str(root / "state"), XDG_CACHE_HOME=str(root / "cache"))
    fleet = BenchFleet(root, len(HOSTS)).up()
    compiled = "from source each run" if args.from_source else "byte-compiled, as installed"
    lines = ["# Jobs benchmark", "", f"3 sshd hosts behind the 25 ms/way proxy (50 ms RTT), {args.rounds} rounds "
             "alternating, a fresh process each run; cold = agentsync's ssh master closed first; agentsync "
             f"{compiled}; seconds (median, min–max).", "",
             "| step | tool | median | min | max |", "|---|---|---|---|---|"]
    try:
        for step, tools in commands(fleet, "wan50").items():
            series = alternate(tools, args.rounds, disconnect_before_cold(fleet.inventory("wan50", HOSTS)))
            for tool, s in series.items():
                lines.append(f"| {step} | {tool} | {s.median:.3f} | {min(s.samples):.3f} | {max(s.samples):.3f} |")
                print(f"{step:30} {tool:24} {s.median:.3f}s", flush=True)
            names = list(series)
            for name in names[:-1]:
                ratio = series[name].median / series[names[-1]].median
                lines.append(f"| {step} | ratio {name} / plain | {ratio:.2f}× | | |")
                print(f"{step:30} ratio {name} / plain {ratio:.2f}x", flush=True)
    finally:
        fleet.down()
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "jobs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
