"""`jobs` on one host that keeps thousands of old job records (jobs are never pruned).

    AGENTSYNC_BENCH_SUBNET=112 .venv/bin/python bench/bench_old_jobs.py [--old 2000] [--rounds 5]

One sandbox host (loopback, no proxy) with one job that ended just now and
`--old` records of jobs that ended three days ago, written straight to its
disk as the start script leaves them (tests/jobs_support.py). Times, warm (the
ssh master kept, the first run untimed: it journals every end it sees for the
first time), `agentsync jobs --json`, `jobs --all --json`, `health --json
--no-fetch` and `logs <an old id>`, a fresh process each run. Prints seconds
(median, min-max); writes nothing under bench/results.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE), str(HERE.parent / "tests")]

from fleet import BenchFleet  # noqa: E402
from jobs_support import JOBS_DIR, write_old_jobs  # noqa: E402
from measure import alternate, compile_package, run_ok  # noqa: E402

AGENTSYNC = str(Path(sys.executable).parent / "agentsync")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    compile_package()
    root = Path(tempfile.mkdtemp(prefix="agentsync-bench-oldjobs-"))
    os.environ["AGENTSYNC_STATE_DIR"] = str(root / "state")
    fleet = BenchFleet(root, 1).up()
    try:
        inventory = str(fleet.inventory("loopback", ["h00"]))
        job = json.loads(run_ok([AGENTSYNC, "run", "h00", "echo done", "--json", "--inventory", inventory]).stdout)
        record = fleet.sandbox.hosts["h00"].path(f"{JOBS_DIR}/{job['job']['id']}")
        while not (record / "exit").exists():
            time.sleep(0.05)
        old = write_old_jobs(record.parent, (record / "machine").read_text().strip(), args.old,
                             int(time.time()) - 3 * 24 * 3600)

        def listed(*extra: str, count: int):
            return lambda: run_ok([AGENTSYNC, "jobs", "--json", *extra, "--inventory", inventory],
                                  lambda r: len(json.loads(r.stdout)["jobs"]) == count)

        commands = {
            "jobs --json": listed(count=1),
            "jobs --all --json": listed("--all", count=args.old + 1),
            "health --json --no-fetch": lambda: run_ok([AGENTSYNC, "health", "--json", "--no-fetch",
                                                        "--inventory", inventory]),
            "logs <old id>": lambda: run_ok([AGENTSYNC, "logs", old[-1], "--inventory", inventory],
                                            lambda r: f"last words of old{args.old - 1}" in r.stdout),
        }
        for name, series in alternate(commands, args.rounds).items():
            print(f"{name:26} {series.median:.3f}s  ({min(series.samples):.3f}-{max(series.samples):.3f}), "
                  f"{args.old} old records", flush=True)
    finally:
        fleet.down()


if __name__ == "__main__":
    main()
