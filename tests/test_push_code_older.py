"""push-code tells the truth: a host whose checkout has commits the laptop lacks is not silently reverted."""

from __future__ import annotations

import json

from rsync_support import inventory


def test_push_code_from_a_laptop_behind_the_host_is_refused_naming_the_commits_dry_run_too(fleet):
    fleet.commit("gpu", "app.py", "print('newer, committed on gpu')\n", "Newer app on gpu")
    (fleet.repo("laptop") / "app.py").write_text("print('older, from the laptop')\n")
    inv = inventory(fleet, {"laptop": {}, "gpu": {}})
    for flags in ((), ("--dry-run",)):
        refused = fleet.agentsync("push-code", "--host", "gpu", *flags, inventory=inv)
        assert refused.returncode == 1, refused.stderr
        assert "gpu has 1 commit(s) the laptop's checkout does not" in refused.stderr
        assert "Newer app on gpu" in refused.stderr and "--force-older" in refused.stderr
    as_json = fleet.agentsync("push-code", "--host", "gpu", "--json", inventory=inv)
    error = json.loads(as_json.stdout)["error"]
    assert as_json.returncode == 1 and error["host"] == "gpu" and "Newer app on gpu" in error["message"]
    assert (fleet.repo("gpu") / "app.py").read_text() == "print('newer, committed on gpu')\n"  # untouched

    forced = fleet.agentsync("push-code", "--host", "gpu", "--force-older", inventory=inv)
    assert forced.returncode == 0, forced.stderr
    assert (fleet.repo("gpu") / "app.py").read_text() == "print('older, from the laptop')\n"


def test_push_code_from_a_laptop_ahead_of_the_host_goes_ahead(fleet):
    fleet.commit("laptop", "app.py", "print('new on the laptop')\n", "Laptop work")
    result = fleet.agentsync("push-code", "--host", "gpu", inventory=inventory(fleet, {"laptop": {}, "gpu": {}}))
    assert result.returncode == 0, result.stderr
    assert (fleet.repo("gpu") / "app.py").read_text() == "print('new on the laptop')\n"


def test_a_file_sent_by_push_code_then_committed_on_the_laptop_does_not_jam_the_next_sync_all(fleet):
    laptop, gpu = fleet.repo("laptop"), fleet.repo("gpu")
    (laptop / "tools").mkdir()
    (laptop / "tools" / "train.py").write_text("print('train')\n")
    (laptop / "tools" / "run.sh").write_text("#!/bin/sh\necho run\n")
    (laptop / "tools" / "run.sh").chmod(0o755)
    inv = inventory(fleet, {"laptop": {}, "gpu": {}})
    sent = fleet.agentsync("push-code", "--host", "gpu", inventory=inv)
    assert sent.returncode == 0, sent.stderr
    assert "?? tools/" in fleet.git("gpu", "status", "--porcelain")  # on gpu they are untracked now
    fleet.git("laptop", "add", "tools")
    fleet.git("laptop", "commit", "-qm", "Add the training tools")
    fleet.git("laptop", "push", "-q", "origin", "main")

    synced = fleet.agentsync("sync-all", "--json", inventory=inv)

    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert fleet.head("gpu") == fleet.origin_head() == fleet.head("laptop")
    assert fleet.git("gpu", "status", "--porcelain", "--untracked-files=all") == ""  # tracked now, same bytes
    assert (gpu / "tools" / "train.py").read_text() == "print('train')\n"
    assert (gpu / "tools" / "run.sh").stat().st_mode & 0o111


def test_an_untracked_file_that_differs_from_the_incoming_one_still_stops_the_move(fleet):
    laptop, gpu = fleet.repo("laptop"), fleet.repo("gpu")
    for repo, text in ((laptop, "print('committed')\n"), (gpu, "print('my own, never committed')\n")):
        (repo / "tools").mkdir()
        (repo / "tools" / "same.py").write_text("print('same')\n")
        (repo / "tools" / "mine.py").write_text(text)
    fleet.git("laptop", "add", "tools")
    fleet.git("laptop", "commit", "-qm", "Add tools")
    before = fleet.head("gpu")

    synced = fleet.agentsync("sync-all", "--json", inventory=inventory(fleet, {"laptop": {}, "gpu": {}}))

    gpu_row = {h["host"]: h for h in json.loads(synced.stdout)["hosts"]}["gpu"]
    assert synced.returncode == 1 and gpu_row["status"] == "conflict"
    assert gpu_row["files"] == ["tools/mine.py"]  # the identical one is not in the way
    assert fleet.head("gpu") == before
    assert (gpu / "tools" / "mine.py").read_text() == "print('my own, never committed')\n"
    assert (gpu / "tools" / "same.py").read_text() == "print('same')\n"


def test_a_secret_held_back_from_several_hosts_is_reported_once_per_run(fleet):
    (fleet.repo("laptop") / ".env.local").write_text("TOKEN=not-for-hosts\n")
    inv = inventory(fleet, {"laptop": {}, "cloud": {"push_code": True}, "gpu": {"push_code": True}})
    result = fleet.agentsync("push-code", inventory=inv)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("held back (secrets, never sent)") == 1, result.stdout
    assert "held back (secrets, never sent): .env.local (.env.*) — cloud.push-code, gpu.push-code" in result.stdout
    assert not (fleet.repo("cloud") / ".env.local").exists() and not (fleet.repo("gpu") / ".env.local").exists()

    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    synced = fleet.agentsync("sync-all", inventory=inv)
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert synced.stdout.count("held back (secrets, never sent)") == 1, synced.stdout
    assert "! cloud, gpu: push-code: held back (secrets, never sent): .env.local" in synced.stdout
