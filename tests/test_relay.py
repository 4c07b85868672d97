"""Patch relay against real sshd hosts and real git: a host that cannot reach origin still gets its work out.

In every test `cloud` is cut off from origin (its origin URL points nowhere) and has
`git_access: false`; the laptop (the controller) relays for it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

OFFLINE = {"git_access": False}
DATE_1, DATE_2 = "2024-01-02T03:04:05+02:00", "2024-02-03T04:05:06-05:00"
# format-patch + git am alone would cut this after `---` and join the first two lines into one subject.
TRICKY_MESSAGE = ("Add mean-reversion strategy\nwritten by the agent\n\nBody line.\n---\nFrom the agent, after a rule\n"
                  ">From quoted\n\n\n  indented, after blank lines")


def cut_off(fleet, host: str = "cloud") -> None:
    fleet.git(host, "remote", "set-url", "origin", "/nonexistent/origin.git")
    assert subprocess.run(["git", "-C", str(fleet.repo(host)), "fetch", "-q", "origin"],
                          capture_output=True).returncode != 0


def commit_dated(fleet, host: str, files: dict[str, str], message: str, date: str, force: bool = False) -> str:
    repo = fleet.repo(host)
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
        fleet.git(host, "add", *(["-f"] if force else []), path)
    env = {**os.environ, "GIT_AUTHOR_DATE": date}
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", message], check=True, env=env)
    return fleet.head(host)


def commit_facts(fleet, host: str, range_: str) -> list[tuple[str, ...]]:
    """Author name, email, author date, full message and the exact diff of each commit, oldest first."""
    shas = fleet.git(host, "rev-list", "--reverse", range_).split()
    return [(*fleet.git(host, "show", "-s", "--format=%an%x00%ae%x00%aI%x00%B", sha).split("\0"),
             fleet.git(host, "show", "--format=", "--full-index", sha)) for sha in shas]


def snapshot(fleet, host: str) -> dict:
    """HEAD, branch, index, stashes and every file on disk (tracked, untracked, ignored)."""
    repo = fleet.repo(host)
    files = {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted(repo.rglob("*")) if p.is_file() and ".git" not in p.relative_to(repo).parts}
    return {"head": fleet.head(host), "branch": fleet.git(host, "symbolic-ref", "HEAD"),
            "index": fleet.git(host, "ls-files", "--stage"), "stash": fleet.git(host, "stash", "list"),
            "files": files, "worktrees": fleet.git(host, "worktree", "list")}


def make_dirty(fleet, host: str) -> None:
    """Uncommitted work of every kind: a modified file, a staged file, an untracked and an ignored file."""
    repo = fleet.repo(host)
    (repo / "apps" / "dashboard" / "app.py").write_text("print('dashboard, edited')\n")
    (repo / "README.md").write_text("# crpbot\n\nstaged edit\n")
    fleet.git(host, "add", "README.md")
    (repo / "scratch-notes.txt").write_text("untracked notes\n")
    (repo / "results").mkdir(exist_ok=True)
    (repo / "results" / "run.csv").write_text("ignored,results\n")


def relay(fleet, inv: Path, *args: str) -> tuple[int, dict]:
    result = fleet.agentsync("patch-relay", "--json", *args, inventory=inv)
    assert result.stdout.startswith("{"), result.stderr
    return result.returncode, json.loads(result.stdout)


def sync(fleet, inv: Path, *flags: str) -> tuple[int, dict]:
    result = fleet.agentsync("sync-all", "--json", *flags, inventory=inv)
    assert result.stdout.startswith("{"), result.stderr
    data = json.loads(result.stdout)
    return result.returncode, {h["host"]: h for h in data["hosts"]} | {"_": data}


def relay_dirs(fleet, host: str) -> list[str]:
    root = fleet.repo(host) / ".git" / "agentsync-relay"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def test_offline_hosts_commits_reach_the_laptop_and_origin_with_authors_dates_messages_and_content(fleet):
    cut_off(fleet)
    base = fleet.head("cloud")
    commit_dated(fleet, "cloud", {"strategies/mean_reversion.py": "LOOKBACK = 48\n"},
                 TRICKY_MESSAGE, DATE_1)
    commit_dated(fleet, "cloud", {"strategies/momentum.py": "WINDOW = 30\n", "docs/notes.md": "tuning\n"},
                 "[agent] Tune momentum window", DATE_2)
    subprocess.run(["git", "-C", str(fleet.repo("cloud")), "commit", "-q", "--allow-empty", "-m", "Empty marker"],
                   check=True)
    laptop_before = fleet.head("laptop")
    inv = fleet.inventory({"laptop": {"validate": "test -f strategies/mean_reversion.py"}, "cloud": OFFLINE})

    code, report = relay(fleet, inv, "--from", "cloud", "--push")

    assert code == 0, report["message"]
    assert report["status"] == "ok" and report["method"] == "am" and report["applied"] == 3
    assert report["pushed"] is True and report["validation"]["ok"] is True
    assert report["insertions"] == 3 and report["deletions"] == 1 and len(report["files"]) == 3
    assert [c["subject"] for c in report["commits"]] == ["Add mean-reversion strategy written by the agent",
                                                         "[agent] Tune momentum window", "Empty marker"]
    assert len(report["patches"]) == 3 and report["patches"][0].startswith("0001-")
    assert "laptop's HEAD" in report["base_how"] and report["base"] == base
    relayed = commit_facts(fleet, "laptop", f"{laptop_before}..HEAD")
    assert relayed == commit_facts(fleet, "cloud", f"{base}..HEAD")  # authors, dates, messages, exact diffs
    assert relayed[0][:3] == ("Cody Cloud", "cloud@fleet.example", DATE_1)
    assert fleet.origin_head() == fleet.head("laptop") == report["head_after"]
    assert fleet.git("laptop", "rev-parse", report["backup_branch"]) == laptop_before
    assert report["backup_branch"].startswith("backup/before-relay-")
    assert relay_dirs(fleet, "laptop") == [] and relay_dirs(fleet, "cloud") == []
    assert "agentsync-scratch" not in fleet.git("laptop", "worktree", "list")


def test_sync_all_relays_an_offline_host_which_ends_on_the_converged_head_with_its_work_kept(fleet):
    cut_off(fleet)
    fleet.commit("laptop", "laptop.md", "from the laptop\n", "Laptop work")
    commit_dated(fleet, "cloud", {"strategies/mean_reversion.py": "LOOKBACK = 48\n"}, "Cloud agent work", DATE_1)
    fleet.commit("gpu", "gpu.md", "from the gpu\n", "GPU work")
    make_dirty(fleet, "cloud")
    dirty_before = {p: (fleet.repo("cloud") / p).read_bytes()
                    for p in ("apps/dashboard/app.py", "README.md", "scratch-notes.txt", "results/run.csv")}
    inv = fleet.inventory({"laptop": {}, "cloud": OFFLINE, "gpu": {}})

    code, hosts = sync(fleet, inv)

    assert code == 0, {h: hosts[h]["message"] for h in ("laptop", "cloud", "gpu")}
    final = fleet.origin_head()
    for name in ("laptop", "cloud", "gpu"):
        assert hosts[name]["status"] == "ok"
        assert fleet.head(name) == final == hosts[name]["head_after"]
    assert fleet.git("cloud", "rev-parse", "origin/main") == final  # its copy of origin came by bundle
    subjects = fleet.git("laptop", "log", "--format=%s", final)
    assert "Cloud agent work" in subjects and "Laptop work" in subjects and "GPU work" in subjects
    assert fleet.git("laptop", "log", "-1", "--format=%an %aI", "--grep=Cloud agent work", final) == \
        f"Cody Cloud {DATE_1}"
    for path, data in dirty_before.items():
        assert (fleet.repo("cloud") / path).read_bytes() == data
    assert fleet.git("cloud", "diff", "--cached", "--name-only") == "README.md"  # still staged
    assert fleet.git("cloud", "stash", "list") == ""
    steps = {s["stage"]: s for s in hosts["cloud"]["steps"]}
    relay_in = steps["relay-in"]["data"]["relay"]
    assert relay_in["method"] == "am" and relay_in["applied"] == 1 and relay_in["status"] == "ok"
    assert relay_in["patches"] == ["0001-Cloud-agent-work.patch"]
    assert steps["relay-out"]["data"]["bundle"]["method"] == "bundle" and steps["relay-out"]["data"]["bundle"]["bytes"]
    assert hosts["cloud"]["pushed"] == 1 and hosts["cloud"]["stash_used"] is True
    assert any(s["stage"] == "relay-in" for s in hosts["laptop"]["steps"])  # the hub's side is recorded too
    assert relay_dirs(fleet, "laptop") == [] and relay_dirs(fleet, "cloud") == []

    assert hosts["cloud"]["pulled"] == 2  # the laptop's and the gpu's commits; its own came back, not counted

    fleet.commit("laptop", "more.md", "more\n", "More laptop work")
    code, hosts = sync(fleet, inv)  # a second run: nothing to relay; the laptop's new commit reaches cloud
    final = fleet.origin_head()
    assert code == 0 and all(fleet.head(n) == final for n in ("laptop", "cloud", "gpu"))
    steps = {s["stage"]: s for s in hosts["cloud"]["steps"]}
    assert steps["relay-in"]["data"]["relay"]["status"] == "nothing"
    assert steps["relay-out"]["data"]["bundle"]["method"] == "bundle" and hosts["cloud"]["pulled"] == 1
    for path, data in dirty_before.items():
        assert (fleet.repo("cloud") / path).read_bytes() == data


def test_conflicting_patch_leaves_the_target_exactly_at_its_backup_state_with_a_clear_report(fleet):
    cut_off(fleet)
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 10\n", "Laptop window")
    fleet.git("laptop", "push", "-q", "origin", "main")
    commit_dated(fleet, "cloud", {"strategies/momentum.py": "WINDOW = 99\n"}, "Cloud window", DATE_1)
    make_dirty(fleet, "laptop")
    before = snapshot(fleet, "laptop")
    refs_before = fleet.git("laptop", "for-each-ref", "--format=%(refname) %(objectname)")
    inv = fleet.inventory({"laptop": {}, "cloud": OFFLINE})

    code, report = relay(fleet, inv, "--from", "cloud")

    assert code == 1 and report["status"] == "conflict"
    assert snapshot(fleet, "laptop") == before  # HEAD, index, every file incl. untracked and ignored
    new_refs = set(fleet.git("laptop", "for-each-ref", "--format=%(refname) %(objectname)").splitlines())
    assert new_refs - set(refs_before.splitlines()) == {f"refs/heads/{report['backup_branch']} {before['head']}"}
    assert report["rejects"] == ["strategies/momentum.py.rej"]
    assert report["conflicts"] == ["strategies/momentum.py"]
    assert report["attempts"] == ["am: failed", "apply-3way: failed"]
    message = report["message"]
    assert "0001-Cloud-window.patch does not apply" in message and "exactly as before" in message
    assert report["backup_branch"] in message and "strategies/momentum.py.rej" in message
    kept = Path(report["kept_in"])
    assert (kept / "rejects" / "strategies" / "momentum.py.rej").read_text().startswith("diff a/strategies")
    assert (kept / "0001-Cloud-window.patch").is_file()
    assert json.loads((kept / "meta.json").read_text())["commit_count"] == 1
    assert not (fleet.repo("laptop") / "strategies" / "momentum.py.rej").exists()

    human = fleet.agentsync("patch-relay", "--from", "cloud", inventory=inv)
    assert human.returncode == 1 and "conflict" in human.stdout and "next:" in human.stdout


def test_failing_validation_rolls_the_target_back_and_reports_the_output_tail(fleet):
    cut_off(fleet)
    commit_dated(fleet, "cloud", {"strategies/momentum.py": "WINDOW = 5\n"}, "Shrink window", DATE_1)
    make_dirty(fleet, "laptop")
    before = snapshot(fleet, "laptop")
    check = "grep -q 'WINDOW = 20' strategies/momentum.py || { echo 'FAILED test_window: expected 20'; exit 3; }"
    inv = fleet.inventory({"laptop": {"validate": check}, "cloud": OFFLINE})

    code, report = relay(fleet, inv, "--from", "cloud")

    assert code == 1 and report["status"] == "validation-failed"
    assert report["validation"]["ok"] is False and report["validation"]["exit_code"] == 3
    assert "FAILED test_window: expected 20" in report["validation"]["output_tail"]
    assert "FAILED test_window" in report["message"] and report["backup_branch"] in report["message"]
    assert snapshot(fleet, "laptop") == before
    assert report["head_after"] == before["head"] == fleet.git("laptop", "rev-parse", report["backup_branch"])
    assert report["stash_used"] is True  # the uncommitted work was carried there and back

    origin_before = fleet.origin_head()
    code, hosts = sync(fleet, inv)  # the same inside sync-all: the relayed host fails, nothing is published
    assert code == 1 and hosts["cloud"]["status"] == "failed" and "FAILED test_window" in hosts["cloud"]["message"]
    assert hosts["laptop"]["status"] == "ok" and fleet.origin_head() == origin_before
    assert snapshot(fleet, "laptop") == before


def test_patch_adding_env_is_refused_naming_the_file_before_anything_travels(fleet):
    cut_off(fleet)
    commit_dated(fleet, "cloud", {"strategies/x.py": "X = 1\n"}, "Harmless", DATE_1)
    commit_dated(fleet, "cloud", {"deploy/.env": "API_KEY=supersecret\n"}, "Add env", DATE_2, force=True)
    before = snapshot(fleet, "laptop")
    refs_before = fleet.git("laptop", "for-each-ref")
    inv = fleet.inventory({"laptop": {}, "cloud": OFFLINE})

    code, report = relay(fleet, inv, "--from", "cloud")

    assert code == 1 and report["status"] == "refused"
    assert report["protected"] == ["deploy/.env"] and "deploy/.env" in report["message"]
    assert "supersecret" not in json.dumps(report)
    assert snapshot(fleet, "laptop") == before and fleet.git("laptop", "for-each-ref") == refs_before
    assert relay_dirs(fleet, "laptop") == [] and relay_dirs(fleet, "cloud") == []
    assert not any("format-patch" in c["command"] for c in report["commands"])  # never even exported

    code, hosts = sync(fleet, inv)
    assert code == 1 and hosts["cloud"]["status"] == "failed" and "deploy/.env" in hosts["cloud"]["message"]
    assert hosts["cloud"]["files"] == ["deploy/.env"]
    assert hosts["laptop"]["status"] == "ok" and "supersecret" not in json.dumps(hosts["_"])
    assert "Harmless" not in fleet.git("laptop", "log", "--format=%s", "origin/main")


def test_apply_3way_takes_over_when_git_am_fails_and_keeps_authors_dates_messages(fleet):
    cut_off(fleet)
    base = fleet.head("cloud")
    commit_dated(fleet, "cloud", {"a.txt": "one\n"}, TRICKY_MESSAGE, DATE_1)
    commit_dated(fleet, "cloud", {"b.txt": "two\n"}, "# Second, with a hash\n\n# kept line", DATE_2)
    subprocess.run(["git", "-C", str(fleet.repo("cloud")), "commit", "-q", "--allow-empty", "-m", "Empty marker"],
                   check=True)
    hook = fleet.repo("laptop") / ".git" / "hooks" / "applypatch-msg"  # makes every `git am` fail here
    hook.write_text("#!/bin/sh\necho 'applypatch-msg: refusing for the test' >&2\nexit 1\n")
    hook.chmod(0o755)
    laptop_before = fleet.head("laptop")
    inv = fleet.inventory({"laptop": {}, "cloud": OFFLINE})

    code, report = relay(fleet, inv, "--from", "cloud")

    assert code == 0, report["message"]
    assert report["method"] == "apply-3way" and report["attempts"] == ["am: failed", "apply-3way: ok"]
    assert report["applied"] == 3  # the empty commit too
    assert commit_facts(fleet, "laptop", f"{laptop_before}..HEAD") == commit_facts(fleet, "cloud", f"{base}..HEAD")


def test_uncommitted_edits_overlapping_the_relayed_change_stop_the_relay_and_are_kept(fleet):
    cut_off(fleet)
    commit_dated(fleet, "cloud", {"README.md": "# crpbot\n\ncloud's README\n"}, "Cloud README", DATE_1)
    make_dirty(fleet, "laptop")  # stages its own README.md edit
    before = snapshot(fleet, "laptop")

    code, report = relay(fleet, fleet.inventory({"laptop": {}, "cloud": OFFLINE}), "--from", "cloud")

    assert code == 1 and report["status"] == "conflict" and report["conflicts"]  # git names README.md or the index
    assert "uncommitted edits conflict" in report["message"] and report["backup_branch"] in report["message"]
    assert snapshot(fleet, "laptop") == before


def test_dry_run_changes_nothing_anywhere_and_shows_the_relay_commands(fleet):
    cut_off(fleet)
    commit_dated(fleet, "cloud", {"strategies/x.py": "X = 1\n"}, "Cloud work", DATE_1)
    make_dirty(fleet, "cloud")
    make_dirty(fleet, "laptop")
    names = ("laptop", "cloud", "gpu")
    before = {n: (snapshot(fleet, n), fleet.git(n, "for-each-ref")) for n in names}
    origin_before = fleet.origin_head()
    inv = fleet.inventory({"laptop": {"validate": "make test"}, "cloud": OFFLINE, "gpu": {}})

    code, report = relay(fleet, inv, "--from", "cloud", "--push", "--dry-run")
    assert code == 0 and report["status"] == "planned" and report["dry_run"] is True
    plan = "\n".join(report["plan"])
    assert "format-patch" in plan and "am -3" in plan and "backup/before-relay-" in plan
    assert "sh -c 'make test'" in plan and "stash push --message" in plan and "push --porcelain" in plan

    result = fleet.agentsync("sync-all", "--dry-run", inventory=inv)
    assert result.returncode == 0, result.stderr
    assert "relay-in" in result.stdout and "relay-out" in result.stdout and "git bundle" in result.stdout
    steps = json.loads(fleet.agentsync("plan", "--json", inventory=inv).stdout)["plan"]
    assert [(s["stage"], s["host"]) for s in steps if s["stage"] in ("relay-in", "publish", "relay-out")] == [
        ("relay-in", "cloud"), ("publish", "laptop"), ("relay-out", "cloud")]

    for n in names:
        assert (snapshot(fleet, n), fleet.git(n, "for-each-ref")) == before[n]
        assert relay_dirs(fleet, n) == []
    assert fleet.origin_head() == origin_before


def test_base_falls_back_when_the_target_head_is_unknown_and_already_relayed_patches_are_skipped(fleet):
    cut_off(fleet)
    commit_dated(fleet, "cloud", {"first.py": "A = 1\n"}, "First relayed", DATE_1)
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    inv = fleet.inventory({"laptop": {}, "cloud": OFFLINE})

    code, report = relay(fleet, inv, "--from", "cloud", "--push")
    assert code == 0, report["message"]
    assert "laptop's HEAD" in report["base_how"] and "is not on cloud" in report["base_how"]
    assert "laptop's origin/main" in report["base_how"]

    commit_dated(fleet, "cloud", {"second.py": "B = 2\n"}, "Second relayed", DATE_2)  # cloud never got the bundle
    code, report = relay(fleet, inv, "--from", "cloud", "--push")
    assert code == 0, report["message"]
    assert "cloud's own origin/main" in report["base_how"]
    assert len(report["commits"]) == 2 and report["applied"] == 1 and report["skipped"] == 1
    subjects = fleet.git("laptop", "log", "--format=%s", "origin/main").splitlines()
    assert subjects.count("First relayed") == 1 and "Second relayed" in subjects


def test_hostile_names_messages_and_paths_travel_as_data(fleet):
    marker = Path("/tmp/agentsync-relay-pwned")
    marker.unlink(missing_ok=True)
    weird_repo = "/srv/agentsync/my repo's $(touch pwned) dir"
    subprocess.run(["git", "clone", "-q", str(fleet.origin), str(fleet.sandbox.hosts["cloud"].path(weird_repo))],
                   check=True)
    cloud = fleet.sandbox.hosts["cloud"].path(weird_repo)
    subprocess.run(["git", "-C", str(cloud), "config", "user.name", "Eve '; $(touch /tmp/agentsync-relay-pwned)"],
                   check=True)
    subprocess.run(["git", "-C", str(cloud), "config", "user.email", "eve@fleet.example"], check=True)
    subprocess.run(["git", "-C", str(cloud), "remote", "set-url", "origin", "/nonexistent/origin.git"], check=True)
    name = "notes/we'ird $(touch pwned) ;name `id`.txt"
    (cloud / "notes").mkdir()
    (cloud / name).write_text("payload $(touch /tmp/agentsync-relay-pwned)\n")
    subprocess.run(["git", "-C", str(cloud), "add", "-A"], check=True)
    message = "Fix \"quotes\" and $(touch /tmp/agentsync-relay-pwned) `id`\n\n'; rm -rf ~ ; echo '"
    subprocess.run(["git", "-C", str(cloud), "commit", "-q", "-m", message], check=True)
    inv = fleet.inventory({"laptop": {"validate": "test -f \"notes/we'ird \\$(touch pwned) ;name \\`id\\`.txt\""},
                           "cloud": {**OFFLINE, "repo": weird_repo}})

    code, hosts = sync(fleet, inv)

    assert code == 0, hosts["cloud"]["message"]
    assert (fleet.repo("laptop") / name).read_text() == "payload $(touch /tmp/agentsync-relay-pwned)\n"
    assert fleet.git("laptop", "log", "-1", "--format=%B", "origin/main") == message
    author = fleet.git("laptop", "log", "-1", "--format=%an", "origin/main")
    assert author == "Eve '; $(touch /tmp/agentsync-relay-pwned)"
    assert fleet.head("laptop") == subprocess.run(["git", "-C", str(cloud), "rev-parse", "HEAD"], capture_output=True,
                                                  text=True).stdout.strip()
    assert not marker.exists()
    for place in (fleet.repo("laptop"), cloud, fleet.sandbox.hosts["cloud"].path(), Path.cwd()):
        assert not (place / "pwned").exists()


def test_bad_input_gets_a_clear_error_and_unreachable_hosts_a_report(fleet):
    inv = fleet.inventory({"laptop": {}, "cloud": OFFLINE, "down": OFFLINE})
    cases = [(["--from", "clod"], "did you mean 'cloud'"), (["--from", "laptop", "--to", "laptop"], "two different"),
             ([], "--from needs a host name"), (["--from", "laptop", "--to", "cloud", "--push"], "git_access: false")]
    for args, text in cases:
        result = fleet.agentsync("patch-relay", *args, inventory=inv)
        assert result.returncode == 2 and text in result.stderr and "Traceback" not in result.stderr, args

    code, report = relay(fleet, inv, "--from", "down")
    assert code == 1 and report["status"] == "unreachable" and "refused" in report["message"]

    for value in ("[make, test]", "''"):
        bad = fleet.root / "bad.yaml"
        bad.write_text(inv.read_text().replace("git_access: false", f"git_access: false\n    validate: {value}", 1))
        result = fleet.agentsync("patch-relay", "--from", "cloud", inventory=bad)
        assert result.returncode == 2 and "key 'validate'" in result.stderr and "Traceback" not in result.stderr


def test_relay_between_two_remote_hosts_goes_through_the_controller_and_validates_there(fleet):
    cut_off(fleet)
    base = fleet.head("cloud")
    commit_dated(fleet, "cloud", {"model/weights.bin": "\x00\x01binary\x02\n", "a b.txt": "spaced\n"},
                 "Binary and spaced files", DATE_1)
    inv = fleet.inventory({"laptop": {}, "cloud": OFFLINE, "gpu": {"validate": "test -f 'a b.txt' && echo gpu-ok"}})

    code, report = relay(fleet, inv, "--from", "cloud", "--to", "gpu")

    assert code == 0, report["message"]
    assert report["target"] == "gpu" and report["validation"]["output_tail"] == "gpu-ok"
    assert commit_facts(fleet, "gpu", f"{base}..HEAD") == commit_facts(fleet, "cloud", f"{base}..HEAD")
    assert {c["host"] for c in report["commands"]} == {"cloud", "gpu"}
    assert relay_dirs(fleet, "gpu") == [] and relay_dirs(fleet, "cloud") == []


def test_a_review_only_offline_host_keeps_its_commits_and_still_receives_everyone_elses(fleet):
    cut_off(fleet)
    fleet.commit("cloud", "review.md", "review notes\n", "Review notes")
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {**OFFLINE, "push": False}}))

    assert code == 0, hosts["cloud"]["message"]
    assert "Review notes" not in fleet.git("laptop", "log", "--format=%s", "origin/main")
    assert hosts["cloud"]["unpushed"] == 1 and hosts["cloud"]["pushed"] == 0
    assert fleet.git("cloud", "rev-parse", "HEAD~1") == fleet.origin_head()  # origin + its own commit
    assert "relay-in" not in {s["stage"] for s in hosts["cloud"]["steps"]}
