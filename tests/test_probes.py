"""Pure parsers of probe output, and argv quoting, checked against golden text."""

from __future__ import annotations

import subprocess

from agentsync_fleet.models import Guard, Host
from agentsync_fleet.probes import parse_gpu, parse_guard, parse_repo, parse_system, parse_zerotier
from agentsync_fleet.shell import join, quote_path, split_sections


def test_repo_section_parses_counts_dirty_files_and_operations_in_progress():
    text = ("fetch 0\nprogress rebase-merge\nstashes 1\nheadref ref: refs/heads/main\nhead abc123\n"
            "upstream origin/main\ncounts 2\t3\n")
    repo = parse_repo(text, " M apps/x.py\n?? notes.txt\n")
    assert repo.branch == "main" and repo.head == "abc123"
    assert (repo.ahead, repo.behind, repo.dirty, repo.stashes) == (2, 3, 2, 1)
    assert repo.dirty_files == ("apps/x.py", "notes.txt")
    assert repo.in_progress == ("rebase",)
    assert repo.fetched


def test_repo_section_reports_a_missing_repo_and_a_failed_fetch():
    assert parse_repo("error missing").error == "repo directory does not exist"
    repo = parse_repo("fetch 128\nfetch_error fatal: could not read from remote\nheadref 0123abcd\nhead \n")
    assert not repo.fetched and "could not read" in repo.fetch_error and repo.ahead is None
    assert repo.branch == "(detached)" and repo.head == ""


def test_guard_lines_map_back_to_their_pattern():
    found = parse_guard("method ps\n0     9     02:05 python3 apps/runtime/v7_runtime.py --live\n"
                        "1 12 1-02:03:04 dash\nnoise\ndone\n", ("v7_runtime", "dashboard")).processes
    assert found[0].pattern == "v7_runtime" and found[0].pid == 9 and found[0].uptime_s == 125
    assert found[0].command == "python3 apps/runtime/v7_runtime.py --live"
    assert found[1].pattern == "dashboard" and found[1].uptime_s == 86400 + 2 * 3600 + 3 * 60 + 4


def test_system_section_reads_df_and_loadavg():
    df = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/vda 264212084 23179216 83211696 22% /\n"
    state = parse_system("load 0.01 0.05 0.02 1/79 2855\ncpus 0-3,6\n", df)
    assert state.disk_free_bytes == 83211696 * 1024 and state.disk_use_pct == 22
    assert state.load == (0.01, 0.05, 0.02) and state.cpus == 5


def test_zerotier_listnetworks_documented_format():
    out = ("200 listnetworks <nwid> <name> <mac> <status> <type> <dev> <ZT assigned ips>\n"
           "200 listnetworks db64858fedbf2ce1 net 7a:1c:2e:90:4b:11 OK PRIVATE zt0 10.147.17.23/24\n"
           "200 listnetworks 1111111111111111 other 7a:1c:2e:90:4b:12 ACCESS_DENIED PRIVATE zt1 -\nrc 0\n")
    assert parse_zerotier(out, "db64858fedbf2ce1").status == "ok"
    assert parse_zerotier(out, "1111111111111111").status == "not-ok"
    assert parse_zerotier(out, "2222222222222222").status == "missing-network"
    assert parse_zerotier("unavailable", "db64858fedbf2ce1").status == "unavailable"
    assert parse_zerotier("zerotier-cli: missing authentication token\nrc 2\n", "x").status == "error"


def test_nvidia_smi_csv_with_not_supported_fields():
    state = parse_gpu("NVIDIA A100, 1000, 40960, [N/A], 40\nrc 0\n", "4242, python3, 900\n")
    assert state.gpus[0].utilization_pct is None and state.gpus[0].memory_total_mb == 40960
    assert state.processes[0].pid == 4242
    assert parse_gpu("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver\nrc 9").status == "error"


def test_sections_split_the_batched_output():
    parts = split_sections("junk\n@@agentsync@@ repo\nbranch main\n@@agentsync@@ end\n")
    assert parts == {"repo": "branch main", "end": ""}


def test_hostile_values_survive_quoting_as_plain_arguments():
    hostile = ["main; rm -rf /", "$(touch x)", "`id`", "a'b\"c", "-n", "\n", "~root", "*"]
    out = subprocess.run(["sh", "-c", join(["printf", "%s|", *hostile])], capture_output=True, text=True).stdout
    assert out == "|".join(hostile) + "|"


def test_tilde_paths_expand_on_the_remote_side_only_as_home():
    out = subprocess.run(["sh", "-c", "HOME=/h; printf %s " + quote_path("~/a b/$(x)")], capture_output=True,
                         text=True).stdout
    assert out == "/h/a b/$(x)"


def test_host_defaults():
    host = Host("cloud", "/r", guard=Guard(("v7",), ()))
    assert host.branch == "main" and host.remote == "origin" and host.push
