"""`make bench`: agentsync side by side with the tools people would use instead.

Measures, in ONE run (ratios measured together are what count on a shared,
noisy machine), each figure as the median of >= 5 alternating rounds with min
and max:

1. health --no-fetch at N = 1, 5, 20, 50 hosts, on loopback and behind a
   25 ms/way proxy, warm (the ssh masters of the previous run still up) and
   cold (every master closed first, untimed), against `xargs -P N ssh host
   '<same probe>'`, Ansible (`-m command`, pipelining on, host key checking
   on) and pyinfra `exec`;
2. sync-all on 3 hosts (no change; one commit to spread) against the same
   steps as a sequential plain-ssh script;
3. `run` (start a job on one host; cold, warm, first contact) and `jobs` (list
   3 hosts) behind the proxy against `ssh host 'setsid nohup … &'` and 3
   sequential `ssh host 'cat exit_code; tail -1 log'` (bench_jobs.py);
4. rsync of a 2,000-file tree (no change; one file changed) through agentsync
   against plain `rsync -e ssh` (when the transfer feature is installed);
5. cold start: `agentsync --help`, `inv --list`, and an import-time profile.

Writes bench/results/latest.md, latest.json and latest.png.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

from fleet import BenchFleet  # noqa: E402
from measure import Series, alternate, compile_package, run_ok  # noqa: E402
from peers import PEERS, probe_script  # noqa: E402
from report import write_results  # noqa: E402

AGENTSYNC = str(Path(sys.executable).parent / "agentsync")


def _prepare(commands: dict, name: str) -> None:
    """Untimed set-up before a timed run (the cold agentsync closes its ssh masters)."""
    getattr(commands[name], "prepare", lambda: None)()


def bench_health(fleet: BenchFleet, sizes: list[int], rounds: int, tools: list[str]) -> list[dict]:
    rows = []
    script = probe_script(fleet)
    for link in ("loopback", "wan50"):
        for n in sizes:
            hosts = fleet.names[:n]
            commands = {name: PEERS[name](fleet, link, hosts, script) for name in tools}
            commands = {k: v for k, v in commands.items() if v is not None}
            series = alternate(commands, rounds, functools.partial(_prepare, commands))
            rows.append({"link": link, "hosts": n, "series": {k: s.to_dict() for k, s in series.items()}})
            summary = ", ".join(f"{k} {s.median:.2f}s" for k, s in series.items())
            print(f"  health {link:8} N={n:<3} {summary}", flush=True)
    return rows


def bench_sync(fleet: BenchFleet, rounds: int) -> list[dict]:
    from sync_bench import sync_commands

    rows = []
    for scenario in ("no-change", "one-commit"):
        for link in ("loopback", "wan50"):
            commands, before_each = sync_commands(fleet, link, scenario, AGENTSYNC)
            series = alternate(commands, rounds, before_each)
            rows.append({"scenario": scenario, "link": link, "hosts": 3,
                         "series": {k: s.to_dict() for k, s in series.items()}})
            summary = ", ".join(f"{k} {s.median:.2f}s" for k, s in series.items())
            print(f"  sync-all {scenario:10} {link:8} {summary}", flush=True)
    return rows


def bench_rsync(rounds: int) -> tuple[list[dict], str]:
    """A 2,000-file tree pulled by `agentsync results` and by plain rsync (bench_rsync.py builds its own host)."""
    from bench_rsync import Bench, cause

    root = Path(tempfile.mkdtemp(prefix="agentsync-bench-rsync-"))
    bench = Bench(root, rounds)
    try:
        samples, cost_samples = bench.run()
    finally:
        bench.close()
        shutil.rmtree(root, ignore_errors=True)
    rows = []
    for scenario, tools in samples.items():
        series = {"agentsync results": Series(tools["agentsync"]), "rsync -a -e ssh": Series(tools["plain"]),
                  "agentsync (library, warm process)": Series(tools["library"])}
        rows.append({"scenario": scenario, "link": "loopback", "series": {k: v.to_dict() for k, v in series.items()}})
        print(f"  rsync {scenario:16} " + ", ".join(f"{k} {v.median:.3f}s" for k, v in series.items()), flush=True)
    summary = {case: {name: {"median_s": Series(v).median, "ratio_to_plain": Series(v).median / Series(
        tools["plain"]).median} for name, v in tools.items()} for case, tools in samples.items()}
    costs = {name: Series(v).median for name, v in cost_samples.items()}
    return rows, cause(summary, costs)


def bench_jobs(fleet: BenchFleet, rounds: int) -> list[dict]:
    """`run` and `jobs` on 3 hosts behind the proxy against the same steps typed as plain ssh (bench_jobs.py)."""
    from bench_jobs import HOSTS, commands, disconnect_before_cold

    rows = []
    for step, tools in commands(fleet, "wan50").items():
        series = alternate(tools, rounds, disconnect_before_cold(fleet.inventory("wan50", HOSTS)))
        names = list(series)  # agentsync's variants first, the plain-ssh peer last: shown peer second
        ordered = {names[0]: series[names[0]], names[-1]: series[names[-1]], **{n: series[n] for n in names[1:-1]}}
        for name, s in ordered.items():
            print(f"  {step:30} {name:38} {s.median:.3f}s", flush=True)
        rows.append({"step": step, "link": "wan50", "series": {n: s.to_dict() for n, s in ordered.items()}})
    return rows


def bench_cold_start(rounds: int) -> dict:
    commands = {
        "agentsync --help": lambda: run_ok([AGENTSYNC, "--help"]),
        "inv --list": lambda: run_ok([str(Path(sys.executable).parent / "inv"), "--list"], cwd=str(ROOT)),
    }
    series = alternate(commands, rounds)
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import agentsync_fleet.cli"],
                         capture_output=True, text=True, cwd=str(ROOT))
    imports = []
    for line in out.stderr.splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) == 3 and parts[0].strip().isdigit():
            imports.append({"module": parts[2].strip(), "self_us": int(parts[0]), "cumulative_us": int(parts[1])})
    imports.sort(key=lambda i: i["cumulative_us"], reverse=True)
    for name, s in series.items():
        print(f"  cold start {name:18} {s.median * 1000:.0f} ms", flush=True)
    return {"series": {k: s.to_dict() for k, s in series.items()}, "imports": imports[:12],
            "paramiko_imported": any(i["module"] == "paramiko" for i in imports)}


def main() -> int:
    parser = argparse.ArgumentParser(description="agentsync benchmarks")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="1,5,20,50")
    parser.add_argument("--tools", default=",".join(PEERS))
    parser.add_argument("--only", default="health,sync,jobs,rsync,cold", help="sections to run")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    sections = set(args.only.split(","))
    compile_package()  # .pyc files as an installed copy has them, whatever PYTHONDONTWRITEBYTECODE says
    started = time.monotonic()
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "rounds": args.rounds,
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "kernel": platform.release(), "load_before": os.getloadavg(),
                                 "pythondontwritebytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))}}
    root = Path(tempfile.mkdtemp(prefix="agentsync-bench-"))
    # agentsync's journal, ssh sockets and cache for this bench only, never the user's own
    os.environ.update(AGENTSYNC_STATE_DIR=str(root / "state"), XDG_CACHE_HOME=str(root / "cache"))
    fleet = BenchFleet(root, max(sizes + [3])).up()
    try:
        if "health" in sections:
            print("health (--no-fetch), median of alternating rounds:", flush=True)
            results["health"] = bench_health(fleet, sizes, args.rounds, args.tools.split(","))
        if "sync" in sections:
            print("sync-all, 3 hosts:", flush=True)
            results["sync"] = bench_sync(fleet, args.rounds)
        if "jobs" in sections:
            print("jobs: run and jobs, 3 hosts, 50 ms RTT:", flush=True)
            results["jobs"] = bench_jobs(fleet, args.rounds)
    finally:
        fleet.down()
        shutil.rmtree(root, ignore_errors=True)
    if "rsync" in sections:
        print("rsync, 2,000-file tree:", flush=True)
        results["rsync"], results["rsync_cause"] = bench_rsync(args.rounds)
    if "cold" in sections:
        print("cold start:", flush=True)
        results["cold_start"] = bench_cold_start(max(args.rounds, 10))
    results["duration_s"] = round(time.monotonic() - started, 1)
    paths = write_results(results, Path(args.out))
    print(f"wrote {', '.join(str(p) for p in paths)} in {results['duration_s']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
