"""Faults mid-update put the checkout back exactly; reasons are true; a file a process writes to is never swapped."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from pathlib import Path

import pytest
from test_move_interrupts import wait_for
from test_plan import push_to_origin
from test_sync import snapshot, sync

from agentsync_fleet.sandbox_fleet import clone, git


def full_snapshot(fleet, host: str) -> dict:
    """`snapshot` plus every file's mode and the untracked list."""
    repo = fleet.repo(host)
    modes = {str(p.relative_to(repo)): p.stat().st_mode for p in sorted(repo.rglob("*"))
             if ".git" not in p.relative_to(repo).parts and p.is_file()}
    return {**snapshot(fleet, host), "modes": modes, "status": fleet.git(host, "status", "--porcelain", "-uall"),
            "diff": fleet.git(host, "diff"), "cached": fleet.git(host, "diff", "--cached")}


@pytest.fixture
def small_disk(fleet):
    """A 1 MiB ext4 filesystem mounted at `big/` in the laptop's checkout (loop device; root in the sandbox)."""
    image, mount = fleet.root / "small.img", fleet.repo("laptop") / "big"
    subprocess.run(["truncate", "-s", "1M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)
        if os.path.ismount(mount):
            subprocess.run(["umount", "-l", str(mount)], check=False)
        image.unlink(missing_ok=True)


def test_disk_full_mid_update_puts_the_checkout_back_exactly_and_says_why(fleet, small_disk):
    push_to_origin(fleet, {"README.md": "upstream README\n", "big/a.txt": "small\n",
                           "big/blob.bin": os.urandom(3 * 1024 * 1024).hex()[:2_000_000],
                           "src/zz.py": "late = 1\n"}, "Upstream with a big file")
    fleet.git("laptop", "fetch", "-q")
    before = add_user_work(fleet, "laptop")
    repo = fleet.repo("laptop")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {}}))

    assert code == 1 and hosts["laptop"]["status"] == "failed"
    message = hosts["laptop"]["message"]
    assert "put back as it was" in message and "unable to write file big/blob.bin" in message, message
    assert full_snapshot(fleet, "laptop") == before
    assert not (repo / ".git" / "agentsync-move.json").exists() and git(repo, "stash", "list") == ""
    assert hosts["cloud"]["status"] == "ok" and fleet.head("cloud") == fleet.origin_head()


def sync_with_a_directory_nobody_can_write(fleet, directory: Path) -> tuple[dict, int, dict, dict]:
    """sync-all of the laptop while `directory` is immutable (even root cannot create files in it):
    (snapshot before, exit code, hosts, snapshot after)."""
    subprocess.run(["chattr", "+i", str(directory)], check=True)
    try:
        before = full_snapshot(fleet, "laptop")
        code, hosts = sync(fleet, fleet.inventory({"laptop": {}}))
        after = full_snapshot(fleet, "laptop")
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)
    return before, code, hosts, after


def test_an_unwritable_directory_mid_update_puts_the_checkout_back_exactly(fleet, small_disk):
    push_to_origin(fleet, {"README.md": "upstream README\n", "big/new.txt": "cannot land\n"}, "Upstream")
    fleet.git("laptop", "fetch", "-q")
    repo = fleet.repo("laptop")
    (repo / "strategies" / "momentum.py").write_text("WINDOW = 5\n")
    before, code, hosts, after = sync_with_a_directory_nobody_can_write(fleet, small_disk)

    assert code == 1 and hosts["laptop"]["status"] == "failed"
    assert "put back as it was" in hosts["laptop"]["message"] and "big/new.txt" in hosts["laptop"]["message"]
    assert after == before and not (repo / ".git" / "agentsync-move.json").exists()


def test_a_failed_update_puts_back_the_untracked_file_it_was_replacing_by_the_same_bytes(fleet, small_disk):
    push_to_origin(fleet, {"tools/run.sh": "#!/bin/sh\necho run\n", "big/new.txt": "cannot land\n"}, "Upstream")
    fleet.git("laptop", "fetch", "-q")
    repo = fleet.repo("laptop")
    (repo / "tools").mkdir()
    (repo / "tools" / "run.sh").write_text("#!/bin/sh\necho run\n")  # the incoming bytes, untracked here
    before, code, hosts, after = sync_with_a_directory_nobody_can_write(fleet, small_disk)

    assert code == 1 and "put back as it was" in hosts["laptop"]["message"], hosts["laptop"]
    assert after == before and "?? tools/run.sh" in after["status"]
    assert not (repo / ".git" / "agentsync-move.json").exists()


def test_a_process_appending_to_a_tracked_file_keeps_its_file_while_a_staged_change_is_stashed(fleet):
    push_to_origin(fleet, {"metrics.csv": "epoch,loss\n"}, "Add metrics")
    fleet.git("cloud", "pull", "-q")
    push_to_origin(fleet, {"README.md": "upstream README\n"}, "Upstream")
    repo = fleet.repo("cloud")
    (repo / "staged.txt").write_text("staged work\n")
    git(repo, "add", "staged.txt")  # forces a stash
    fleet.start_process("cloud", "sh -c 'cd crpbot && exec 3>>metrics.csv && while :; do echo 1,0.5 >&3; "
                                 "sleep 0.1; done' agentsync-test-proc")
    metrics = repo / "metrics.csv"
    wait_for(lambda: metrics.stat().st_size > len("epoch,loss\n"), "the job to write")
    inode = metrics.stat().st_ino

    code, hosts = sync(fleet, fleet.inventory({"cloud": {}}))

    assert code == 0 and hosts["cloud"]["status"] == "ok" and hosts["cloud"]["stash_used"]
    assert metrics.stat().st_ino == inode  # never swapped under the job
    size = metrics.stat().st_size
    wait_for(lambda: metrics.stat().st_size > size, "the job to keep writing to the visible file")
    assert git(repo, "diff", "--cached", "--name-only") == "staged.txt"


def test_a_staged_file_a_process_writes_to_is_refused_with_the_process_named(fleet):
    push_to_origin(fleet, {"metrics.csv": "epoch,loss\n"}, "Add metrics")
    fleet.git("cloud", "pull", "-q")
    push_to_origin(fleet, {"README.md": "upstream README\n"}, "Upstream")
    repo = fleet.repo("cloud")
    (repo / "metrics.csv").write_text("epoch,loss\n1,0.9\n")
    git(repo, "add", "metrics.csv")  # staged: it would be stashed, i.e. rewritten
    fleet.start_process("cloud", "sh -c 'cd crpbot && exec 3>>metrics.csv && while :; do sleep 0.2; done' "
                                 "agentsync-test-proc")
    wait_for(lambda: "metrics.csv" in fleet.sandbox.ssh("cloud", "ls -l /proc/*/fd 2>/dev/null || true"),
             "the job to open the file")
    before = full_snapshot(fleet, "cloud")

    code, hosts = sync(fleet, fleet.inventory({"cloud": {}}))

    assert code == 1 and hosts["cloud"]["status"] == "guarded"
    assert "metrics.csv is open for writing by pid" in hosts["cloud"]["message"]
    assert "agentsync-test-proc" in hosts["cloud"]["message"]
    assert full_snapshot(fleet, "cloud") == before


def test_a_commit_git_refuses_to_sign_is_not_called_a_conflict(fleet):
    push_to_origin(fleet, {"README.md": "upstream README\n"}, "Upstream")
    fleet.commit("cloud", "cloud.md", "mine\n", "Cloud work")
    fleet.git("cloud", "config", "commit.gpgsign", "true")
    fleet.git("cloud", "config", "gpg.program", "/bin/false")
    before = full_snapshot(fleet, "cloud")

    code, hosts = sync(fleet, fleet.inventory({"cloud": {}}))

    assert code == 1 and hosts["cloud"]["status"] == "failed"
    assert "not a conflict" in hosts["cloud"]["message"] and "gpg" in hosts["cloud"]["message"]
    assert full_snapshot(fleet, "cloud") == before


def test_no_identity_is_not_called_a_conflict(fleet):
    push_to_origin(fleet, {"README.md": "upstream README\n"}, "Upstream")
    fleet.commit("cloud", "cloud.md", "mine\n", "Cloud work")
    fleet.git("cloud", "config", "user.name", "")  # over any global identity: git refuses an empty name
    before = full_snapshot(fleet, "cloud")

    code, hosts = sync(fleet, fleet.inventory({"cloud": {}}))

    assert code == 1 and hosts["cloud"]["status"] == "failed", hosts["cloud"]
    assert "not a conflict" in hosts["cloud"]["message"] and "ident" in hosts["cloud"]["message"]
    assert full_snapshot(fleet, "cloud") == before


def test_a_stale_index_lock_is_named_with_its_age_and_nothing_changes(fleet):
    push_to_origin(fleet, {"README.md": "upstream README\n"}, "Upstream")
    lock = fleet.repo("cloud") / ".git" / "index.lock"
    lock.write_text("")
    old = time.time() - 2 * 3600 - 60
    os.utime(lock, (old, old))
    before = full_snapshot(fleet, "cloud")

    code, hosts = sync(fleet, fleet.inventory({"cloud": {}}))

    assert code == 1 and hosts["cloud"]["status"] == "failed"
    assert "index.lock (2h old)" in hosts["cloud"]["message"] and "stash" not in hosts["cloud"]["message"]
    assert full_snapshot(fleet, "cloud") == before and lock.exists()


def push_lfs_pointer(fleet, path: str, message: str) -> tuple[str, bytes]:
    """A commit whose `path` is a Git LFS pointer to an object nobody uploaded (pushed without LFS's pre-push
    check): a host that checks it out cannot get the object unless it has it already. Returns (oid, object)."""
    other = fleet.root / "lfs-author"
    clone(fleet.origin, other, "lfs-author")
    (other / ".gitattributes").write_text("*.bin filter=lfs diff=lfs merge=lfs -text\n")
    blob = os.urandom(4096)
    oid = hashlib.sha256(blob).hexdigest()
    (other / path).write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(blob)}\n")
    (other / "zz_after.py").write_text("after = 1\n")  # checked out after the pointer
    (other / "README.md").write_text("upstream README with a model\n")  # checked out before it
    git(other, "add", ".gitattributes", path, "zz_after.py", "README.md")
    git(other, "commit", "-qm", message)
    git(other, "push", "-q", "--no-verify", "origin", "main")
    return oid, blob


def test_a_missing_lfs_object_puts_the_checkout_back_exactly_and_says_so(fleet):
    oid, blob = push_lfs_pointer(fleet, "model.bin", "Add the model")
    for host in ("laptop", "cloud"):  # what `git lfs install` writes (Debian's package does it system-wide)
        for key, value in (("smudge", "git-lfs smudge -- %f"), ("process", "git-lfs filter-process"),
                           ("required", "true"), ("clean", "git-lfs clean -- %f")):
            fleet.git(host, "config", f"filter.lfs.{key}", value)
    store = fleet.repo("laptop") / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4]
    store.mkdir(parents=True)
    (store / oid).write_bytes(blob)  # the laptop has the object: it converges
    before = add_user_work(fleet, "cloud")
    repo = fleet.repo("cloud")

    code, hosts = sync(fleet, fleet.inventory({"laptop": {}, "cloud": {}}))

    assert code == 1 and hosts["cloud"]["status"] == "failed", hosts["cloud"]
    message = hosts["cloud"]["message"]
    assert "put back as it was" in message and "missing Git LFS object for model.bin" in message, message
    assert oid[:7] in message, message
    assert full_snapshot(fleet, "cloud") == before
    assert not (repo / ".git" / "agentsync-move.json").exists() and git(repo, "stash", "list") == ""
    assert hosts["laptop"]["status"] == "ok" and fleet.head("laptop") == fleet.origin_head()
    assert (fleet.repo("laptop") / "model.bin").read_bytes() == blob


def test_a_failing_post_checkout_hook_never_blocks_a_move(fleet):
    """Git LFS's post-checkout hook fails where git-lfs is not on the non-interactive PATH: a move never runs
    the user's hooks (`reset --keep` runs none; scratch worktrees have them off), so it cannot block it."""
    hook = fleet.repo("cloud") / ".git" / "hooks" / "post-checkout"
    hook.write_text("#!/bin/sh\necho ran >> \"$GIT_DIR/../hook-ran\"\necho 'git-lfs: not found' >&2\nexit 2\n")
    hook.chmod(0o755)
    push_to_origin(fleet, {"README.md": "upstream README\n"}, "Upstream")
    fleet.commit("cloud", "cloud.md", "mine\n", "Cloud work")  # replayed in a scratch worktree
    repo = fleet.repo("cloud")
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")  # stashed around the update

    code, hosts = sync(fleet, fleet.inventory({"cloud": {}}))

    assert code == 0 and hosts["cloud"]["status"] == "ok", hosts["cloud"]
    assert not (repo / "hook-ran").exists()
    assert fleet.git("cloud", "log", "-1", "--format=%s") == "Cloud work"
    assert git(repo, "diff", "--cached", "--name-only") == "staged.txt" and git(repo, "stash", "list") == ""


def add_user_work(fleet, host: str) -> dict:
    """An unrelated edit, a staged file and an executable untracked one on `host`; its snapshot after."""
    repo = fleet.repo(host)
    (repo / "strategies" / "momentum.py").write_text("WINDOW = 5\n")  # unrelated edit, stays in place
    (repo / "staged.txt").write_text("staged\n")
    git(repo, "add", "staged.txt")  # staged: stashed around the update, so the put-back pops it too
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    return full_snapshot(fleet, host)
