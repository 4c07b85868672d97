"""Inventory validation: every mistake is caught before any connection, in one clear message."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentsync_fleet import inventory
from agentsync_fleet.errors import InventoryError

EXAMPLE = Path(__file__).parent.parent / "inventory" / "example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fleet.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(InventoryError) as caught:
        inventory.load(write(tmp_path, text))
    return str(caught.value)


def test_example_inventory_is_valid_and_builds_hosts_in_order(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("")
    inv = inventory.load(EXAMPLE)
    assert inv.order == ("laptop", "cloud", "gpu", "review")
    cloud = inv.hosts["cloud"]
    assert cloud.ssh == "root@178.156.136.185"
    assert cloud.guard.processes == ("v7_runtime", "dashboard")
    assert cloud.connect_timeout == 10 and cloud.command_timeout == 120
    assert inv.hosts["laptop"].local and inv.hosts["laptop"].ssh is None
    assert inv.hosts["gpu"].worktrees[0].merge == "main"
    assert inv.hosts["review"].push is False


def test_unknown_key_names_file_line_host_key_and_suggests_the_right_one(tmp_path):
    text = problems(tmp_path, """\
        hosts:
          cloud:
            ssh: cloud
            repo: /srv/x
            brnach: main
        """)
    assert "fleet.yaml" in text and "line 5" in text and "host 'cloud'" in text and "key 'brnach'" in text
    assert "did you mean 'branch'" in text


def test_wrong_types_missing_repo_and_bad_values_are_all_reported_together(tmp_path):
    text = problems(tmp_path, """\
        defaults: {connect_timeout: soon}
        hosts:
          cloud:
            ssh: "-oProxyCommand=touch /tmp/x"
            branch: "main; rm -rf /"
            gpu: "yes please"
            guard: {processes: v7_runtime}
          gpu:
            ssh: gpu
        """)
    assert "7 problems" in text  # both hosts lack repo:
    assert "key 'defaults.connect_timeout': expected a number of seconds, found the text 'soon'" in text
    assert "key 'ssh'" in text and "not an ssh_config alias" in text
    assert "key 'branch'" in text and "not a valid git branch name" in text
    assert "key 'gpu': expected true or false" in text
    assert "key 'guard.processes': expected a list" in text
    assert "host 'gpu', key 'repo': missing" in text


def test_order_naming_an_undefined_host_or_missing_one_is_an_error(tmp_path):
    text = problems(tmp_path, """\
        order: [laptop, clod]
        hosts:
          laptop: {local: true, repo: /tmp/x}
          cloud: {ssh: cloud, repo: /tmp/y}
        """)
    assert "names host 'clod', which is not defined" in text and "did you mean 'cloud'" in text
    assert "host 'cloud', key 'order': this host is missing from order" in text


@pytest.mark.parametrize("body, expected", [
    ("hosts: {}\n", "expected a mapping of host names to settings"),
    ("defaults: {branch: main}\n", "found no 'hosts:' key"),
    ("hosts:\n  cloud: [1, 2]\n", "expected a mapping of host settings, found a list"),
    ("hosts:\n  cloud:\n    ssh: a\n   repo: b\n", "not valid YAML"),
    ("- just\n- a list\n", "expected a mapping with a 'hosts:' key"),
    ("hosts:\n  cloud: {ssh: a, repo: b, ssh: c}\n", "appears twice"),
    ("hosts:\n  laptop: {local: true, ssh: x, repo: /r}\n", "cannot be both `local: true`"),
    ("hosts:\n  '-x': {repo: /r}\n", "host names may use letters"),
    ("ssh_config: /nonexistent/ssh_config\nhosts:\n  a: {repo: /r}\n", "does not exist"),
    ("hosts:\n  a: {repo: /r, worktrees: [{path: /w, branch: v, strategy: squash}]}\n",
     "expected one of merge, rebase, found 'squash'"),
])
def test_bad_inventories_fail_with_a_clear_message(tmp_path, body, expected):
    assert expected in problems(tmp_path, body)


def test_missing_inventory_explains_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.delenv("AGENTSYNC_INVENTORY", raising=False)
    with pytest.raises(InventoryError) as caught:
        inventory.load(tmp_path / "nope.yaml")
    assert "inventory not found" in str(caught.value) and "sandbox.up" in str(caught.value)


def test_cli_reports_an_invalid_inventory_without_a_traceback_and_exit_2(tmp_path):
    path = write(tmp_path, "hosts:\n  cloud: {ssh: cloud}\n")
    result = subprocess.run([sys.executable, "-m", "agentsync_fleet", "health", "--inventory", str(path)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "key 'repo': missing" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_help_and_list_do_not_import_paramiko():
    code = ("import sys; sys.argv = ['agentsync', '{}']\n"
            "from agentsync_fleet.cli import program\n"
            "try:\n    program.run()\nexcept SystemExit:\n    pass\n"
            "print('PARAMIKO' if 'paramiko' in sys.modules else 'CLEAN', file=sys.stderr)")
    for flag in ("--help", "--list"):
        result = subprocess.run([sys.executable, "-c", code.format(flag)], capture_output=True, text=True)
        assert result.stderr.strip().endswith("CLEAN"), result.stderr


def test_relay_keys_git_access_and_validate_are_read_and_checked(tmp_path):
    inv = inventory.load(write(tmp_path, """\
        hosts:
          laptop: {local: true, repo: /x, validate: "make test && echo 'ok'"}
          agent: {ssh: agent, repo: /y, git_access: false}
        """))
    assert inv.hosts["laptop"].validate == "make test && echo 'ok'" and inv.hosts["laptop"].git_access is True
    assert inv.hosts["agent"].git_access is False and inv.hosts["agent"].validate is None
    text = problems(tmp_path, """\
        hosts:
          laptop: {local: true, repo: /x, validate: [make, test]}
          agent: {ssh: agent, repo: /y, git_access: "no", validate: ""}
        """)
    assert "host 'laptop', key 'validate': expected a shell command" in text
    assert "host 'agent', key 'git_access': expected true or false" in text
    assert "host 'agent', key 'validate': '' must not be empty" in text


def test_a_bad_flag_value_is_a_clear_error_not_a_traceback(tmp_path):
    path = write(tmp_path, "hosts:\n  laptop: {local: true, repo: /tmp}\n")
    result = subprocess.run([sys.executable, "-m", "agentsync_fleet", "health", "--workers", "abc", "--inventory",
                             str(path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "--workers expects a whole number" in result.stderr and "Traceback" not in result.stderr
