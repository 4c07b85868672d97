"""The deploy gate's pure parts: inventory validation of checks, metric files, the check parsers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentsync_fleet import inventory
from agentsync_fleet.errors import InventoryError
from agentsync_fleet.gate import commands as C
from agentsync_fleet.gate.metrics import judge, key_values
from agentsync_fleet.gate.model import CheckSpec, HttpSpec, MetricSpec, build_checks, split_untracked
from agentsync_fleet.shell import split_sections

HEAD = """\
defaults:
  branch: main
hosts:
  cloud:
    ssh: cloud
    repo: /srv/crpbot
"""


def load(tmp_path: Path, host_extra: str, defaults_extra: str = ""):
    text = HEAD.replace("  branch: main\n", "  branch: main\n" + textwrap.indent(textwrap.dedent(defaults_extra), "  "))
    path = tmp_path / "fleet.yaml"
    path.write_text(text + textwrap.indent(textwrap.dedent(host_extra), "    "))
    return inventory.load(path)


def problems(tmp_path: Path, host_extra: str, defaults_extra: str = "") -> str:
    with pytest.raises(InventoryError) as caught:
        load(tmp_path, host_extra, defaults_extra)
    return str(caught.value)


def test_checks_allow_untracked_and_expect_running_are_built_from_defaults_and_host(tmp_path):
    inv = load(tmp_path, """\
        checks:
          - {name: calibration, enabled: false}
          - {name: cuda, run: "python -c 'import torch; print(torch.cuda.is_available())'", timeout: 20}
          - {name: dashboard, http: {url: "http://127.0.0.1:8050/health"}}
        allow_untracked: [nohup.out]
        guard: {processes: [v7_runtime], expect_running: true}
        """, defaults_extra="""\
        checks:
          - {name: tests, run: make test}
          - {name: accuracy, metric: {file: results/metrics.json, key: accuracy, min: 0.68}}
          - {name: calibration, metric: {file: results/metrics.json, key: eval.ece, max: 0.05}}
        allow_untracked: ["models/*.bin"]
        """)
    cloud = inv.hosts["cloud"]
    assert [c.name for c in cloud.checks] == ["tests", "accuracy", "cuda", "dashboard"]
    assert cloud.checks[0] == CheckSpec("tests", run="make test", timeout=60.0)
    assert cloud.checks[1].metric == MetricSpec("results/metrics.json", "accuracy", 0.68, None)
    assert cloud.checks[2].timeout == 20.0
    assert cloud.checks[3].http == HttpSpec("http://127.0.0.1:8050/health", 200) and cloud.checks[3].timeout == 10.0
    assert cloud.allow_untracked == ("models/*.bin", "nohup.out")
    assert cloud.guard.expect_running is True


@pytest.mark.parametrize(("extra", "expected"), [
    ("checks:\n  - {name: tests}\n", "key 'checks[0]': a check needs exactly one of run, metric, http; found none"),
    ("checks:\n  - {name: t, run: 'true', http: {url: 'http://x/'}}\n", "found run and http"),
    ("checks:\n  - {run: 'true'}\n", "key 'checks[0].name': missing"),
    ("checks:\n  - {name: t, run: 'true', tiemout: 3}\n", "key 'checks[0].tiemout': unknown key"),
    ("checks:\n  - {name: t, metric: {file: m.json, key: acc}}\n", "a metric check needs min, max or both"),
    ("checks:\n  - {name: t, metric: {file: m.json, key: acc, min: high}}\n",
     "key 'checks[0].metric.min': expected a number, e.g. 0.68, found the text 'high'"),
    ("checks:\n  - {name: t, metric: {file: m.json, key: acc, min: true}}\n", "expected a number"),
    ("checks:\n  - {name: t, metric: {file: m.json, key: acc, min: 0.9, max: 0.1}}\n", "min is greater than max"),
    ("checks:\n  - {name: t, metric: {key: acc, min: 1}}\n", "key 'checks[0].metric.file': missing"),
    ("checks:\n  - {name: t, http: {url: 'ftp://x/'}}\n", "is not an http:// or https:// URL"),
    ("checks:\n  - {name: t, http: {url: 'http://u:secret@x/'}}\n", "contains credentials"),
    ("checks:\n  - {name: t, http: {url: 'http://x/', expect: 42}}\n", "is not an HTTP status"),
    ("checks:\n  - {name: t, run: 'true', timeout: -1}\n", "must be greater than 0"),
    ("checks:\n  - {name: 'a b; rm -rf /', run: 'true'}\n", "is not a valid name"),
    ("checks:\n  - {name: t, run: ''}\n", "must not be empty"),
    ("checks:\n  - {name: t, run: 'true'}\n  - {name: t, run: 'false'}\n", "names check 't' more than once"),
    ("checks: {tests: null}\n", "key 'checks': expected a list of checks"),
    ("checks:\n  - make test\n", "key 'checks[0]': expected a mapping with name and one of run, metric, http"),
    ("allow_untracked: nohup.out\n", "key 'allow_untracked': expected a list of paths or globs"),
    ("guard: {processes: [x], expect_running: yes please}\n", "key 'guard.expect_running': expected true or false"),
])
def test_every_bad_check_shape_is_one_clear_message_with_line_host_and_key(tmp_path, extra, expected):
    message = problems(tmp_path, extra)
    assert expected in message
    assert "fleet.yaml" in message and "host 'cloud'" in message and "line " in message


def test_bad_default_checks_are_reported_too(tmp_path):
    message = problems(tmp_path, "", defaults_extra="checks:\n  - {name: t, metric: {file: f, key: k, mn: 1}}\n")
    assert "key 'defaults.checks[0].metric" in message


def test_cli_reports_a_bad_check_with_exit_2_and_no_traceback(tmp_path):
    path = tmp_path / "fleet.yaml"
    path.write_text(HEAD + "    checks:\n      - {name: t}\n")
    result = subprocess.run([sys.executable, "-m", "agentsync_fleet", "health", "--inventory", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "checks[0]" in result.stderr and "Traceback" not in result.stderr


def test_host_checks_replace_defaults_of_the_same_name():
    checks = build_checks([{"name": "tests", "run": "make test"}], [{"name": "tests", "run": "pytest -x"}])
    assert [c.run for c in checks] == ["pytest -x"]


# ---------------------------------------------------------------- metric files

ACC = MetricSpec("m.json", "accuracy", 0.68)


@pytest.mark.parametrize(("spec", "file_text", "expected"), [
    (ACC, '{"accuracy": 0.7}', (0.7, "")),
    (ACC, '{"accuracy": 0.652}', (0.652, "accuracy 0.652 < min 0.68")),
    (ACC, '{"accuracy": "0.70"}', (0.7, "")),
    (ACC, '{"accuracy": true}', (None, "accuracy: 'true' is not a number")),
    (ACC, '{"accuracy": NaN}', (None, "accuracy: 'NaN' is not a number")),
    (ACC, '{"acc": 1}', (None, "m.json: key 'accuracy' not found")),
    (ACC, "{not json", (None, "m.json: not valid JSON (Expecting property name enclosed in double quotes: "
                               "line 1 column 2 (char 1))")),
    (MetricSpec("m.json", "val.loss", max=0.3), '{"val.loss": 0.5}', (0.5, "val.loss 0.5 > max 0.3")),
    (MetricSpec("m.json", "a.b.1", max=3), '{"a": {"b": [1, 2]}}', (2.0, "")),
    (MetricSpec("m.yaml", "eval.acc", min=0.5), "eval:\n  acc: 0.4\n", (0.4, "eval.acc 0.4 < min 0.5")),
    (MetricSpec("m.txt", "accuracy", min=0.5), "# run 3\naccuracy = 0.9\n", (0.9, "")),
    (MetricSpec("m.env", "ACC", min=0.5), "export ACC='0.6'\n", (0.6, "")),
    (MetricSpec("m.txt", "loss", max=1), "epoch=3\nloss: 0.2\n", (0.2, "")),
])
def test_metric_files_json_yaml_and_key_value(spec, file_text, expected):
    assert judge(spec, file_text) == expected


def test_key_value_lines_skip_comments_and_the_last_one_wins():
    assert key_values("# a=1\na=2\n  a = 3 \nnot a pair\n") == {"a": "3"}


# ---------------------------------------------------------------- framing and parsers


def test_a_metric_section_comes_back_prefixed_so_content_cannot_forge_a_section():
    output = "@@agentsync@@ metric-0\nsize 30\n|x: 1\n|@@agentsync@@ end\n\n@@agentsync@@ end\n"
    parts = split_sections(output)
    assert C.parse_file_section(parts["metric-0"]) == ("size", "x: 1\n@@agentsync@@ end")


def test_run_output_is_framed_tail_kept_and_timeouts_named():
    check = CheckSpec("tests", run="make test", timeout=60)
    noisy = "Welcome to the server!\n@@agentsync@@ begin\n" + "".join(f"line {i}\n" for i in range(100))
    failed = C.run_result(check, noisy + "@@agentsync@@ rc 2\n", 1.0)
    assert failed.reason == "exit 2: line 99" and failed.output_tail.splitlines()[0] == "line 80"
    assert "Welcome" not in failed.output_tail
    assert C.run_result(check, "@@agentsync@@ begin\n@@agentsync@@ rc 124\n", 60.0).reason == "timeout after 60 s"
    assert C.run_result(check, "@@agentsync@@ begin\n@@agentsync@@ norepo\n", 0.1).status == "error"
    assert C.run_result(check, "@@agentsync@@ begin\nkilled\n", 0.1).reason == "ended without an exit status"


def test_http_parser_reads_curl_and_wget_and_says_unavailable():
    check = CheckSpec("dash", http=HttpSpec("http://h/health", 200), timeout=10)
    assert C.http_result(check, "http-code 200\n@@agentsync@@ rc 0\n", 0.1).passed
    assert C.http_result(check, "http-code 503\n@@agentsync@@ rc 8\nERROR 503\n", 0.1).reason == \
        "HTTP 503, expected 200"
    assert C.http_result(check, "curl: (28) timed out\nhttp-code 000\n@@agentsync@@ rc 28\n", 10).status == "timeout"
    gone = C.http_result(check, "curl: (7) Failed to connect\nhttp-code 000\n@@agentsync@@ rc 7\n", 0.1)
    assert gone.reason == "no answer from http://h/health: curl: (7) Failed to connect"
    assert C.http_result(check, "@@agentsync@@ unavailable\n", 0.1).status == "unavailable"


def test_the_wget_branch_reads_the_status_line(tmp_path):
    """The wget half of the http command, run here with a fake wget (curl hidden from PATH)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "wget").write_text("#!/bin/sh\necho '  HTTP/1.1 404 Not Found' >&2\nexit 8\n")
    (bin_dir / "wget").chmod(0o755)
    for tool in ("sed", "tail", "sh"):
        (bin_dir / tool).symlink_to(subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True,
                                                   text=True).stdout.strip())
    check = CheckSpec("dash", http=HttpSpec("http://h/health", 200), timeout=10)
    out = subprocess.run(["/bin/sh", "-c", C.http_command(check.http, 10)], capture_output=True, text=True,
                         env={"PATH": str(bin_dir)}).stdout
    assert C.http_result(check, out, 0.1).reason == "HTTP 404, expected 200"


def test_allowed_untracked_never_covers_a_tracked_change():
    status = "?? nohup.out\n M nohup.log\n?? models/a.bin\n?? models/b.txt\n?? logs/x/y.log\n?? \"odd name.bin\"\n"
    allowed, other = split_untracked(status, ["nohup.out", "nohup.log", "models/*.bin", "logs/", "odd name.bin"])
    assert allowed == ["nohup.out", "models/a.bin", "logs/x/y.log", '"odd name.bin"']
    assert other == ["nohup.log", "models/b.txt"]


def test_two_checks_on_one_file_read_it_once_in_the_probe():
    lines = C.metric_probe("/srv/crpbot", [MetricSpec("r/m.json", "a", 1), MetricSpec("r/m.json", "b", 1),
                                           MetricSpec("~/other.yaml", "c", 1)])
    text = "\n".join(lines)
    assert text.count("f=r/m.json") == 1 and 'f="$HOME"/other.yaml' in text
    assert "metric-1" in text and "metric-2" not in text


def test_allow_untracked_matches_names_git_quotes_as_they_are_written():
    from agentsync_fleet.gate.model import split_untracked

    status = '?? "a \\"b\\"\\\\c\\nd"\n?? plain.txt\n M tracked.py\n'
    allowed, other = split_untracked(status, ['a "b"\\c\nd', "plain.txt"])
    assert allowed == ['"a \\"b\\"\\\\c\\nd"', "plain.txt"] and other == ["tracked.py"]
