"""Patch relay at its edges, on real sshd hosts and real git: the target's own work always survives.

`cloud` is cut off from origin and relays through the laptop, as in test_relay.py.
"""

from __future__ import annotations

import json

import pytest
from test_relay import DATE_1, OFFLINE, commit_dated, cut_off, relay, relay_dirs, sync


def test_a_commit_made_on_the_target_while_validation_runs_is_kept_when_validation_fails(fleet):
    cut_off(fleet)
    commit_dated(fleet, "cloud", {"strategies/momentum.py": "WINDOW = 5\n"}, "Shrink window", DATE_1)
    before = fleet.head("laptop")
    # A failing test suite, during which someone (an agent on the laptop) commits: going back to the backup
    # commit now would take that commit off the branch.
    check = ("echo 'agent work' > agent.txt && git add agent.txt && git commit -qm 'Agent commit during validation'"
             " && echo 'FAILED test_window' && exit 1")
    inv = fleet.inventory({"laptop": {"validate": check}, "cloud": OFFLINE})

    code, report = relay(fleet, inv, "--from", "cloud")

    assert code == 1 and report["status"] == "failed"
    assert "FAILED test_window" in report["message"] and "moved" in report["message"]
    assert report["backup_branch"] in report["message"]
    assert fleet.git("laptop", "log", "-1", "--format=%s", "main") == "Agent commit during validation"
    assert fleet.git("laptop", "log", "-2", "--format=%s", "main").splitlines()[1] == "Shrink window"
    assert fleet.git("laptop", "rev-parse", report["backup_branch"]) == before
    assert fleet.git("laptop", "status", "--porcelain") == "" and fleet.git("laptop", "stash", "list") == ""


@pytest.mark.parametrize("path", ["config/credentials/aws.json", ".env/production", "keys/id_rsa.d/deploy"])
def test_a_file_inside_a_protected_directory_is_refused_like_rsync_holds_it_back(fleet, path):
    # rsync's `--exclude=credentials*` (the same list) leaves out a directory of that name and all in it.
    cut_off(fleet)
    commit_dated(fleet, "cloud", {path: "aws_secret_access_key=supersecret\n"}, "Add config", DATE_1, force=True)
    before = fleet.head("laptop")
    inv = fleet.inventory({"laptop": {}, "cloud": OFFLINE})

    code, report = relay(fleet, inv, "--from", "cloud")

    assert code == 1 and report["status"] == "refused"
    assert report["protected"] == [path] and path in report["message"]
    assert "supersecret" not in json.dumps(report)
    assert fleet.head("laptop") == before and relay_dirs(fleet, "laptop") == [] and relay_dirs(fleet, "cloud") == []


def test_a_relayed_host_switched_to_another_branch_during_the_run_is_left_alone(fleet):
    cut_off(fleet)
    cloud = fleet.repo("cloud")
    hook = fleet.origin / "hooks" / "post-receive"  # runs when the laptop publishes, before relay-out
    hook.write_text(f"#!/bin/sh\nunset GIT_DIR\ncd {cloud} && git checkout -q -b feature && echo f > feature.txt && "
                    "git add feature.txt && git commit -qm 'Feature work'\n")
    hook.chmod(0o755)
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    feature_base = fleet.head("cloud")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": OFFLINE}))

    assert code == 1 and hosts["cloud"]["status"] == "skipped" and "'feature'" in hosts["cloud"]["message"]
    assert fleet.git("cloud", "symbolic-ref", "--short", "HEAD") == "feature"
    assert fleet.git("cloud", "rev-parse", "HEAD~1") == feature_base  # not rebased onto main behind its back
    assert fleet.git("cloud", "rev-parse", "main") == feature_base
