"""Transfers never force, never leak, never run what an inventory value says: real hosts, real rsync."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

from rsync_support import inventory, run, write

RESULTS = {"results": [{"remote": "results/", "local": "results/gpu/"}]}
RUNTIME = "apps/runtime/v7_runtime.py"
PROC = "python3 -c 'import time; time.sleep(600)' agentsync-test-proc v7_runtime"





def test_push_code_holds_back_critical_files_while_a_guard_process_runs(fleet):
    write(fleet.repo("laptop") / RUNTIME, "# new runtime\n")
    write(fleet.repo("laptop") / "strategies" / "momentum.py", "WINDOW = 300\n")  # new size: rsync skips same size + same mtime second
    guard = {"guard": {"processes": ["v7_runtime"], "critical_files": [RUNTIME]}}
    inv = inventory(fleet, {"laptop": {}, "cloud": guard})
    fleet.start_process("cloud", PROC)
    running = fleet.repo("cloud") / RUNTIME
    before = running.read_text()

    code, data = run(fleet, "push-code", "--host", "cloud", inv=inv)

    assert code == 0, data
    assert running.read_text() == before  # untouched under the running process
    assert (fleet.repo("cloud") / "strategies" / "momentum.py").read_text() == "WINDOW = 300\n"
    (held,) = data["by_name"]["push-code"]["held_back"]
    assert held["path"] == RUNTIME and held["reason"] == "guard" and "agentsync-test-proc" in held["command"]
    people = fleet.agentsync("push-code", "--host", "cloud", inventory=inv)
    assert "held back (guarded: pid" in people.stdout and "--allow-running" in people.stdout

    code, data = run(fleet, "push-code", "--host", "cloud", "--allow-running", inv=inv)

    assert code == 0 and running.read_text() == "# new runtime\n"
    assert "--allow-running: sent apps/runtime/v7_runtime.py" in data["by_name"]["push-code"]["warnings"][0]


def test_delete_happens_only_when_the_entry_says_so_and_deleted_files_are_backed_up(fleet):
    write(fleet.repo("gpu") / "out" / "keep.txt", "k\n")
    for name in ("mirror", "plain"):
        write(fleet.repo("laptop") / name / "stale.txt", "only on the laptop\n")
        write(fleet.repo("laptop") / name / ".env", "LOCAL_SECRET=1\n")
    entries = [{"name": "mirror", "direction": "pull", "src": "out/", "dest": "mirror/", "delete": True},
               {"name": "plain", "direction": "pull", "src": "out/", "dest": "plain/"}]
    inv = inventory(fleet, {"laptop": {}, "gpu": {"rsync": entries}})

    code, data = run(fleet, "results", "--host", "gpu", inv=inv)

    assert code == 0, data
    laptop = fleet.repo("laptop")
    assert not (laptop / "mirror" / "stale.txt").exists() and (laptop / "plain" / "stale.txt").exists()
    assert (laptop / "mirror" / ".env").exists()  # secrets on the receiving side are protected from delete too
    mirror = data["by_name"]["mirror"]
    assert mirror["deleted"] == 1 and [b["path"] for b in mirror["backed_up"]] == ["stale.txt"]
    assert Path(mirror["backed_up"][0]["backup"]).read_text() == "only on the laptop\n"


def test_hostile_paths_patterns_and_backup_dir_are_plain_data_to_rsync(fleet):
    odd = "odd $(touch PWNED) ;touch PWNED 'q' \"d\" -rf"
    write(fleet.repo("gpu") / odd / "a.txt", "arrived\n")
    write(fleet.repo("laptop") / "README.md", "laptop edit\n")
    write(fleet.repo("gpu") / "README.md", "gpu edit\n")
    home_root = f"~/.agentsync-test-{uuid.uuid4().hex[:8]}"
    backups = f"{home_root}/$(touch PWNED) it's"
    entries = [{"name": "odd", "direction": "pull", "src": odd + "/", "dest": "-rf/",
                "exclude": ["*.txt' ; touch PWNED #", "--rsync-path=touch PWNED"]},
               {"name": "dash", "direction": "pull", "src": "--rsync-path=touch PWNED", "dest": "x/"}]
    inv = inventory(fleet, {"laptop": {}, "gpu": {"rsync": entries}}, transfers={"backup_dir": backups})
    try:
        code, data = run(fleet, "results", "--host", "gpu", inv=inv)
        push_code, pushed = run(fleet, "push-code", "--host", "gpu", inv=inv)

        assert (fleet.repo("laptop") / "-rf" / "a.txt").read_text() == "arrived\n"
        assert data["by_name"]["odd"]["status"] == "ok"
        dash = data["by_name"]["dash"]  # a source that does not exist: a clean error, not an option
        assert code == 1 and dash["status"] == "failed" and "/--rsync-path=touch PWNED does not exist" in dash["error"]
        assert "--rsync-path=touch PWNED" in dash["detail"] and "No such file" in dash["detail"]
        assert push_code == 0, pushed
        (backup,) = pushed["by_name"]["push-code"]["backed_up"]
        literal = Path(home_root.replace("~", str(Path.home()), 1)) / "$(touch PWNED) it's"
        assert backup["backup"].startswith(str(literal) + "/")  # the dir is named literally
        assert Path(backup["backup"]).read_text() == "gpu edit\n"
    finally:
        shutil.rmtree(Path(home_root.replace("~", str(Path.home()), 1)), ignore_errors=True)
    for where in (fleet.sandbox.hosts["gpu"].path(), fleet.repo("gpu"), fleet.repo("laptop"), Path.home(),
                  Path.cwd()):
        assert not (where / "PWNED").exists(), where


def test_unknown_host_key_is_refused_and_one_bad_host_does_not_stop_the_others(fleet):
    fleet.write_ssh_files(untrusted=("gpu",))
    write(fleet.repo("cloud") / "results" / "ok.txt", "fine\n")
    hosts = {"laptop": {}, "gpu": RESULTS, "down": RESULTS,
             "cloud": {"results": [{"remote": "results/", "local": "results/cloud/"}]}}
    inv = inventory(fleet, hosts)

    code, data = run(fleet, "results", inv=inv)

    assert code == 1
    by_host = {t["host"]: t for t in data["transfers"]}
    assert by_host["gpu"]["status"] == "unreachable"
    # the connector's own diagnosis, in the words `health` uses: the fingerprint and the trust command
    assert "unknown host key for" in by_host["gpu"]["error"] and "refusing to connect" in by_host["gpu"]["error"]
    assert "SHA256:" in by_host["gpu"]["error"]
    assert by_host["gpu"]["hint"] == (f"check the fingerprint with the host's owner, then run: agentsync trust gpu "
                                      f"--inventory {inv}")
    assert by_host["down"]["status"] == "unreachable" and "connection refused" in by_host["down"]["error"]
    assert by_host["cloud"]["status"] == "ok"
    assert (fleet.repo("laptop") / "results" / "cloud" / "ok.txt").read_text() == "fine\n"
    assert not (fleet.repo("laptop") / "results" / "gpu").exists()
    people = fleet.agentsync("results", inventory=inv)
    assert "✗ gpu.results" in people.stdout and "hint: check the fingerprint" in people.stdout
    assert "Traceback" not in people.stderr


def test_bad_transfer_input_is_a_clear_error_with_exit_2(fleet):
    bad = inventory(fleet, {"laptop": {}, "gpu": {"rsync": [
        {"name": "x", "direction": "push", "src": "clowd:data/", "dest": "data/"}]}})
    result = fleet.agentsync("push-code", "--host", "gpu", inventory=bad)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "'clowd:data/' names host 'clowd', which is not defined under hosts" in result.stderr

    good = inventory(fleet, {"laptop": {}, "gpu": {}, "cloud": RESULTS})
    cases = {("results", "--host", "nosuch"): "--host names 'nosuch'",
             ("results", "--host", "gpu"): "gpu has no results: or rsync pull entries",
             ("push-code", "--host", "laptop"): "laptop is the laptop itself",
             ("push-code",): "no host in"}
    for argv, message in cases.items():
        result = fleet.agentsync(*argv, inventory=good)
        assert result.returncode == 2 and message in result.stderr, (argv, result.stderr)
