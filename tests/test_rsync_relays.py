"""Relays and runs, against real hosts and the real rsync: a relay's dry run, its target under another
run's lock or left alone by sync-all, backups on a relay's target, laptop backups with a relative state dir."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rsync_support import BACKUPS, files, inventory, run, write

from agentsync_fleet.locks.model import Holder

AGENTSYNC = [sys.executable, "-m", "agentsync_fleet"]






def test_a_first_dry_run_of_a_relay_lists_what_would_come_and_moves_nothing(fleet):
    write(fleet.repo("cloud") / "data" / "train.csv", "a,b\n")
    entry = {"name": "to-gpu", "direction": "pull", "src": "data/", "dest": "gpu:incoming/"}
    inv = inventory(fleet, {"laptop": {}, "cloud": {"rsync": [entry]}, "gpu": {}})

    code, data = run(fleet, "results", "--host", "cloud", "--dry-run", inv=inv)

    t = data["by_name"]["to-gpu"]
    assert code == 0 and t["status"] == "ok", t
    assert {(c["action"], c["path"]) for c in t["changes"]} >= {("new", "train.csv")}
    assert t["files"] == 1 and any("relay cache is still empty" in w for w in t["warnings"]), t["warnings"]
    assert not (fleet.root / "state" / "relay").exists() and not (fleet.repo("gpu") / "incoming").exists()

    assert run(fleet, "results", "--host", "cloud", inv=inv)[0] == 0
    write(fleet.repo("cloud") / "data" / "more.csv", "c,d\n")
    code, data = run(fleet, "results", "--host", "cloud", "--dry-run", inv=inv)

    t = data["by_name"]["to-gpu"]  # the cache is there now, but as the last run left it: said so
    assert code == 0 and ("new", "more.csv") in {(c["action"], c["path"]) for c in t["changes"]}
    assert any("as the last run left it" in w for w in t["warnings"]), t["warnings"]
    assert not (fleet.repo("gpu") / "incoming" / "more.csv").exists()


def test_a_relay_does_not_write_into_a_target_host_another_run_holds(fleet):
    write(fleet.repo("cloud") / "data" / "train.csv", "a,b\n")
    entry = {"name": "to-gpu", "direction": "pull", "src": "data/", "dest": "gpu:incoming/"}
    inv = inventory(fleet, {"laptop": {}, "cloud": {"rsync": [entry]}, "gpu": {}})
    other = Holder("ann@laptop-2", "laptop-2", 4242, "99", time.time() - 60, "20260101-000000-abcdef", "sync-all",
                   "/x/fleet.yaml")
    lock = fleet.repo("gpu") / ".git" / "agentsync.lock"
    lock.write_text(other.to_json() + "\n")

    result = fleet.agentsync("results", "--host", "cloud", inventory=inv)

    assert result.returncode == 1 and "the fleet is locked on gpu" in result.stderr, result.stderr
    assert not (fleet.repo("gpu") / "incoming").exists()
    lock.unlink()


def test_a_relative_state_dir_keeps_backups_out_of_the_destination(fleet):
    write(fleet.repo("gpu") / "results" / "score.txt", "new from gpu\n")
    write(fleet.repo("laptop") / "results" / "gpu" / "score.txt", "old\n")
    inv = inventory(fleet, {"laptop": {}, "gpu": {"results": [{"remote": "results/", "local": "results/gpu/"}]}})
    env = {**os.environ, "AGENTSYNC_STATE_DIR": "state-rel"}
    proc = subprocess.run([*AGENTSYNC, "results", "--json", "--inventory", str(inv)], cwd=fleet.root, env=env,
                          capture_output=True, text=True, timeout=120)

    assert proc.returncode == 0, proc.stderr
    (backup,) = json.loads(proc.stdout)["transfers"][0]["backed_up"]
    assert backup["backup"].startswith(str(fleet.root / "state-rel" / "backups") + "/")
    assert Path(backup["backup"]).read_text() == "old\n"
    assert files(fleet.repo("laptop") / "results" / "gpu") == {"score.txt"}


def test_sync_all_never_writes_into_a_host_the_run_leaves_alone(fleet):
    write(fleet.repo("cloud") / "data" / "train.csv", "a,b\n")
    entry = {"name": "to-gpu", "direction": "pull", "src": "data/", "dest": "gpu:incoming/"}
    inv = inventory(fleet, {"laptop": {}, "cloud": {"rsync": [entry]}, "gpu": {}})

    result = fleet.agentsync("sync-all", "--json", "--hosts", "laptop,cloud", inventory=inv)

    assert result.returncode == 0, result.stdout + result.stderr
    cloud = next(h for h in json.loads(result.stdout)["hosts"] if h["host"] == "cloud")
    assert "to-gpu: not run: gpu is not part of this run (--hosts); it is left as it was" in cloud["warnings"]
    assert not (fleet.repo("gpu") / "incoming").exists() and not (fleet.root / "state" / "relay").exists()
    plan = fleet.agentsync("plan", "--hosts", "laptop,cloud", inventory=inv)
    assert "cloud: to-gpu — not run: gpu is not part of this run" in plan.stdout, plan.stdout

    fleet.commit("gpu", "README.md", "gpu's commit\n", "gpu change")  # gpu's converge stops on a conflict
    fleet.commit("laptop", "README.md", "laptop's commit\n", "laptop change")
    result = fleet.agentsync("sync-all", "--json", inventory=inv)

    hosts = {h["host"]: h for h in json.loads(result.stdout)["hosts"]}
    assert hosts["gpu"]["status"] == "conflict" and hosts["cloud"]["status"] == "ok"
    assert "to-gpu: not run: gpu ended conflict earlier in this run; it is left as it was" in hosts["cloud"]["warnings"]
    assert not (fleet.repo("gpu") / "incoming").exists()


def test_a_relay_backs_up_on_the_target_what_it_replaces_or_deletes_and_the_restore_works(fleet):
    write(fleet.repo("cloud") / "data" / "a.txt", "new from cloud, longer\n")
    write(fleet.repo("gpu") / "in" / "a.txt", "gpu's a\n")
    write(fleet.repo("gpu") / "in" / "stale.txt", "only on gpu\n")
    entry = {"name": "mirror", "direction": "pull", "src": "data/", "dest": "gpu:in/", "delete": True}
    inv = inventory(fleet, {"laptop": {}, "cloud": {"rsync": [entry]}, "gpu": {}})

    result = fleet.agentsync("results", "--json", "--host", "cloud", inventory=inv)

    assert result.returncode == 0, result.stdout + result.stderr
    (t,) = json.loads(result.stdout)["transfers"]
    assert not (fleet.repo("gpu") / "in" / "stale.txt").exists() and t["deleted"] == 1
    gpu = fleet.sandbox.hosts["gpu"]
    kept = {b["path"]: gpu.path(b["backup"]).read_text() for b in t["backed_up"]}
    assert kept == {"a.txt": "gpu's a\n", "stale.txt": "only on gpu\n"}
    assert all(b["backup"].startswith(f"{BACKUPS}/") for b in t["backed_up"])  # on gpu, not on the laptop
    subprocess.run(t["restore_all"], shell=True, check=True, timeout=30)
    assert (fleet.repo("gpu") / "in" / "a.txt").read_text() == "gpu's a\n"
    assert (fleet.repo("gpu") / "in" / "stale.txt").read_text() == "only on gpu\n"
