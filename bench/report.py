"""Write the benchmark results: latest.json (raw), latest.md (tables with ratios, goals) and latest.png."""

from __future__ import annotations

import json
from pathlib import Path

GOALS_TEXT = {
    "health_vs_xargs": "health at 20 hosts, 50 ms RTT, cold (no master): no slower than `xargs -P ssh` (ratio ≤ 1.0)",
    "health_warm_vs_xargs": "health at 20 hosts, 50 ms RTT, warm (masters up): ≥ 3× faster than `xargs -P ssh`",
    "health_vs_ansible": "health at 20 hosts, 50 ms RTT, both warm (Ansible's ControlPersist): ≥ 4× faster than Ansible",
    "sync_vs_sequential": "sync-all (3 hosts, 50 ms RTT): ≥ 2× faster than the sequential ssh script",
    "rsync_no_change": "no-change rsync: ≤ 1.2× plain rsync",
    "run_vs_ssh": "`run` (cold, 50 ms RTT): within 1.2× of starting the job with plain `ssh host 'setsid nohup … &'`",
    "jobs_vs_sequential": "`jobs` on 3 hosts (cold, 50 ms RTT): faster than 3 sequential ssh calls (ratio < 1.0)",
    "help_cold_start": "`agentsync --help` under 0.3 s",
}


def _cell(series: dict) -> str:
    return f"{series['median']:.2f} s ({series['min']:.2f}–{series['max']:.2f})"


def _health_rows(results: dict) -> list[str]:
    rows = ["| link | hosts | agentsync (warm) | agentsync (cold) | xargs -P ssh | Ansible | pyinfra |",
            "|---|---|---|---|---|---|---|"]
    for row in results.get("health", []):
        s = row["series"]
        ours = s["agentsync"]["median"]
        cells = [_cell(s["agentsync"])]
        for peer in ("agentsync-cold", "xargs-ssh", "ansible", "pyinfra"):
            if peer in s:
                cells.append(f"{_cell(s[peer])} — **{s[peer]['median'] / ours:.2f}×**")
            else:
                cells.append("n/a")
        rows.append(f"| {row['link']} | {row['hosts']} | " + " | ".join(cells) + " |")
    return rows


def _pair_rows(rows_in: list[dict], title: str, key: str) -> list[str]:
    """agentsync (first series) against the peer (second); any further series are shown as extra cells."""
    rows = [f"| {title} | link | agentsync | peer | peer ÷ agentsync | also measured |", "|---|---|---|---|---|---|"]
    for row in rows_in:
        names = list(row["series"])
        ours, peer = row["series"][names[0]], row["series"][names[1]]
        extra = "; ".join(f"{n}: {_cell(row['series'][n])}" for n in names[2:])
        rows.append(f"| {row[key]} | {row.get('link', 'loopback')} | {names[0]}: {_cell(ours)} | {names[1]}: "
                    f"{_cell(peer)} | **{peer['median'] / ours['median']:.2f}×** | {extra} |")
    return rows


def goals(results: dict) -> dict:
    out = {}
    for row in results.get("health", []):
        if row["link"] == "wan50" and row["hosts"] == 20:
            s = row["series"]
            cold = s.get("agentsync-cold", s["agentsync"])
            if "xargs-ssh" in s:
                ratio = cold["median"] / s["xargs-ssh"]["median"]
                out["health_vs_xargs"] = {"value": round(ratio, 2), "met": ratio <= 1.0}
                speedup = s["xargs-ssh"]["median"] / s["agentsync"]["median"]
                out["health_warm_vs_xargs"] = {"value": round(speedup, 2), "met": speedup >= 3}
            if "ansible" in s:  # Ansible keeps its own masters (ControlPersist=60s by default): warm against warm
                speedup = s["ansible"]["median"] / s["agentsync"]["median"]
                out["health_vs_ansible"] = {"value": round(speedup, 2), "met": speedup >= 4}
    for row in results.get("sync", []):
        if row["link"] == "wan50":
            s = list(row["series"].values())
            speedup = s[1]["median"] / s[0]["median"]
            prev = out.get("sync_vs_sequential")
            worst = min(speedup, prev["value"]) if prev else speedup
            out["sync_vs_sequential"] = {"value": round(worst, 2), "met": worst >= 2}
    for row in results.get("rsync", []):
        if row["scenario"] == "no-change":
            s = list(row["series"].values())
            ratio = s[0]["median"] / s[1]["median"]
            out["rsync_no_change"] = {"value": round(ratio, 2), "met": ratio <= 1.2}
    for row in results.get("jobs", []):
        s = row["series"]
        key = "run_vs_ssh" if row["step"].startswith("run") else "jobs_vs_sequential"
        cold = next(v for n, v in s.items() if n.endswith("(cold)"))
        ratio = cold["median"] / list(s.values())[1]["median"]
        out[key] = {"value": round(ratio, 2), "met": ratio <= 1.2 if key == "run_vs_ssh" else ratio < 1.0}
    cold = results.get("cold_start", {}).get("series", {}).get("agentsync --help")
    if cold:
        out["help_cold_start"] = {"value": cold["median"], "met": cold["median"] < 0.3}
    return out


def markdown(results: dict, causes: dict[str, str]) -> str:
    lines = [f"# Benchmark results — {results['started']}", "",
             f"Machine: {results['machine']['cpus']} CPUs, Python {results['machine']['python']}, kernel "
             f"{results['machine']['kernel']}, load before {results['machine']['load_before'][0]:.2f}. "
             f"Each figure: median of {results['rounds']} alternating rounds (min–max); ratios are peer ÷ agentsync "
             f"(above 1: agentsync is faster), measured in this one run. Total time {results['duration_s']:.0f} s.",
             "", "## Goals", ""]
    for key, verdict in goals(results).items():
        mark = "met" if verdict["met"] else "**not met**"
        cause = "" if verdict["met"] else f" — measured cause: {causes.get(key, 'see notes below')}"
        lines.append(f"- {GOALS_TEXT[key]}: {verdict['value']} → {mark}{cause}")
    lines += ["", "## health --no-fetch", "", *_health_rows(results), ""]
    if results.get("sync"):
        lines += ["## sync-all, 3 hosts + laptop", "", *_pair_rows(results["sync"], "scenario", "scenario"), ""]
    if results.get("jobs"):
        lines += ["## Jobs: `run` and `jobs`, 3 hosts, 50 ms RTT", "", *_pair_rows(results["jobs"], "step", "step"), ""]
    if results.get("rsync"):
        lines += ["## rsync, 2,000-file tree", "", *_pair_rows(results["rsync"], "scenario", "scenario"), ""]
    cold = results.get("cold_start")
    if cold:
        lines += ["## Cold start", "", "| command | wall time |", "|---|---|"]
        lines += [f"| `{name}` | {_cell(s)} |" for name, s in cold["series"].items()]
        lines += ["", f"paramiko imported by `import agentsync_fleet.cli`: {cold['paramiko_imported']}", "",
                  "Top import costs (`python -X importtime -c 'import agentsync_fleet.cli'`):", "",
                  "| module | cumulative µs |", "|---|---|"]
        lines += [f"| `{i['module']}` | {i['cumulative_us']} |" for i in cold["imports"][:10]]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    links = sorted({r["link"] for r in results.get("health", [])})
    if not links:
        return False
    fig, axes = plt.subplots(1, len(links), figsize=(6 * len(links), 4.5), squeeze=False)
    for ax, link in zip(axes[0], links, strict=True):
        rows = [r for r in results["health"] if r["link"] == link]
        for tool in rows[0]["series"]:
            xs = [r["hosts"] for r in rows if tool in r["series"]]
            ys = [r["series"][tool]["median"] for r in rows if tool in r["series"]]
            ax.plot(xs, ys, marker="o", label=tool)
        ax.set_title(f"health --no-fetch, {link}")
        ax.set_xlabel("hosts")
        ax.set_ylabel("seconds (median)")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def write_results(results: dict, out: Path, causes: dict[str, str] | None = None) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    results["goals"] = goals(results)
    causes = {**load_causes(out), **(causes or {})}
    if results.get("rsync_cause"):
        causes["rsync_no_change"] = results["rsync_cause"]  # measured in this run, see bench_rsync.cause
    paths = [out / "latest.json", out / "latest.md"]
    paths[0].write_text(json.dumps(results, indent=2) + "\n")
    paths[1].write_text(markdown(results, causes))
    if plot(results, out / "latest.png"):
        paths.append(out / "latest.png")
    return paths


def load_causes(out: Path) -> dict[str, str]:
    """Causes of missed goals, written down after profiling (bench/results/causes.json)."""
    path = out / "causes.json"
    return json.loads(path.read_text()) if path.exists() else {}
