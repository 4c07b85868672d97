"""Pure parts of the rsync transfers: output parsing (golden text captured from rsync 3.2.7), argv, paths, inventory."""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentsync_fleet import inventory
from agentsync_fleet.entries import split_ref
from agentsync_fleet.errors import InventoryError
from agentsync_fleet.models import Host, RsyncEntry
from agentsync_fleet.settings import TransferSettings
from agentsync_fleet.steps.rsync import (
    SECRET_PATTERNS,
    RsyncCall,
    SshTarget,
    backup_args,
    nocase,
    remote_spec,
    rsh_string,
    rsync_argv,
    secret_rules,
    split_port,
    ssh_argv,
)
from agentsync_fleet.transfer import plan as P
from agentsync_fleet.transfer.parse import (
    Change,
    Progress,
    diagnose,
    parse_backup,
    parse_change,
    parse_output,
    parse_progress,
    split_records,
    unescape,
)

GOLDEN = Path(__file__).parent / "golden"


def golden(name: str) -> str:
    return (GOLDEN / name).read_bytes().decode("ascii")


# ------------------------------------------------------------------ parsing rsync's output


def test_pull_output_gives_changes_backups_held_back_secrets_and_stats():
    out = parse_output(golden("rsync_pull_backup_delete_secrets.txt"))
    assert out.hidden == [(".env", ".env"), ("credentials", "credentials*"), (".env.prod", ".env.*"),
                          ("sub/x.pem", "*.pem")]
    assert out.backed_up == [("deleted.txt", "/tmp/rt/bk2/deleted.txt"), ("a.txt", "/tmp/rt/bk2/a.txt")]
    assert [(c.action, c.path) for c in out.changes] == [
        ("delete", "deleted.txt"), ("update", "a.txt"), ("new", "big.bin"), ("new", "with space ü.txt"),
        ("mkdir", "sub/"), ("new", "sub/b.txt")]
    assert out.stats == {"files_total": 6, "created": 4, "deleted": 1, "files": 4, "size_total": 3_000_008,
                         "bytes": 3_000_008, "literal": 3_000_008, "matched": 0, "sent": 209, "received": 3_001_262}
    assert out.dry_run is False
    assert out.other == []  # every line rsync printed was understood


def test_push_output_reads_backups_made_by_the_remote_receiver():
    out = parse_output(golden("rsync_push_remote_backup.txt"))
    assert out.backed_up == [("sub/b.txt", "/srv/agentsync/bk/run1/e/sub/b.txt")]
    assert [(c.action, c.path) for c in out.changes] == [("attrs", "./"), ("update", "sub/b.txt")]
    assert out.hidden == [(".env", ".env"), ("id_rsa", "id_rsa*")]
    assert out.stats["files"] == 1 and out.stats["bytes"] == 8


def test_dry_run_output_is_recognised_and_lists_symlinks_and_deletions():
    out = parse_output(golden("rsync_dry_run_delete_symlink.txt"))
    assert out.dry_run is True
    actions = {c.path: c.action for c in out.changes}
    assert actions["latest"] == "link"  # "latest -> a.txt": the name, not the target
    assert actions["extra.txt"] == "delete" and actions["a to b.txt"] == "new"
    assert out.stats["files"] == 5 and out.stats["deleted"] == 2


def test_backup_line_of_a_name_containing_to_is_split_where_the_backup_path_ends_in_the_name():
    out = parse_output(golden("rsync_name_with_to.txt"))
    assert out.backed_up == [("a to b.txt", "/tmp/rt/bk5/a to b.txt")]
    assert parse_backup("backed up x to y to /bk/x to y") == ("x to y", "/bk/x to y")


def test_progress2_updates_split_on_carriage_returns():
    records, rest = split_records("\r      3,000,003  99%   84.15MB/s    0:00:00 (xfr#2, to-chk=3/6)\r  12")
    assert rest == "  12"
    assert parse_progress(records[0]) == Progress(3_000_003, 99, 2, 3, 6)
    assert parse_progress("              0   0%    0.00kB/s    0:00:00  ") == Progress(0, 0)
    assert parse_progress("  1,024  10%  1.00MB/s  0:00:01 (xfr#1, ir-chk=1000/2001)") == Progress(1024, 10, 1,
                                                                                                  1000, 2001)
    assert parse_progress(">f+++++++++ 0 0% file") is None


def test_itemized_names_keep_odd_bytes_exactly():
    assert unescape("with space \\#303\\#274.txt") == "with space ü.txt"
    assert unescape("new\\#012line") == "new\nline"
    assert unescape("bad \\#377 byte").encode("utf-8", "surrogateescape") == b"bad \xff byte"
    assert parse_change("*deleting   old dir/") == Change("delete", "old dir/", "*deleting")
    assert parse_change("<f..t...... ./-rf") == Change("update", "./-rf", "<f..t......")


def test_cut_off_transfer_is_diagnosed_with_the_host_and_a_resume_promise():
    problem = diagnose(12, golden("rsync_cut_off.stderr"), "gpu")
    assert problem.reason == "cut off" and problem.partial and "gpu" in problem.message
    assert "connection unexpectedly closed" in problem.detail
    assert diagnose(255, "Host key verification failed.\r\nrsync: connection unexpectedly closed", "gpu").reason \
        == "host key unknown"
    assert diagnose(255, "root@x: Permission denied (publickey).", "gpu").reason == "auth"
    assert diagnose(127, "bash: line 1: rsync: command not found", "gpu").reason == "no rsync"
    assert diagnose(23, "rsync: [sender] link_stat \"/x\" failed", "gpu").reason == "files"
    assert diagnose(24, "file has vanished", "gpu") is None and diagnose(0, "", "gpu") is None
    killed = diagnose(-9, "", "gpu")
    assert killed.partial and killed.message == "rsync on the laptop was killed (signal 9) mid-way"


def test_notices_rsync_left_on_stderr_when_it_failed_are_kept_in_the_report():
    from agentsync_fleet.transfer.parse import RsyncOutput
    from agentsync_fleet.transfer.run import keep_notices

    out = RsyncOutput()
    errors = keep_notices(out, "Connection to 10.0.0.3 closed by remote host.\n"
                               "backed up README.md to /bk/run/gpu.push-code/README.md\n"
                               "rsync error: unexplained error (code 255) at io.c(849) [sender=3.2.7]\n")
    assert out.backed_up == [("README.md", "/bk/run/gpu.push-code/README.md")]
    assert errors.splitlines() == ["Connection to 10.0.0.3 closed by remote host.",
                                   "rsync error: unexplained error (code 255) at io.c(849) [sender=3.2.7]"]


def test_a_missing_source_or_destination_parent_is_named_with_its_machine():
    stderr = ('rsync: [sender] change_dir "/srv/r/no such" failed: No such file or directory (2)\n'
              "rsync error: some files/attrs were not transferred (see previous errors) (code 23) at main.c(1874)")
    problem = diagnose(23, stderr, "gpu", "gpu", "laptop")
    assert (problem.reason, problem.message) == ("no source", "the source gpu:/srv/r/no such does not exist")
    old_rsync = 'rsync: link_stat "/home/me/r/x\\#303\\#274.txt" failed: No such file or directory (2)'
    assert diagnose(23, old_rsync, "gpu", "laptop", "gpu").path == "/home/me/r/xü.txt"
    problem = diagnose(11, 'rsync: [Receiver] mkdir "/srv/r/a/b" failed: No such file or directory (2)', "gpu",
                       "laptop", "gpu")
    assert problem.reason == "no parent" and problem.path == "/srv/r/a" and problem.message.startswith("gpu:/srv/r/a ")


# ------------------------------------------------------------------ argv


def test_rsync_argv_puts_secrets_first_and_never_forces_delete():
    argv = rsync_argv(RsyncCall("/laptop/repo/", "gpu:/srv/repo/", excludes=(*SECRET_PATTERNS, "*.tmp")))
    excludes = [a for a in argv if a.startswith("--exclude=")]
    assert excludes[: len(SECRET_PATTERNS)] == [f"--exclude={p}" for p in SECRET_PATTERNS]
    assert "--delete" not in argv and "-s" in argv and "--partial-dir=.agentsync-partial" in argv
    assert argv[-2:] == ["/laptop/repo/", "gpu:/srv/repo/"]
    assert "--dry-run" in rsync_argv(RsyncCall("/a/", "/b/", dry_run=True))
    assert "--delete" in rsync_argv(RsyncCall("/a/", "/b/", delete=True))


def test_secret_rules_match_any_letter_case_and_anything_inside_a_matching_directory():
    assert nocase(".env.*") == ".[eE][nN][vV].*" and nocase("id_rsa*") == "[iI][dD]_[rR][sS][aA]*"
    assert nocase("[!a]x\\Y") == "[!a][xX]\\Y" and nocase("[]k]ey") == "[]k][eE][yY]"  # classes, escapes kept
    assert secret_rules(("*.pem",)) == {"*.[pP][eE][mM]": "*.pem", "*.[pP][eE][mM]/**": "*.pem"}
    kept = secret_rules(("[ab.key",))  # nocase may misread it: the pattern as written stays a rule
    assert kept["[ab.key"] == kept["[ab.key/**"] == "[ab.key" and len(kept) == 4
    assert list(secret_rules(SECRET_PATTERNS))[::2] == [nocase(p) for p in SECRET_PATTERNS]  # same order


def test_remote_home_backup_dir_rides_on_rsync_path_with_only_home_expanded():
    args = backup_args("~/bk/it's $(touch x)", remote_receiver=True)
    assert args[0] == "--backup"
    rsync_path = args[1].removeprefix("--rsync-path=")
    assert shlex.split(rsync_path.replace('"$HOME"', "HOME")) == ["rsync", "--backup-dir=HOME/bk/it's $(touch x)"]
    assert backup_args("/abs/bk", remote_receiver=True) == ["--backup", "--backup-dir=/abs/bk"]
    assert backup_args("~/bk", remote_receiver=False) == ["--backup", "--backup-dir=~/bk"]


def test_ssh_command_keeps_host_key_checks_strict_and_uses_the_inventory_files():
    target = SshTarget("gpu", 2222, "/cfg/ssh config", ("/k/known hosts", "/root/.ssh/known_hosts"), 4.2)
    argv = ssh_argv(target)
    assert argv[:3] == ["ssh", "-F", "/cfg/ssh config"]
    assert "StrictHostKeyChecking=yes" in argv and "BatchMode=yes" in argv and "ConnectTimeout=5" in argv
    assert "UserKnownHostsFile=/k/known hosts /root/.ssh/known_hosts" in argv and argv[-2:] == ["-p", "2222"]
    hop = ssh_argv(target, first_hop=False)  # on another host: its own config and files
    assert "-F" not in hop and not any(a.startswith("UserKnownHostsFile") for a in hop)
    assert split_port("root@10.0.0.7:2222") == ("root@10.0.0.7", 2222) and split_port("gpu") == ("gpu", None)


def test_rsh_string_is_split_back_into_the_same_words_by_rsync_itself(tmp_path):
    """Run the real rsync with our -e string pointing at a script that records the argv it was given."""
    dump = tmp_path / "argv.txt"
    fake_ssh = tmp_path / "fake ssh.py"
    fake_ssh.write_text(f"import sys, json\nopen({str(dump)!r}, 'w').write(json.dumps(sys.argv[1:]))\nsys.exit(1)\n")
    words = [sys.executable, str(fake_ssh), "-o", "UserKnownHostsFile=/a b/kh /c", "it's", 'say "hi"', "$HOME"]
    subprocess.run(["rsync", "-e", rsh_string(words), str(tmp_path) + "/", "somehost:/dest/"], capture_output=True,
                   timeout=30)
    import json

    got = json.loads(dump.read_text())
    assert got[: len(words) - 2] == words[2:] and got[len(words) - 2] == "somehost"


# ------------------------------------------------------------------ paths and routes


def test_paths_resolve_per_machine_and_never_start_with_a_dash():
    assert P.remote_path("/srv/repo", "results/") == "/srv/repo/results/"
    assert P.remote_path("~/eon/nt", "results") == "./eon/nt/results"
    assert P.remote_path("~/eon/nt", "-rf") == "./eon/nt/-rf"
    assert P.remote_path("/srv/repo", "~/data/") == "./data/"
    assert P.remote_path("crpbot", "./out/") == "./crpbot/out/"
    assert P.remote_path("/srv/repo", ".") == "/srv/repo/"
    assert P.local_path("/home/me/repo", "-rf") == "/home/me/repo/-rf"
    assert P.local_path("/home/me/repo", "/abs/x/") == "/abs/x/"
    assert split_ref("gpu:data/") == ("gpu", "data/") and split_ref("./a:b") == (None, "./a:b")
    assert split_ref("/abs/a:b") == (None, "/abs/a:b")
    assert remote_spec("gpu", "./r/run[1]/*?\\", sender=True) == "gpu:./r/run\\[1]/\\*\\?\\\\"  # no remote glob
    assert remote_spec("gpu", "./in[2]/") == "gpu:./in[2]/"  # a receiver does not expand its path


def _inv(tmp_path: Path, text: str):
    path = tmp_path / "fleet.yaml"
    path.write_text(textwrap.dedent(text))
    return inventory.load(path)


def test_routes_relay_host_to_host_through_a_cache_unless_direct(tmp_path):
    inv = _inv(tmp_path, """\
        hosts:
          laptop: {local: true, repo: /home/me/repo}
          cloud: {ssh: "root@10.0.0.2:2222", repo: /srv/c}
          gpu:
            ssh: gpu
            repo: ~/g
            slow: true
            results: [{remote: out/, local: results/gpu/}]
            rsync:
              - {name: data, direction: push, src: "cloud:data/", dest: data/}
              - {name: fast, direction: push, src: "cloud:data/", dest: data/, direct: true, delete: true}
        """)
    gpu = inv.hosts["gpu"]
    assert [r.entry.name for r in P.pull_routes(inv, gpu)] == ["results"]
    relay, direct = P.push_routes(inv, gpu, code=False)
    opts = P.LegOptions("RUN", "/state")
    targets = {"cloud": SshTarget("root@10.0.0.2", 2222, address="root@10.0.0.2", resolved_port=2222),
               "gpu": SshTarget("gpu", None, address="me@192.168.1.9", resolved_port=22)}
    legs = P.legs(relay, opts, lambda h: targets[h.name])
    assert [(leg.call.src, leg.call.dest) for leg in legs] == [
        ("root@10.0.0.2:/srv/c/data/", "/state/relay/gpu/data/"), ("/state/relay/gpu/data/", "gpu:./g/data/")]
    assert legs[0].call.delete and not legs[1].call.delete  # the cache mirrors; the target only if asked
    assert legs[1].call.backup_dir == "~/.local/state/agentsync/backups/RUN/gpu.data" and legs[1].call.compress
    (leg,) = P.legs(direct, opts, lambda h: targets[h.name])
    assert leg.on.name == "cloud" and leg.call.dest == "me@192.168.1.9:./g/data/" and leg.call.delete
    assert leg.call.src == "/srv/c/data/" and "-F" not in leg.call.rsh


def test_transfer_entries_in_the_inventory_are_checked_across_hosts(tmp_path):
    with pytest.raises(InventoryError) as caught:
        _inv(tmp_path, """\
            hosts:
              laptop: {local: true, repo: /r}
              gpu:
                ssh: gpu
                repo: /g
                rsync:
                  - {name: a, direction: push, src: "gpuu:x/", dest: y/}
                  - {name: a, direction: pull, src: "cloud:x", dest: y}
                  - {name: c, direction: up, src: x, dest: y}
                  - {name: d, direction: pull, src: x, dest: z, exclude: ["+ .env"], direct: true}
                  - {name: push-code, direction: push, src: x/, dest: x/}
                results: [{remote: out/, local: "gpu:out/"}]
            transfers: {secrets: ["!"], bwlimit: -1, backup_dir: "~ann/bk"}
            """)
    text = str(caught.value)
    assert "'gpuu:x/' names host 'gpuu', which is not defined under hosts" in text and "did you mean 'gpu:'" in text
    assert "transfer name 'a' is already used" in text
    assert "transfer name 'push-code' is already used by push-code itself" in text  # one backup dir per name
    assert "a pull always starts from this host ('gpu')" in text
    assert "key 'rsync[2].direction': expected one of push, pull" in text
    assert "'+ .env' starts with an rsync filter prefix" in text
    assert "direct: true only applies between two remote hosts" in text
    assert "results always come back to the laptop" in text
    assert "transfers.secrets[0]" in text and "transfers.bwlimit" in text
    assert "transfers.backup_dir" in text and "names another user's home; only ~/" in text


def test_transfer_keys_build_entries_and_settings(tmp_path):
    inv = _inv(tmp_path, """\
        hosts:
          laptop: {local: true, repo: /r}
          gpu:
            ssh: gpu
            repo: /g
            push_code: true
            results: [{remote: out/, local: res/}, {remote: logs/, local: logs/, exclude: ["*.tmp"]}]
        transfers: {secrets: ["*.kdbx"], bwlimit: 500, backup_dir: bk}
        """)
    gpu = inv.hosts["gpu"]
    assert gpu.push_code and gpu.results == (
        RsyncEntry("results-1", "pull", "out/", "res/", kind="results"),
        RsyncEntry("results-2", "pull", "logs/", "logs/", ("*.tmp",), kind="results"))
    settings = TransferSettings.from_inventory(inv)
    assert settings.secrets == (*SECRET_PATTERNS, "*.kdbx") and settings.bwlimit == 500
    assert settings.backup_dir == "~/bk"  # relative: to the host's home, never to the destination dir
    assert P.controller(inv) == inv.hosts["laptop"]
    assert P.code_route(inv, gpu).src.resolved == "/r/" and P.code_route(inv, gpu).dest.resolved == "/g/"


def test_no_local_host_allows_absolute_laptop_paths_only(tmp_path):
    with pytest.raises(InventoryError, match="no host has `local: true`"):
        _inv(tmp_path, """\
            hosts:
              gpu: {ssh: gpu, repo: /g, results: [{remote: out/, local: results/}]}
            """)
    inv = _inv(tmp_path, """\
        hosts:
          gpu: {ssh: gpu, repo: /g, results: [{remote: out/, local: /tmp/results/}]}
        """)
    assert P.pull_routes(inv, inv.hosts["gpu"])[0].dest.resolved == "/tmp/results/"
    assert P.controller(inv).local and isinstance(P.controller(inv), Host)


def test_the_example_inventory_transfers_resolve_to_the_documented_routes(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("")
    inv = inventory.load(Path(__file__).parent.parent / "inventory" / "example.yaml")
    gpu = inv.hosts["gpu"]
    assert gpu.push_code
    assert [(r.entry.name, r.mode) for r in P.push_routes(inv, gpu, code=True)] == [
        ("push-code", "local"), ("datasets", "relay")]
    assert [(r.entry.name, r.src.display, r.dest.display) for r in P.pull_routes(inv, gpu)] == [
        ("results", "gpu:./eon/nt/results/", f"laptop:{tmp_path}/crpbot/results/gpu/"),
        ("checkpoints", "gpu:./eon/nt/checkpoints/", f"laptop:{tmp_path}/checkpoints/gpu/")]
    settings = TransferSettings.from_inventory(inv)
    assert "*.kdbx" in settings.secrets and settings.bwlimit == 20000


# ---------------------------------------------------------------- the banner filter (remote/rshfilter.py)


def test_the_banner_filter_keeps_the_ssh_argv_and_sends_rsyncs_command_as_one_shell_proof_argument():
    import base64

    from agentsync_fleet.remote import rshfilter
    from agentsync_fleet.shell import sh_argument

    ssh = ["ssh", "-F", "/x y/config", "-o", "ControlPath=/tmp/s"]
    appended = ["-l", "me", "-6", "gpu", "rsync", "--server", "--sender", "-s", "."]
    built = rshfilter.build([str(len(ssh)), *ssh, *appended], "@@M@@")
    assert built[:-1] == [*ssh, "-l", "me", "-6", "gpu"]
    body = base64.b64decode(built[-1].split()[5]).decode()
    assert built[-1] == sh_argument(body, "agentsync-rsync")  # the very form every login shell passes to sh
    assert body == ("printf '%s\\n' '@@M@@'; printf '%s\\n' '@@M@@' >&2\n"
                    "exec rsync --server --sender -s .\n")
    argv = rshfilter.rsh_argv(ssh)
    assert argv[:3] == [sys.executable, "-I", "-S"] and argv[4:] == [str(len(ssh)), *ssh]


def test_the_banner_filter_drops_what_precedes_its_marker_and_relays_the_rest_unchanged(tmp_path):
    import os

    from agentsync_fleet.remote import rshfilter

    payload = os.urandom(300_000)
    for noise, expected, keep in ((b"Welcome!\nno newline", payload, False), (b"", payload, False)):
        src_r, src_w = os.pipe()
        out = tmp_path / "out"
        with open(out, "wb") as sink:
            data = noise + b"@@M@@\n" + payload
            writer = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"],
                                      stdin=subprocess.PIPE, stdout=src_w)
            os.close(src_w)
            writer.stdin.write(data)
            writer.stdin.close()
            rshfilter.filtered(src_r, sink.fileno(), b"@@M@@\n", keep)
            writer.wait()
            os.close(src_r)
        assert out.read_bytes() == expected
    src_r, src_w = os.pipe()
    os.write(src_w, b"ssh: connect to host gpu port 22: Connection refused\n")
    os.close(src_w)
    with open(out, "wb") as sink:
        rshfilter.filtered(src_r, sink.fileno(), b"@@M@@\n", True)  # stderr without a marker: all of it stays
    os.close(src_r)
    assert out.read_bytes() == b"ssh: connect to host gpu port 22: Connection refused\n"
