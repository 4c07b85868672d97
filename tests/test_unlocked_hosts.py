"""A host whose fleet lock was not taken is never touched, by any task that changes the fleet: `artifacts`,
`results`, `push-code`, `patch-relay` and `recover` refuse it with the reason (sync-all's own test is in
test_real_hosts.py), and the other hosts go on. Real sshd hosts, real git, rsync and AWS CLI (moto's server).

The lock is kept from being taken the way a real host can: its git fails when the lock asks for the repo's
common dir (nothing else in these runs asks git for that)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from rsync_support import inventory, run, write
from s3_support import Bucket, laptop_env
from test_artifacts import by_path, write_files
from test_relay import OFFLINE, commit_dated, relay, relay_dirs

from agentsync_fleet.sandbox_fleet import install_tool
from agentsync_fleet.steps.git import INTENT

LOCK_FAILS = ('#!/bin/sh\ncase "$*" in *--git-common-dir*) echo "fatal: cannot lock the repo" >&2; exit 128 ;; '
              'esac\nexec /usr/bin/git "$@"\n')
WHY = "the fleet lock could not be taken on cloud"


@pytest.fixture
def bucket(moto_s3) -> Bucket:
    return Bucket(moto_s3)


@contextmanager
def lock_fails_on(fleet, host: str) -> Iterator[None]:
    """The host's git refuses the lock's question for as long as the block runs; its own git comes back after."""
    tool = fleet.sandbox.hosts[host].bin_dir / "git"
    before = tool.read_text() if tool.exists() else None
    install_tool(fleet.sandbox, host, "git", LOCK_FAILS)
    try:
        yield
    finally:
        if before is None:
            tool.unlink()
        else:
            install_tool(fleet.sandbox, host, "git", before)


def test_artifacts_never_upload_from_a_host_whose_lock_was_not_taken_and_the_others_go_on(fleet, bucket, aws_env):
    write_files(fleet.repo("cloud") / "models", {"weights.bin": b"cloud weights\n"})
    write_files(fleet.repo("gpu") / "models", {"weights.bin": b"gpu weights\n"})
    inv = fleet.inventory({"laptop": {},
                           "cloud": {"s3": [{"path": "models", "url": bucket.url("cloud"), "direction": "up"}]},
                           "gpu": {"s3": [{"path": "models", "url": bucket.url("gpu"), "direction": "up"}]}},
                          s3=bucket.settings())

    with lock_fails_on(fleet, "cloud"):
        result = fleet.agentsync("artifacts", "--json", inventory=inv, env=laptop_env(aws_env))

    data = json.loads(result.stdout)
    entries = by_path(data)
    cloud = entries[("cloud", "models")]
    assert result.returncode == 1 and cloud["status"] == "skipped", cloud
    assert WHY in cloud["message"] and "cannot lock the repo" in cloud["message"]
    assert bucket.keys("cloud") == {}  # nothing left cloud
    assert entries[("gpu", "models")]["status"] == "ok" and bucket.keys("gpu") == {"gpu/weights.bin": 12}


def test_results_and_push_code_never_touch_a_host_whose_lock_was_not_taken_and_the_others_go_on(fleet):
    write(fleet.repo("cloud") / "results" / "cloud.csv", "from cloud\n")
    write(fleet.repo("gpu") / "results" / "gpu.csv", "from gpu\n")
    write(fleet.repo("laptop") / "strategies" / "momentum.py", "WINDOW = 300\n")
    hosts = {"laptop": {}, "cloud": {"results": [{"remote": "results/", "local": "results/cloud/"}]},
             "gpu": {"results": [{"remote": "results/", "local": "results/gpu/"}]}}
    inv = inventory(fleet, hosts)
    laptop = fleet.repo("laptop")

    with lock_fails_on(fleet, "cloud"):
        code, data = run(fleet, "results", inv=inv)
        by_host = {t["host"]: t for t in data["transfers"]}
        assert code == 1 and by_host["cloud"]["status"] == "skipped", by_host["cloud"]
        assert WHY in by_host["cloud"]["error"] and "cannot lock the repo" in by_host["cloud"]["error"]
        assert not (laptop / "results" / "cloud").exists()
        assert by_host["gpu"]["status"] == "ok" and (laptop / "results" / "gpu" / "gpu.csv").read_text() == "from gpu\n"

        people = fleet.agentsync("results", inventory=inv)
        assert people.returncode == 1 and WHY in people.stdout + people.stderr

        code, data = run(fleet, "push-code", "--host", "cloud,gpu", inv=inv)
        by_host = {t["host"]: t for t in data["transfers"]}
        assert code == 1 and by_host["cloud"]["status"] == "skipped" and WHY in by_host["cloud"]["error"]
        assert (fleet.repo("cloud") / "strategies" / "momentum.py").read_text() != "WINDOW = 300\n"
        assert by_host["gpu"]["status"] == "ok"
        assert (fleet.repo("gpu") / "strategies" / "momentum.py").read_text() == "WINDOW = 300\n"


def test_patch_relay_never_touches_either_end_when_one_ends_lock_was_not_taken(fleet):
    commit_dated(fleet, "cloud", {"strategies/mean_reversion.py": "LOOKBACK = 48\n"}, "Cloud work",
                 "2024-01-02T03:04:05+02:00")
    laptop_before, cloud_before = fleet.head("laptop"), fleet.head("cloud")
    inv = fleet.inventory({"laptop": {}, "cloud": OFFLINE})

    with lock_fails_on(fleet, "cloud"):
        code, report = relay(fleet, inv, "--from", "cloud")

    assert code == 1 and report["status"] == "skipped", report
    assert WHY in report["message"] and "cannot lock the repo" in report["message"]
    assert fleet.head("laptop") == laptop_before and fleet.head("cloud") == cloud_before
    assert relay_dirs(fleet, "laptop") == [] and relay_dirs(fleet, "cloud") == []
    assert report["commands"] == []  # not one command ran on either end

    code, report = relay(fleet, inv, "--from", "cloud")  # the lock can be taken again: the relay runs
    assert code == 0 and report["status"] == "ok", report["message"]
    assert "Cloud work" in fleet.git("laptop", "log", "--format=%s", "-n", "1")


def test_recover_never_heals_a_host_whose_lock_was_not_taken_and_the_others_go_on(fleet):
    inv = fleet.inventory({"laptop": {}, "cloud": {}, "gpu": {}})
    for host in ("cloud", "gpu"):  # a leftover recover would act on: an intent record it cannot read
        (fleet.repo(host) / ".git" / INTENT).write_text("{not json")

    with lock_fails_on(fleet, "cloud"):
        result = fleet.agentsync("recover", "--hosts", "cloud,gpu", "--json", inventory=inv)

    rows = {row["host"]: row for row in json.loads(result.stdout)["hosts"]}
    assert result.returncode == 1 and rows["cloud"]["status"] == "failed", rows
    assert WHY in rows["cloud"]["problem"] and "intent record" not in rows["cloud"]["problem"]
    assert rows["cloud"]["actions"] == [] and rows["cloud"]["stashes"] == []
    assert (fleet.repo("cloud") / ".git" / INTENT).read_text() == "{not json"  # left exactly as it was
    assert "unreadable intent record" in rows["gpu"]["problem"]  # gpu, locked, was looked at
