"""Benchmark: a 2,000-file tree synced through agentsync vs plain `rsync -a -e ssh`, no-change and one-file-change.

A sandbox host (real sshd in its own namespaces, loopback) holds the tree;
both tools pull it into their own copy on the laptop. Every round runs both
tools on the same state, in alternating order (these machines are shared and
noisy: ratios measured side by side are what counts). Reported: the median
of the rounds with min and max, and the ratio to plain rsync, for

* `agentsync results` as a user runs it (a new Python process per run), and
* the same transfer through the library in a warm process (`Runner.run`),
  which separates what the transfer costs from what starting Python costs.

With `--delay 0.025` the host is reached through `delay_proxy.py` (25 ms each way: 50 ms RTT, the
`wan50` link of the health benchmark), which is where round trips show.

Usage (root, for the sandbox namespaces): .venv/bin/python bench/bench_rsync.py [--rounds 7] [--delay 0.025]
Writes bench/results/rsync.json (rsync-wan50.json with a delay).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from measure import compile_package

from agentsync_fleet.sandbox import MOUNT_POINT, Sandbox, free_port

FILES = 2000
HERE = Path(__file__).parent
BENCH_SUBNET = int(os.environ.get("AGENTSYNC_BENCH_SUBNET", "93"))  # 127.<subnet>.0.x; parallel benches pick their own
AGENTSYNC = [sys.executable, "-m", "agentsync_fleet"]


def make_tree(root: Path) -> None:
    rng = random.Random(7)
    for i in range(FILES):
        path = root / f"d{i % 40:02d}" / f"f{i:04d}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(200, 8000)))


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
    return elapsed


class Bench:
    def __init__(self, root: Path, rounds: int, delay: float = 0.0):
        self.root, self.rounds = root, rounds
        self.box = Sandbox(root / "sandbox", subnet=BENCH_SUBNET)
        self.box.add_host("gpu")
        self.box.start_all()
        self.proxy: subprocess.Popen | None = None
        self.ssh_config = self._behind_proxy(delay) if delay else self.box.ssh_config
        self.tree = self.box.hosts["gpu"].path("tree")
        make_tree(self.tree)
        self.plain_dest = root / "plain"
        self.env = {**os.environ, "AGENTSYNC_STATE_DIR": str(root / "state")}
        self.inventory = root / "fleet.yaml"
        self.inventory.write_text(yaml.safe_dump({
            "ssh_config": str(self.ssh_config),
            "transfers": {"backup_dir": f"{MOUNT_POINT}/.agentsync-backups"},
            "hosts": {"laptop": {"local": True, "repo": str(root / "laptop")},
                      "gpu": {"ssh": "gpu", "repo": f"{MOUNT_POINT}/repo",
                              "results": [{"remote": f"{MOUNT_POINT}/tree/", "local": str(root / "agentsync") + "/"}]}},
        }, sort_keys=False))
        (root / "laptop").mkdir()
        self.runner, self.route = self._library()

    def _behind_proxy(self, delay: float) -> Path:
        """gpu behind delay_proxy.py: an ssh_config and known_hosts of its own for the delayed address."""
        gpu = self.box.hosts["gpu"]
        address = f"127.{BENCH_SUBNET}.1.2"
        port = free_port(address)
        self.proxy = subprocess.Popen([sys.executable, str(HERE / "delay_proxy.py"), "--delay", str(delay),
                                       f"{address}:{port}={gpu.address}:{gpu.port}"], stdout=subprocess.PIPE, text=True)
        assert self.proxy.stdout.readline().strip() == "ready"
        wan = self.root / "wan"
        wan.mkdir()
        (wan / "known_hosts").write_text(f"[{address}]:{port} {self.box.host_public_key('gpu')}\n")
        (wan / "ssh_config").write_text("\n".join([
            "Host gpu", f"  HostName {address}", f"  Port {port}", "  User root",
            f"  IdentityFile {self.box.client_key}", "  IdentitiesOnly yes",
            f"  UserKnownHostsFile {wan / 'known_hosts'}", ""]))
        return wan / "ssh_config"

    def _library(self):
        from agentsync_fleet import inventory
        from agentsync_fleet.transfer import plan as P
        from agentsync_fleet.transfer.run import Runner

        inv = inventory.load(self.inventory)
        opts = P.LegOptions.for_inventory(inv, "bench", str(self.root / "state"))
        return Runner(inv, opts), P.pull_routes(inv, inv.hosts["gpu"])[0]

    def plain(self) -> float:
        rsh = f"ssh -F {self.ssh_config} -o BatchMode=yes"
        return timed(["rsync", "-a", "-e", rsh, f"gpu:{MOUNT_POINT}/tree/", str(self.plain_dest) + "/"], self.env)

    def cli(self) -> float:
        return timed([*AGENTSYNC, "results", "--host", "gpu", "--inventory", str(self.inventory)], self.env)

    def cli_dry_run(self) -> float:
        """The same command without the fleet lock (a dry run takes none) and with `rsync -n`."""
        return timed([*AGENTSYNC, "results", "--dry-run", "--host", "gpu", "--inventory", str(self.inventory)],
                     self.env)

    def library(self) -> float:
        start = time.perf_counter()
        result = self.runner.run(self.route)
        elapsed = time.perf_counter() - start
        if not result.ok:
            raise SystemExit(f"library transfer failed: {result.error}")
        return elapsed

    def change_one_file(self, round_no: int) -> None:
        path = self.tree / f"d{round_no % 40:02d}" / f"f{round_no:04d}.dat"
        path.write_bytes(os.urandom(path.stat().st_size + 1))

    def run(self) -> tuple[dict, dict[str, list[float]]]:
        tools = {"agentsync": self.cli, "library": self.library, "plain": self.plain}
        for tool in tools.values():  # first full copy, and warm caches
            tool()
        samples: dict[str, dict[str, list[float]]] = {"no-change": {}, "one-file-change": {}}
        costs: dict[str, list[float]] = {}
        for round_no in range(self.rounds):
            order = list(tools) if round_no % 2 == 0 else list(reversed(tools))
            for name in order:
                samples["no-change"].setdefault(name, []).append(tools[name]())
            self.change_one_file(round_no)
            for name in order:  # every tool pulls the same one changed file
                samples["one-file-change"].setdefault(name, []).append(tools[name]())
            for name, argv in self.probes().items():  # measured in the same rounds, under the same load
                costs.setdefault(name, []).append(timed(argv, self.env))
            costs.setdefault("results --dry-run", []).append(self.cli_dry_run())
        return samples, costs

    def probes(self) -> dict[str, list[str]]:
        """Where the CLI's extra time goes: starting Python and importing what `agentsync results` imports."""
        return {"python -c pass": [sys.executable, "-c", "pass"],
                "import invoke": [sys.executable, "-c", "import invoke"],
                "import cli (invoke)": [sys.executable, "-c", "import agentsync_fleet.cli"],
                "import transfer path": [sys.executable, "-c", "import agentsync_fleet.cli, agentsync_fleet.inventory,"
                                         " agentsync_fleet.transfer.task, agentsync_fleet.output.transfer"],
                "ssh -G": ["ssh", "-F", str(self.ssh_config), "-G", "gpu"]}

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.terminate()
            self.proxy.wait(5)
        self.box.destroy()


def summarize(samples: dict[str, dict[str, list[float]]]) -> dict:
    out = {}
    for case, tools in samples.items():
        plain = statistics.median(tools["plain"])
        out[case] = {name: {"median_s": round(statistics.median(v), 4), "min_s": round(min(v), 4),
                            "max_s": round(max(v), 4), "ratio_to_plain": round(statistics.median(v) / plain, 3),
                            "samples_s": [round(x, 4) for x in v]} for name, v in tools.items()}
    return out


def cause(summary: dict, costs: dict[str, float]) -> str:
    """The measured reason the CLI is slower than plain rsync (or that it is not)."""
    case = summary["no-change"]
    cli, lib = case["agentsync"]["median_s"], case["library"]["median_s"]
    extra, imports = cli - lib, costs["import transfer path"]
    ms = {k: round(v * 1000) for k, v in costs.items()}
    lock = max(0.0, cli - costs["results --dry-run"])
    return (f"no-change: the transfer itself is {case['library']['ratio_to_plain']:.2f}× plain rsync (library, warm "
            f"process); the CLI is {case['agentsync']['ratio_to_plain']:.2f}× because of what surrounds it: "
            f"{round(extra * 1000)} ms more than the library call, of which {round(imports * 1000)} ms is starting "
            f"Python and importing the command path (python alone {ms['python -c pass']} ms, `import invoke` "
            f"{ms['import invoke']} ms incl. python, `import agentsync_fleet.cli` {ms['import cli (invoke)']} ms) "
            f"and about {round(lock * 1000)} ms is the fleet lock the task must take (two commands over the host's ssh "
            "master to write and later remove .git/agentsync.lock, measured as the CLI minus its lock-free --dry-run); "
            f"the rest is loading the inventory and printing the report. ssh -G costs {ms['ssh -G']} ms.")


def table(summary: dict, costs: dict[str, float]) -> str:
    lines = [f"{'case':<16} {'tool':<22} {'median':>8} {'min':>8} {'max':>8} {'× plain':>8}"]
    labels = {"agentsync": "agentsync results (CLI)", "library": "agentsync (library)", "plain": "rsync -a -e ssh"}
    for case, tools in summary.items():
        for name, s in tools.items():
            lines.append(f"{case:<16} {labels[name]:<22} {s['median_s']:>7.3f}s {s['min_s']:>7.3f}s "
                         f"{s['max_s']:>7.3f}s {s['ratio_to_plain']:>7.2f}×")
    lines.append("startup costs (median): " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in costs.items()))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds added each way (0.025: 50 ms RTT)")
    args = parser.parse_args()
    compile_package()  # .pyc files as an installed copy has them (see measure.compile_package)
    root = Path(tempfile.mkdtemp(prefix="agentsync-bench-rsync-"))
    bench = Bench(root, max(5, args.rounds), args.delay)
    try:
        samples, cost_samples = bench.run()
        summary = summarize(samples)
        costs = {name: statistics.median(v) for name, v in cost_samples.items()}
    finally:
        bench.close()
        shutil.rmtree(root, ignore_errors=True)
    print(table(summary, costs))
    print(cause(summary, costs))
    result = {"benchmark": "rsync", "files": FILES, "rtt_ms": round(args.delay * 2000), "rounds": max(5, args.rounds), "goal": "no-change ≤ 1.2× plain",
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.platform(),
              "cpus": os.cpu_count(), "rsync": subprocess.run(["rsync", "--version"], capture_output=True,
                                                              text=True).stdout.splitlines()[0],
              "cases": summary, "startup_costs_s": {k: round(v, 4) for k, v in costs.items()},
              "cause": cause(summary, costs)}
    out = HERE / "results" / ("rsync-wan50.json" if args.delay else "rsync.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
