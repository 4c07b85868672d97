"""Pure parts of the remote layer: ssh's messages told apart, `ssh -G` read, jump specs, socket paths."""

from __future__ import annotations

import os
import stat

import pytest

from agentsync_fleet.remote.control import SOCKET_PATH_MAX, control_dir, persist_arg, socket_name
from agentsync_fleet.remote.diagnose import classify
from agentsync_fleet.remote.resolve import Target, parse_ssh_g, split_jump

CHANGED = """@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
The fingerprint for the ED25519 key sent by the remote host is
SHA256:RiR+7VQErMQPSo7p/FaUb5iHI9lELL3Xf/8cyInF/iE.
Offending ED25519 key in /tmp/known_hosts:1
Host key for [127.0.0.2]:2222 has changed and you have requested strict checking.
Host key verification failed.
"""


@pytest.mark.parametrize("stderr, reason", [
    ("ssh: Could not resolve hostname nowhere.invalid: Name or service not known\r\n", "dns"),
    ("ssh: connect to host 127.0.0.1 port 9: Connection refused\r\n", "refused"),
    ("ssh: connect to host 10.0.0.1 port 22: Connection timed out\r\n", "timeout"),
    ("Connection timed out during banner exchange\r\nConnection to 127.0.0.9 port 22 timed out\r\n", "timeout"),
    ("root@127.0.0.2: Permission denied (publickey).\r\n", "auth"),
    ("root@127.0.0.2: Permission denied (publickey,password).\r\n", "auth"),
    ("root@127.0.0.2: Permission denied (password).\r\n", "second factor"),
    ("root@127.0.0.2: Permission denied (keyboard-interactive).\r\n", "second factor"),
    ("Received disconnect from 127.0.0.2 port 22:2: Too many authentication failures\r\n", "too many auth failures"),
    ("No ED25519 host key is known for [127.0.0.2]:2222 and you have requested strict checking.\r\n"
     "Host key verification failed.\r\n", "host key unknown"),
    (CHANGED, "host key changed"),
    ("@@@@@@\r\n@       WARNING: REVOKED HOST KEY DETECTED!               @\r\n@@@@@@\r\nThe ED25519 host key for "
     "[127.0.0.2]:2222 is marked as revoked.\r\nHost key verification failed.\r\n", "host key revoked"),
    ("Unable to negotiate with 127.0.0.2 port 22: no matching key exchange method found. Their offer: "
     "diffie-hellman-group1-sha1\r\n", "no common algorithm"),
    ("Host key ED25519 SHA256:RiR+7VQErMQPSo7p/FaUb5iHI9lELL3Xf/8cyInF/iE revoked by file /k/revoked\r\n"
     "Host key verification failed.\r\n", "host key revoked"),
    ('unix_listener: path "/very/long.x" too long for Unix domain socket\r\n', "config"),
])
def test_ssh_failures_are_told_apart_from_its_own_words(stderr, reason):
    assert classify(stderr).reason == reason


def test_a_changed_key_carries_the_new_fingerprint_and_a_proxy_failure_its_stderr():
    assert classify(CHANGED).fingerprint == "SHA256:RiR+7VQErMQPSo7p/FaUb5iHI9lELL3Xf/8cyInF/iE"
    failure = classify("/bin/sh: 1: nosuchproxy: not found\r\nkex_exchange_identification: Connection closed by "
                       "remote host\r\nConnection closed by UNKNOWN port 65535\r\n", via_proxy=True)
    assert failure.reason == "proxy" and "nosuchproxy" in failure.detail


def test_a_command_error_is_not_mistaken_for_an_ssh_failure():
    assert classify("fatal: not a git repository (or any of the parent directories): .git\n") is None


def test_ssh_g_output_is_read_first_value_wins_and_lists_kept():
    text = ("user root\nhostname 10.0.0.2\nport 2222\nidentityfile ~/.ssh/a\nidentityfile ~/.ssh/b\n"
            "proxyjump u@b1:2200,b2\nstricthostkeychecking accept-new\nhostkeyalias gpu-box\n"
            "userknownhostsfile /k/one /k/two\nhashknownhosts yes\n")
    res = parse_ssh_g(text, Target("gpu"))
    assert (res.user, res.hostname, res.port, res.address) == ("root", "10.0.0.2", 2222, "root@10.0.0.2")
    assert res.lists["identityfile"] == ("~/.ssh/a", "~/.ssh/b")
    assert res.proxy_jump == ("u@b1:2200", "b2")
    assert res.strict_host_key_checking == "accept-new" and res.hash_known_hosts
    assert res.host_key_name == "gpu-box" and res.user_known_hosts == ("/k/one", "/k/two")
    assert parse_ssh_g("proxyjump none\nport 22\nhostname h\n", Target("h")).proxy_jump == ()


def test_targets_and_jump_hops_split_like_ssh():
    assert Target.from_spec("root@10.0.0.2:2222").argv() == ["-l", "root", "-p", "2222"]
    assert Target.from_spec("gpu").argv() == []
    assert split_jump("me@bastion:2200") == ("bastion", "me", 2200)
    assert split_jump("ssh://me@bastion:2200") == ("bastion", "me", 2200)
    assert split_jump("bastion") == ("bastion", None, None)


def test_socket_paths_stay_short_and_private(tmp_path):
    short = control_dir(str(tmp_path / "s"))
    deep = control_dir(str(tmp_path / ("d" * 120)))
    for directory in (short, deep):
        assert len(str(directory / socket_name("x"))) + 17 <= SOCKET_PATH_MAX
        info = os.lstat(directory)
        assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
    assert str(deep).startswith(f"/tmp/agentsync-{os.geteuid()}/")
    assert persist_arg(300) == "300s" and persist_arg(0) == "no"
