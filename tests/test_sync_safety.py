"""sync-all's promise at its edges, on real sshd hosts and real git: nothing a user had is lost or disturbed.

Each test sets up one awkward shape of a checkout (a file where an incoming
directory goes, a process writing an untracked file, a staged rename, a
worktree in the middle of a merge, ...) and checks everything a user could
lose with `full_snapshot`, which also sees symlinks, file modes and empty
directories.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import stat
import time
from pathlib import Path

import pytest

REPO = "/srv/agentsync/crpbot"
RUNTIME = "apps/runtime/v7_runtime.py"
PROC = "python3 -c 'import time; time.sleep(600)' agentsync-test-proc v7_runtime"


def full_snapshot(repo: Path, git) -> dict:
    """HEAD, branch, index, stashes, and every path on disk (not .git) with its type, mode and content."""
    paths = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo)
        if rel.parts[0] == ".git":
            continue
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            paths[str(rel)] = ("symlink", os.readlink(path))
        elif stat.S_ISDIR(info.st_mode):
            paths[str(rel)] = ("dir",)
        else:
            paths[str(rel)] = ("file", oct(info.st_mode & 0o777), hashlib.sha256(path.read_bytes()).hexdigest())
    return {"head": git("rev-parse", "HEAD"), "branch": git("symbolic-ref", "-q", "HEAD"),
            "index": git("ls-files", "--stage"), "stash": git("stash", "list", "--format=%H %gs"), "paths": paths}


def snapshot(fleet, host: str) -> dict:
    return full_snapshot(fleet.repo(host), lambda *args: fleet.git(host, *args))


def sync(fleet, inv: Path, *flags: str) -> tuple[int, dict]:
    result = fleet.agentsync("sync-all", "--json", *flags, inventory=inv)
    assert result.stdout.startswith("{"), result.stderr
    data = json.loads(result.stdout)
    return result.returncode, {h["host"]: h for h in data["hosts"]} | {"_": data}


def commit_forced(fleet, host: str, files: dict[str, str], message: str) -> str:
    """Commit `files` on `host` even where its .gitignore would leave them out."""
    for path, text in files.items():
        (fleet.repo(host) / path).parent.mkdir(parents=True, exist_ok=True)
        (fleet.repo(host) / path).write_text(text)
        fleet.git(host, "--literal-pathspecs", "add", "-f", path)
    fleet.git(host, "commit", "-q", "-m", message)
    return fleet.head(host)


def ignore_locally(fleet, host: str, pattern: str) -> None:
    with (fleet.repo(host) / ".git" / "info" / "exclude").open("a") as handle:
        handle.write(pattern + "\n")


@pytest.mark.parametrize("shape", ["ignored file", "ignored symlink to a directory", "ignored file named like "
                                   "pathspec magic", "untracked file"])
def test_a_local_file_where_incoming_commits_need_a_directory_or_file_is_a_conflict_and_kept(fleet, shape):
    cloud = fleet.repo("cloud")
    if shape == "ignored file":  # e.g. a local `build` file; upstream starts a build/ directory
        name, incoming = "build", {"build/out.txt": "x\n"}
        (cloud / name).write_text("my precious local build notes\n")
        ignore_locally(fleet, "cloud", "/build")
    elif shape == "ignored symlink to a directory":  # data -> a big disk; upstream adds data/README.md
        name, incoming = "data", {"data/README.md": "about the data\n"}
        (fleet.sandbox.hosts["cloud"].path("bigdisk")).mkdir()
        os.symlink("/srv/agentsync/bigdisk", cloud / name)
        ignore_locally(fleet, "cloud", "/data")
    elif shape == "ignored file named like pathspec magic":  # git would read `:notes` as `notes`
        name, incoming = ":notes", {":notes": "upstream notes\n"}
        (cloud / name).write_text("my own notes\n")
        ignore_locally(fleet, "cloud", "/:notes")
    else:
        name, incoming = "docs", {"docs/index.md": "# docs\n"}
        (cloud / name).write_text("a plain untracked file called docs\n")
    commit_forced(fleet, "laptop", incoming, "Upstream adds " + ", ".join(incoming))
    before = snapshot(fleet, "cloud")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {}}))

    assert code == 1 and hosts["cloud"]["status"] == "conflict", hosts["cloud"]
    assert name in hosts["cloud"]["files"]
    assert "untracked or ignored" in hosts["cloud"]["message"]
    assert snapshot(fleet, "cloud") == before
    assert hosts["laptop"]["status"] == "ok" and fleet.head("laptop") == fleet.origin_head()


@pytest.mark.parametrize("tracked_edit", [True, False])
def test_an_untracked_file_a_running_process_writes_to_stays_the_file_it_writes_to(fleet, tracked_edit):
    # `nohup python runtime.py &` started in the checkout: its output goes to an untracked nohup.out, through
    # a file descriptor it keeps open. Stashing that file would unlink it: every later line lost.
    fleet.start_process("cloud", "sh -c 'cd crpbot && exec >>nohup.out && while :; do echo tick; sleep 0.1; done' "
                                 "agentsync-test-proc")
    out = fleet.repo("cloud") / "nohup.out"
    deadline = time.monotonic() + 10
    while not (out.exists() and out.stat().st_size) and time.monotonic() < deadline:
        time.sleep(0.05)
    if tracked_edit:  # staged, so a stash is used
        (fleet.repo("cloud") / "README.md").write_text("uncommitted edit\n")
        fleet.git("cloud", "add", "README.md")
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    inode = out.stat().st_ino

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {}}))

    assert code == 0 and hosts["cloud"]["status"] == "ok" and fleet.head("cloud") == fleet.origin_head()
    assert hosts["cloud"]["stash_used"] is tracked_edit  # untracked files never need a stash
    assert out.stat().st_ino == inode
    size = out.stat().st_size
    time.sleep(0.5)
    assert out.stat().st_size > size  # the process still writes into the file on disk
    if tracked_edit:
        assert (fleet.repo("cloud") / "README.md").read_text() == "uncommitted edit\n"


def test_the_source_of_a_staged_rename_counts_for_the_guard(fleet):
    # The stash puts a renamed file back under its old name for a moment; a critical one must not flicker.
    fleet.start_process("cloud", PROC)
    fleet.git("cloud", "mv", RUNTIME, "apps/runtime/v8_runtime.py")
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    guard = {"guard": {"processes": ["v7_runtime"], "critical_files": [RUNTIME]}}
    before = snapshot(fleet, "cloud")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": guard}))

    assert code == 1 and hosts["cloud"]["status"] == "guarded"
    assert RUNTIME in hosts["cloud"]["message"]
    assert snapshot(fleet, "cloud") == before


def test_a_staged_rename_of_a_file_changed_upstream_is_a_conflict_found_before_anything_moves(fleet):
    fleet.git("cloud", "mv", "strategies/momentum.py", "strategies/trend.py")
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    before = snapshot(fleet, "cloud")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {}}))

    assert code == 1 and hosts["cloud"]["status"] == "conflict"
    assert "nothing was changed" in hosts["cloud"]["message"] and hosts["cloud"]["stash_used"] is False
    assert snapshot(fleet, "cloud") == before


WORKTREE = "/srv/agentsync/crpbot-validation"


@pytest.mark.parametrize("state", ["merge in progress", "detached HEAD"])
def test_a_worktree_in_the_middle_of_something_is_left_alone(fleet, state):
    inv = fleet.inventory({"laptop": {}, "gpu": {"worktrees": [{"path": WORKTREE, "branch": "validation",
                                                                 "merge": "main"}]}})
    code, hosts = sync(fleet, inv)  # creates the worktree
    assert code == 0, hosts
    in_worktree = f"cd {WORKTREE} && "
    if state == "merge in progress":  # merged, not committed yet: MERGE_HEAD holds the second parent
        fleet.sandbox.ssh("gpu", in_worktree + "git checkout -q -b side && echo s > side.txt && git add side.txt && "
                                 "git commit -qm side && git checkout -q validation && "
                                 "git merge -q --no-ff --no-commit side")
    else:
        fleet.sandbox.ssh("gpu", in_worktree + "git checkout -q --detach && echo wip > wip.txt && git add wip.txt")
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 42\n", "Main moves on")

    def wt_git(*args: str) -> str:
        return fleet.sandbox.ssh("gpu", f"git -C {WORKTREE} {shlex.join(args)}", check=False).strip()

    markers = f"ls $(git -C {WORKTREE} rev-parse --git-dir)"
    before = (full_snapshot(fleet.sandbox.hosts["gpu"].path(WORKTREE), wt_git), fleet.sandbox.ssh("gpu", markers))

    code, hosts = sync(fleet, inv)

    assert code == 1 and hosts["gpu"]["status"] == "skipped", hosts["gpu"]
    assert ("merge" if state == "merge in progress" else "detached") in hosts["gpu"]["message"]
    assert WORKTREE in hosts["gpu"]["message"]
    after = (full_snapshot(fleet.sandbox.hosts["gpu"].path(WORKTREE), wt_git), fleet.sandbox.ssh("gpu", markers))
    assert after == before


def test_a_worktree_whose_disk_is_away_keeps_its_head_and_index_through_scratch_work(fleet):
    # A linked worktree on a disk that is not mounted right now: git keeps its HEAD and index under
    # .git/worktrees/ until it is back (or `git gc` expires it after months). Scratch worktrees must
    # clean up after themselves only.
    away = "/srv/agentsync/usb-wt"
    fleet.sandbox.ssh("cloud", f"git -C {REPO} worktree add -q --detach {away} && cd {away} && echo x > x.txt && "
                               "git add x.txt && git commit -qm 'Work on the usb disk' && echo y > y.txt && "
                               "git add y.txt")
    commit = fleet.sandbox.ssh("cloud", f"git -C {away} rev-parse HEAD").strip()
    disk = fleet.sandbox.hosts["cloud"].path("usb-wt")
    disk.rename(disk.with_name("usb-wt.unmounted"))
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    fleet.commit("cloud", "cloud.md", "y\n", "Cloud work")  # rebased onto the laptop's in a scratch worktree

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {}}))

    assert code == 0 and hosts["cloud"]["pushed"] == 1, hosts["cloud"]
    disk.with_name("usb-wt.unmounted").rename(disk)
    assert fleet.sandbox.ssh("cloud", f"git -C {away} rev-parse HEAD").strip() == commit
    assert fleet.sandbox.ssh("cloud", f"git -C {away} diff --cached --name-only").strip() == "y.txt"
    assert "agentsync-scratch" not in fleet.git("cloud", "worktree", "list")


def test_a_checkout_switched_to_another_branch_during_the_run_is_left_alone_and_never_published(fleet):
    cloud = fleet.repo("cloud")
    hook = fleet.origin / "hooks" / "post-receive"  # runs when the laptop publishes, before cloud's turn
    hook.write_text(f"#!/bin/sh\nunset GIT_DIR\n[ -e {cloud}.switched ] && exit 0\ntouch {cloud}.switched\n"
                    f"cd {cloud} && git checkout -q -b feature && echo f > feature.txt && git add feature.txt && "
                    "git commit -qm 'Feature work, not for main'\n")
    hook.chmod(0o755)
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    fleet.commit("cloud", "cloud.md", "y\n", "Cloud work")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {}}))

    assert (cloud.parent / "crpbot.switched").exists()
    assert "Feature work, not for main" not in fleet.git("laptop", "log", "--format=%s", "origin/main")
    assert code == 1 and hosts["cloud"]["status"] == "skipped" and "'feature'" in hosts["cloud"]["message"]
    assert fleet.git("cloud", "symbolic-ref", "--short", "HEAD") == "feature"
    assert fleet.git("cloud", "log", "-1", "--format=%s") == "Feature work, not for main"
    assert fleet.git("cloud", "log", "-1", "--format=%s", "main") == "Cloud work"


def test_a_worktree_with_uncommitted_work_receives_a_merge_and_the_shared_stash_list_is_untouched(fleet):
    inv = fleet.inventory({"laptop": {}, "gpu": {"worktrees": [{"path": WORKTREE, "branch": "validation",
                                                                 "merge": "main"}]}})
    assert sync(fleet, inv)[0] == 0  # creates the worktree
    fleet.sandbox.ssh("gpu", f"cd {WORKTREE} && echo exp > experiment.txt && git add experiment.txt && "
                             "git commit -qm 'Validation experiment'")
    fleet.sandbox.ssh("gpu", f"cd {REPO} && echo 'stashed in main' >> README.md && git stash push -q -m 'users own'")
    fleet.sandbox.ssh("gpu", f"cd {WORKTREE} && echo staged > staged.txt && git add staged.txt && "
                             "echo 'edited' >> apps/dashboard/app.py && echo notes > notes.txt")
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 42\n", "Main moves on")
    wt = fleet.sandbox.hosts["gpu"].path(WORKTREE)
    before = {p: (wt / p).read_bytes() for p in ("staged.txt", "apps/dashboard/app.py", "notes.txt")}

    code, hosts = sync(fleet, inv)

    assert code == 0 and hosts["gpu"]["worktrees"][0]["status"] == "ok", hosts["gpu"]
    log = fleet.sandbox.ssh("gpu", f"git -C {WORKTREE} log --format=%s")
    assert "Main moves on" in log and "Validation experiment" in log
    assert {p: (wt / p).read_bytes() for p in before} == before
    status = fleet.sandbox.ssh("gpu", f"git -C {WORKTREE} status --porcelain")
    assert "A  staged.txt" in status and " M apps/dashboard/app.py" in status and "?? notes.txt" in status
    assert fleet.git("gpu", "stash", "list", "--format=%gs") == "On main: users own"


def test_a_tracked_file_a_running_process_writes_to_is_not_touched_when_the_update_leaves_it_alone(fleet):
    # A runtime appending to a tracked journal (or a tracked SQLite file) through an open descriptor: its
    # uncommitted growth must stay in place, the same file, not be stashed away and written back as a copy.
    fleet.commit("laptop", "state/journal.txt", "start\n", "Add journal")
    assert sync(fleet, fleet.inventory({"laptop": {}, "cloud": {}}))[0] == 0
    fleet.start_process("cloud", PROC)
    fleet.start_process("cloud", "sh -c 'cd crpbot && exec >>state/journal.txt && while :; do echo tick; sleep 0.1; "
                                 "done' agentsync-test-proc")
    journal = fleet.repo("cloud") / "state" / "journal.txt"
    deadline = time.monotonic() + 10
    while journal.stat().st_size <= len("start\n") and time.monotonic() < deadline:
        time.sleep(0.05)
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    inode = journal.stat().st_ino
    guard = {"guard": {"processes": ["v7_runtime"], "critical_files": ["state/"]}}

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": guard}))

    assert code == 0 and hosts["cloud"]["status"] == "ok", hosts["cloud"]  # the guard: state/ is not touched
    assert hosts["cloud"]["stash_used"] is False and fleet.head("cloud") == fleet.origin_head()
    assert journal.stat().st_ino == inode
    size = journal.stat().st_size
    time.sleep(0.5)
    assert journal.stat().st_size > size and journal.read_text().startswith("start\ntick\n")


def test_a_staged_critical_file_still_counts_for_the_guard(fleet):
    # Staged changes do need the stash (reset --keep would unstage them), which takes the file away for a moment.
    fleet.start_process("cloud", PROC)
    (fleet.repo("cloud") / RUNTIME).write_text("# hot fix, staged\n")
    fleet.git("cloud", "add", RUNTIME)
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    guard = {"guard": {"processes": ["v7_runtime"], "critical_files": [RUNTIME]}}
    before = snapshot(fleet, "cloud")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": guard}))

    assert code == 1 and hosts["cloud"]["status"] == "guarded" and RUNTIME in hosts["cloud"]["message"]
    assert snapshot(fleet, "cloud") == before


def test_a_file_name_shaped_like_our_own_output_cannot_change_what_is_pushed(fleet):
    # File names reach the facts script's output unquoted (`git status -z`); one that looks like a section
    # of that output must stay a file name, not become the HEAD that publish pushes.
    own = fleet.commit("cloud", "cloud.md", "y\n", "Cloud work")
    fleet.git("cloud", "checkout", "-q", "-b", "feature")
    feature = fleet.commit("cloud", "feature.md", "f\n", "Feature work, not for main")
    fleet.git("cloud", "checkout", "-q", "main")
    hostile = f"x\n@@agentsync@@ refs\nhead {feature}\nz"
    (fleet.repo("cloud") / hostile).write_text("planted by a tool\n")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {}}))

    assert "Feature work, not for main" not in fleet.git("laptop", "log", "--format=%s", "origin/main")
    assert code == 0 and hosts["cloud"]["status"] == "ok", hosts["cloud"]
    assert fleet.origin_head() == own == fleet.head("cloud")
    assert (fleet.repo("cloud") / hostile).read_text() == "planted by a tool\n"


def test_a_move_cut_off_by_a_timeout_after_the_stash_says_where_the_changes_are(fleet):
    # The branch update hangs (a slow disk, a stuck hook) past command_timeout, after the stash was made.
    hook = fleet.repo("cloud") / ".git" / "hooks" / "reference-transaction"
    hook.write_text("#!/bin/sh\n[ \"$1\" = prepared ] || exit 0\n"
                    "while read old new ref; do [ \"$ref\" = refs/heads/main ] && sleep 6; done; exit 0\n")
    hook.chmod(0o755)
    (fleet.repo("cloud") / "README.md").write_text("staged work\n")
    fleet.git("cloud", "add", "README.md")
    fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {"command_timeout": 3}}))

    assert code == 1 and hosts["cloud"]["status"] == "failed"
    name = fleet.git("cloud", "stash", "list", "--format=%gs").removeprefix("On main: ")
    assert name.startswith("agentsync ") and f"stash '{name}'" in hosts["cloud"]["message"]
    assert "staged work" in fleet.git("cloud", "stash", "show", "-p", "stash@{0}")


def test_a_write_made_during_the_move_survives_putting_the_checkout_back(fleet):
    # Someone writes to a file while the checkout moves (the hook runs right after the branch moved), so the
    # stash no longer pops; going back to the old HEAD must not discard that write: it is in no stash.
    incoming = fleet.commit("laptop", "laptop.md", "x\n", "Laptop work")
    hook = fleet.repo("cloud") / ".git" / "hooks" / "reference-transaction"
    hook.write_text("#!/bin/sh\n[ \"$1\" = committed ] && [ ! -e .git/fired ] || exit 0\nwhile read old new ref; do\n"
                    f"  [ \"$ref $new\" = 'refs/heads/main {incoming}' ] && touch .git/fired && "
                    "echo 'written during the move' >> README.md\ndone\nexit 0\n")
    hook.chmod(0o755)
    (fleet.repo("cloud") / "README.md").write_text("my staged README\n")
    fleet.git("cloud", "add", "README.md")
    head = fleet.head("cloud")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {}}))

    assert (fleet.repo("cloud") / ".git" / "fired").exists()
    assert code == 1 and hosts["cloud"]["status"] in ("conflict", "failed"), hosts["cloud"]
    assert fleet.head("cloud") == head
    on_disk = (fleet.repo("cloud") / "README.md").read_text()
    stashed = fleet.git("cloud", "stash", "show", "-p", "stash@{0}") if fleet.git("cloud", "stash", "list") else ""
    assert "written during the move" in on_disk
    assert "my staged README" in on_disk + stashed  # the user's own edit: back, or in the stash the report names
    if "my staged README" not in on_disk:
        assert "stash" in hosts["cloud"]["message"]
