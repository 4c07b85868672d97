"""Which rsync runs at each end: the choice from `--version` texts (pure; macOS's openrsync cannot run here, so
its case is the choice made from its real `--version` text), and the argv that follows from it."""

from __future__ import annotations

import pytest

from agentsync_fleet.errors import FleetError
from agentsync_fleet.steps.rsync import RsyncCall, rsync_argv
from agentsync_fleet.steps.rsync_tool import MARK, Found, RsyncTool, choose, parse_version, parse_versions

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
