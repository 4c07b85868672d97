"""The artifacts task in the run journal (files, bytes per entry, as each finishes) and under the fleet lock."""

from __future__ import annotations

import json
import os
import time

import pytest
from s3_support import Bucket, laptop_env

from agentsync_fleet.locks.model import Holder

DATA = {"weights.bin": os.urandom(120_000), "config.json": b'{"layers": 12}\n'}


@pytest.fixture
def bucket(moto_s3) -> Bucket:
    return Bucket(moto_s3)


def models_on_cloud(fleet) -> None:
    an_hour_ago = time.time() - 3600  # the AWS CLI compares times to the second
    for name, data in DATA.items():
        path = fleet.repo("cloud") / "models" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (an_hour_ago, an_hour_ago))


def test_artifact_entries_are_journaled_with_files_and_bytes(fleet, bucket, aws_env):
    models_on_cloud(fleet)
    inv = fleet.inventory({"laptop": {}, "cloud": {"s3": [{"path": "models", "url": bucket.url("m"),
                                                             "direction": "up"}]}}, s3=bucket.settings())
    result = fleet.agentsync("artifacts", "--json", inventory=inv, env=laptop_env(aws_env))
    assert result.returncode == 0, result.stderr

    detail = json.loads(fleet.agentsync("history.show", "last", "--json").stdout)
    assert detail["task"] == "artifacts" and detail["status"] == "ok"
    [step] = detail["steps"]
    assert (step["host"], step["stage"], step["status"]) == ("cloud", "artifacts-up", "ok")
    assert step["files"] == 2 and step["bytes"] == sum(len(v) for v in DATA.values())
    assert step["exit_code"] == 0 and "aws s3 sync" in step["commands"][0]["command"]
    assert [(h["host"], h["status"]) for h in detail["hosts"]] == [("cloud", "ok")]
    human = fleet.agentsync("history.show", "last")
    assert "2 files" in human.stdout and "117.2 KiB" in human.stdout

    (fleet.repo("cloud") / "models" / "more.bin").write_bytes(b"x" * 1000)
    synced = fleet.agentsync("sync-all", "--json", inventory=inv, env=laptop_env(aws_env))
    assert synced.returncode == 0, synced.stderr
    steps = json.loads(fleet.agentsync("history.show", "last", "--json").stdout)["steps"]
    [up] = [s for s in steps if s["stage"] == "artifacts-up"]  # the sync-all stage is journaled the same way
    assert (up["host"], up["status"], up["files"], up["bytes"]) == ("cloud", "ok", 1, 1000)


def test_artifacts_are_refused_while_another_run_holds_the_fleet(fleet, bucket, aws_env):
    models_on_cloud(fleet)
    inv = fleet.inventory({"laptop": {}, "cloud": {"s3": [{"path": "models", "url": bucket.url("m"),
                                                             "direction": "up"}]}}, s3=bucket.settings())
    other = Holder("ann@laptop-2", "laptop-2", 4242, "1", time.time(), "20260101-000000-abcdef", "sync-all", "/x")
    lock = fleet.repo("cloud") / ".git" / "agentsync.lock"
    lock.write_text(other.to_json() + "\n")

    refused = fleet.agentsync("artifacts", inventory=inv, env=laptop_env(aws_env))
    assert refused.returncode == 1
    assert "the fleet is locked on cloud (/srv/agentsync/crpbot/.git) by ann@laptop-2" in refused.stderr
    assert bucket.keys("m") == {}  # nothing moved
    looked = fleet.agentsync("artifacts", "--dry-run", inventory=inv, env=laptop_env(aws_env))
    assert looked.returncode == 0, looked.stderr  # a dry run takes no lock
    assert Holder.from_json(lock.read_text()) == other
