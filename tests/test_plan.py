"""`plan` predicts what the run then does, per host: the same decision (`moveplan.plan_move`) on the same facts."""

from __future__ import annotations

import json
import subprocess

from test_sync import GUARD, PROC, RUNTIME, snapshot, sync

from agentsync_fleet.sandbox_fleet import clone, git


def push_to_origin(fleet, files: dict[str, str], message: str) -> str:
    """A commit someone else pushed; every host fetches it (a dry run does not fetch)."""
    other = fleet.root / "someone"
    if not other.exists():
        clone(fleet.origin, other, "someone")
    git(other, "pull", "-q")
    for path, text in files.items():
        (other / path).parent.mkdir(parents=True, exist_ok=True)
        (other / path).write_text(text)
        git(other, "add", path)
    git(other, "commit", "-qm", message)
    git(other, "push", "-q", "origin", "main")
    return git(other, "rev-parse", "HEAD")


def plan_and_run(fleet, inv) -> tuple[dict, dict]:
    for host in ("laptop", "cloud", "gpu"):
        fleet.git(host, "fetch", "-q")
    planned = fleet.agentsync("plan", "--json", inventory=inv)
    assert planned.stdout.startswith("{"), planned.stderr
    predicted = {h["host"]: h for h in json.loads(planned.stdout)["hosts"]}
    _, ran = sync(fleet, inv)
    return predicted, ran


def outcome_of(ran: dict) -> str:
    if ran["status"] == "conflict":
        return f"conflict in {', '.join(ran['files'])}"
    return ran["status"]


def test_plan_shows_incoming_commits_diffstat_and_the_outcome_the_run_then_has(fleet):
    push_to_origin(fleet, {"README.md": "upstream README\n", "src/new.py": "x = 1\n"}, "Upstream change")
    (fleet.repo("cloud") / "README.md").write_text("cloud's own README edit\n")  # conflicts with the update
    (fleet.repo("gpu") / "notes.txt").write_text("untracked, unrelated\n")
    (fleet.repo("gpu") / "strategies" / "momentum.py").write_text("WINDOW = 9\n")  # dirty, not overlapping
    inv = fleet.inventory()
    before = {h: snapshot(fleet, h) for h in ("laptop", "cloud", "gpu")}

    predicted, ran = plan_and_run(fleet, inv)

    laptop = predicted["laptop"]["plan"]
    assert laptop["action"] == "fast-forward" and laptop["predicted"] == "ok"
    assert [c["subject"] for c in laptop["incoming"]] == ["Upstream change"]
    assert laptop["incoming"][0]["author"] and len(laptop["incoming"][0]["id"]) >= 7
    assert "README.md" in laptop["diffstat"] and "src/new.py" in laptop["diffstat"]
    assert predicted["cloud"]["plan"]["predicted"] == "conflict in README.md"
    assert predicted["gpu"]["plan"]["predicted"] == "ok" and predicted["gpu"]["plan"]["stash_paths"] == []
    for host in ("laptop", "cloud", "gpu"):
        assert outcome_of(ran[host]) == predicted[host]["plan"]["predicted"], host
    assert snapshot(fleet, "cloud") == {**before["cloud"], "head": before["cloud"]["head"]}
    assert (fleet.repo("gpu") / "strategies" / "momentum.py").read_text() == "WINDOW = 9\n"


def test_plan_predicts_guarded_skipped_in_progress_and_diverged_hosts(fleet):
    fleet.start_process("cloud", PROC)
    push_to_origin(fleet, {RUNTIME: "# new runtime\n"}, "Runtime change")
    fleet.git("gpu", "checkout", "-q", "-b", "experiment")
    fleet.commit("laptop", "laptop.md", "mine\n", "Laptop work")  # diverged: replayed in a scratch worktree
    inv = fleet.inventory({"laptop": {}, "cloud": GUARD, "gpu": {}})

    predicted, ran = plan_and_run(fleet, inv)

    assert predicted["laptop"]["plan"]["action"] == "rebase"
    assert predicted["cloud"]["plan"]["predicted"] == f"guarded by v7_runtime on {RUNTIME}"
    assert ran["cloud"]["status"] == "guarded" and ran["laptop"]["status"] == "ok"
    assert ran["gpu"]["status"] == "skipped" and predicted["gpu"]["status"] == "skipped"
    assert git(fleet.repo("laptop"), "worktree", "list").count("\n") == 0  # the rehearsal left no scratch


def test_plan_table_lists_what_each_host_would_receive(fleet):
    push_to_origin(fleet, {"README.md": "upstream README\n"}, "Readable subject")
    for host in ("laptop", "cloud", "gpu"):
        fleet.git(host, "fetch", "-q")
    out = fleet.agentsync("plan", inventory=fleet.inventory())
    assert out.returncode == 0, out.stderr
    assert "what each host would receive" in out.stdout and "Readable subject" in out.stdout
    assert "fast-forward" in out.stdout and "diffstat" in out.stdout


def test_a_rehearsal_never_runs_the_users_hooks(fleet):
    hook = fleet.repo("laptop") / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\necho hook ran >> \"$GIT_DIR/../hook-ran\"\nexit 1\n")
    hook.chmod(0o755)
    push_to_origin(fleet, {"README.md": "upstream\n"}, "Upstream")
    fleet.commit("laptop", "laptop.md", "mine\n", "Laptop work")
    code, hosts = sync(fleet, fleet.inventory({"laptop": {}}))
    assert code == 0, hosts["laptop"]["message"]
    assert not (fleet.repo("laptop") / "hook-ran").exists()
    assert subprocess.run(["git", "-C", str(fleet.repo("laptop")), "worktree", "list", "--porcelain"],
                          capture_output=True, text=True).stdout.count("worktree ") == 1


def test_plan_predicts_at_origin_ahead_in_progress_and_unreachable_hosts(fleet):
    fleet.commit("laptop", "laptop.md", "mine\n", "Laptop work")  # ahead: publishes
    (fleet.repo("cloud") / ".git" / "rebase-merge").mkdir()  # a rebase in progress: left alone
    inv = fleet.inventory({"laptop": {}, "cloud": {}, "gpu": {}, "down": {"ssh": "down", "repo": "/srv/x"}})

    predicted, ran = plan_and_run(fleet, inv)

    assert predicted["laptop"]["plan"]["action"] == "nothing" and predicted["gpu"]["plan"]["action"] == "nothing"
    for host in ("laptop", "cloud", "gpu", "down"):
        plan = predicted[host]["plan"]
        assert (plan["predicted"] if plan else predicted[host]["status"]) == ran[host]["status"], host
    assert ran["down"]["status"] == "unreachable" and ran["cloud"]["status"] == "skipped"
