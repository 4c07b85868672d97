"""Pure parts of patch relay: git's output parsed, paths a patch writes, protected files, rejects."""

from __future__ import annotations

import json
import textwrap

import pytest

from agentsync_fleet.relay.patchinfo import (
    CommitInfo,
    FileStat,
    RelayMeta,
    is_empty_patch,
    parse_commits,
    parse_format_patch_names,
    parse_name_list_z,
    parse_numstat_z,
    parse_rejects,
    unquote_git_path,
    written_paths,
)
from agentsync_fleet.secrets import PROTECTED_PATTERNS, is_protected, protected_paths
from agentsync_fleet.steps import relay as R


def test_numstat_z_reads_plain_binary_and_renamed_files():
    text = "3\t1\tstrategies/momentum.py\0-\t-\tmodel.bin\0" "0\t0\t\0old name.txt\0new name.txt\0" "2\t0\twith\ttab\0"
    assert parse_numstat_z(text) == [
        FileStat("strategies/momentum.py", 3, 1), FileStat("model.bin", None, None),
        FileStat("new name.txt", 0, 0), FileStat("with\ttab", 2, 0),
    ]
    assert parse_numstat_z("") == []


def test_meta_sums_insertions_and_deletions_and_serialises_everything():
    meta = RelayMeta("cloud", "main", "h" * 40, "b" * 40, "how", "laptop", "t" * 40, 1,
                     (CommitInfo("c" * 40, "Cody", "c@x", "2024-01-02T03:04:05+02:00", "Subject"),),
                     (FileStat("a.py", 3, 1), FileStat("img.png", None, None), FileStat("b.py", 2, 5)))
    data = json.loads(json.dumps(meta.as_json()))
    assert (data["insertions"], data["deletions"], data["commit_count"]) == (5, 6, 1)
    assert data["source_branch"] == "main" and data["base"] == "b" * 40
    assert [f["path"] for f in data["files"]] == ["a.py", "img.png", "b.py"]
    assert data["commits"][0]["author"] == "Cody"


def test_commit_log_records_split_on_separators_and_keep_odd_subjects():
    text = ("a" * 40 + "\x1fCody Cloud\x1fc@x\x1f2024-01-02T03:04:05+02:00\x1f$(touch x) 'quoted'\x1e\n"
            + "b" * 40 + "\x1fLena\x1fl@x\x1f2024-01-03T00:00:00+00:00\x1f[WIP] second\x1e\n")
    commits = parse_commits(text)
    assert [c.subject for c in commits] == ["$(touch x) 'quoted'", "[WIP] second"]
    assert commits[0].author == "Cody Cloud" and commits[1].sha == "b" * 40


def test_format_patch_names_are_taken_from_its_output_and_hostile_ones_refused():
    out = "/r/.git/agentsync-relay/x/0001-Add-strategy.patch\n/r/.git/agentsync-relay/x/0002-Fix.v2_x.patch\n"
    assert parse_format_patch_names(out) == ["0001-Add-strategy.patch", "0002-Fix.v2_x.patch"]
    assert parse_format_patch_names("../../0001-x.patch\n") == ["0001-x.patch"]  # only the base name is used
    for bad in ("0001-$(rm -rf ~).patch", "0001-x y.patch", "0001-x.patch.sh", "notes.txt", "/tmp/\n0001-.."):
        with pytest.raises(ValueError):
            parse_format_patch_names(bad)


def test_name_list_z_drops_blank_entries_and_duplicates():
    assert parse_name_list_z("\na.py\0b dir/c.txt\0\n\na.py\0.env\0") == ["a.py", "b dir/c.txt", ".env"]


def test_git_quoted_paths_are_unquoted_to_text():
    assert unquote_git_path('"caf\\303\\251 \\"menu\\".txt"') == 'café "menu".txt'
    assert unquote_git_path('"tab\\there\\\\"') == "tab\there\\"
    assert unquote_git_path("plain name.txt") == "plain name.txt"


PATCH = textwrap.dedent("""\
    From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001
    From: Cody Cloud <cloud@fleet.example>
    Subject: Many kinds of change

    The message may say diff --git in the middle of a line.
    ---
     6 files changed

    diff --git a/strategies/momentum.py b/strategies/momentum.py
    index 1111111..2222222 100644
    --- a/strategies/momentum.py
    +++ b/strategies/momentum.py
    @@ -1 +1,2 @@
     WINDOW = 20
    +++ b/looks-like-a-header.key
    diff --git a/deploy/.env b/deploy/.env
    new file mode 100644
    index 0000000..e69de29
    diff --git a/old.pem b/old.pem
    deleted file mode 100644
    index 3333333..0000000
    --- a/old.pem
    +++ /dev/null
    @@ -1 +0,0 @@
    -key
    diff --git a/notes/a b.txt b/keys/id_rsa
    similarity index 100%
    rename from notes/a b.txt
    rename to keys/id_rsa
    diff --git "a/caf\\303\\251 x.txt" "b/caf\\303\\251 x.txt"
    new file mode 100644
    --- /dev/null
    +++ "b/caf\\303\\251 x.txt"
    @@ -0,0 +1 @@
    +hi
    diff --git a/two words.bin b/two words.bin
    new file mode 100644
    index 0000000..4444444
    GIT binary patch
    literal 3
    KcmZ?wbN~PV

    --\x20
    2.39.5
    """)


def test_written_paths_reads_headers_only_and_skips_deletions():
    assert written_paths(PATCH) == ["strategies/momentum.py", "deploy/.env", "keys/id_rsa", "café x.txt",
                                    "two words.bin"]


def test_a_diff_header_line_in_a_commit_message_counts_as_a_header_like_git_am_reads_it():
    message_only = "Subject: x\n\ndiff --git a/.env b/.env\nsome text\n"
    assert written_paths(message_only) == [".env"]  # git am would read it as a patch too: err on the safe side


def test_protected_files_are_matched_by_name_anywhere_in_the_tree():
    for path in (".env", "deploy/.env", ".env.production", "certs/server.pem", "tls.KEY", "id_rsa", "keys/id_rsa.pub",
                 "id_ed25519", "prod_secrets.json", "credentials", "aws/credentials.json", ".ENV"):
        assert is_protected(path), path
    for path in ("env.py", "envrc.md", "keyboard.py", "keys.txt", "secrets.json", "my_credentials.txt", "pem.md"):
        assert not is_protected(path), path
    assert protected_paths(["a.py", "x/.env", ".env", "x/.env"]) == [".env", "x/.env"]
    assert ".env" in PROTECTED_PATTERNS


def test_protected_patterns_catch_what_a_real_patch_writes():
    assert protected_paths(written_paths(PATCH)) == ["deploy/.env", "keys/id_rsa"]


def test_rejects_are_read_from_git_apply_output():
    output = textwrap.dedent("""\
        Checking patch strategies/momentum.py...
        error: while searching for:
        WINDOW = 20
        error: patch failed: strategies/momentum.py:1
        Checking patch README.md...
        Applied patch README.md cleanly.
        Applying patch strategies/momentum.py with 1 reject...
        Rejected hunk #1.
        Applying patch docs/two words.md with 2 rejects...
        Rejected hunk #1.
        """)
    assert parse_rejects(output) == ["strategies/momentum.py.rej", "docs/two words.md.rej"]
    assert parse_rejects("Applied patch a.py cleanly.\n") == []


def test_empty_patches_are_recognised():
    assert is_empty_patch("From x\nSubject: Empty marker\n\n---\n")
    assert not is_empty_patch(PATCH)


def test_relay_commands_quote_everything_and_only_remove_relay_directories():
    assert R.relay_dir("/r/.git/", "id1") == "/r/.git/agentsync-relay/id1"
    assert "rm -rf -- /r/.git/agentsync-relay/id1" in R.remove_relay_dir("/r/.git/agentsync-relay/id1")
    for bad in ("/", "/r/.git", "/r/.git/agentsync-relay", "/r/.git/agentsync-relay/"):
        with pytest.raises(ValueError):
            R.remove_relay_dir(bad)
    commit = R.commit_as("/r", "Eve '; rm -rf ~", "e@x", "2024-01-02", "/r/.git/agentsync-relay/i/0001.msg")
    assert "'GIT_AUTHOR_NAME=Eve '\"'\"'; rm -rf ~'" in commit
    from agentsync_fleet.shell import path_arg

    with pytest.raises(ValueError):
        R.write_messages("/r", "/r/.git/agentsync-relay/i", ["HEAD; rm -rf ~"])
    assert "core.hooksPath=/dev/null" in commit and "--cleanup=verbatim" in commit
    line = R.validate(path_arg("~/my repo"), "make test && echo ok")
    assert line == "cd \"$HOME\"/'my repo' && sh -c 'make test && echo ok'"


def test_one_secret_list_serves_rsync_and_relay_and_the_inventory_can_only_add_to_it():
    from agentsync_fleet.relay.core import RelayError, refuse_protected
    from agentsync_fleet.secrets import SECRET_PATTERNS, secret_patterns

    patterns = secret_patterns({"transfers": {"secrets": ["*.kdbx"]}})
    assert patterns[: len(SECRET_PATTERNS)] == SECRET_PATTERNS and "*.kdbx" in patterns
    assert secret_patterns({}) == SECRET_PATTERNS
    with pytest.raises(RelayError) as caught:
        refuse_protected(["certs/client.kdbx", "README.md"], "cloud's commits", patterns)
    assert list(caught.value.files) == ["certs/client.kdbx"]
