"""sync-all against real sshd hosts and real git: converge, never lose work, never disturb production."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path

import pytest

RUNTIME = "apps/runtime/v7_runtime.py"
PROC = "python3 -c 'import time; time.sleep(600)' agentsync-test-proc v7_runtime"
GUARD = {"guard": {"processes": ["v7_runtime"], "critical_files": [RUNTIME]}}


def snapshot(fleet, host: str) -> dict:
    """Everything a user could lose: HEAD, index, every file on disk (tracked, untracked, ignored), stashes."""
    repo = fleet.repo(host)
    files = {}
    for path in sorted(repo.rglob("*")):
        if ".git" in path.relative_to(repo).parts or not path.is_file():
            continue
        files[str(path.relative_to(repo))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"head": fleet.head(host), "index": fleet.git(host, "ls-files", "--stage"),
            "files": files, "stash": fleet.git(host, "stash", "list", "--format=%H"),
            "branch": fleet.git(host, "symbolic-ref", "HEAD")}


def sync(fleet, inv: Path, *flags: str) -> tuple[int, dict]:
    result = fleet.agentsync("sync-all", "--json", *flags, inventory=inv)
    assert result.stdout.startswith("{"), result.stderr
    data = json.loads(result.stdout)
    return result.returncode, {h["host"]: h for h in data["hosts"]} | {"_": data}


def test_commits_from_two_hosts_converge_and_uncommitted_work_survives_byte_for_byte(fleet):
    laptop_commit = fleet.commit("laptop", "laptop.md", "from the laptop\n", "Laptop work")
    cloud_commit = fleet.commit("cloud", "cloud.md", "from the cloud\n", "Cloud work")
    cloud = fleet.repo("cloud")
    (cloud / "README.md").write_text("edited on cloud, not committed\n")
    (cloud / "strategies" / "momentum.py").write_text("WINDOW = 50  # staged\n")
    fleet.git("cloud", "add", "strategies/momentum.py")
    (cloud / "notes-untracked.txt").write_text("scratch notes\n")
    before = {p: (cloud / p).read_bytes() for p in ("README.md", "strategies/momentum.py", "notes-untracked.txt")}

    code, hosts = sync(fleet, fleet.inventory())

    assert code == 0, hosts
    final = fleet.origin_head()
    for name in ("laptop", "cloud", "gpu"):
        assert hosts[name]["status"] == "ok"
        assert fleet.head(name) == final == hosts[name]["head_after"]
    log = fleet.git("laptop", "log", "--format=%s", final)
    assert "Laptop work" in log and "Cloud work" in log
    assert fleet.git("laptop", "merge-base", "--is-ancestor", laptop_commit, final) == ""
    for path, data in before.items():
        assert (cloud / path).read_bytes() == data
    assert fleet.git("cloud", "diff", "--cached", "--name-only") == "strategies/momentum.py"  # still staged
    assert fleet.git("cloud", "stash", "list") == ""
    assert hosts["cloud"]["stash_used"] is True and hosts["cloud"]["pushed"] == 1
    assert hosts["laptop"]["pushed"] == 1
    assert cloud_commit != fleet.head("cloud")  # rebased onto the laptop's commit, content kept
    assert (cloud / "cloud.md").read_text() == "from the cloud\n"


def test_conflicting_uncommitted_edit_is_left_untouched_and_reported(fleet):
    fleet.commit("laptop", "README.md", "laptop's README\n", "Rewrite README")
    (fleet.repo("gpu") / "README.md").write_text("gpu's own uncommitted README\n")
    (fleet.repo("gpu") / "untracked.txt").write_text("keep me\n")
    before = snapshot(fleet, "gpu")

    code, hosts = sync(fleet, fleet.inventory())

    assert code == 1
    assert hosts["gpu"]["status"] == "conflict"
    assert "README.md" in hosts["gpu"]["files"]
    assert snapshot(fleet, "gpu") == before
    for name in ("laptop", "cloud"):
        assert hosts[name]["status"] == "ok" and fleet.head(name) == fleet.origin_head()


def test_conflicting_commits_leave_the_host_exactly_as_it_was(fleet):
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 10\n", "Laptop window")
    fleet.commit("cloud", "strategies/momentum.py", "WINDOW = 99\n", "Cloud window")
    (fleet.repo("cloud") / "wip.txt").write_text("work in progress\n")
    before = snapshot(fleet, "cloud")

    code, hosts = sync(fleet, fleet.inventory())

    assert code == 1
    assert hosts["cloud"]["status"] == "conflict"
    assert hosts["cloud"]["files"] == ["strategies/momentum.py"]
    assert snapshot(fleet, "cloud") == before
    assert "Cloud window" not in fleet.git("laptop", "log", "--format=%s", "origin/main")
    assert hosts["gpu"]["status"] == "ok" and fleet.head("gpu") == fleet.origin_head()
    assert "agentsync-scratch" not in fleet.git("cloud", "worktree", "list")


def test_guard_refuses_a_critical_change_under_a_running_process(fleet):
    fleet.start_process("cloud", PROC)
    fleet.commit("laptop", RUNTIME, "# new runtime\n", "Change the runtime")
    inv = fleet.inventory({"laptop": {}, "cloud": GUARD})
    before = snapshot(fleet, "cloud")

    code, hosts = sync(fleet, inv)

    assert code == 1
    assert hosts["cloud"]["status"] == "guarded"
    message = hosts["cloud"]["message"]
    assert RUNTIME in message and "v7_runtime" in message and "pid" in message and "agentsync-test-proc" in message
    assert snapshot(fleet, "cloud") == before
    assert "agentsync-test-proc" in fleet.sandbox.ssh("cloud", "ps -eo args")  # never killed

    code, hosts = sync(fleet, inv, "--allow-running")
    assert code == 0 and hosts["cloud"]["status"] == "ok"
    assert (fleet.repo("cloud") / RUNTIME).read_text() == "# new runtime\n"
    assert any("--allow-running" in w for w in hosts["cloud"]["warnings"])
    assert "agentsync-test-proc" in fleet.sandbox.ssh("cloud", "ps -eo args")


def test_guard_lets_changes_to_other_files_through(fleet):
    fleet.start_process("cloud", PROC)
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": GUARD}))
    assert code == 0 and hosts["cloud"]["status"] == "ok"
    assert fleet.head("cloud") == fleet.origin_head()


def test_dry_run_changes_nothing_anywhere_and_shows_the_commands(fleet):
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    fleet.commit("cloud", "cloud.md", "y\n", "Cloud work")
    (fleet.repo("cloud") / "README.md").write_text("dirty\n")
    (fleet.repo("gpu") / "new.txt").write_text("untracked\n")
    (fleet.repo("gpu") / "README.md").write_text("stashed\n")
    fleet.git("gpu", "stash", "push", "-q")
    names = ("laptop", "cloud", "gpu")
    before = {n: snapshot(fleet, n) for n in names}
    refs_before = {n: fleet.git(n, "for-each-ref") for n in names}
    inv = fleet.inventory()

    result = fleet.agentsync("sync-all", "--dry-run", inventory=inv)
    assert result.returncode == 0, result.stderr
    assert "stage 2 · publish" in result.stdout and "git -C" in result.stdout
    assert "push --porcelain origin" in result.stdout and "reset --quiet --keep" in result.stdout
    plan = fleet.agentsync("plan", "--json", inventory=inv)
    steps = json.loads(plan.stdout)["plan"]
    assert [s["host"] for s in steps if s["stage"] == "publish"] == ["laptop", "cloud"]

    for n in names:
        assert snapshot(fleet, n) == before[n]
        assert fleet.git(n, "for-each-ref") == refs_before[n]  # not even a fetch
    assert fleet.origin_head() == fleet.git("gpu", "rev-parse", "origin/main")


def test_gpu_worktree_receives_main_and_keeps_its_own_commits(fleet):
    worktree = "/srv/agentsync/crpbot-validation"
    spec = {"worktrees": [{"path": worktree, "branch": "validation", "merge": "main"}]}
    inv = fleet.inventory({"laptop": {}, "gpu": spec})
    code, hosts = sync(fleet, inv)
    assert code == 0, hosts
    assert hosts["gpu"]["worktrees"][0]["created"] is True
    wt = fleet.sandbox.hosts["gpu"].path(worktree)
    fleet.sandbox.ssh("gpu", f"cd {worktree} && echo exp > experiment.txt && git add experiment.txt && "
                             "git commit -qm 'Validation experiment'")
    own = fleet.sandbox.ssh("gpu", f"git -C {worktree} rev-parse HEAD").strip()
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 42\n", "Main moves on")

    code, hosts = sync(fleet, inv)

    assert code == 0, hosts
    entry = hosts["gpu"]["worktrees"][0]
    assert entry["status"] == "ok" and entry["merged"] == 1
    log = fleet.sandbox.ssh("gpu", f"git -C {worktree} log --format=%s")
    assert "Main moves on" in log and "Validation experiment" in log
    assert fleet.sandbox.ssh("gpu", f"git -C {worktree} merge-base --is-ancestor {own} HEAD && echo yes").strip() == "yes"
    assert (wt / "strategies" / "momentum.py").read_text() == "WINDOW = 42\n"
    assert (wt / "experiment.txt").read_text() == "exp\n"
    assert "validation" not in fleet.git("laptop", "ls-remote", "origin")  # push: false


def test_unreachable_host_is_skipped_and_the_others_converge(fleet):
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    inv = fleet.inventory({"laptop": {}, "down": {}, "cloud": {}})
    code, hosts = sync(fleet, inv)
    assert code == 1
    assert hosts["down"]["status"] == "unreachable" and "refused" in hosts["down"]["message"]
    for name in ("laptop", "cloud"):
        assert hosts[name]["status"] == "ok" and fleet.head(name) == fleet.origin_head()

    origin_before = fleet.origin_head()
    fleet.commit("laptop", "more.md", "y\n", "More work")
    code, hosts = sync(fleet, inv, "--strict")
    assert code == 1 and "--strict" in hosts["_"]["aborted"]
    assert fleet.origin_head() == origin_before and hosts["cloud"]["status"] == "skipped"


def test_push_false_host_never_pushes_and_reports_its_commits(fleet):
    fleet.commit("gpu", "review.md", "review notes\n", "Review notes")
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    origin_refs_before = fleet.git("laptop", "ls-remote", "origin")
    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "gpu": {"push": False}}))
    assert hosts["gpu"]["pushed"] == 0 and hosts["gpu"]["unpushed"] == 1
    assert "Review notes" not in fleet.git("laptop", "log", "--format=%s", "origin/main")
    assert "Laptop work" in fleet.git("gpu", "log", "--format=%s")  # it still received the others' work
    assert "Review notes" in fleet.git("gpu", "log", "--format=%s")
    assert origin_refs_before != fleet.git("laptop", "ls-remote", "origin")  # only the laptop moved it
    assert code == 0


def test_rebase_in_progress_is_left_alone(fleet):
    (fleet.repo("cloud") / ".git" / "rebase-merge").mkdir()
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    before = snapshot(fleet, "cloud")
    code, hosts = sync(fleet, fleet.inventory())
    assert code == 1 and hosts["cloud"]["status"] == "skipped" and "rebase" in hosts["cloud"]["message"]
    assert snapshot(fleet, "cloud") == before


@pytest.mark.parametrize("ignored", [True, False])
def test_incoming_file_colliding_with_an_untracked_or_ignored_file_is_a_conflict(fleet, ignored):
    name = "results/summary.csv" if ignored else "notes/summary.csv"  # results/ is in .gitignore
    (fleet.repo("cloud") / name).parent.mkdir(parents=True, exist_ok=True)
    (fleet.repo("cloud") / name).write_text("my local results\n")
    (fleet.repo("laptop") / name).parent.mkdir(parents=True, exist_ok=True)
    (fleet.repo("laptop") / name).write_text("committed results\n")
    fleet.git("laptop", "add", "-f", name)
    fleet.git("laptop", "commit", "-qm", "Track summary")
    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {}}))
    assert code == 1 and hosts["cloud"]["status"] == "conflict" and name in hosts["cloud"]["files"]
    assert (fleet.repo("cloud") / name).read_text() == "my local results\n"


def test_status_pull_and_push_tasks(fleet):
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    inv = fleet.inventory()
    push = fleet.agentsync("push", "--hosts", "laptop", "--json", inventory=inv)
    assert push.returncode == 0, push.stderr
    assert fleet.origin_head() == fleet.head("laptop")
    status = fleet.agentsync("status", "--json", inventory=inv)
    rows = {h["host"]: h for h in json.loads(status.stdout)["hosts"]}
    assert rows["cloud"]["behind"] == 1 and rows["cloud"]["ahead"] == 0 and rows["cloud"]["uncommitted"] == 0
    pull = fleet.agentsync("pull", "--hosts", "cloud", "--json", inventory=inv)
    assert pull.returncode == 0, pull.stderr
    assert fleet.head("cloud") == fleet.origin_head() and fleet.head("gpu") != fleet.origin_head()


def test_worktree_branch_is_pushed_when_asked(fleet):
    spec = {"worktrees": [{"path": "../crpbot-review", "branch": "review", "merge": "main", "push": True}]}
    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": spec}))
    assert code == 0, hosts
    assert hosts["cloud"]["worktrees"][0]["pushed"] is True
    assert fleet.git("laptop", "ls-remote", "origin", "refs/heads/review").split()[0] == fleet.origin_head()
    assert fleet.sandbox.hosts["cloud"].path("crpbot-review/README.md").exists()  # relative to the repo


def test_a_failing_step_reports_command_exit_code_and_output(fleet):
    hook = fleet.origin / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'policy: pushes are frozen today' >&2\nexit 1\n")
    hook.chmod(0o755)
    fleet.commit("cloud", "cloud.md", "x\n", "Cloud work")
    code, hosts = sync(fleet, fleet.inventory({"cloud": {}, "gpu": {}}))
    assert code == 1
    cloud = hosts["cloud"]
    assert cloud["status"] == "failed"
    assert "push" in cloud["message"] and "exited 1" in cloud["message"]
    assert "pushes are frozen today" in cloud["message"]
    assert hosts["gpu"]["status"] == "ok"
    assert "Cloud work" in fleet.git("cloud", "log", "--format=%s")  # nothing lost


def test_a_hung_git_command_fails_that_host_only_with_the_command_named(fleet):
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    inv = fleet.inventory({"laptop": {}, "cloud": {}, "gpu": {"command_timeout": 3}})
    fleet.sandbox.hosts["gpu"].path(".agentsync-test-slow-git").write_text("")  # every git call on gpu hangs
    start = time.monotonic()
    code, hosts = sync(fleet, inv)
    assert time.monotonic() - start < 3 * 3 + 5  # the lock and the probe each time out once, nothing waits longer
    assert code == 1
    assert hosts["gpu"]["status"] == "failed" and "timed out after 3s" in hosts["gpu"]["message"]
    for name in ("laptop", "cloud"):
        assert hosts[name]["status"] == "ok" and fleet.head(name) == fleet.origin_head()


def test_a_strict_abort_says_which_host_stopped_it_and_how_to_go_on(fleet):
    fleet.commit("laptop", "more.md", "y\n", "More work")
    result = fleet.agentsync("sync-all", "--strict", inventory=fleet.inventory({"laptop": {}, "down": {}, "cloud": {}}))
    out = result.stdout
    assert result.returncode == 1, result.stderr
    assert "cloud skipped: not run: --strict, and down is unreachable" in out, out
    assert "next: bring down back (agentsync health --hosts down says why), or run sync-all without --strict" in out
    assert "finish or abort what is in progress" not in out  # that hint is for a rebase/merge left in progress
    listed = json.loads(fleet.agentsync("history", "--json").stdout)["runs"][0]
    assert listed["hosts"] == {"laptop": "not run", "down": "unreachable", "cloud": "not run"}


def test_pull_and_push_summaries_and_history_carry_their_own_task_name_and_arguments_as_typed(fleet):
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    inv = fleet.inventory()
    for task, host in (("push", "laptop"), ("pull", "cloud")):
        result = fleet.agentsync(task, "--hosts", host, inventory=inv)
        assert result.returncode == 0, result.stderr
        title = re.search(r"^(\S+) \d{8}-\d{6}-\w+ *$", result.stdout, re.M)  # the table's title (a log precedes it)
        assert title and title.group(1) == task, result.stdout  # `pull 20261121-...`, never `sync-all ...`
    runs = json.loads(fleet.agentsync("history", "--json", inventory=inv).stdout)["runs"]
    assert [(r["task"], r["hosts"]) for r in runs[:2]] == [("pull", {"cloud": "ok"}), ("push", {"laptop": "ok"})]
    wide = fleet.agentsync("history", inventory=inv, env={"COLUMNS": "200"}).stdout
    assert "--hosts cloud" in wide and "--hosts laptop" in wide
