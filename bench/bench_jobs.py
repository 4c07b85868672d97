"""Jobs on 3 hosts behind the 50 ms-RTT proxy: `run` and `jobs` against the same steps typed as plain ssh.

    .venv/bin/python bench/bench_jobs.py [--rounds 5] [--subnet 106]

`run h00 true` (check the name and GPU, start detached, record pid + start
time, return the job id) against `ssh h00 'cd repo && setsid nohup sh -c true
> log 2>&1 < /dev/null &'`; `jobs` on 3 hosts (one round trip per host, in
parallel) against 3 sequential `ssh hNN 'cat exit_code; tail -1 log'`.
Both sides start a fresh process and a fresh SSH connection each time, as a
person typing them does. Writes bench/results/jobs.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from fleet import REPO, BenchFleet  # noqa: E402
from measure import alternate, run_ok  # noqa: E402

from agentsync_fleet.sandbox import Sandbox  # noqa: E402

AGENTSYNC = str(Path(sys.executable).parent / "agentsync")
HOSTS = ["h00", "h01", "h02"]


def commands(fleet: BenchFleet, link: str) -> dict[str, dict]:
    inventory = fleet.inventory(link, HOSTS)
    config = fleet.dir(link) / "ssh_config"
    plain_dir = "/tmp/agentsync-bench-plain-job"

    def agentsync_run() -> None:
        run_ok([AGENTSYNC, "run", "h00", "true", "--json", "--inventory", str(inventory)],
               lambda r: json.loads(r.stdout)["job"]["pid"] > 0)

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

    return {"run (start a job on 1 host)": {"agentsync run": agentsync_run, "plain ssh setsid nohup": ssh_run},
            "jobs (list 3 hosts)": {"agentsync jobs": agentsync_jobs, "3 sequential ssh": ssh_jobs}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--subnet", type=int, default=106)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="agentsync-bench-jobs-"))
    fleet = BenchFleet(root, len(HOSTS))
    fleet.sandbox = Sandbox(root / "sandbox", subnet=args.subnet)
    fleet.up()
    lines = ["# Jobs benchmark", "", f"3 sshd hosts behind the 25 ms/way proxy (50 ms RTT), {args.rounds} rounds "
             "alternating, fresh process and connection each run; seconds (median, min–max).", "",
             "| step | tool | median | min | max |", "|---|---|---|---|---|"]
    try:
        for step, tools in commands(fleet, "wan50").items():
            series = alternate(tools, args.rounds)
            for tool, s in series.items():
                lines.append(f"| {step} | {tool} | {s.median:.3f} | {min(s.samples):.3f} | {max(s.samples):.3f} |")
                print(f"{step:30} {tool:24} {s.median:.3f}s", flush=True)
            names = list(series)
            ratio = series[names[0]].median / series[names[1]].median
            lines.append(f"| {step} | ratio agentsync / plain | {ratio:.2f}× | | |")
            print(f"{step:30} ratio {ratio:.2f}x", flush=True)
    finally:
        fleet.down()
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "jobs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
