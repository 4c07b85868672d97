"""The command line does exactly what it says: only our options, help that never acts, exit codes and JSON
a CI gate can trust. Real CLI processes against the real sshd fleet."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import AGENTSYNC, HOST_BACKUPS, REAL_STATE_DIR

from agentsync_fleet.cli import ns

PROJECT = Path(__file__).resolve().parent.parent
TASKS = sorted(ns.task_names)
INVOKE_CORE_OPTIONS = ("--dry", "--echo", "--pty", "--warn-only", "--command-timeout", "--hide",
                       "--prompt-for-sudo-password", "--write-pyc", "--config", "--debug")


def one_json_document(text: str) -> dict:
    """stdout parses as exactly one JSON document (json.loads refuses trailing text)."""
    return json.loads(text)


def snapshot(fleet) -> dict:
    """What a task that acted would have changed: origin's refs (claims too), the laptop's files, the journal."""
    refs = subprocess.run(["git", "-C", str(fleet.origin), "for-each-ref"], capture_output=True, text=True,
                          check=True).stdout
    files = sorted(str(p.relative_to(fleet.root)) for p in fleet.root.rglob("*")
                   if ".git" not in p.parts and "state" not in p.parts)
    state = fleet.root / "state"
    journal = sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in state.rglob("*")) \
        if state.exists() else []
    return {"refs": refs, "files": files, "journal": journal, "laptop": fleet.git("laptop", "status", "--short")}


# ------------------------------------------------------------------ only our options


def test_no_arguments_prints_a_short_overview_of_every_task_and_only_our_options(fleet):
    result = fleet.agentsync(env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    for task in TASKS:
        assert f"  {task} " in result.stdout
    for option in INVOKE_CORE_OPTIONS:
        assert not re.search(re.escape(option) + r"(?![\w-])", result.stdout), option
    assert "Exit status: 0 all good, 1 the fleet" in result.stdout
    assert len(lines) < 46  # one line per task (recover is the 27th) plus the header and footer
    wide = fleet.agentsync("--help")
    assert wide.returncode == 0 and "Tasks:" in wide.stdout and not re.search(r"--dry(?![\w-])", wide.stdout)


@pytest.mark.parametrize("option", INVOKE_CORE_OPTIONS)
def test_invoke_core_options_are_unknown_flags(fleet, option):
    result = fleet.agentsync(option, "status")
    assert result.returncode == 2, result.stderr
    assert f"No idea what '{option}' is" in result.stderr and "Traceback" not in result.stderr


def test_dry_push_is_refused_and_origin_is_untouched_under_agentsync_and_inv(fleet):
    fleet.commit("laptop", "laptop.md", "from the laptop\n", "Laptop work")
    inv = fleet.inventory()
    before = fleet.origin_head()
    refused = fleet.agentsync("--dry", "push", inventory=inv)
    assert refused.returncode == 2 and "--dry-run" in refused.stderr
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state")}
    for argv in (["--dry", "push"], ["push", "--dry"], ["--dry", "sync-all"]):  # `inv` reads tasks.py here
        under_inv = subprocess.run([sys.executable, "-m", "invoke", *argv, "--inventory", str(inv)], cwd=PROJECT,
                                   capture_output=True, text=True, env=env, timeout=120)
        assert under_inv.returncode == 2, (argv, under_inv.stdout, under_inv.stderr)
        assert "--dry is Invoke's echo-only mode" in under_inv.stderr
    as_json = fleet.agentsync("--dry", "push", "--json", inventory=inv)
    assert as_json.returncode == 2 and "--dry" in one_json_document(as_json.stdout)["error"]["message"]
    assert fleet.origin_head() == before  # nothing was pushed
    assert fleet.agentsync("push", "--dry-run", inventory=inv).returncode == 0
    assert fleet.origin_head() == before


# ------------------------------------------------------------------ help never acts


def test_every_tasks_help_prints_its_help_and_changes_nothing(fleet, tmp_path):
    inv = fleet.inventory()
    fleet.agentsync("claim", "strategies/", "--note", "mine", inventory=inv)  # a claims ref to keep an eye on
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    before = snapshot(fleet)
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state"), "AGENTSYNC_INVENTORY": str(inv),
           "COLUMNS": "100"}
    contexts = {context.name: context for context in ns.to_contexts()}
    for task in TASKS:
        for argv in ([task, "--help"], [task, "-h"], ["--help", task], [task, "x", "--help"]):
            if argv[1:2] == ["x"] and not contexts[task].positional_args:
                continue
            result = subprocess.run([*AGENTSYNC, *argv], capture_output=True, text=True, env=env, cwd=workdir,
                                    timeout=60)
            assert result.returncode == 0, (argv, result.stderr)
            assert result.stdout.startswith(f"Usage: agentsync {task} "), (argv, result.stdout)
            assert "Options:" in result.stdout and result.stderr == "", (argv, result.stderr)
    for task in ("claim", "release", "checkin", "history.export", "history.show", "trust"):  # positional ones
        under_inv = subprocess.run([sys.executable, "-m", "invoke", task, "--help"], cwd=PROJECT, env=env,
                                   capture_output=True, text=True, timeout=60)
        assert under_inv.returncode == 0 and f"agentsync {task}" in under_inv.stdout, under_inv.stderr
    assert list(workdir.iterdir()) == [] and not (PROJECT / "--help").exists()  # history.export wrote no file
    assert snapshot(fleet) == before


# ------------------------------------------------------------------ exit codes


def test_exit_codes_for_each_class_of_bad_input_are_2(fleet):
    inv = fleet.inventory()
    bad = fleet.root / "bad.yaml"
    bad.write_text("hosts:\n  cloud: {brnach: main}\n")
    cases = {
        "unknown task": fleet.agentsync("no-such-task"),
        "unknown flag": fleet.agentsync("status", "--no-such-flag", inventory=inv),
        "missing argument": fleet.agentsync("claim", inventory=inv),
        "bad inventory": fleet.agentsync("status", inventory=bad),
        "missing inventory": fleet.agentsync("status", inventory=fleet.root / "nope.yaml"),
        "bad --hosts": fleet.agentsync("status", "--hosts", "cluod", inventory=inv),
        "empty --hosts": fleet.agentsync("status", "--hosts", "", inventory=inv),
        "blank --hosts": fleet.agentsync("sync-all", "--hosts", " , ", inventory=inv),
        "empty --host": fleet.agentsync("results", "--host", "", inventory=inv),
        "unknown --list group": fleet.agentsync("--list", "nothing"),
    }
    for what, result in cases.items():
        assert result.returncode == 2, (what, result.stdout, result.stderr)
        assert "error:" in result.stderr and "Traceback" not in result.stderr, (what, result.stderr)
    assert "--hosts is empty" in cases["empty --hosts"].stderr
    assert fleet.origin_head() == fleet.head("cloud")  # the refused sync-all moved nothing


def test_inv_from_the_repo_exits_2_on_bad_input_like_agentsync(tmp_path):
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(tmp_path / "state"), "AGENTSYNC_INVENTORY": str(tmp_path / "x")}
    cases = {
        "unknown flag": ["--no-such-flag", "status"],
        "unknown task": ["no-such-task"],
        "unknown flag of a task": ["status", "--no-such-flag"],
        "missing argument": ["claim"],
        "unknown flag, --json": ["status", "--no-such-flag", "--json"],
    }
    for what, argv in cases.items():
        result = subprocess.run([sys.executable, "-m", "invoke", *argv], cwd=PROJECT, env=env, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 2, (what, result.stdout, result.stderr)
        assert result.stderr.startswith("error: ") and "hint: `inv --help` lists the tasks" in result.stderr, \
            (what, result.stderr)
        assert "Traceback" not in result.stderr
        if "--json" in argv:
            assert one_json_document(result.stdout)["error"]["message"] == "No idea what '--no-such-flag' is!"
        else:
            assert result.stdout == ""
    assert not (tmp_path / "state").exists()  # nothing ran


def test_status_exits_1_when_any_host_is_behind_ahead_dirty_or_missing_its_repo(fleet):
    inv = fleet.inventory()
    fine = fleet.agentsync("status", inventory=inv)
    assert fine.returncode == 0, fine.stdout + fine.stderr
    fleet.commit("laptop", "ahead.md", "x\n", "Ahead")
    ahead = fleet.agentsync("status", "--json", "--hosts", "laptop", inventory=inv)
    assert ahead.returncode == 1 and one_json_document(ahead.stdout)["ok"] is False
    fleet.git("laptop", "push", "-q", "origin", "main")
    behind = fleet.agentsync("status", "--hosts", "cloud", inventory=inv)
    assert behind.returncode == 1, behind.stdout
    (fleet.repo("gpu") / "dirty.txt").write_text("uncommitted\n")
    fleet.git("gpu", "pull", "-q")
    dirty = fleet.agentsync("status", "--hosts", "gpu", inventory=inv)
    assert dirty.returncode == 1, dirty.stdout
    missing = fleet.inventory({"cloud": {"repo": "/srv/agentsync/no-such-repo"}})
    gone = fleet.agentsync("status", "--json", inventory=missing)
    row = one_json_document(gone.stdout)["hosts"][0]
    assert gone.returncode == 1 and row["error"], row
    human = fleet.agentsync("status", inventory=missing)
    assert human.returncode == 1 and "│ ? " not in human.stdout and "repo directory does not exist" in human.stdout
    unreachable = fleet.agentsync("status", inventory=fleet.inventory({"down": {"ssh": "down"}}))
    assert unreachable.returncode == 1


# ------------------------------------------------------------------ --json is always one JSON document


def test_json_is_one_document_with_an_error_object_on_every_refusal(fleet):
    inv = fleet.inventory()
    for argv in (("status", "--hosts", "cluod"), ("status", "--hosts", ""), ("sync-all", "--hosts", "nope"),
                 ("health", "--workers", "0"), ("status", "--bogus"), ("history.show", "no-such-run")):
        result = fleet.agentsync(*argv, "--json", inventory=inv)
        assert result.returncode == 2, (argv, result.stderr)
        error = one_json_document(result.stdout)["error"]
        assert error["message"] and set(error) == {"message", "hint", "host"}, (argv, error)
    bad = fleet.agentsync("status", "--json", inventory=fleet.root / "nope.yaml")
    assert bad.returncode == 2 and "nope.yaml" in one_json_document(bad.stdout)["error"]["message"]


def test_json_when_the_fleet_is_locked_is_one_document_naming_the_holder(fleet):
    from test_locks import remote_lock, start_held_sync, wait_for

    first, inv, gate = start_held_sync(fleet)
    try:
        wait_for(lambda: all(remote_lock(fleet, h).exists() for h in ("laptop", "cloud", "gpu")),
                 what="the first run's locks")
        second = fleet.agentsync("sync-all", "--json", inventory=inv)
    finally:
        gate.unlink()
    first.communicate(timeout=60)
    assert second.returncode == 1
    error = one_json_document(second.stdout)["error"]
    assert "locked" in error["message"] and f"pid {first.pid}" in error["message"] and "unlock" in error["hint"]


def test_trust_json_is_one_document_on_every_path(fleet):
    fleet.write_ssh_files(untrusted=("cloud",))
    inv = fleet.inventory({"cloud": {}})
    refused = fleet.agentsync("trust", "cloud", "--json", inventory=inv)  # no tty, no --yes
    assert refused.returncode == 2 and "--yes" in one_json_document(refused.stdout)["error"]["hint"]
    trusted = fleet.agentsync("trust", "cloud", "--yes", "--json", inventory=inv)
    doc = one_json_document(trusted.stdout)
    assert trusted.returncode == 0 and doc["outcome"] == "trusted" and doc["fingerprint"].startswith("SHA256:")
    again = fleet.agentsync("trust", "cloud", "--yes", "--json", inventory=inv)
    assert again.returncode == 0 and one_json_document(again.stdout)["outcome"] == "known"
    unknown = fleet.agentsync("trust", "nohost", "--json", inventory=inv)
    assert unknown.returncode == 2 and one_json_document(unknown.stdout)["error"]["message"]


def test_the_readme_has_one_exit_status_table_and_the_help_says_the_same(fleet):
    readme = (PROJECT / "README.md").read_text()
    assert readme.count("| status | meaning |") == 1
    table = readme.split("| status | meaning |")[1].split("\n\n")[0]
    codes = [line.split("|")[1].strip() for line in table.splitlines()[2:]]
    assert codes == ["0", "1", "2", "130 / 143 / 129"]
    help_text = fleet.agentsync("--help", env={"COLUMNS": "80"}).stdout
    assert "0 all good, 1 the fleet is not where it should be, 2 bad input" in help_text
    assert "130/143/129 interrupted (Ctrl-C, SIGTERM, SIGHUP)" in help_text


# ------------------------------------------------------------------ the suite stays in its temp dirs


def test_the_suite_never_writes_into_the_real_state_dir(fleet):
    """A task started the way the suite's writers start it (plain environment, no state dir of its own)
    journals into the suite's throwaway state dir, and the host's backups stay on the host's disk."""
    assert Path(os.environ["AGENTSYNC_STATE_DIR"]) != REAL_STATE_DIR
    (fleet.repo("laptop") / "README.md").write_text("edited on the laptop\n")  # push-code replaces gpu's copy
    inv = fleet.inventory({"laptop": {}, "gpu": {}})
    result = subprocess.run([*AGENTSYNC, "push-code", "--host", "gpu", "--json", "--inventory", str(inv)],
                            capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["run_id"]
    assert fleet.sandbox.hosts["gpu"].path(f"{HOST_BACKUPS}/{run_id}").is_dir()  # the replaced README, kept
    suite_journal = Path(os.environ["AGENTSYNC_STATE_DIR"]) / "journal.sqlite3"
    assert _journal_has(suite_journal, run_id)
    assert not (REAL_STATE_DIR / "backups" / run_id).exists()
    real_journal = REAL_STATE_DIR / "journal.sqlite3"
    assert not real_journal.exists() or not _journal_has(real_journal, run_id, look_only=True)


def _journal_has(path: Path, run_id: str, look_only: bool = False) -> bool:
    """`look_only`: read without taking sqlite's locks, so not even the journal's -shm file is touched."""
    import sqlite3

    flags = "mode=ro&immutable=1" if look_only else "mode=ro"
    with sqlite3.connect(f"file:{path}?{flags}", uri=True, timeout=5) as db:
        return bool(db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchall())


# ------------------------------------------------------------------ the sandbox only touches what it made


def test_sandbox_up_and_down_touch_only_a_root_they_made_and_say_which(tmp_path):
    from conftest import SUBNET

    def agentsync(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([*AGENTSYNC, *argv], capture_output=True, text=True, timeout=180,
                              env={**os.environ, "AGENTSYNC_SANDBOX": str(tmp_path / "default")})

    someone_elses = tmp_path / "work"
    (someone_elses / "notes.txt").parent.mkdir()
    (someone_elses / "notes.txt").write_text("mine\n")
    for argv in (("sandbox.up", "--root", str(someone_elses)), ("sandbox.down", "--root", str(someone_elses)),
                 ("sandbox.down",), ("sandbox.up", "--root", str(tmp_path / "x"), "--subnet", "300")):
        if argv == ("sandbox.down",):
            (tmp_path / "default").mkdir()
            (tmp_path / "default" / "sandbox.json").write_text("{}")  # a sandbox.json alone is no marker
        refused = agentsync(*argv)
        assert refused.returncode == 2, (argv, refused.stderr)
        assert "error:" in refused.stderr and "Traceback" not in refused.stderr
    assert (someone_elses / "notes.txt").read_text() == "mine\n" and (tmp_path / "default" / "sandbox.json").exists()
    assert not (tmp_path / "x").exists()

    root = tmp_path / "box"
    up = agentsync("sandbox.up", "--root", str(root), "--subnet", str(SUBNET))
    try:
        assert up.returncode == 0, up.stderr
        assert f"127.{SUBNET}.0." in up.stdout and f"sandbox.down --root {root}" in up.stdout
        assert (root / ".agentsync-sandbox").is_file()
        inventory = (root / "fleet.yaml").read_text()
        assert "state_dir: state" in inventory and "backup_dir: /srv/agentsync/.agentsync-backups" in inventory
        again = agentsync("sandbox.up", "--root", str(root), "--subnet", str(SUBNET))
        assert again.returncode == 2 and "already under" in again.stderr and (root / "fleet.yaml").exists()
        results = agentsync("results", "--host", "gpu", "--inventory", str(root / "fleet.yaml"))
        laptop_results = root / "laptop" / "crpbot" / "results"
        assert results.returncode == 0, results.stdout + results.stderr
        assert (laptop_results / "gpu" / "exp-001" / "metrics.json").is_file()  # gpu's results/ contents, once
        assert not list(laptop_results.rglob("results")) and not (laptop_results / "gpu" / "exp-001" / ".env").exists()
        # Sandbox hosts share the controller's home: a job's record must land on the host's own disk, never in the
        # real user's ~/.local/state (where every sandbox host, bench and demo would pile up each other's jobs).
        started = agentsync("run", "gpu", "echo hi", "--json", "--inventory", str(root / "fleet.yaml"))
        assert started.returncode == 0, started.stderr
        job_id = json.loads(started.stdout)["job"]["id"]
        assert (root / "hosts" / "gpu" / "disk" / ".state" / "agentsync" / "jobs" / job_id).is_dir()
        assert not (Path.home() / ".local" / "state" / "agentsync" / "jobs" / job_id).exists()
    finally:
        down = agentsync("sandbox.down", "--root", str(root))
    assert down.returncode == 0, down.stderr
    assert f"sandbox fleet under {root} (cloud, gpu) stopped and removed" in down.stdout and not root.exists()
    gone = agentsync("sandbox.down", "--root", str(root))
    assert gone.returncode == 0 and "nothing to stop" in gone.stdout


# ------------------------------------------------------------------ the README matches the tool


def documented_commands() -> list[list[str]]:
    """Every `agentsync TASK ...` example line of the README, as argv (comments and pipes cut off)."""
    import shlex

    commands = []
    for line in (PROJECT / "README.md").read_text().splitlines():
        text = line.removeprefix("$ ").split(" # ")[0].split(" | ")[0].strip()
        if re.match(r"agentsync [a-z]", text):
            commands.append(shlex.split(text)[1:])
    return commands


def test_every_documented_example_is_a_real_task_whose_help_works_and_every_task_is_documented(fleet, tmp_path):
    commands = documented_commands()
    documented = {argv[0] for argv in commands}
    assert set(TASKS) - {"history.list"} <= documented | {"history"}, set(TASKS) - documented
    env = {**os.environ, "AGENTSYNC_INVENTORY": str(fleet.inventory()), "COLUMNS": "100"}
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    before = snapshot(fleet)
    for argv in commands:
        result = subprocess.run([*AGENTSYNC, *argv, "--help"], capture_output=True, text=True, env=env,
                                cwd=workdir, timeout=60)
        assert result.returncode == 0, (argv, result.stderr)
        assert result.stdout.startswith("Usage: agentsync "), (argv, result.stdout)
    assert snapshot(fleet) == before and list(workdir.iterdir()) == []


def test_the_example_inventory_validates_on_a_fresh_machine_without_an_ssh_config(tmp_path, monkeypatch):
    from agentsync_fleet import inventory

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/config here
    inv = inventory.load(PROJECT / "inventory" / "example.yaml")
    assert set(inv.order) == {"laptop", "cloud", "gpu", "review"}


def test_no_color_is_honoured_even_where_colour_is_forced(fleet):
    inv = fleet.inventory({"laptop": {}, "cloud": {}})
    coloured = fleet.agentsync("health", "--no-fetch", inventory=inv, env={"FORCE_COLOR": "1"})
    assert re.search(r"\x1b\[[0-9;]*3[0-7]m", coloured.stdout)  # the check below can see colour
    plain = fleet.agentsync("health", "--no-fetch", inventory=inv, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert plain.returncode == coloured.returncode == 0, plain.stderr
    assert not re.search(r"\x1b\[[0-9;]*(3[0-7]|9[0-7]|38;[0-9;]+)m", plain.stdout), plain.stdout


def test_the_readme_has_one_stage_list_and_it_is_the_pipeline():
    from agentsync_fleet.pipeline import default_stages

    readme = (PROJECT / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \| \*\*([a-z-]+)\*\* \|", readme, flags=re.M)
    assert [int(n) for n, _ in rows] == list(range(1, len(rows) + 1))
    assert [name for _, name in rows] == ["preflight", *(stage.name for stage in default_stages())]
    assert not re.search(r"\bstages? \d", readme)  # stages are named elsewhere, never numbered a second time
