"""Pure parts of the S3 artifact syncs: command builders, the `aws s3 sync` output parser, error
diagnosis, credential scrubbing, and the inventory keys. Golden texts are what the AWS CLI prints."""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path

import pytest

from agentsync_fleet import inventory
from agentsync_fleet.artifacts.diagnose import diagnose, scrub
from agentsync_fleet.artifacts.parse import ProgressCounter, parse_sizes, parse_sync_output
from agentsync_fleet.artifacts.runner import interpret
from agentsync_fleet.errors import InventoryError
from agentsync_fleet.models import Host, S3Entry
from agentsync_fleet.shell import section
from agentsync_fleet.steps import s3 as S

URL = "s3://ml-artifacts/crpbot/models"
HOST = Host(name="cloud", repo="/root/crpbot", ssh="cloud")
UP = S3Entry(path="models", url=URL, direction="up", exclude=("*.tmp",), profile="fleet",
             endpoint_url="http://127.0.0.1:9000")
DOWN = S3Entry(path="~/incoming models", url=URL, direction="down", delete=True, region="eu-central-1")

UPLOAD_OUTPUT = (
    "Completed 256.0 KiB/28.6 MiB (5.4 MiB/s) with 4 file(s) remaining\r"
    "Completed 512.0 KiB/28.6 MiB (10.8 MiB/s) with 4 file(s) remaining\r"
    "upload: ./weights.bin to s3://ml-artifacts/crpbot/models/weights.bin              \n"
    "Completed 28.5 MiB/28.6 MiB (81.6 MiB/s) with 3 file(s) remaining\r"
    "upload: sub/with space.bin to s3://ml-artifacts/crpbot/models/sub/with space.bin\n"
    "upload: ./tok\u00e9nizer.json to s3://ml-artifacts/crpbot/models/tok\u00e9nizer.json\n"
    "upload: ./a to b to s3://ml-artifacts/crpbot/models/a to b\n"
    "delete: s3://ml-artifacts/crpbot/models/old.bin\n"
)

DOWNLOAD_DRY_RUN = (
    "(dryrun) download: s3://ml-artifacts/crpbot/models/weights.bin to ./weights.bin\n"
    "(dryrun) download: s3://ml-artifacts/crpbot/models/x to y to x to y\n"
    "(dryrun) download: s3://ml-artifacts/crpbot/models/sub/a.bin to sub/a.bin\n"
    "(dryrun) delete: ./stale.bin\n"
)


def test_upload_output_is_parsed_into_files_deletions_and_progress():
    out = parse_sync_output(UPLOAD_OUTPUT, "", URL)
    assert [t.path for t in out.moved] == ["weights.bin", "sub/with space.bin", "tok\u00e9nizer.json", "a to b"]
    assert {t.kind for t in out.moved} == {"upload"}
    assert [t.path for t in out.deleted] == ["old.bin"]
    assert out.progress == "28.5 MiB/28.6 MiB (81.6 MiB/s)"
    assert not out.failed and not out.fatal and not out.errors


def test_dry_run_download_lines_split_where_both_sides_name_the_same_file():
    out = parse_sync_output(DOWNLOAD_DRY_RUN, "", URL)
    assert [t.path for t in out.moved] == ["weights.bin", "x to y", "sub/a.bin"]
    assert all(t.dry_run for t in out.transfers)
    assert [t.path for t in out.deleted] == ["stale.bin"]


@pytest.mark.parametrize("stderr, code, message, hint", [
    ("fatal error: An error occurred (NoSuchBucket) when calling the ListObjectsV2 operation: The specified "
     "bucket does not exist", "NoSuchBucket", "bucket 'ml-artifacts' does not exist at http://127.0.0.1:9000",
     "aws s3 mb s3://ml-artifacts"),
    ("upload failed: ./weights.bin to s3://ml-artifacts/crpbot/models/weights.bin An error occurred "
     "(AccessDenied) when calling the PutObject operation: Access Denied", "AccessDenied",
     "access denied to s3://ml-artifacts/crpbot/models", "profile 'fleet'"),
    ("fatal error: An error occurred (ExpiredToken) when calling the ListObjectsV2 operation: The provided "
     "token has expired.", "ExpiredToken", "credentials on cloud have expired (bucket 'ml-artifacts')",
     "aws sso login --profile fleet"),
    ("fatal error: An error occurred (InvalidAccessKeyId) when calling the ListObjectsV2 operation: The AWS "
     "Access Key Id you provided does not exist in our records.", "InvalidAccessKeyId",
     "access key id cloud uses (profile 'fleet') is not known", "check the credentials configured on cloud"),
    ("fatal error: An error occurred (403) when calling the HeadObject operation: Forbidden", "403",
     "access denied to s3://ml-artifacts/crpbot/models", "s3:PutObject"),
])
def test_service_errors_are_explained_with_the_bucket_and_aws_words(stderr, code, message, hint):
    out = parse_sync_output("", stderr + "\n", URL)
    problem = diagnose(out, 1, UP, "cloud")
    assert problem is not None and problem.code == code
    assert message in problem.message and hint in problem.hint
    assert problem.aws_message == stderr  # AWS's own words, as printed


@pytest.mark.parametrize("stderr, exit_code, message", [
    ("fatal error: Unable to locate credentials", 1, "no AWS credentials found on cloud for " + URL),
    ("The config profile (fleet) could not be found", 255, "AWS profile 'fleet' is not configured on cloud"),
    ('fatal error: Could not connect to the endpoint URL: "http://127.0.0.1:9000/ml-artifacts?list-type=2"', 1,
     "cloud cannot reach the S3 endpoint at http://127.0.0.1:9000"),
    ("warning: Skipping file /root/crpbot/models/x. File/Directory is not readable.", 2,
     "1 file(s) were skipped"),
    ("usage: aws [options] <command> <subcommand>\nUnknown options: --weird", 252, "aws s3 sync exited 252"),
])
def test_cli_errors_without_a_service_code_are_explained(stderr, exit_code, message):
    problem = diagnose(parse_sync_output("", stderr, URL), exit_code, UP, "cloud")
    assert problem is not None and message in problem.message


def test_a_clean_run_has_no_problem():
    assert diagnose(parse_sync_output(UPLOAD_OUTPUT, "", URL), 0, UP, "cloud") is None


def test_progress_counter_handles_chunks_split_anywhere():
    counter = ProgressCounter(URL)
    data = UPLOAD_OUTPUT.encode()
    for start in range(0, len(data), 7):  # 7-byte chunks split lines and UTF-8 sequences alike
        counter.feed(data[start:start + 7])
    assert counter.files == 4 and counter.deleted == 1
    assert counter.progress == "28.5 MiB/28.6 MiB (81.6 MiB/s)"


def test_size_listings_from_gnu_and_bsd_find():
    assert parse_sizes("300000 weights.bin\n15 sub/with space.bin\n") == {"weights.bin": 300000,
                                                                        "sub/with space.bin": 15}
    assert parse_sizes("4 ./a to b\nnot a size\n") == {"a to b": 4}


def test_sync_argv_uses_name_value_options_and_the_prefix_as_a_directory():
    secret_rules = [f"--exclude={rule}" for rule in S.secret_excludes(UP.secrets)]  # uploads only
    assert S.sync_argv(UP, dry_run=False) == [
        "aws", "s3", "sync", ".", URL + "/", "--exclude=*.tmp", *secret_rules, "--profile=fleet",
        "--endpoint-url=http://127.0.0.1:9000"]
    assert S.sync_argv(DOWN, dry_run=True) == [
        "aws", "s3", "sync", URL + "/", ".", "--delete", "--dryrun", "--region=eu-central-1"]


def test_local_dir_is_relative_to_the_repo_unless_absolute_or_home():
    assert S.local_dir(HOST, UP) == "/root/crpbot/models"
    assert S.local_dir(HOST, DOWN) == "~/incoming models"
    assert S.local_dir(HOST, S3Entry(path="/data/x", url=URL, direction="up")) == "/data/x"


def test_script_quotes_every_inventory_value():
    nasty = S3Entry(path="models; rm -rf /", url=URL + "/$(reboot)", direction="up", exclude=("*.tmp' ; x",))
    text = S.sync_script(HOST, nasty)
    assert "'/root/crpbot/models; rm -rf /'" in text
    sync_line = next(line for line in text.splitlines() if " s3 sync " in line)
    assert shlex.split(sync_line)[:2] == ["AWS_PAGER=", "$limit"]  # `timeout -k 5 3600` where the host has it
    assert shlex.split(sync_line)[2:] == ["aws", "s3", "sync", ".", URL + "/$(reboot)/", "--exclude=*.tmp' ; x",
                                          *[f"--exclude={rule}" for rule in S.secret_excludes(nasty.secrets)]]
    assert text.startswith("command -v aws")


def test_dry_run_download_never_creates_the_directory():
    text = S.sync_script(HOST, DOWN, dry_run=True)
    assert "mkdir" not in text and "mktemp -d" in text and S.SIZES not in text
    assert "mkdir -p" in S.sync_script(HOST, DOWN, dry_run=False)


def test_interpret_counts_files_from_the_cli_and_bytes_from_the_disk_listing():
    stdout = (f"{section(S.SYNC)}\n" + UPLOAD_OUTPUT + f"\n{section(S.SIZES)}\n"
              "300000 weights.bin\n15 sub/with space.bin\n7 tok\u00e9nizer.json\n4 a to b\n999 not-moved.bin\n")
    stdout = stdout.replace("echo '", "").replace("'\n", "\n")  # what `echo` prints
    result = interpret(HOST, 0, UP, False, 0, stdout, "")
    assert result.ok and result.files == 4 and result.deleted == 1
    assert result.bytes == 300000 + 15 + 7 + 4


def test_interpret_reports_a_sync_the_host_stopped_at_its_timeout_with_what_it_moved_so_far():
    stdout = (f"{section(S.SYNC)}\nupload: ./weights.bin to {URL}/weights.bin\n\n{section(S.TIMED_OUT)}\n"
              f"{section(S.SIZES)}\n300000 weights.bin\n").replace("echo '", "").replace("'\n", "\n")
    result = interpret(HOST, 0, UP, False, 124, stdout, "")
    assert result.status == "failed" and result.files == 1 and result.bytes == 300000
    assert result.message == f"sync of models ⇄ {URL} did not finish within 3600s; stopped on cloud"
    assert "raise `timeout:`" in result.hint
    assert "timeout -k 5 3600'" in S.sync_script(HOST, UP)


def test_interpret_reports_a_missing_cli_by_host_with_install_advice():
    result = interpret(HOST, 0, UP, False, 127, "@@agentsync@@ no-aws-cli\n", "")
    assert result.status == "failed" and "not installed on cloud" in result.message
    assert "pip install awscli" in result.hint and "ssh cloud command -v aws" in result.hint


def test_scrub_masks_keys_secrets_tokens_and_url_passwords():
    text = ("key AKIAIOSFODNN7EXAMPLE aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY "
            "X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr&X-Amz-Signature=abc123 https://user:pass@minio.local/x")
    clean = scrub(text)
    for secret in ("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI", "IQoJb3JpZ2luX2VjEJr", "abc123", "user:pass"):
        assert secret not in clean
    assert "https://<redacted>@minio.local/x" in clean


SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+abc=="


@pytest.mark.parametrize("dump", [
    f"export AWS_SECRET_ACCESS_KEY='{SECRET}'\nexport AWS_SESSION_TOKEN='{TOKEN}'",  # dash `export -p`
    f'declare -x AWS_SECRET_ACCESS_KEY="{SECRET}"\ndeclare -x AWS_SESSION_TOKEN="{TOKEN}"',  # bash `export -p`
    f"AWS_SECRET_ACCESS_KEY={SECRET}\nAWS_SESSION_TOKEN={TOKEN}",  # env
    f"set -gx AWS_SECRET_ACCESS_KEY {SECRET}\nset -gx AWS_SESSION_TOKEN {TOKEN}",  # fish
    f"setenv AWS_SECRET_ACCESS_KEY {SECRET}; setenv AWS_SESSION_TOKEN {TOKEN}",  # csh
    f"[fleet]\naws_secret_access_key = {SECRET}\naws_session_token = {TOKEN}",  # ~/.aws/credentials
    f'{{"Credentials": {{"SecretAccessKey": "{SECRET}", "SessionToken": "{TOKEN}"}}}}',  # aws sts ... JSON
    f"{{'aws_secret_access_key': '{SECRET}', 'aws_session_token': '{TOKEN}'}}",  # a Python dict in --debug
    f"<Credentials><SecretAccessKey>{SECRET}</SecretAccessKey><SessionToken>{TOKEN}</SessionToken>"
    "</Credentials>",  # an STS response body in --debug
])
def test_scrub_masks_secrets_in_realistic_env_dumps_and_aws_outputs(dump):
    clean = scrub(dump)
    assert SECRET not in clean and TOKEN not in clean, clean
    assert "K7MDENG" not in clean and "IQoJb3JpZ2luX2VjEJr" not in clean


def test_scrub_leaves_aws_error_messages_readable():
    for text in ("An error occurred (SignatureDoesNotMatch) when calling the ListObjectsV2 operation: The request "
                 "signature we calculated does not match the signature you provided. Check your key and signing "
                 "method.",
                 "An error occurred (InvalidToken) when calling the ListObjectsV2 operation: The provided token is "
                 "malformed or otherwise invalid.",
                 "Partial credentials found in env, missing: AWS_SECRET_ACCESS_KEY"):
        assert scrub(text) == text


# ---------------------------------------------------------------- inventory


def load(tmp_path, text: str):
    path = tmp_path / "fleet.yaml"
    path.write_text(textwrap.dedent(text))
    return inventory.load(path)


def test_s3_entries_take_settings_from_entry_then_host_then_top_level(tmp_path):
    inv = load(tmp_path, """\
        s3: {profile: team, region: eu-central-1, endpoint_url: "https://minio.example:9000", timeout: 600}
        hosts:
          cloud:
            ssh: cloud
            repo: /root/crpbot
            s3_settings: {profile: cloud-writer}
            s3:
              - {path: models, url: "s3://ml-artifacts/crpbot/models/", direction: up, exclude: ["*.tmp"]}
              - {path: data, url: "s3://ml-data/crpbot", direction: down, delete: true, region: us-east-1}
          laptop: {local: true, repo: ~/crpbot}
        """)
    up, down = inv.hosts["cloud"].s3
    assert up == S3Entry(path="models", url="s3://ml-artifacts/crpbot/models", direction="up", exclude=("*.tmp",),
                         profile="cloud-writer", region="eu-central-1", endpoint_url="https://minio.example:9000",
                         timeout=600.0)
    assert down.delete and down.region == "us-east-1" and down.profile == "cloud-writer"
    assert inv.hosts["laptop"].s3 == ()


def test_bad_s3_entries_are_all_reported_with_what_was_expected(tmp_path):
    with pytest.raises(InventoryError) as caught:
        load(tmp_path, """\
            s3: {endpoint_url: "https://key:secret@minio.example"}
            hosts:
              cloud:
                ssh: cloud
                repo: /r
                s3:
                  - {path: models, url: "https://bucket/models", direction: up}
                  - {path: data, url: "s3://Bad_Bucket/x", direction: sideways}
                  - {url: "s3://ok-bucket/x", direction: down, delet: true}
            """)
    text = str(caught.value)
    assert "key 's3.endpoint_url'" in text and "contains credentials" in text
    assert "secret" not in text and "https://key:***@minio.example" in text  # never echoed back
    assert "key 's3[0].url'" in text and "expected s3://bucket/prefix" in text
    assert "names bucket 'Bad_Bucket', which is not a valid bucket name" in text
    assert "key 's3[1].direction': expected one of up, down, found 'sideways'" in text
    assert "key 's3[2].path': missing" in text
    assert "key 's3[2].delet': unknown key" in text and "did you mean 'delete'" in text


def test_example_inventory_documents_s3_entries(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "config").write_text("")
    inv = inventory.load(Path(__file__).parent.parent / "inventory" / "example.yaml")
    models, data = inv.hosts["cloud"].s3
    assert models.direction == "up" and models.exclude == ("*.tmp",) and models.profile == "ml"
    assert data.delete is False and data.region == "eu-central-1"
    assert inv.hosts["laptop"].s3[0].direction == "down" and inv.hosts["gpu"].s3 == ()
