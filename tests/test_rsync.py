"""rsync transfers against real sshd hosts with the real rsync: results, backups, secrets, dry-run, resume, relays."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from rsync_support import BACKUPS, run, write
from rsync_support import inventory as inventory_with_backups

from agentsync_fleet.sandbox import MOUNT_POINT

AGENTSYNC = [sys.executable, "-m", "agentsync_fleet"]

RESULTS = {"results": [{"remote": "results/", "local": "results/gpu/"}]}


def inventory(fleet, hosts: dict | None = None, **top) -> Path:
    return inventory_with_backups(fleet, hosts if hosts is not None else {"laptop": {}, "gpu": RESULTS}, **top)



def digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def gpu_results(fleet) -> Path:
    out = fleet.repo("gpu") / "results"
    write(out / "metrics.json", '{"loss": 0.12}\n')
    write(out / "run1" / "model.bin", os.urandom(300_000))
    write(out / "notes ü $(x).txt", "odd name\n")
    write(out / ".env", "API_KEY=secret\n")
    write(out / "keys" / "deploy.pem", "-----BEGIN PRIVATE KEY-----\n")
    return out


def test_results_come_back_from_gpu_and_secrets_are_held_back_and_reported(fleet):
    source = gpu_results(fleet)
    write(source / "run1" / "vault.token", "an extra secret pattern from the inventory\n")
    inv = inventory(fleet, transfers={"backup_dir": BACKUPS, "secrets": ["*.token"]})

    code, data = run(fleet, "results", "--host", "gpu", inv=inv)

    assert code == 0 and data["ok"], data
    local = fleet.repo("laptop") / "results" / "gpu"
    secrets = (".env", "keys/deploy.pem", "run1/vault.token")
    expected = {k: v for k, v in digest_tree(source).items() if k not in secrets}
    assert digest_tree(local) == expected
    t = data["by_name"]["results"]
    assert {(h["path"], h["pattern"], h["reason"]) for h in t["held_back"]} == {
        (".env", ".env", "secret"), ("keys/deploy.pem", "*.pem", "secret"), ("run1/vault.token", "*.token", "secret")}
    assert t["files"] == 3 and t["bytes"] == sum((source / p).stat().st_size for p in expected)
    assert data["totals"]["held_back"] == 3 and t["mode"] == "local" and t["source"].startswith("gpu:")
    people = fleet.agentsync("results", "--host", "gpu", inventory=inv)
    assert people.returncode == 0, people.stderr
    assert "held back (secrets, never sent): " in people.stdout and "keys/deploy.pem (*.pem)" in people.stdout
    assert "0 file(s), 0 B moved" in people.stdout  # the second run had nothing left to move


def test_a_local_file_that_is_overwritten_is_kept_in_the_backup_dir_and_can_be_restored(fleet):
    write(fleet.repo("gpu") / "results" / "metrics.json", "new from gpu\n")
    mine = write(fleet.repo("laptop") / "results" / "gpu" / "metrics.json", "my local edit\n")

    code, data = run(fleet, "results", "--host", "gpu", inv=inventory(fleet))

    assert code == 0, data
    assert mine.read_text() == "new from gpu\n"
    (backup,) = data["by_name"]["results"]["backed_up"]
    assert backup["path"] == "metrics.json"
    assert backup["backup"].startswith(str(fleet.root / "state" / "backups" / data["run_id"]))
    assert Path(backup["backup"]).read_text() == "my local edit\n"
    subprocess.run(backup["restore"], shell=True, check=True)  # the printed way back works as printed
    assert mine.read_text() == "my local edit\n"


def test_push_code_backs_up_what_it_replaces_on_the_host_with_a_working_restore_command(fleet):
    write(fleet.repo("gpu") / "README.md", "gpu's own uncommitted edit\n")
    write(fleet.repo("laptop") / "README.md", "laptop's version\n")

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet))

    assert code == 0, data
    assert (fleet.repo("gpu") / "README.md").read_text() == "laptop's version\n"
    t = data["by_name"]["push-code"]
    (backup,) = t["backed_up"]
    assert backup["backup"].startswith(f"{BACKUPS}/{data['run_id']}/gpu.push-code/")
    on_gpu_disk = fleet.sandbox.hosts["gpu"].path(backup["backup"])
    assert on_gpu_disk.read_text() == "gpu's own uncommitted edit\n"
    subprocess.run(backup["restore"], shell=True, check=True, timeout=30)
    assert (fleet.repo("gpu") / "README.md").read_text() == "gpu's own uncommitted edit\n"


def test_dry_run_moves_nothing_and_shows_the_itemized_changes(fleet):
    gpu_results(fleet)
    write(fleet.repo("laptop") / "results" / "gpu" / "metrics.json", "local\n")
    write(fleet.repo("laptop") / "README.md", "changed on the laptop\n")
    inv = inventory(fleet)
    before = {h: digest_tree(fleet.repo(h)) for h in ("laptop", "gpu")}

    code, data = run(fleet, "results", "--host", "gpu", "--dry-run", inv=inv)
    people = fleet.agentsync("push-code", "--host", "gpu", "--dry-run", inventory=inv)

    assert code == 0 and data["dry_run"] is True
    changes = {c["path"]: c["action"] for c in data["by_name"]["results"]["changes"]}
    assert changes["metrics.json"] == "update" and changes["run1/model.bin"] == "new"
    assert ".env" not in changes and data["by_name"]["results"]["backed_up"] == []
    assert people.returncode == 0, people.stderr
    assert "(dry run: nothing was moved)" in people.stdout and "~ update README.md (backed up first)" in people.stdout
    assert {h: digest_tree(fleet.repo(h)) for h in ("laptop", "gpu")} == before
    assert not (fleet.root / "state" / "backups").exists()
    assert not fleet.sandbox.hosts["gpu"].path(BACKUPS).exists()


def test_push_code_sends_only_what_git_tracks_or_would_track_never_git_or_secrets(fleet):
    laptop = fleet.repo("laptop")
    fleet.commit("laptop", "config/service.key", "tracked by mistake\n", "Add a key (oops)")
    write(laptop / "README.md", "edited, not committed\n")
    write(laptop / "pkg" / "sub" / "mod.py", "NEW = 1\n")  # untracked, not ignored
    write(laptop / "debug.log", "ignored by *.log\n")
    write(laptop / "results" / "big.out", "ignored results/\n")
    (laptop / "strategies" / "momentum.py").unlink()  # deleted in the working tree: nothing to send, no error
    gpu = fleet.repo("gpu")
    gpu_head, gpu_config = fleet.head("gpu"), (gpu / ".git" / "config").read_bytes()

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet))

    assert code == 0, data
    assert (gpu / "README.md").read_text() == "edited, not committed\n"
    assert (gpu / "pkg" / "sub" / "mod.py").read_text() == "NEW = 1\n"
    assert not (gpu / "debug.log").exists() and not (gpu / "results").exists()
    assert not (gpu / "config" / "service.key").exists()
    assert (gpu / "strategies" / "momentum.py").exists()  # never deleted by push-code
    assert fleet.head("gpu") == gpu_head and (gpu / ".git" / "config").read_bytes() == gpu_config
    t = data["by_name"]["push-code"]
    assert t["held_back"] == [{"path": "config/service.key", "pattern": "*.key", "reason": "secret"}]
    assert sorted(c["path"] for c in t["changes"] if c["action"] in ("new", "update")) == [
        "README.md", "pkg/sub/mod.py"]


def test_push_code_of_an_unchanged_checkout_moves_and_backs_up_nothing(fleet):
    for path in fleet.repo("gpu").rglob("*"):  # same commit, other mtimes: what two real checkouts look like
        os.utime(path, (1_600_000_000, 1_600_000_000), follow_symlinks=False)

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet))

    assert code == 0, data
    t = data["by_name"]["push-code"]
    assert t["files"] == 0 and t["backed_up"] == []
    assert {c["action"] for c in t["changes"]} == {"attrs"}  # only mtimes were brought in line


def kill_mid_transfer(fleet, sandbox, task: str, watch: Path, inv: Path) -> tuple[int, dict]:
    """Start `task` for gpu, wait until rsync writes its temp file in `watch`, pull gpu's plug, restart gpu."""
    argv = [*AGENTSYNC, task, "--host", "gpu", "--json", "--inventory", str(inv)]
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state")}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while not list(watch.glob(".big.bin.*")) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.5)  # ~3 MB of 16 MB are across
        sandbox.kill("gpu")
        out, err = proc.communicate(timeout=60)
    finally:
        sandbox.start("gpu")  # the sandbox lives for the whole session: later tests need gpu
    assert out.startswith("{"), err
    return proc.returncode, json.loads(out)["transfers"][0]


def test_an_interrupted_pull_fails_clearly_and_resumes_on_the_next_run(fleet, sandbox):
    big = write(fleet.repo("gpu") / "results" / "big.bin", os.urandom(16 * 1024 * 1024))
    old = write(fleet.repo("laptop") / "results" / "gpu" / "big.bin", b"the laptop's old big.bin\n")
    dest = old.parent
    slow = inventory(fleet, transfers={"backup_dir": BACKUPS, "bwlimit": 2048})

    code, t = kill_mid_transfer(fleet, sandbox, "results", dest, slow)

    assert code == 1 and t["status"] == "failed" and "the transfer with gpu was cut off mid-way" in t["error"]
    assert "run `agentsync results --host gpu` again" in t["hint"] and "resumes" in t["hint"]
    partial = dest / ".agentsync-partial" / "big.bin"
    assert 0 < partial.stat().st_size < big.stat().st_size
    assert old.read_bytes() == b"the laptop's old big.bin\n"  # the old file stays whole until the new one is

    code, data = run(fleet, "results", "--host", "gpu", inv=inventory(fleet))

    assert code == 0, data
    assert hashlib.sha256(old.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()
    t = data["by_name"]["results"]
    # resumed: random data never matches the old file, so matched bytes can only come from the kept partial
    assert t["legs"][0]["matched"] > 0
    assert Path(t["backed_up"][0]["backup"]).read_bytes() == b"the laptop's old big.bin\n"
    assert not (dest / ".agentsync-partial").exists()


def test_a_push_cut_off_by_the_receiving_host_dying_completes_on_the_next_run(fleet, sandbox):
    big = write(fleet.repo("laptop") / "big.bin", os.urandom(16 * 1024 * 1024))  # untracked, not ignored
    old = write(fleet.repo("gpu") / "big.bin", b"gpu's old big.bin\n")
    write(fleet.repo("laptop") / "README.md", "laptop README, sent before big.bin\n")
    write(fleet.repo("gpu") / "README.md", "gpu's own README\n")
    slow = inventory(fleet, transfers={"backup_dir": BACKUPS, "bwlimit": 2048})

    code, t = kill_mid_transfer(fleet, sandbox, "push-code", fleet.repo("gpu"), slow)

    assert code == 1 and t["status"] == "failed" and "the transfer with gpu was cut off mid-way" in t["error"]
    assert "run `agentsync push-code --host gpu` again" in t["hint"]
    assert old.read_bytes() == b"gpu's old big.bin\n"
    (readme,) = t["backed_up"]  # replaced before the cut: still reported, with its way back
    assert readme["path"] == "README.md"
    assert fleet.sandbox.hosts["gpu"].path(readme["backup"]).read_text() == "gpu's own README\n"

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet))

    assert code == 0, data
    assert hashlib.sha256(old.read_bytes()).digest() == hashlib.sha256(big.read_bytes()).digest()
    (backup,) = data["by_name"]["push-code"]["backed_up"]
    assert fleet.sandbox.hosts["gpu"].path(backup["backup"]).read_bytes() == b"gpu's old big.bin\n"


def test_cloud_to_gpu_relays_through_the_laptop_cache_and_arrives_intact(fleet):
    data_dir = fleet.repo("cloud") / "data"
    write(data_dir / "train.parquet", os.urandom(200_000))
    write(data_dir / "nested" / "labels.csv", "a,b\n1,2\n")
    write(data_dir / ".env.prod", "TOKEN=1\n")
    write(data_dir / "nested" / "model.key", "k\n")
    entry = {"name": "to-gpu", "direction": "pull", "src": "data/", "dest": "gpu:incoming/"}
    inv = inventory(fleet, {"laptop": {}, "cloud": {"rsync": [entry]}, "gpu": {}})

    code, data = run(fleet, "results", "--host", "cloud", inv=inv)

    assert code == 0, data
    t = data["by_name"]["to-gpu"]
    assert t["mode"] == "relay" and len(t["legs"]) == 2
    arrived = digest_tree(fleet.repo("gpu") / "incoming")
    assert arrived == {k: v for k, v in digest_tree(data_dir).items() if k not in (".env.prod", "nested/model.key")}
    assert {h["path"] for h in t["held_back"]} == {".env.prod", "nested/model.key"}
    cache = fleet.root / "state" / "relay" / "cloud" / "to-gpu"
    assert digest_tree(cache) == arrived  # secrets never reached the laptop either
    code, again = run(fleet, "results", "--host", "cloud", inv=inv)
    assert code == 0 and again["by_name"]["to-gpu"]["files"] == 0


def _give_edge_its_own_ssh(fleet, trust_gpu: bool) -> None:
    dot_ssh = Path(fleet.sandbox.hosts["edge"].dir) / "dot-ssh"
    shutil.copy(fleet.sandbox.client_key, dot_ssh / "id_ed25519")
    (dot_ssh / "id_ed25519").chmod(0o600)
    gpu = fleet.sandbox.hosts["gpu"]
    line = f"[{gpu.address}]:{gpu.port} {fleet.sandbox.host_public_key('gpu')}\n" if trust_gpu else ""
    (dot_ssh / "known_hosts").write_text(line)


def test_direct_transfer_runs_rsync_on_the_source_host_straight_to_the_target(fleet):
    edge_data = fleet.sandbox.hosts["edge"].path("data")
    shutil.rmtree(edge_data, ignore_errors=True)
    write(edge_data / "weights.bin", os.urandom(100_000))
    write(edge_data / "id_rsa", "never\n")
    entry = {"name": "straight", "direction": "pull", "src": f"{MOUNT_POINT}/data/", "dest": "gpu:direct-in/",
             "direct": True}
    inv = inventory(fleet, {"laptop": {}, "edge": {"rsync": [entry]}, "gpu": {}})
    _give_edge_its_own_ssh(fleet, trust_gpu=False)

    code, data = run(fleet, "results", "--host", "edge", inv=inv)

    t = data["by_name"]["straight"]
    assert code == 1 and t["status"] == "unreachable"
    assert "gpu (as seen from edge)'s host key is not in known_hosts" in t["error"]
    assert "edge's own ssh" in t["hint"] and not (fleet.repo("gpu") / "direct-in").exists()

    _give_edge_its_own_ssh(fleet, trust_gpu=True)
    code, data = run(fleet, "results", "--host", "edge", inv=inv)

    t = data["by_name"]["straight"]
    assert code == 0 and t["mode"] == "direct" and len(t["legs"]) == 1, t
    assert t["legs"][0]["command"].startswith("ssh ") and " edge " in t["legs"][0]["command"]
    assert digest_tree(fleet.repo("gpu") / "direct-in") == {"weights.bin": digest_tree(edge_data)["weights.bin"]}
    assert t["held_back"] == [{"path": "id_rsa", "pattern": "id_rsa*", "reason": "secret"}]
    assert not (fleet.root / "state" / "relay").exists()  # nothing went through the laptop


def test_sync_all_pushes_code_after_converge_and_brings_results_back_at_the_end(fleet):
    fleet.commit("laptop", "feature.py", "X = 1\n", "Add feature")
    write(fleet.repo("laptop") / "feature.py", "X = 2  # trying something, not committed\n")
    write(fleet.repo("gpu") / "results" / "score.txt", "0.93\n")
    inv = inventory(fleet, {"laptop": {}, "cloud": {}, "gpu": {"push_code": True, **RESULTS}})

    result = fleet.agentsync("sync-all", "--json", inventory=inv)

    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    gpu = next(h for h in report["hosts"] if h["host"] == "gpu")
    stages = [s["stage"] for s in gpu["steps"]]
    assert stages.index("converge") < stages.index("push-code") < stages.index("results") == len(stages) - 1
    assert fleet.head("gpu") == fleet.origin_head()  # converged on the commit first...
    assert (fleet.repo("gpu") / "feature.py").read_text() == "X = 2  # trying something, not committed\n"  # ...then
    assert (fleet.repo("laptop") / "results" / "gpu" / "score.txt").read_text() == "0.93\n"
    push = next(s for s in gpu["steps"] if s["stage"] == "push-code")
    back = next(s for s in gpu["steps"] if s["stage"] == "results")
    assert push["data"]["files"] == 1 and push["data"]["bytes"] == len("X = 2  # trying something, not committed\n")
    assert back["data"]["files"] == 1 and back["data"]["bytes"] == 5 and back["data"]["count"] == 1
    assert any(c["command"].startswith("rsync ") for c in push["commands"])
    plan = fleet.agentsync("plan", inventory=inv)
    assert 0 < plan.stdout.index("· push-code") < plan.stdout.index("· results")
    assert "--dry-run" in plan.stdout and "rsync -rlpt" in plan.stdout


def test_rsync_reaches_a_host_behind_a_jump_host_through_ssh_config(fleet):
    write(fleet.repo("inner") / "results" / "far.txt", "from behind the jump host\n")
    inv = inventory(fleet, {"laptop": {}, "inner": {"ssh": "inner-via-jump", **RESULTS}})

    code, data = run(fleet, "results", inv=inv)

    assert code == 0, data
    assert (fleet.repo("laptop") / "results" / "gpu" / "far.txt").read_text() == "from behind the jump host\n"


def test_progress_bars_show_bytes_and_files_on_a_terminal(fleet):
    import pty

    write(fleet.repo("gpu") / "results" / "big.bin", os.urandom(2 * 1024 * 1024))
    inv = inventory(fleet)
    master, slave = pty.openpty()
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state"), "COLUMNS": "160", "TERM": "xterm"}
    proc = subprocess.Popen([*AGENTSYNC, "results", "--host", "gpu", "--inventory", str(inv)], stdin=slave,
                            stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    assert proc.wait(timeout=60) == 0
    os.close(master)
    text = screen.decode(errors="replace")
    assert "gpu.results" in text and "100%" in text and "2.0 MiB" in text and "files" in text
