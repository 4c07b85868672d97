"""Which rsync runs at each end: real hosts with Debian 12's rsync 3.2.7 at one end and the 3.5.0 its security
archive serves at the other, a host without rsync, one with an rsync too old; then the choice from `--version`
texts (pure: macOS's openrsync cannot run here, so its case is the choice made from its real `--version` text)
and the argv that follows from it."""

from __future__ import annotations

import json
import os

import pytest
from rsync_support import debian_rsync, files, inventory, run, write

from agentsync_fleet.errors import FleetError
from agentsync_fleet.sandbox import MOUNT_POINT
from agentsync_fleet.sandbox_fleet import install_tool
from agentsync_fleet.steps.rsync import RsyncCall, rsync_argv
from agentsync_fleet.steps.rsync_tool import MARK, Found, RsyncTool, choose, parse_version, parse_versions

LOGGED = '#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n'  # a real rsync, each start logged


@pytest.fixture
def gpu_rsync_327(fleet):
    """For one test, gpu runs Debian 12's rsync 3.2.7; yields the log of its starts (one line each)."""
    log = fleet.root / "gpu-rsync.log"
    install_tool(fleet.sandbox, "gpu", "rsync", LOGGED.format(log=log, real=debian_rsync("3.2.7")))
    yield log
    (fleet.sandbox.hosts["gpu"].bin_dir / "rsync").unlink()


@pytest.fixture
def gpu_rsync_too_old(fleet):
    """gpu's rsync says it is 3.0.9 (only its --version answer matters: it is refused before it would run)."""
    log = fleet.root / "gpu-rsync.log"
    install_tool(fleet.sandbox, "gpu", "rsync", f'#!/bin/sh\necho "$*" >> {log}\n'
                 'echo "rsync  version 3.0.9  protocol version 30"\n')
    yield log
    (fleet.sandbox.hosts["gpu"].bin_dir / "rsync").unlink()


def _starts(log) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_a_gpu_box_on_rsync_3_2_7_takes_a_push_into_its_linked_directory_and_rsync_is_checked_once(fleet,
                                                                                                   gpu_rsync_327):
    big_disk = fleet.sandbox.hosts["gpu"].path("bigdisk") / "data"
    big_disk.mkdir(parents=True)
    (fleet.repo("gpu") / "data").symlink_to(f"{MOUNT_POINT}/bigdisk/data")
    write(fleet.repo("laptop") / "data" / "README.md", "what the data is\n")
    assets = write(fleet.root / "assets" / "a.txt", "a\n").parent
    write(fleet.repo("gpu") / "results" / "score.txt", "0.9\n")
    inv = inventory(fleet, {"laptop": {}, "gpu": {
        "rsync": [{"name": "assets", "direction": "push", "src": f"{assets}/", "dest": "assets/"}],
        "results": [{"remote": "results/", "local": "results/gpu/"}]}})

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inv)
    pulled, back = run(fleet, "results", "--host", "gpu", inv=inv)

    assert code == 0 and pulled == 0, (data, back)
    assert (fleet.repo("gpu") / "data").is_symlink() and files(big_disk) == {"README.md"}
    assert (fleet.repo("gpu") / "assets" / "a.txt").read_text() == "a\n"
    assert (fleet.repo("laptop") / "results" / "gpu" / "score.txt").read_text() == "0.9\n"
    starts = _starts(gpu_rsync_327)
    assert [s for s in starts if s == "--version"] == ["--version", "--version"]  # once per run, two runs
    assert sum("--server" in s for s in starts) == 4  # 3.2.7 served code, data/, assets and results


def test_sync_all_asks_a_host_for_its_rsync_once_for_both_transfer_stages(fleet, gpu_rsync_327):
    write(fleet.repo("gpu") / "results" / "score.txt", "0.9\n")
    inv = inventory(fleet, {"laptop": {}, "gpu": {"push_code": True,
                                                  "results": [{"remote": "results/", "local": "results/gpu/"}]}})

    result = fleet.agentsync("sync-all", "--json", inventory=inv)

    assert result.returncode == 0, result.stdout
    assert (fleet.repo("laptop") / "results" / "gpu" / "score.txt").read_text() == "0.9\n"
    starts = _starts(gpu_rsync_327)
    assert starts.count("--version") == 1 and sum("--server" in s for s in starts) == 2, starts


def test_a_laptop_on_rsync_3_2_7_pushes_into_a_linked_directory_on_a_host_with_3_5(fleet):
    big_disk = fleet.sandbox.hosts["gpu"].path("bigdisk") / "data"
    big_disk.mkdir(parents=True)
    (fleet.repo("gpu") / "data").symlink_to(f"{MOUNT_POINT}/bigdisk/data")
    write(fleet.repo("laptop") / "data" / "README.md", "what the data is\n")
    bin_dir, log = fleet.root / "laptop-bin", fleet.root / "laptop-rsync.log"
    bin_dir.mkdir()
    install = bin_dir / "rsync"
    install.write_text(LOGGED.format(log=log, real=debian_rsync("3.2.7")))
    install.chmod(0o755)

    result = fleet.agentsync("push-code", "--json", "--host", "gpu", inventory=inventory(fleet, {"laptop": {}, "gpu": {}}),
                             env={"PATH": f"{bin_dir}:{os.environ['PATH']}"})

    assert result.returncode == 0, result.stdout
    assert files(big_disk) == {"README.md"} and (fleet.repo("gpu") / "data").is_symlink()
    assert sum(not s.startswith("--version") for s in _starts(log)) == 2  # the laptop's 3.2.7 ran both runs


def test_a_host_without_rsync_fails_its_transfers_with_the_install_command_and_nothing_moves(fleet):
    write(fleet.repo("laptop") / "app.py", "print('hi')\n")
    write(fleet.sandbox.hosts["nocli"].path("crpbot") / "results" / "score.txt", "0.9\n")
    inv = inventory(fleet, {"laptop": {}, "nocli": {"results": [{"remote": "results/", "local": "results/nocli/"}]}})

    code, data = run(fleet, "push-code", "--host", "nocli", inv=inv)
    pulled, back = run(fleet, "results", "--host", "nocli", inv=inv)

    assert code == 1 and pulled == 1
    for result in (data["by_name"]["push-code"], back["by_name"]["results"]):
        assert result["status"] == "failed" and result["error"] == "rsync is not installed on nocli", result
        assert "apt-get install rsync" in result["hint"]
    assert not (fleet.sandbox.hosts["nocli"].path("crpbot") / "app.py").exists()
    assert not (fleet.repo("laptop") / "results" / "nocli").exists()


def test_a_host_with_an_rsync_too_old_for_our_options_is_refused_naming_its_version(fleet, gpu_rsync_too_old):
    write(fleet.repo("laptop") / "app.py", "print('hi')\n")

    result = fleet.agentsync("push-code", "--json", "--host", "gpu", inventory=inventory(fleet, {"laptop": {}, "gpu": {}}))

    data = json.loads(result.stdout)
    assert result.returncode == 1
    [transfer] = data["transfers"]
    assert transfer["error"].startswith("gpu has rsync 3.0.9 (rsync); agentsync needs rsync 3.1.0 or newer")
    assert _starts(gpu_rsync_too_old) == ["--version"]  # asked, never started for a transfer
    assert not (fleet.repo("gpu") / "app.py").exists()


RSYNC_350 = "rsync  version 3.5.0  protocol version 32\nCopyright (C) 1996-2026 by Andrew Tridgell, Wayne Davison"
RSYNC_327 = "rsync  version 3.2.7  protocol version 31\nCopyright (C) 1996-2022 by Andrew Tridgell, Wayne Davison"
RSYNC_3_0 = "rsync  version 3.0.9  protocol version 30\nCopyright (C) 1996-2011 by Andrew Tridgell, Wayne Davison"
MACOS_OLD = "rsync  version 2.6.9  protocol version 29\nCopyright (C) 1996-2006 by Andrew Tridgell, Wayne Davison"
OPENRSYNC = "openrsync: protocol version 29\nrsync version 2.6.9 compatible"


def test_versions_are_read_from_rsync_and_openrsync_texts():
    assert parse_version("rsync", RSYNC_350) == Found("rsync", "rsync", (3, 5, 0))
    assert parse_version("rsync", RSYNC_327) == Found("rsync", "rsync", (3, 2, 7))
    assert parse_version("rsync", OPENRSYNC).flavor == "openrsync"  # not "rsync 2.6.9", whatever it claims
    assert parse_version("rsync", "").flavor == "missing"


def test_debian_12_rsync_is_taken_as_it_is_in_either_version():
    assert choose([Found("rsync", "rsync", (3, 5, 0))], "gpu") == RsyncTool("rsync", (3, 5, 0))
    assert choose([Found("rsync", "rsync", (3, 2, 7))], "gpu") == RsyncTool("rsync", (3, 2, 7))


def test_a_mac_with_homebrew_rsync_uses_it_instead_of_openrsync():
    found = [parse_version("rsync", OPENRSYNC), parse_version("/opt/homebrew/bin/rsync", RSYNC_350),
             Found("/usr/local/bin/rsync", "missing")]
    assert choose(found, "mac") == RsyncTool("/opt/homebrew/bin/rsync", (3, 5, 0))


def test_a_mac_with_only_openrsync_is_told_exactly_what_to_install():
    with pytest.raises(FleetError) as caught:
        choose([parse_version("rsync", OPENRSYNC), Found("/opt/homebrew/bin/rsync", "missing")], "mac")
    assert "mac has only openrsync (rsync, macOS's built-in rsync)" in caught.value.message
    assert "brew install rsync" in caught.value.hint


def test_an_rsync_too_old_for_info_and_debug_is_refused_with_its_version():
    for text in (RSYNC_3_0, MACOS_OLD):
        with pytest.raises(FleetError) as caught:
            choose([parse_version("rsync", text)], "old")
        assert "needs rsync 3.1.0 or newer (it passes --info and --debug" in caught.value.message
        assert "rsync 3.0.9 (rsync)" in caught.value.message or "rsync 2.6.9 (rsync)" in caught.value.message


def test_no_rsync_at_all_says_so_and_how_to_install_it():
    with pytest.raises(FleetError) as caught:
        choose([Found("rsync", "missing"), Found("/opt/homebrew/bin/rsync", "missing")], "gpu")
    assert caught.value.message == "rsync is not installed on gpu"
    assert "apt-get install rsync" in caught.value.hint and "brew install rsync" in caught.value.hint


def test_the_probe_answer_is_read_between_its_markers_whatever_a_login_script_prints():
    out = f"motd!\n{MARK}rsync\n{RSYNC_327}\n{MARK}/opt/homebrew/bin/rsync\n@@agentsync-rsync-end@@\nmore\n"
    assert parse_versions(out) == [Found("rsync", "rsync", (3, 2, 7)), Found("/opt/homebrew/bin/rsync", "missing")]


def test_a_homebrew_rsync_at_the_far_end_is_named_with_rsync_path_also_for_a_home_backup_dir():
    plain = rsync_argv(RsyncCall(src="/a/", dest="mac:/b/", remote="receiver", remote_program="/opt/homebrew/bin/rsync"))
    assert "--rsync-path=/opt/homebrew/bin/rsync" in plain
    backed = rsync_argv(RsyncCall(src="/a/", dest="mac:/b/", remote="receiver", backup_dir="~/bk",
                                  remote_program="/opt/homebrew/bin/rsync"))
    assert [a for a in backed if a.startswith("--rsync-path=")] == [
        '--rsync-path=/opt/homebrew/bin/rsync --backup-dir="$HOME"/bk']


def test_the_laptop_runs_the_rsync_chosen_for_it():
    assert rsync_argv(RsyncCall(src="/a/", dest="/b/", program="/opt/homebrew/bin/rsync"))[0] == \
        "/opt/homebrew/bin/rsync"
    assert not any(a.startswith("--rsync-path") for a in rsync_argv(RsyncCall(src="/a/", dest="h:/b/")))
