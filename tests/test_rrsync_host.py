"""A host whose authorized_keys restricts the key to `rrsync DIR` (restricted rsync): agentsync needs a shell
there (the fleet lock, the rsync check), so `results` is refused, with a message that says why, and nothing
lands; `health` says the same. ssh itself connects (the key is accepted), so this is not a connection refusal."""

from __future__ import annotations

import json

import pytest
from ssh_support import MX_REPO, block, results, seed, ssh_verdict


@pytest.fixture(scope="module")
def restricted(sandbox, tmp_path_factory):
    keys = tmp_path_factory.mktemp("rrsync") / "authorized_keys"
    keys.write_text(f'command="rrsync {MX_REPO}",restrict {sandbox.client_key.with_suffix(".pub").read_text()}')
    host = sandbox.add_host("rr-host", sshd_extra=[f"AuthorizedKeysFile {keys}"])
    sandbox.start("rr-host")
    yield host
    sandbox.stop("rr-host")


def test_results_from_a_restricted_rsync_host_is_refused_with_the_reason(fleet, restricted):
    known = fleet.root / "kh-rr"
    known.write_text(f"[{restricted.address}]:{restricted.port} {fleet.sandbox.host_public_key('rr-host')}\n")
    with fleet.ssh_config.open("a") as handle:
        handle.write("\n" + block("rr", restricted, key=fleet.sandbox.client_key, known=known))
    seed(fleet, "rr-host")
    assert ssh_verdict(fleet, "rr") != 255  # ssh itself connects: the key is accepted, restricted to rsync

    code, landed, transfer = results(fleet, "rr")

    assert code == 1 and not landed.exists(), transfer
    assert transfer["status"] != "ok" and transfer["files"] == 0
    assert "restricted to rsync" in transfer["error"] and "rrsync" in transfer["error"], transfer
    assert "without the rrsync restriction" in transfer["hint"], transfer
    inv = fleet.inventory({"mx": {"ssh": "rr", "repo": MX_REPO}})
    row = json.loads(fleet.agentsync("health", "--json", "--no-fetch", inventory=inv).stdout)["hosts"][0]
    assert row["passed"] is False and any("rrsync" in failure for failure in row["failures"]), row
