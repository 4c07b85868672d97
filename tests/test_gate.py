"""The deploy gate the team defines, on real sshd hosts: checks, expected files, processes expected up."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time

from agentsync_fleet.sandbox import MOUNT_POINT, free_port

PROC = "python3 -c 'import time; time.sleep(600)' agentsync-test-proc"
SERVER = """import http.server, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 500)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Handler).serve_forever()
"""


def report(result) -> dict:
    assert result.stdout.strip().startswith("{"), result.stdout + result.stderr
    data = json.loads(result.stdout)
    return {h["host"]: h for h in data["hosts"]} | {"_": data}


def checks_of(host: dict) -> dict:
    return {c["name"]: c for c in host["checks"]}


def wait_until(condition, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def put(fleet, host: str, path: str, text: str) -> None:
    file = fleet.repo(host) / path
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(text)


def test_run_checks_pass_fail_time_out_alone_and_keep_only_the_tail(fleet):
    inv = fleet.inventory({
        "cloud": {"checks": [
            {"name": "tests", "run": "echo all good; test -f README.md"},
            {"name": "lint", "run": "echo checking >&2; echo 'E501 line too long'; exit 3"},
            {"name": "slow", "run": "sleep 47", "timeout": 3},
            {"name": "chatty", "run": "seq 1 200000; echo last-line"},
        ]},
        "gpu": {"checks": [{"name": "tests", "run": "true"}]},
    })
    start = time.monotonic()
    result = fleet.agentsync("health", "--json", inventory=inv)
    elapsed = time.monotonic() - start
    assert result.returncode == 1, result.stderr
    hosts = report(result)
    cloud = checks_of(hosts["cloud"])
    assert cloud["tests"]["status"] == "pass" and cloud["tests"]["passed"] is True
    assert "all good" in cloud["tests"]["output_tail"]
    assert cloud["lint"]["status"] == "fail" and cloud["lint"]["exit_code"] == 3
    assert cloud["lint"]["reason"] == "exit 3: E501 line too long"
    assert "checking" in cloud["lint"]["output_tail"]  # stderr is part of the output
    assert cloud["slow"]["status"] == "timeout" and cloud["slow"]["reason"] == "timeout after 3 s"
    assert cloud["chatty"]["status"] == "pass"
    tail = cloud["chatty"]["output_tail"].splitlines()
    assert tail[-1] == "last-line" and tail[-2] == "200000" and len(tail) <= 20
    assert "check lint: exit 3: E501 line too long" in hosts["cloud"]["failures"]
    assert "check slow: timeout after 3 s" in hosts["cloud"]["failures"]
    assert hosts["gpu"]["passed"] is True and checks_of(hosts["gpu"])["tests"]["status"] == "pass"
    assert elapsed < 3 + 8, elapsed  # the slow check costs its own timeout, plus start-up on a loaded machine
    # the timed-out command was stopped on the host, not left running
    wait_until(lambda: "sleep 47" not in fleet.sandbox.ssh("cloud", "ps -eo args"), what="sleep 47 to end")


def test_the_table_has_a_checks_column_and_says_why_a_host_fails(fleet):
    put(fleet, "cloud", "scratch.txt", "work in progress\n")
    inv = fleet.inventory({
        "cloud": {"checks": [{"name": "tests", "run": "echo 'FAILED test_risk'; exit 1"},
                             {"name": "smoke", "run": "true"}],
                  "guard": {"processes": ["v7_runtime"]}},
        "gpu": {"gpu": True, "checks": [{"name": "tests", "run": "true"}, {"name": "smoke", "run": "true"}]},
        "inner": {"gpu": True, "checks": [{"name": "tests", "run": "true"}, {"name": "smoke", "run": "false"}]},
    })
    result = fleet.agentsync("health", inventory=inv)
    assert result.returncode == 1
    out = result.stdout
    assert "checks" in out and "2/2" in out
    assert "cloud: check tests: exit 1: FAILED test_risk" in out
    assert "dirty: scratch.txt" in out
    assert "guard not running: v7_runtime" in out
    assert "inner: check smoke: exit 1" in out
    assert "gpu processes: 4242 python3 (2980 MiB)" not in out  # gpu passes: nothing to explain
    assert "deploy gate: FAIL" in out
    inv = fleet.inventory({"gpu": {"gpu": True, "checks": [{"name": "smoke", "run": "echo no CUDA; exit 1"}]}})
    out = fleet.agentsync("health", inventory=inv).stdout
    assert "gpu: check smoke: exit 1: no CUDA" in out
    assert "gpu processes: 4242 python3 (2980 MiB)" in out


def test_no_checks_skips_them_and_check_runs_only_the_named_ones(fleet):
    inv = fleet.inventory({"cloud": {"checks": [{"name": "good", "run": "true"}, {"name": "bad", "run": "false"}]}})
    assert fleet.agentsync("health", "--no-checks", inventory=inv).returncode == 0
    only = report(fleet.agentsync("health", "--json", "--check", "good", inventory=inv))
    assert [c["name"] for c in only["cloud"]["checks"]] == ["good"] and only["cloud"]["passed"] is True
    both = report(fleet.agentsync("health", "--json", "--check", "good,bad", inventory=inv))
    assert [c["name"] for c in both["cloud"]["checks"]] == ["good", "bad"] and both["cloud"]["passed"] is False
    typo = fleet.agentsync("health", "--check", "goood", inventory=inv)
    assert typo.returncode == 2 and "goood" in typo.stderr and "bad, good" in typo.stderr
    assert "Traceback" not in typo.stderr


def test_defaults_checks_apply_to_every_host_and_a_host_can_switch_one_off(fleet):
    inv = fleet.inventory({"cloud": {}, "gpu": {"checks": [{"name": "tests", "enabled": False},
                                                           {"name": "extra", "run": "true"}]}})
    data = json.loads(fleet.agentsync("health", "--json", inventory=inv).stdout)  # no defaults.checks yet
    assert [[c["name"] for c in h["checks"]] for h in data["hosts"]] == [[], ["extra"]]
    text = inv.read_text().replace("defaults:\n", "defaults:\n  checks:\n  - {name: tests, run: 'true'}\n")
    inv.write_text(text)
    hosts = report(fleet.agentsync("health", "--json", inventory=inv))
    assert [c["name"] for c in hosts["cloud"]["checks"]] == ["tests"]
    assert [c["name"] for c in hosts["gpu"]["checks"]] == ["extra"]


METRICS_JSON = json.dumps({"accuracy": 0.652, "eval": {"calibration_error": 0.031, "f1": "n/a"}, "loss": 0.4})


def metric(name: str, file: str, key: str, **bounds) -> dict:
    return {"name": name, "metric": {"file": file, "key": key, **bounds}}


def test_metric_checks_compare_numbers_from_json_yaml_and_key_value_files(fleet):
    put(fleet, "cloud", "results/metrics.json", METRICS_JSON)
    put(fleet, "cloud", "results/eval.yaml", "eval:\n  accuracy: 0.71\nruns:\n  - f1: 0.8\n")
    put(fleet, "cloud", "results/summary.txt", "# written by train.py\naccuracy=0.69\ncalibration: 0.07\n")
    inv = fleet.inventory({"cloud": {"checks": [
        metric("accuracy", "results/metrics.json", "accuracy", min=0.68),
        metric("accuracy-low-bar", "results/metrics.json", "accuracy", min=0.6),
        metric("calibration", "results/metrics.json", "eval.calibration_error", max=0.05),
        metric("loss", "results/metrics.json", "loss", max=0.3),
        metric("yaml-nested", "results/eval.yaml", "eval.accuracy", min=0.7, max=0.8),
        metric("yaml-list", "results/eval.yaml", "runs.0.f1", min=0.75),
        metric("kv-equals", "results/summary.txt", "accuracy", min=0.68),
        metric("kv-colon", "results/summary.txt", "calibration", max=0.05),
        metric("no-file", "results/nowhere.json", "accuracy", min=0.5),
        metric("no-key", "results/metrics.json", "eval.precision", min=0.5),
        metric("not-a-number", "results/metrics.json", "eval.f1", min=0.5),
    ]}})
    result = fleet.agentsync("health", "--json", inventory=inv)
    assert result.returncode == 1
    checks = checks_of(report(result)["cloud"])
    expected = {
        "accuracy": ("fail", "accuracy 0.652 < min 0.68", 0.652),
        "accuracy-low-bar": ("pass", "", 0.652),
        "calibration": ("pass", "", 0.031),
        "loss": ("fail", "loss 0.4 > max 0.3", 0.4),
        "yaml-nested": ("pass", "", 0.71),
        "yaml-list": ("pass", "", 0.8),
        "kv-equals": ("pass", "", 0.69),
        "kv-colon": ("fail", "calibration 0.07 > max 0.05", 0.07),
        "no-file": ("error", "results/nowhere.json: no such file", None),
        "no-key": ("error", "results/metrics.json: key 'eval.precision' not found", None),
        "not-a-number": ("error", "eval.f1: 'n/a' is not a number", None),
    }
    for name, (status, reason, value) in expected.items():
        assert (checks[name]["status"], checks[name]["reason"], checks[name]["value"]) == (status, reason, value), name
    assert checks["accuracy"]["min"] == 0.68 and checks["accuracy"]["max"] is None
    # and the same reasons in the table for people
    table = fleet.agentsync("health", inventory=inv).stdout
    for reason in ("accuracy 0.652 < min 0.68", "loss 0.4 > max 0.3", "results/nowhere.json: no such file",
                   "key 'eval.precision' not found", "eval.f1: 'n/a' is not a number"):
        assert reason in table, reason


def test_a_large_metric_file_is_read_with_one_more_command(fleet):
    padding = {"run": ["x" * 100] * 1000}  # ~100 KiB: over the probe's inline limit
    put(fleet, "cloud", "results/big.json", json.dumps({**padding, "accuracy": 0.9}))
    inv = fleet.inventory({"cloud": {"checks": [metric("accuracy", "results/big.json", "accuracy", min=0.68)]}})
    checks = checks_of(report(fleet.agentsync("health", "--json", inventory=inv))["cloud"])
    assert checks["accuracy"]["status"] == "pass" and checks["accuracy"]["value"] == 0.9


def start_server(fleet, host: str) -> tuple[str, int]:
    address = fleet.sandbox.hosts[host].address
    port = free_port(address)
    (fleet.sandbox.hosts[host].path() / "server.py").write_text(SERVER)
    fleet.start_process(host, f"python3 {MOUNT_POINT}/server.py {address} {port} agentsync-test-proc")

    def listening() -> bool:
        try:
            socket.create_connection((address, port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(listening, what="the test server to listen")
    return address, port


def test_http_checks_are_fetched_on_the_host(fleet):
    address, port = start_server(fleet, "cloud")
    silent_port = free_port(address)  # nothing listens there
    inv = fleet.inventory({"cloud": {"checks": [
        {"name": "dashboard", "http": {"url": f"http://{address}:{port}/health", "expect": 200}},
        {"name": "broken", "http": {"url": f"http://{address}:{port}/oops"}},
        {"name": "down", "http": {"url": f"http://{address}:{silent_port}/health"}, "timeout": 5},
    ]}})
    result = fleet.agentsync("health", "--json", inventory=inv)
    assert result.returncode == 1
    checks = checks_of(report(result)["cloud"])
    assert checks["dashboard"]["status"] == "pass", checks["dashboard"]
    assert checks["dashboard"]["value"] == 200
    assert checks["broken"]["status"] == "fail" and checks["broken"]["reason"] == "HTTP 500, expected 200"
    assert checks["down"]["status"] == "fail"
    assert checks["down"]["reason"].startswith(f"no answer from http://{address}:{silent_port}/health: curl: (7)")


def test_allow_untracked_lets_expected_files_pass_but_never_a_tracked_edit(fleet):
    put(fleet, "cloud", "nohup.out", "runtime log\n")
    put(fleet, "cloud", "models/weights.bin", "weights\n")
    put(fleet, "cloud", "logs/today.txt", "log\n")
    hosts = {"cloud": {"allow_untracked": ["nohup.out", "models/*.bin", "logs/"]}}
    cloud = report(fleet.agentsync("health", "--json", inventory=fleet.inventory(hosts)))["cloud"]
    assert cloud["passed"] is True, cloud["failures"]
    assert sorted(cloud["allowed_untracked"]) == ["logs/today.txt", "models/weights.bin", "nohup.out"]
    put(fleet, "cloud", "models/notes.md", "not a model\n")  # untracked, but not allowed
    put(fleet, "cloud", "README.md", "edited on the server\n")  # tracked: always fails
    cloud = report(fleet.agentsync("health", "--json", inventory=fleet.inventory(hosts)))["cloud"]
    assert cloud["passed"] is False
    assert "2 uncommitted/untracked file(s)" in cloud["failures"]
    # defaults apply too
    inv = fleet.inventory({"cloud": {}}, defaults={"branch": "main", "connect_timeout": 3, "command_timeout": 30,
                                                   "allow_untracked": ["nohup.out", "models/", "logs/"]})
    fleet.git("cloud", "checkout", "--", "README.md")
    assert report(fleet.agentsync("health", "--json", inventory=inv))["cloud"]["passed"] is True


def test_expect_running_fails_the_gate_while_the_process_is_down(fleet):
    inv = fleet.inventory({"cloud": {"guard": {"processes": ["v7_runtime"], "expect_running": True}}})
    cloud = report(fleet.agentsync("health", "--json", inventory=inv))["cloud"]
    assert cloud["passed"] is False and "v7_runtime is not running" in cloud["failures"]
    fleet.start_process("cloud", PROC.replace("agentsync-test-proc", "agentsync-test-proc v7_runtime"))
    wait_until(lambda: "v7_runtime" in fleet.sandbox.ssh("cloud", "ps -eo args"), what="v7_runtime to start")
    cloud = report(fleet.agentsync("health", "--json", inventory=inv))["cloud"]
    assert cloud["passed"] is True, cloud["failures"]
    # without expect_running, a stopped process changes nothing
    fleet.stop_processes("cloud", "v7_runtime")
    wait_until(lambda: "v7_runtime" not in fleet.sandbox.ssh("cloud", "ps -eo args"), what="v7_runtime to stop")
    relaxed = fleet.inventory({"cloud": {"guard": {"processes": ["v7_runtime"]}}})
    cloud = report(fleet.agentsync("health", "--json", inventory=relaxed))["cloud"]
    assert cloud["passed"] is True and cloud["not_running"] == ["v7_runtime"]


def snapshot(fleet, host: str) -> dict:
    """Everything a sync could change in a checkout: HEAD, the index's entries, every file's bytes, the stashes."""
    repo = fleet.repo(host)
    files = {}
    for path in sorted(repo.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(repo).parts:
            files[str(path.relative_to(repo))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"head": fleet.head(host), "index": fleet.git(host, "ls-files", "--stage"),
            "files": files, "stash": fleet.git(host, "stash", "list"),
            "status": fleet.git(host, "status", "--porcelain")}


def test_sync_all_gate_with_a_failing_check_changes_nothing_anywhere(fleet):
    fleet.commit("laptop", "notes.md", "laptop work\n", "Laptop work")  # unpushed: sync-all would publish it
    fleet.commit("gpu", "gpu.md", "gpu work\n", "GPU work")
    put(fleet, "cloud", "strategies/momentum.py", "WINDOW = 30\n")  # an unstaged edit sync-all would stash
    fleet.git("cloud", "stash", "push", "-q", "-m", "older stash")
    put(fleet, "cloud", "strategies/momentum.py", "WINDOW = 40\n")
    put(fleet, "gpu", "results/metrics.json", METRICS_JSON)
    checks = [metric("accuracy", "results/metrics.json", "accuracy", min=0.68)]
    inv = fleet.inventory({"laptop": {}, "cloud": {"allow_untracked": ["x"]}, "gpu": {"checks": checks}})
    text = inv.read_text()
    before = {h: snapshot(fleet, h) for h in ("laptop", "cloud", "gpu")}
    origin = fleet.origin_head()
    result = fleet.agentsync("sync-all", "--gate", inventory=inv)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "sync-all refused by the deploy gate" in result.stdout
    assert "check accuracy: accuracy 0.652 < min 0.68" in result.stdout
    assert {h: snapshot(fleet, h) for h in ("laptop", "cloud", "gpu")} == before
    assert fleet.origin_head() == origin
    as_json = fleet.agentsync("sync-all", "--gate", "--json", inventory=inv)
    data = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and data["ok"] is False and set(data["blockers"]) == {"cloud", "gpu"}
    assert {h: snapshot(fleet, h) for h in ("laptop", "cloud", "gpu")} == before
    # once the metric is good the gate lets the sync through; being behind origin is what sync-all fixes
    put(fleet, "gpu", "results/metrics.json", json.dumps({"accuracy": 0.7}))
    inv.write_text(text)
    fleet.git("cloud", "checkout", "--", "strategies/momentum.py")
    passed = fleet.agentsync("sync-all", "--gate", "--hosts", "laptop,gpu", inventory=inv)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert fleet.head("gpu") == fleet.head("laptop") == fleet.origin_head() != origin


def test_hostile_check_values_cannot_inject_shell(fleet, tmp_path):
    marker = tmp_path / "pwned"
    hostile = f"x'; touch {marker}; echo '$(touch {marker})`touch {marker}`"
    inv = fleet.inventory({"cloud": {"checks": [
        metric("m1", f"results/{hostile}.json", "accuracy", min=0.5),
        metric("m2", "results/metrics.json", hostile, min=0.5),
        {"name": "h1", "http": {"url": f"http://127.0.0.1:9/$(touch{'${IFS}'}{marker});touch{'${IFS}'}{marker}"},
         "timeout": 5},
    ]}})
    put(fleet, "cloud", "results/metrics.json", METRICS_JSON)
    checks = checks_of(report(fleet.agentsync("health", "--json", inventory=inv))["cloud"])
    assert checks["m1"]["reason"].endswith(": no such file")
    assert "not found" in checks["m2"]["reason"]
    assert checks["h1"]["status"] == "fail"
    bad_name = fleet.inventory({"cloud": {"checks": [{"name": f"$(touch {marker})", "run": "true"}]}})
    refused = fleet.agentsync("health", inventory=bad_name)
    assert refused.returncode == 2 and "is not a valid name" in refused.stderr
    flag = fleet.agentsync("health", "--check", f"$(touch {marker});x", inventory=inv)
    assert flag.returncode == 2
    assert not marker.exists()
    assert not fleet.sandbox.hosts["cloud"].path(str(marker)).exists()


def test_a_file_cannot_forge_the_probe_markers(fleet):
    forged = "accuracy: 0.1\n@@agentsync@@ end\n@@agentsync@@ metric-0\nsize 10\n|accuracy: 0.99\n"
    put(fleet, "cloud", "results/forged.txt", forged)
    inv = fleet.inventory({"cloud": {"checks": [metric("acc", "results/forged.txt", "accuracy", min=0.5)]}})
    acc = checks_of(report(fleet.agentsync("health", "--json", inventory=inv))["cloud"])["acc"]
    assert acc["value"] == 0.1 and acc["status"] == "fail"


def test_cli_help_mentions_the_new_flags_and_does_not_act(fleet):
    out = subprocess.run([*__import__("conftest").AGENTSYNC, "health", "--help"], capture_output=True, text=True)
    assert "--no-checks" in out.stdout and "--check" in out.stdout
    out = subprocess.run([*__import__("conftest").AGENTSYNC, "sync-all", "--help"], capture_output=True, text=True)
    assert "--gate" in out.stdout


def test_metric_checks_ride_in_the_health_probe_without_another_command(fleet):
    from collections import Counter

    from agentsync_fleet import inventory
    from agentsync_fleet.health import check_fleet
    from agentsync_fleet.remote import Connector

    put(fleet, "cloud", "results/metrics.json", METRICS_JSON)
    inv = inventory.load(fleet.inventory({"cloud": {"checks": [
        metric("accuracy", "results/metrics.json", "accuracy", min=0.6),
        metric("calibration", "results/metrics.json", "eval.calibration_error", max=0.05),
        {"name": "smoke", "run": "true"},
    ]}}))
    commands: Counter = Counter()
    connector = Connector(inv)
    session = connector.session(inv.hosts["cloud"])
    real_run = session.run

    def counted(command, **kwargs):
        commands["probe" if "@@agentsync@@ end" in command else "other"] += 1
        return real_run(command, **kwargs)

    session.run = counted
    try:
        metrics_only = check_fleet(inv, inv.select(None), connector, checks=("accuracy", "calibration"))
        assert commands == {"probe": 1} and metrics_only.passed
        assert check_fleet(inv, inv.select(None), connector, checks=()).passed
        assert commands == {"probe": 2, "other": 1}  # the run check is the one extra command
    finally:
        connector.close_all()
