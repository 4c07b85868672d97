"""push-code tells the truth: a host whose checkout has commits the laptop lacks is not silently reverted."""

from __future__ import annotations

import json

from rsync_support import inventory


def test_push_code_from_a_laptop_behind_the_host_is_refused_naming_the_commits_dry_run_too(fleet):
    fleet.commit("gpu", "app.py", "print('newer, committed on gpu')\n", "Newer app on gpu")
    (fleet.repo("laptop") / "app.py").write_text("print('older, from the laptop')\n")
    inv = inventory(fleet, {"laptop": {}, "gpu": {}})
    for flags in ((), ("--dry-run",)):
        refused = fleet.agentsync("push-code", "--host", "gpu", *flags, inventory=inv)
        assert refused.returncode == 1, refused.stderr
        assert "gpu has 1 commit(s) the laptop's checkout does not" in refused.stderr
        assert "Newer app on gpu" in refused.stderr and "--force-older" in refused.stderr
    as_json = fleet.agentsync("push-code", "--host", "gpu", "--json", inventory=inv)
    error = json.loads(as_json.stdout)["error"]
    assert as_json.returncode == 1 and error["host"] == "gpu" and "Newer app on gpu" in error["message"]
    assert (fleet.repo("gpu") / "app.py").read_text() == "print('newer, committed on gpu')\n"  # untouched

    forced = fleet.agentsync("push-code", "--host", "gpu", "--force-older", inventory=inv)
    assert forced.returncode == 0, forced.stderr
    assert (fleet.repo("gpu") / "app.py").read_text() == "print('older, from the laptop')\n"


def test_push_code_from_a_laptop_ahead_of_the_host_goes_ahead(fleet):
    fleet.commit("laptop", "app.py", "print('new on the laptop')\n", "Laptop work")
    result = fleet.agentsync("push-code", "--host", "gpu", inventory=inventory(fleet, {"laptop": {}, "gpu": {}}))
    assert result.returncode == 0, result.stderr
    assert (fleet.repo("gpu") / "app.py").read_text() == "print('new on the laptop')\n"
