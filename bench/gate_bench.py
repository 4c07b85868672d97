"""How much the deploy gate's checks cost `health`: round trips (commands per host) and wall time.

Builds the 3-host sandbox (laptop + cloud + gpu, real sshd), writes
results/metrics.json on every host, and compares `health` with no checks,
with two metric checks only, and with two metric checks plus one `run: true`
check (in `defaults`, so on every host). Commands are counted at the session
interface (each `run` is one exec channel: one round trip); time is the
median of alternating rounds, in-process (fresh connections each round) and
through the CLI.

    .venv/bin/python bench/gate_bench.py [--subnet 107] [--rounds 9]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from agentsync_fleet import inventory  # noqa: E402
from agentsync_fleet.health import check_fleet  # noqa: E402
from agentsync_fleet.remote import Connector  # noqa: E402
from agentsync_fleet.sandbox_fleet import PROJECT, build  # noqa: E402

METRICS = '{"accuracy": 0.71, "eval": {"calibration_error": 0.03}}\n'
CHECKS = [
    {"name": "accuracy", "metric": {"file": "results/metrics.json", "key": "accuracy", "min": 0.68}},
    {"name": "calibration", "metric": {"file": "results/metrics.json", "key": "eval.calibration_error", "max": 0.05}},
    {"name": "smoke", "run": "true"},
]
VARIANTS = {  # name → (inventory with checks?, check names: None = --no-checks, () = all)
    "no checks in inventory": (False, ()),
    "checks, --no-checks": (True, None),
    "2 metric checks": (True, ("accuracy", "calibration")),
    "2 metric + 1 run: true": (True, ()),
}


class CountingConnector(Connector):
    """Counts every command each host's session runs (one exec channel = one round trip)."""

    def __init__(self, inv, counts: Counter):
        super().__init__(inv)
        self.counts = counts

    def session(self, host):
        real = super().session(host)
        counts = self.counts
        run = real.run

        def counted(command, **kwargs):
            counts[host.name] += 1
            return run(command, **kwargs)

        real.run = counted
        return real


def once(inv, checks) -> tuple[float, Counter, bool]:
    counts: Counter = Counter()
    connector = CountingConnector(inv, counts)
    start = time.monotonic()
    try:
        report = check_fleet(inv, inv.select(None), connector, fetch=False, checks=checks)
    finally:
        connector.close_all()
    ok = all(all(c.passed for c in h.checks) for h in report.hosts) and all(h.reachable for h in report.hosts)
    return time.monotonic() - start, counts, ok


def cli(path: Path, checks) -> float:
    argv = [sys.executable, "-m", "agentsync_fleet", "health", "--json", "--no-fetch", "--inventory", str(path)]
    argv += ["--no-checks"] if checks is None else [f"--check={n}" for n in checks]
    start = time.monotonic()
    subprocess.run(argv, capture_output=True, text=True, check=False)
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subnet", type=int, default=107)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-bench-") as tmp:
        sandbox, path = build(Path(tmp) / "sb", args.subnet)
        try:
            run(sandbox, path, args.rounds)
        finally:
            sandbox.destroy()


def run(sandbox, path: Path, rounds: int) -> None:
    data = yaml.safe_load(path.read_text())
    laptop_repo = Path(data["hosts"]["laptop"]["repo"])
    for repo in (laptop_repo, *(sandbox.hosts[n].path(PROJECT) for n in ("cloud", "gpu"))):
        (repo / "results").mkdir(exist_ok=True)
        (repo / "results" / "metrics.json").write_text(METRICS)
    plain = path.with_name("plain.yaml")
    plain.write_text(yaml.safe_dump(data, sort_keys=False))
    data["defaults"]["checks"] = CHECKS
    gated = path.with_name("gated.yaml")
    gated.write_text(yaml.safe_dump(data, sort_keys=False))
    invs = {False: inventory.load(plain), True: inventory.load(gated)}
    paths = {False: plain, True: gated}
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    cli_times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    counts: dict[str, Counter] = {}
    for name, (with_checks, checks) in VARIANTS.items():  # warm-up, and the command counts
        _, counts[name], ok = once(invs[with_checks], checks)
        assert ok, f"{name}: a check did not pass or a host was unreachable"
    for _ in range(rounds):
        for name, (with_checks, checks) in VARIANTS.items():
            times[name].append(once(invs[with_checks], checks)[0])
            cli_times[name].append(cli(paths[with_checks], checks))
    print(f"health --no-fetch, 3 hosts (laptop local, cloud, gpu), median of {rounds} alternating rounds")
    print(f"{'variant':28} {'commands laptop/cloud/gpu':>26} {'in-process':>11} {'CLI':>8}")
    for name in VARIANTS:
        c = counts[name]
        per_host = "/".join(str(c[h]) for h in ("laptop", "cloud", "gpu"))
        print(f"{name:28} {per_host:>26} {statistics.median(times[name]) * 1000:9.0f}ms "
              f"{statistics.median(cli_times[name]):7.2f}s  (in-process min {min(times[name]) * 1000:.0f}ms, "
              f"max {max(times[name]) * 1000:.0f}ms)")


if __name__ == "__main__":
    main()
