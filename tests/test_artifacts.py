"""S3 artifact syncs against real sshd hosts and a real S3 API (moto's server mode), with the real AWS CLI.

Data goes host ↔ S3 directly: cloud's files reach the bucket from cloud,
the laptop's download lands on the laptop; the test itself only looks.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from s3_support import ACCESS_KEY, SECRET_KEY, Bucket, laptop_env

WEIGHTS = os.urandom(300_000)
MODEL_FILES = {"weights.bin": WEIGHTS, "sub/config json.txt": b'{"layers": 12}\n', "tok\u00e9nizer.txt": b"abc\n"}
TMP_FILES = {"checkpoint.tmp": b"half-written\n", "sub/partial.tmp": b"partial\n"}


@pytest.fixture
def bucket(moto_s3) -> Bucket:
    return Bucket(moto_s3)


def write_files(root: Path, files: dict[str, bytes]) -> None:
    """Files as training leaves them: written a while ago (the CLI compares times to the second)."""
    an_hour_ago = time.time() - 3600
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (an_hour_ago, an_hour_ago))


def checksums(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run(fleet, aws_env, inv: Path, *args: str, task: str = "artifacts"):
    result = fleet.agentsync(task, *args, inventory=inv, env=laptop_env(aws_env))
    assert SECRET_KEY not in result.stdout + result.stderr
    assert ACCESS_KEY not in result.stdout + result.stderr
    return result


def run_json(fleet, aws_env, inv: Path, *args: str, task: str = "artifacts") -> tuple[int, dict]:
    result = run(fleet, aws_env, inv, "--json", *args, task=task)
    assert result.stdout.startswith("{"), result.stderr
    return result.returncode, json.loads(result.stdout)


def by_path(data: dict) -> dict[tuple[str, str], dict]:
    return {(e["host"], e["path"]): e for e in data["entries"]}


def test_cloud_uploads_models_and_the_laptop_downloads_the_same_bytes(fleet, bucket, aws_env):
    models = fleet.repo("cloud") / "models"
    write_files(models, MODEL_FILES | TMP_FILES)
    url = bucket.url("crpbot/models")
    inv = fleet.inventory({
        "laptop": {"s3": [{"path": "downloads/models", "url": url, "direction": "down"}]},
        "cloud": {"s3": [{"path": "models", "url": url, "direction": "up", "exclude": ["*.tmp"]}]},
    }, s3=bucket.settings())

    code, data = run_json(fleet, aws_env, inv)

    assert code == 0, data
    entries = by_path(data)
    up, down = entries[("cloud", "models")], entries[("laptop", "downloads/models")]
    expected_bytes = sum(len(v) for v in MODEL_FILES.values())
    assert up["status"] == "ok" and up["files"] == 3 and up["bytes"] == expected_bytes
    assert sorted(up["paths"]) == sorted(MODEL_FILES)
    assert down["status"] == "ok" and down["files"] == 3 and down["bytes"] == expected_bytes
    assert up["finished_at"] <= down["started_at"]
    laptop_copy = fleet.repo("laptop") / "downloads" / "models"
    on_cloud = {rel: digest for rel, digest in checksums(models).items() if not rel.endswith(".tmp")}
    assert checksums(laptop_copy) == on_cloud == {rel: hashlib.sha256(data).hexdigest()
                                                  for rel, data in MODEL_FILES.items()}
    assert set(bucket.keys("crpbot/")) == {f"crpbot/models/{rel}" for rel in MODEL_FILES}  # no *.tmp went up
    assert (models / "checkpoint.tmp").read_bytes() == TMP_FILES["checkpoint.tmp"]  # left behind, untouched
    assert not any(p.suffix == ".tmp" for p in laptop_copy.rglob("*"))


def test_second_run_moves_nothing_and_human_output_shows_the_table(fleet, bucket, aws_env):
    write_files(fleet.repo("cloud") / "models", MODEL_FILES)
    inv = fleet.inventory({"laptop": {}, "cloud": {"s3": [
        {"path": "models", "url": bucket.url("m"), "direction": "up"}]}}, s3=bucket.settings())
    assert run_json(fleet, aws_env, inv)[0] == 0

    code, data = run_json(fleet, aws_env, inv)
    assert code == 0 and data["entries"][0]["files"] == 0 and data["entries"][0]["bytes"] == 0

    human = run(fleet, aws_env, inv)
    assert human.returncode == 0
    assert "cloud" in human.stdout and bucket.url("m") in human.stdout and "1/1 entries ok" in human.stdout


def test_dry_run_lists_what_would_move_and_moves_nothing(fleet, bucket, aws_env):
    models = fleet.repo("cloud") / "models"
    write_files(models, MODEL_FILES)
    bucket.put("m/stale.bin", b"old")
    bucket.put("d/only-in-s3.bin", b"remote")
    inv = fleet.inventory({
        "laptop": {"s3": [{"path": "fresh/dir", "url": bucket.url("d"), "direction": "down", "delete": True}]},
        "cloud": {"s3": [{"path": "models", "url": bucket.url("m"), "direction": "up", "delete": True}]},
    }, s3=bucket.settings())
    before = checksums(models)

    code, data = run_json(fleet, aws_env, inv, "--dry-run")

    assert code == 0, data
    entries = by_path(data)
    up = entries[("cloud", "models")]
    assert up["dry_run"] and up["files"] == 3 and sorted(up["paths"]) == sorted(MODEL_FILES)
    assert up["deleted_paths"] == ["stale.bin"] and "--dryrun" in up["command"]
    assert entries[("laptop", "fresh/dir")]["paths"] == ["only-in-s3.bin"]
    assert bucket.keys() == {"m/stale.bin": 3, "d/only-in-s3.bin": 6}  # nothing uploaded, nothing deleted
    assert checksums(models) == before
    assert not (fleet.repo("laptop") / "fresh").exists()  # not even the directory

    human = run(fleet, aws_env, inv, "--dry-run")
    assert human.returncode == 0
    assert "would upload 3 file(s), delete 1" in human.stdout and "weights.bin" in human.stdout
    assert bucket.keys() == {"m/stale.bin": 3, "d/only-in-s3.bin": 6}


def test_wrong_bucket_is_a_clear_error_and_the_other_entries_still_run(fleet, bucket, aws_env):
    write_files(fleet.repo("cloud") / "models", MODEL_FILES)
    write_files(fleet.repo("cloud") / "data", {"prices.csv": b"t,p\n1,2\n"})
    inv = fleet.inventory({
        "laptop": {"s3": [{"path": "downloads/data", "url": bucket.url("data"), "direction": "down"}]},
        "cloud": {"s3": [{"path": "models", "url": "s3://no-such-bucket-here/models", "direction": "up"},
                         {"path": "data", "url": bucket.url("data"), "direction": "up"}]},
    }, s3=bucket.settings())

    code, data = run_json(fleet, aws_env, inv)

    assert code == 1
    entries = by_path(data)
    wrong = entries[("cloud", "models")]
    assert wrong["status"] == "failed" and wrong["aws_code"] == "NoSuchBucket"
    assert "bucket 'no-such-bucket-here' does not exist" in wrong["message"]
    assert "The specified bucket does not exist" in wrong["aws_message"]
    assert entries[("cloud", "data")]["status"] == "ok" and entries[("cloud", "data")]["files"] == 1
    assert entries[("laptop", "downloads/data")]["status"] == "ok"
    assert (fleet.repo("laptop") / "downloads/data/prices.csv").read_bytes() == b"t,p\n1,2\n"

    human = run(fleet, aws_env, inv)
    assert human.returncode == 1
    assert "bucket 'no-such-bucket-here' does not exist" in human.stdout and "NoSuchBucket" in human.stdout
    assert "Traceback" not in human.stderr


def test_missing_aws_cli_on_a_host_is_a_clear_error_naming_the_host(fleet, bucket, aws_env):
    write_files(fleet.sandbox.hosts["nocli"].path("crpbot") / "models", MODEL_FILES)
    write_files(fleet.repo("cloud") / "models", MODEL_FILES)
    inv = fleet.inventory({
        "laptop": {},
        "cloud": {"s3": [{"path": "models", "url": bucket.url("cloud"), "direction": "up"}]},
        "nocli": {"s3": [{"path": "models", "url": bucket.url("nocli"), "direction": "up"}]},
    }, s3=bucket.settings())

    code, data = run_json(fleet, aws_env, inv)

    assert code == 1
    entries = by_path(data)
    missing = entries[("nocli", "models")]
    assert missing["status"] == "failed"
    assert "AWS CLI (`aws`) is not installed on nocli" in missing["message"]
    assert "pip install awscli" in missing["hint"] and "getting-started-install" in missing["hint"]
    assert entries[("cloud", "models")]["status"] == "ok"
    assert set(bucket.keys("nocli/")) == set()

    human = run(fleet, aws_env, inv, "--host", "nocli")
    assert human.returncode == 1 and "not installed on nocli" in human.stdout and "hint:" in human.stdout


def test_unreachable_host_and_hung_endpoint_fail_alone_within_their_timeouts(fleet, bucket, aws_env):
    write_files(fleet.repo("cloud") / "models", MODEL_FILES)
    silent = f"http://{fleet.listener.address}:{fleet.listener.port}"  # accepts TCP, never answers
    inv = fleet.inventory({
        "laptop": {"s3": [{"path": "stuck", "url": bucket.url("m"), "direction": "down", "endpoint_url": silent,
                           "timeout": 3}]},
        "cloud": {"s3": [{"path": "models", "url": bucket.url("m"), "direction": "up"}]},
        "down": {"s3": [{"path": "models", "url": bucket.url("m"), "direction": "up"}]},
    }, s3=bucket.settings())

    started = time.monotonic()
    code, data = run_json(fleet, aws_env, inv)

    assert code == 1 and time.monotonic() - started < 30
    entries = by_path(data)
    assert entries[("down", "models")]["status"] == "unreachable"
    assert "refused" in entries[("down", "models")]["message"]
    stuck = entries[("laptop", "stuck")]
    assert stuck["status"] == "failed" and "did not finish within 3s" in stuck["message"]
    assert "timeout:" in stuck["hint"]
    assert entries[("cloud", "models")]["status"] == "ok" and entries[("cloud", "models")]["files"] == 3


def test_nothing_is_deleted_unless_the_entry_says_delete(fleet, bucket, aws_env):
    models = fleet.repo("cloud") / "models"
    write_files(models, {"keep.bin": b"k"})
    bucket.put("m/extra-in-s3.bin", b"x")
    laptop_dir = fleet.repo("laptop") / "local-models"
    write_files(laptop_dir, {"laptop-only.bin": b"mine"})
    entries = [{"path": "models", "url": bucket.url("m"), "direction": "up"}]
    laptop_entries = [{"path": "local-models", "url": bucket.url("m"), "direction": "down"}]
    inv = fleet.inventory({"laptop": {"s3": laptop_entries}, "cloud": {"s3": entries}}, s3=bucket.settings())

    assert run_json(fleet, aws_env, inv)[0] == 0
    assert set(bucket.keys()) == {"m/keep.bin", "m/extra-in-s3.bin"}
    assert (laptop_dir / "laptop-only.bin").read_bytes() == b"mine"

    entries[0]["delete"] = laptop_entries[0]["delete"] = True
    inv = fleet.inventory({"laptop": {"s3": laptop_entries}, "cloud": {"s3": entries}}, s3=bucket.settings())
    code, data = run_json(fleet, aws_env, inv)
    assert code == 0
    assert set(bucket.keys()) == {"m/keep.bin"}
    assert by_path(data)[("cloud", "models")]["deleted"] == 1
    assert sorted(p.name for p in laptop_dir.iterdir()) == ["keep.bin"]


def test_bad_direction_and_host_without_entries_are_usage_errors(fleet, bucket, aws_env):
    inv = fleet.inventory({"laptop": {}, "cloud": {"s3": [
        {"path": "models", "url": bucket.url("m"), "direction": "up"}]}}, s3=bucket.settings())
    sideways = run(fleet, aws_env, inv, "--direction", "sideways")
    assert sideways.returncode == 2 and "--direction expects up or down" in sideways.stderr
    laptop = run(fleet, aws_env, inv, "--host", "laptop")
    assert laptop.returncode == 2 and "'laptop', which has no s3: entries" in laptop.stderr
    assert "hosts with s3: entries: cloud" in laptop.stderr


def step_data(data: dict, stage: str) -> list[dict]:
    return [dict(s["data"], host=h["host"], status=s["status"]) for h in data["hosts"] for s in h["steps"]
            if s["stage"] == stage]


def test_sync_all_runs_artifacts_after_git_with_every_up_before_any_down(fleet, bucket, aws_env):
    # models/card.txt exists on cloud only after git converge brings it: if S3 has it, the upload ran after git
    card = "model card v2\n"
    fleet.commit("laptop", "models/card.txt", card, "Add model card")
    write_files(fleet.repo("cloud") / "models", {"weights.bin": WEIGHTS})  # untracked, as trained on cloud
    write_files(fleet.repo("gpu") / "data", {"features.parquet": b"PAR1" * 1000})
    models, data_url = bucket.url("models"), bucket.url("data")
    inv = fleet.inventory({
        "laptop": {"s3": [{"path": "downloads/models", "url": models, "direction": "down"},
                          {"path": "downloads/data", "url": data_url, "direction": "down"}]},
        "cloud": {"s3": [{"path": "models", "url": models, "direction": "up"}]},
        "gpu": {"s3": [{"path": "data", "url": data_url, "direction": "up"},
                       {"path": "peer-models", "url": models, "direction": "down"}]},
    }, s3=bucket.settings())

    plan = run_json(fleet, aws_env, inv, task="plan")[1]
    stages = [p["stage"] for p in plan["plan"]]
    assert stages.index("converge") < stages.index("artifacts-up") < stages.index("artifacts-down")
    assert bucket.keys() == {}  # planning moved nothing

    code, data = run_json(fleet, aws_env, inv, task="sync-all")

    assert code == 0, json.dumps(data["hosts"], indent=1)[:3000]
    downloaded = fleet.repo("laptop") / "downloads" / "models"
    assert (downloaded / "card.txt").read_text() == card  # uploaded by cloud after converge, then downloaded
    assert (downloaded / "weights.bin").read_bytes() == WEIGHTS
    assert (fleet.repo("gpu") / "peer-models" / "weights.bin").read_bytes() == WEIGHTS
    assert (fleet.repo("laptop") / "downloads/data/features.parquet").read_bytes() == b"PAR1" * 1000
    ups, downs = step_data(data, "artifacts-up"), step_data(data, "artifacts-down")
    assert len(ups) == 2 and len(downs) == 3 and all(s["status"] == "ok" for s in ups + downs)
    assert max(s["finished_at"] for s in ups) <= min(s["started_at"] for s in downs)
    cloud_up = next(s for s in ups if s["host"] == "cloud")
    assert cloud_up["files"] == 2 and cloud_up["bytes"] == len(WEIGHTS) + len(card)
    for name in ("laptop", "cloud", "gpu"):
        assert fleet.head(name) == fleet.origin_head()


def test_sync_all_failed_upload_marks_the_host_but_its_other_entries_still_run(fleet, bucket, aws_env):
    write_files(fleet.repo("cloud") / "models", {"weights.bin": WEIGHTS})
    bucket.put("shared/notes.txt", b"from s3\n")
    inv = fleet.inventory({
        "laptop": {"s3": [{"path": "downloads/shared", "url": bucket.url("shared"), "direction": "down"}]},
        "cloud": {"s3": [{"path": "models", "url": "s3://no-such-bucket-here/m", "direction": "up"},
                         {"path": "shared", "url": bucket.url("shared"), "direction": "down"}]},
    }, s3=bucket.settings())

    code, data = run_json(fleet, aws_env, inv, task="sync-all")

    assert code == 1
    hosts = {h["host"]: h for h in data["hosts"]}
    assert hosts["cloud"]["status"] == "failed"
    assert "bucket 'no-such-bucket-here' does not exist" in hosts["cloud"]["message"]
    assert hosts["laptop"]["status"] == "ok"
    assert (fleet.repo("cloud") / "shared/notes.txt").read_bytes() == b"from s3\n"  # cloud's download still ran
    assert (fleet.repo("laptop") / "downloads/shared/notes.txt").read_bytes() == b"from s3\n"
    failed = [s for s in step_data(data, "artifacts-up") if s["host"] == "cloud"]
    assert failed[0]["status"] == "failed" and failed[0]["aws_code"] == "NoSuchBucket"


def test_a_timed_out_upload_is_stopped_on_its_host_before_any_download_starts(fleet, bucket, aws_env):
    """cloud's upload outlives its timeout (a slow link): it must not go on uploading on cloud while the
    laptop's download of the same prefix runs, nor after the run has reported it failed."""
    from s3_support import aws_cli

    from agentsync_fleet.sandbox_fleet import install_tool

    write_files(fleet.repo("cloud") / "models", MODEL_FILES)
    inv = fleet.inventory({
        "laptop": {"s3": [{"path": "models", "url": bucket.url("m"), "direction": "down"}]},
        "cloud": {"s3": [{"path": "models", "url": bucket.url("m"), "direction": "up", "timeout": 2}]},
    }, s3=bucket.settings())
    install_tool(fleet.sandbox, "cloud", "aws", f"#!/bin/sh\nsleep 4\nexec {aws_cli()} \"$@\"\n")
    try:
        code, data = run_json(fleet, aws_env, inv)
        time.sleep(6)  # long enough for a sync left running on cloud to have finished
    finally:
        install_tool(fleet.sandbox, "cloud", "aws", f"#!/bin/sh\nexec {aws_cli()} \"$@\"\n")

    entries = by_path(data)
    up, down = entries[("cloud", "models")], entries[("laptop", "models")]
    assert code == 1 and up["status"] == "failed" and "did not finish within 2s" in up["message"]
    assert down["status"] == "ok" and down["files"] == 0 and down["started_at"] >= up["finished_at"]
    assert bucket.keys("m/") == {}  # stopped on cloud: nothing went up after it was reported failed


def test_a_missing_or_broken_aws_cli_on_the_local_host_is_a_clear_error(fleet, bucket, aws_env):
    """The laptop runs its entries itself: no SSH, agentsync's own PATH. A version-manager shim (pyenv, asdf)
    is found by `command -v aws` yet cannot run it."""
    write_files(fleet.repo("laptop") / "models", MODEL_FILES)
    inv = fleet.inventory({"laptop": {"s3": [{"path": "models", "url": bucket.url("l"), "direction": "up"}]}},
                          s3=bucket.settings())
    shims = fleet.root / "shims"
    shims.mkdir()
    (shims / "aws").write_text("#!/bin/sh\necho 'pyenv: aws: command not found' >&2\nexit 127\n")
    (shims / "aws").chmod(0o755)

    for path, said in (("/usr/bin:/bin", "not installed on laptop, or not on its PATH"),
                       (f"{shims}:/usr/bin:/bin", "cannot run on laptop: pyenv: aws: command not found")):
        result = fleet.agentsync("artifacts", "--json", inventory=inv, env={**aws_env, "PATH": path})
        [entry] = json.loads(result.stdout)["entries"]
        assert result.returncode == 1 and entry["status"] == "failed", result.stderr
        assert said in entry["message"] and "pip install awscli" in entry["hint"]
        assert "ssh" not in entry["hint"] and "agentsync's own PATH" in entry["hint"]
    assert bucket.keys("l/") == {}
