"""Jobs on real sandbox hosts (real sshd, real processes): they outlive the controller and its connection,
report their state honestly, end when cancelled — with every child, and nothing that is not theirs."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time

import pytest
from conftest import AGENTSYNC
from jobs_support import (
    as_json,
    cut_connections,
    gpu_reports,
    group_members,
    inventory,
    job_file,
    jobs_by_id,
    kill_all_jobs,
    start,
    wait_for_state,
    wait_until,
)

from agentsync_fleet.sandbox import MOUNT_POINT

GATED = f"echo started; while [ ! -e {MOUNT_POINT}/go ]; do sleep 0.1; done; echo finished"


@pytest.fixture
def jobs_fleet(fleet, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(fleet.root / "laptop-state"))  # the laptop's jobs: this test's own
    yield fleet
    kill_all_jobs(fleet)


def background_wait(fleet, inv, job_id: str) -> subprocess.Popen:
    """`agentsync wait JOB` in its own process, returned once it is connected and waiting."""
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state")}
    proc = subprocess.Popen([*AGENTSYNC, "wait", job_id, "--inventory", str(inv)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    seen = b""
    deadline = time.monotonic() + 60
    while b"waiting for job" not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1)
        if ready:
            seen += os.read(proc.stderr.fileno(), 4096)
        assert proc.poll() is None, seen.decode()
    assert b"waiting for job" in seen, seen.decode()
    return proc


@pytest.mark.parametrize("host", ["gpu", "nocli"])
def test_a_job_outlives_its_controller_killed_and_its_connection_cut(jobs_fleet, host):
    fleet = jobs_fleet
    inv = inventory(fleet)
    before = time.time()
    job = start(fleet, inv, host, GATED, "--name", "loop")
    assert job["state"] == "running" and job["pid"] and job["pgid"] == job["pid"] and job["process_start"]
    assert job["head"] == fleet.head(host) and job["dirty"] is False and job["cwd"] == f"{MOUNT_POINT}/crpbot"

    waiter = background_wait(fleet, inv, job["id"])
    assert cut_connections(fleet, host) >= 1  # the waiting controller's SSH connection, cut on the host's side
    waiter.send_signal(signal.SIGKILL)
    waiter.wait(timeout=30)

    seen = jobs_by_id(fleet, inv)[job["id"]]  # a new controller process
    assert seen["state"] == "running" and seen["label"] == "running"
    if host == "gpu":  # tmux is there: the job runs in a tmux session named after it
        assert seen["tmux"] == "loop"
        fleet.sandbox.ssh(host, "tmux has-session -t =loop")
    else:  # no tmux on nocli: its own session, still alive
        assert seen["tmux"] == ""
    fleet.sandbox.hosts[host].path("go").touch()
    ended = wait_for_state(fleet, inv, job["id"], lambda j: j["state"] != "running")
    assert ended["label"] == "exited 0" and ended["exit_code"] == 0
    assert 0 <= ended["runtime_s"] <= time.time() - before + 1
    assert ended["last_line"] == "finished"
    log = fleet.agentsync("logs", job["id"], inventory=inv)
    assert log.returncode == 0 and log.stdout == "started\nfinished\n", log.stderr


def test_wait_exits_with_the_job_status_and_then_results_brings_results_back_without_secrets(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet, results=[{"remote": "results/", "local": "results/gpu/"}])
    work = "mkdir -p results/exp && echo '{\"sharpe\": 2}' > results/exp/metrics.json && echo K=1 > results/exp/.env"
    start(fleet, inv, "gpu", work, "--name", "produce")
    done = fleet.agentsync("wait", "produce", "--then-results", inventory=inv)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "exited 0" in done.stdout, done.stdout + done.stderr
    assert (fleet.laptop_repo / "results/gpu/exp/metrics.json").read_text() == '{"sharpe": 2}\n'
    assert not (fleet.laptop_repo / "results/gpu/exp/.env").exists()  # a secret never travels

    failing = start(fleet, inv, "cloud", "echo oops >&2; exit 7")
    waited = fleet.agentsync("wait", failing["id"][:5], "--json", inventory=inv)
    assert waited.returncode == 7, waited.stderr
    data = as_json(waited)
    assert data["exit_code"] == 7 and data["job"]["label"] == "exited 7" and data["job"]["last_line"] == "oops"

    both = fleet.agentsync("run", "gpu", "exit 3", "--then-results", inventory=inv)
    assert both.returncode == 3, both.stdout + both.stderr
    assert "exited 3" in both.stdout and "1 transfer(s)" in both.stdout
    nothing = fleet.agentsync("run", "nocli", "true", "--then-results", inventory=inv)
    assert nothing.returncode == 2 and "nocli has no results: or rsync pull entries" in nothing.stderr
    assert {j["host"] for j in jobs_by_id(fleet, inv).values()} == {"gpu", "cloud"}  # nothing started on nocli


def test_cancel_ends_the_job_and_every_child_and_shows_how_it_was_killed(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    job = start(fleet, inv, "cloud", "sleep 300 & sleep 301 & wait", "--name", "parent")
    wait_until(lambda: len(group_members(fleet, "cloud", job["pgid"])) >= 3, what="the job and its two sleeps")
    result = fleet.agentsync("cancel", "parent", "--grace", "5", "--json", inventory=inv)
    assert result.returncode == 0, result.stderr
    data = as_json(result)
    assert data["outcome"] == "done" and data["signal"] == "SIGTERM"
    assert data["job"]["label"] == "killed (SIGTERM)"
    wait_until(lambda: not group_members(fleet, "cloud", job["pgid"]), what="every process of the job gone")
    cancelled = as_json(fleet.agentsync("history", "--json", "--task", "cancel", inventory=inv))["runs"][0]
    assert cancelled["status"] == "ok" and cancelled["hosts"] == {"cloud": "ok"}  # ended as asked: not a failure

    stubborn = start(fleet, inv, "gpu", "trap '' TERM; sleep 300", "--name", "stubborn")
    result = fleet.agentsync("cancel", stubborn["id"], "--grace", "1", inventory=inv)
    assert result.returncode == 0, result.stderr
    assert "killed (SIGKILL)" in result.stdout
    assert jobs_by_id(fleet, inv)[stubborn["id"]]["label"] == "killed (SIGKILL)"
    wait_until(lambda: not group_members(fleet, "gpu", stubborn["pgid"]), what="the stubborn job gone")


def test_a_vanished_job_is_lost_and_a_process_that_reuses_its_pid_is_never_signalled(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    job = start(fleet, inv, "gpu", "sleep 300", "--name", "victim")
    wrapper_pid = job_file(fleet, "gpu", job["id"], "wrapper").read_text().split()[0]
    fleet.sandbox.ssh("gpu", f"kill -KILL {wrapper_pid} -{job['pgid']}")  # the OOM killer, say
    lost = wait_for_state(fleet, inv, job["id"], lambda j: j["state"] != "running")
    assert lost["label"] == "lost" and lost["exit_code"] is None

    # another process now holds a pid; make the record point at it, as if the pid had been handed out again
    fleet.start_process("gpu", "python3 -c 'import time; time.sleep(600)' agentsync-test-proc")
    other = wait_until(lambda: fleet.sandbox.ssh("gpu", "pgrep -f agentsync-test-proc || true").split(),
                       what="the other process")[0]
    job_file(fleet, "gpu", job["id"], "pid").write_text(f"{other} {other} {job['process_start']}\n")
    result = fleet.agentsync("cancel", job["id"], "--grace", "0", inventory=inv)
    assert result.returncode == 1
    assert "nothing was signalled" in result.stdout
    assert fleet.sandbox.ssh("gpu", f"kill -0 {other} && echo alive").strip() == "alive"
    assert jobs_by_id(fleet, inv)[job["id"]]["label"] == "lost"
    again = fleet.agentsync("run", "gpu", "true", "--name", "victim", inventory=inv)  # a lost job holds no name
    assert again.returncode == 0, again.stderr


def test_a_job_records_its_repo_as_it_was_and_never_takes_a_tmux_session_it_did_not_make(jobs_fleet):
    fleet = jobs_fleet
    (fleet.repo("gpu") / "notes.txt").write_text("untracked\n")
    fleet.sandbox.ssh("gpu", "tmux new-session -d -s train sleep 600")  # the user's own session, named like the job
    inv = fleet.inventory({"gpu": {"gpu": True}, "cloud": {"repo": f"{MOUNT_POINT}/fresh"},
                           "nocli": {"repo": f"{MOUNT_POINT}/plain"}})
    job = start(fleet, inv, "gpu", GATED, "--name", "train")
    assert job["head"] == fleet.head("gpu") and job["dirty"] is True
    assert job["tmux"] == f"train-{job['id']}" and job["state"] == "running"
    fleet.sandbox.ssh("gpu", f"tmux has-session -t =train-{job['id']}")
    assert "sleep 600" in fleet.sandbox.ssh("gpu", "tmux list-panes -t =train -F '#{pane_current_command} "
                                                   "#{pane_start_command}'")

    fleet.sandbox.ssh("cloud", f"git init -q {MOUNT_POINT}/fresh && touch {MOUNT_POINT}/fresh/a")
    unborn = start(fleet, inv, "cloud", "true")  # a repo with no commit yet
    assert unborn["head"] == "" and unborn["dirty"] is True
    fleet.sandbox.ssh("nocli", f"mkdir -p {MOUNT_POINT}/plain")
    plain = start(fleet, inv, "nocli", "true")  # no repo at all
    assert plain["head"] == "" and plain["dirty"] is None


def test_a_second_job_of_the_same_name_is_refused_while_the_first_runs(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    first = start(fleet, inv, "cloud", "sleep 300", "--name", "train")
    second = fleet.agentsync("run", "cloud", "sleep 1", "--name", "train", inventory=inv)
    assert second.returncode == 1
    assert f"a job named 'train' is already running on cloud (job {first['id']})" in second.stderr
    assert fleet.agentsync("run", "gpu", "true", "--name", "train", inventory=inv).returncode == 0  # other host
    assert fleet.agentsync("cancel", "train", "--host", "cloud", inventory=inv).returncode == 0
    assert fleet.agentsync("run", "cloud", "true", "--name", "train", inventory=inv).returncode == 0


BUSY_SMI = """#!/bin/sh
case "$*" in
  *--query-gpu=*) echo "NVIDIA GeForce RTX 4090, 23500, 24564, 99, 71" ;;
  *--query-compute-apps=*) echo "4242, python3, 22000" ;;
  *) echo "NVIDIA-SMI 550.54.14" ;;
esac
"""


def test_a_busy_gpu_refuses_a_job_naming_who_holds_it_unless_allowed(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    with gpu_reports(fleet, BUSY_SMI):
        refused = fleet.agentsync("run", "gpu", "python train.py", inventory=inv)
        assert refused.returncode == 1
        assert "the GPU on gpu is busy: 22000 of 24564 MiB held by pid 4242 python3 (22000 MiB)" in refused.stderr
        assert "--allow-busy" in refused.stderr
        assert not jobs_by_id(fleet, inv)
        allowed = fleet.agentsync("run", "gpu", "true", "--allow-busy", inventory=inv)
        assert allowed.returncode == 0, allowed.stderr
    assert fleet.agentsync("run", "gpu", "true", inventory=inv).returncode == 0  # 2980 of 24564 MiB: not busy


def test_hostile_commands_and_values_run_exactly_as_typed_and_create_nothing_else(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    disk = fleet.sandbox.hosts["cloud"].path()
    before = sorted(p.name for p in disk.iterdir())
    command = ("echo \"a;b\" '$HOME' `echo x` $(echo y) \\\"q\\\"; printf '%s\\n' \"$V\"\n"
               f"echo line2 > /dev/null; echo $((1 + 2)) # ; touch {MOUNT_POINT}/pwned")
    job = start(fleet, inv, "cloud", command, "--env", f"V=$(touch {MOUNT_POINT}/pwned)'\"; x",
                "--cwd", "strategies")
    ended = wait_for_state(fleet, inv, job["id"], lambda j: j["state"] != "running")
    assert ended["label"] == "exited 0" and ended["command"] == command
    log = fleet.agentsync("logs", job["id"], inventory=inv).stdout
    expected = subprocess.run(["bash", "-c", command], capture_output=True, text=True, cwd="/",
                              env={"V": f"$(touch {MOUNT_POINT}/pwned)'\"; x", "PATH": os.environ["PATH"],
                                   "HOME": "/nowhere"}).stdout
    assert log == expected == f"a;b $HOME x y \"q\"\n$(touch {MOUNT_POINT}/pwned)'\"; x\n3\n"
    for name in ("x;touch /srv/agentsync/pwned", "$(id)", "a\nb", "-rf", ""):
        refused = fleet.agentsync("run", "cloud", "true", "--name", name, inventory=inv)
        assert refused.returncode == 2, (name, refused.stderr)
        assert "job name" in refused.stderr and "Traceback" not in refused.stderr
    assert not (disk / "pwned").exists()
    assert {p.name for p in disk.iterdir()} - set(before) <= {".state", "tmux-0"}  # job records, tmux's socket


def test_bad_input_is_refused_before_anything_runs(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    empty = fleet.agentsync("run", "cloud", "  ", "--json", inventory=inv)
    assert empty.returncode == 2 and as_json(empty)["error"]["message"] == "COMMAND is empty"
    unknown = fleet.agentsync("run", "clud", "true", inventory=inv)
    assert unknown.returncode == 2 and "host 'clud' is not in" in unknown.stderr and "did you mean 'cloud'" in unknown.stderr
    no_dir = fleet.agentsync("run", "cloud", "true", "--cwd", "no/such/dir", inventory=inv)
    assert no_dir.returncode == 1 and "working directory" in no_dir.stderr
    env = fleet.agentsync("run", "cloud", "true", "--env", "1BAD=x", inventory=inv)
    assert env.returncode == 2 and "--env '1BAD=x'" in env.stderr
    missing = fleet.agentsync("logs", "nosuchjob", inventory=inv)
    assert missing.returncode == 2 and "no job 'nosuchjob'" in missing.stderr
    assert as_json(fleet.agentsync("jobs", "--json", inventory=inv)) == {"jobs": [], "problems": {},
                                                                          "hosts": ["laptop", "cloud", "gpu", "nocli"]}


def test_named_presets_run_from_the_inventory_and_bad_ones_are_named(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet, jobs={"tirex": {"run": "echo preset $MODE; pwd", "env": {"MODE": "fast"},
                                           "cwd": "apps"}})
    job = start(fleet, inv, "gpu", "tirex")
    assert job["name"] == "tirex" and job["preset"] == "tirex" and job["command"] == "echo preset $MODE; pwd"
    ended = wait_for_state(fleet, inv, job["id"], lambda j: j["state"] != "running")
    assert fleet.agentsync("logs", "tirex", inventory=inv).stdout == f"preset fast\n{MOUNT_POINT}/crpbot/apps\n"
    assert ended["label"] == "exited 0"
    bad = inventory(fleet, jobs={"tirex": {"runn": "x"}, "bad name": {"run": "x"}})
    result = fleet.agentsync("jobs", inventory=bad)
    assert result.returncode == 2
    assert "host 'gpu', key 'jobs.tirex.runn': unknown key" in result.stderr
    assert "key 'jobs.tirex.run': missing" in result.stderr
    assert "preset name 'bad name'" in result.stderr


def test_logs_follow_streams_until_the_job_ends_and_ctrl_c_stops_only_the_following(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    job = start(fleet, inv, "gpu", GATED, "--name", "streamed")
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state")}
    argv = [*AGENTSYNC, "logs", job["id"], "--follow", "--inventory", str(inv)]
    interrupted = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert os.read(interrupted.stdout.fileno(), 100) == b"started\n"
    interrupted.send_signal(signal.SIGINT)
    assert interrupted.wait(timeout=30) == 0
    assert f"job {job['id']} goes on" in interrupted.stderr.read().decode()
    assert jobs_by_id(fleet, inv)[job["id"]]["state"] == "running"

    follower = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert os.read(follower.stdout.fileno(), 100) == b"started\n"
    fleet.sandbox.hosts["gpu"].path("go").touch()
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0 and out == b"finished\n", err
    followed = fleet.agentsync("logs", "streamed", "--follow", "--json", inventory=inv)
    data = as_json(followed)
    assert data["log"] == "started\nfinished\n" and data["job"]["label"] == "exited 0"


def test_every_job_task_prints_one_json_document_and_history_shows_starts_and_ends(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    job = start(fleet, inv, "cloud", "echo hi", "--name", "hello")
    outputs = [fleet.agentsync(*argv, "--json", inventory=inv) for argv in (
        ("wait", "hello"), ("jobs",), ("logs", job["id"], "--tail", "1"), ("cancel", "hello"))]
    documents = [as_json(result) for result in outputs]
    assert documents[0]["exit_code"] == 0 and documents[1]["jobs"][0]["id"] == job["id"]
    assert documents[2]["log"] == "hi\n" and documents[3]["outcome"] == "ended"
    history = as_json(fleet.agentsync("history", "--json", inventory=inv))
    tasks = [run["task"] for run in history["runs"]]
    assert {"run", "wait", "jobs", "logs", "cancel"} <= set(tasks)
    shown = fleet.agentsync("history.show", next(r["id"] for r in history["runs"] if r["task"] == "wait"),
                            inventory=inv)
    assert f"job hello ({job['id']}) exited 0" in shown.stdout, shown.stdout
    started = fleet.agentsync("history.show", next(r["id"] for r in history["runs"] if r["task"] == "run"),
                              inventory=inv)
    assert f"start job hello ({job['id']})" in started.stdout, started.stdout


PID_SMI = f"""#!/bin/sh
case "$*" in
  *--query-gpu=*) echo "NVIDIA GeForce RTX 4090, 5200, 24564, 80, 60" ;;
  *--query-compute-apps=*) [ -f {MOUNT_POINT}/gpu-pid ] && echo "$(cat {MOUNT_POINT}/gpu-pid), python3, 5000" ;;
  *) echo "NVIDIA-SMI 550.54.14" ;;
esac
"""


def test_health_and_jobs_show_running_jobs_with_their_gpu_memory_and_jobs_that_died(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    with gpu_reports(fleet, PID_SMI):
        trainer = start(fleet, inv, "gpu", f"echo $$ > {MOUNT_POINT}/gpu-pid; sleep 300", "--name", "trainer")
        wait_until(lambda: fleet.sandbox.hosts["gpu"].path("gpu-pid").exists(), what="the job's pid file")
        failed = start(fleet, inv, "cloud", "echo boom; exit 3", "--name", "broken")
        wait_for_state(fleet, inv, failed["id"], lambda j: j["state"] != "running")
        assert jobs_by_id(fleet, inv)[trainer["id"]]["gpu_mib"] == 5000
        result = fleet.agentsync("health", "--json", "--no-fetch", inventory=inv)
        hosts = {h["host"]: h for h in as_json(result)["hosts"]}
        gpu_jobs = {j["id"]: j for j in hosts["gpu"]["jobs"]}
        assert gpu_jobs[trainer["id"]]["state"] == "running" and gpu_jobs[trainer["id"]]["gpu_mib"] == 5000
        assert f"job {failed['id']} (broken) exited 3: boom" in hosts["cloud"]["warnings"]
        assert hosts["cloud"]["passed"] is True  # a job that died is shown; it does not fail the deploy gate
        people = fleet.agentsync("health", "--no-fetch", inventory=inv).stdout
        assert "job trainer" in people and "5000 MiB GPU" in people
        assert "exited 3: boom" not in people  # shown at health's last look (tests/test_jobs_looks.py)


def test_hosts_sharing_one_home_each_see_and_signal_only_their_own_jobs(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    shared = fleet.sandbox.hosts["cloud"].path(".state")
    shared.mkdir()
    fleet.sandbox.hosts["gpu"].path(".state").symlink_to(shared)  # one state dir, as an NFS home would be
    on_cloud = start(fleet, inv, "cloud", "sleep 300", "--name", "same")
    on_gpu = start(fleet, inv, "gpu", "sleep 300", "--name", "same")  # not a duplicate: another machine's job
    seen = jobs_by_id(fleet, inv)
    assert {(j["id"], j["host"]) for j in seen.values()} == {(on_cloud["id"], "cloud"), (on_gpu["id"], "gpu")}
    assert fleet.agentsync("cancel", on_cloud["id"], "--host", "gpu", inventory=inv).returncode == 2
    assert fleet.agentsync("cancel", "same", "--host", "cloud", inventory=inv).returncode == 0
    states = {j["host"]: j["label"] for j in jobs_by_id(fleet, inv).values()}
    assert states == {"cloud": "killed (SIGTERM)", "gpu": "running"}


@pytest.mark.parametrize("host", ["noisy", "sh-fish", "sh-tcsh", "sh-ash"])
def test_run_and_wait_work_alike_under_any_login_shell_and_a_chatty_bashrc(fleet, host):
    """The start script, the wrapper and the early start on hosts whose login shell is not sh, or greets."""
    fleet.prepare(host)
    inv = fleet.inventory({"laptop": {}, host: {}})
    job = start(fleet, inv, host, "echo 'a;b' \"$HOME\"; exit 3", "--name", "t")
    assert job["pid"] and job["head"] == fleet.head(host) and job["dirty"] is False, job
    waited = fleet.agentsync("wait", "t", "--json", inventory=inv)
    assert waited.returncode == 3, waited.stderr
    assert as_json(waited)["job"]["last_line"].startswith("a;b /"), waited.stdout
    assert fleet.agentsync("disconnect", inventory=inv).returncode == 0
    assert start(fleet, inv, host, "true", "--name", "u")["pid"]  # cold: its connection begun early
