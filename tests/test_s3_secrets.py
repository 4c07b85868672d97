"""No secret file ever reaches S3: an upload excludes every secret pattern, at any depth, in any letter case.

Real AWS CLI on a real sshd host, against moto's S3 server; the pure rules are checked beside it with the
same `fnmatch` matching the CLI uses.
"""

from __future__ import annotations

import fnmatch

import pytest
from s3_support import Bucket
from test_artifacts import run, run_json, write_files

from agentsync_fleet.models import S3Entry
from agentsync_fleet.secrets import SECRET_PATTERNS, is_protected, secret_patterns
from agentsync_fleet.steps.s3 import secret_excludes, sync_argv

PLAIN = {"weights.bin": b"w" * 1000, "sub/config.json": b"{}\n", "environment.txt": b"not a secret\n",
         "keys.txt": b"a word list\n", "nested/my-credential/readme.md": b"no\n"}
SECRETS = {
    ".env": b"A=1\n", ".ENV.Production": b"B=2\n", "credentials.json": b"{}\n", "id_ed25519": b"key\n",
    "server.pem": b"pem\n", "API.KEY": b"k\n", "nested/.env": b"C=3\n", "nested/Credentials/aws.json": b"{}\n",
    "deep/er/.git-credentials": b"https://u:p@h\n", "deep/.PGPASS": b"h:5432:*:u:p\n", ".npmrc": b"//r/:_authToken=t\n",
    "pkg/.pypirc": b"[pypi]\n", ".envrc": b"export X=1\n", "infra/prod.TFSTATE": b"{}\n",
}


@pytest.fixture
def bucket(moto_s3) -> Bucket:
    return Bucket(moto_s3)


def aws_excluded(path: str, rules: list[str]) -> bool:
    """How `aws s3 sync` applies --exclude to a file under the synced directory: fnmatch on root/path."""
    return any(fnmatch.fnmatchcase("/root/" + path, "/root/" + rule) for rule in rules)


def test_the_upload_rules_hold_back_exactly_the_protected_files():
    rules = secret_excludes(SECRET_PATTERNS)
    for path in (*SECRETS, "a/b/c/ID_RSA.pub", "x/.Env.local", "x/credentials/y/z.txt"):
        assert aws_excluded(path, rules), path
        assert is_protected(path), path
    for path in PLAIN:
        assert not aws_excluded(path, rules), path
        assert not is_protected(path), path


def test_only_uploads_exclude_secrets_and_they_come_after_the_entrys_own_patterns():
    up = sync_argv(S3Entry("models", "s3://b/m", "up", exclude=("*.tmp",)), dry_run=False)
    assert up.index("--exclude=*.tmp") < up.index("--exclude=.[eE][nN][vV]")
    assert "--exclude=*/.[gG][iI][tT]-[cC][rR][eE][dD][eE][nN][tT][iI][aA][lL][sS]" in up
    down = sync_argv(S3Entry("models", "s3://b/m", "down"), dry_run=False)
    assert not [a for a in down if a.startswith("--exclude")]


def test_the_inventory_adds_patterns_and_may_release_a_built_in_one_by_its_exact_name():
    patterns = secret_patterns({"transfers": {"secrets": ["*.kdbx"], "not_secret": [".npmrc"]}})
    assert "*.kdbx" in patterns and ".npmrc" not in patterns and ".env" in patterns
    assert set(SECRET_PATTERNS) >= {".git-credentials", ".pgpass", ".npmrc", ".pypirc", ".envrc", "*.tfstate"}


def test_not_secret_naming_no_built_in_pattern_is_a_clear_inventory_error(fleet):
    inv = fleet.inventory(transfers={"not_secret": [".env.prod"]})
    result = fleet.agentsync("health", inventory=inv)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "not_secret" in result.stderr and "not a built-in secret pattern" in result.stderr


def test_secrets_in_an_upload_directory_never_reach_the_bucket_and_dry_run_shows_them_held_back(
        fleet, bucket, aws_env):
    models = fleet.repo("cloud") / "models"
    write_files(models, {**PLAIN, **SECRETS})
    inv = fleet.inventory({"cloud": {"s3": [{"path": "models", "url": bucket.url("m"), "direction": "up"}]}},
                          s3=bucket.settings())

    code, dry = run_json(fleet, aws_env, inv, "--dry-run")
    assert code == 0, dry
    entry = dry["entries"][0]
    assert sorted(entry["held_back"]) == sorted(SECRETS)
    assert sorted(entry["paths"]) == sorted(PLAIN) and bucket.keys() == {}
    human = run(fleet, aws_env, inv, "--dry-run")
    assert "held back" in human.stdout and "nested/Credentials/aws.json" in human.stdout

    code, data = run_json(fleet, aws_env, inv)
    assert code == 0, data
    assert set(bucket.keys()) == {f"m/{p}" for p in PLAIN}
    assert sorted(data["entries"][0]["held_back"]) == sorted(SECRETS)


def test_sync_all_uploads_hold_back_secrets_too(fleet, bucket, aws_env):
    models = fleet.repo("cloud") / "models"
    write_files(models, {"weights.bin": b"w", "nested/.Env": b"X=1\n", "id_rsa": b"k\n"})
    inv = fleet.inventory({"laptop": {}, "cloud": {"s3": [{"path": "models", "url": bucket.url("m"),
                                                           "direction": "up"}]}}, s3=bucket.settings())
    result = run(fleet, aws_env, inv, "--json", task="sync-all")
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(bucket.keys()) == {"m/weights.bin"}
