"""rsync, the patch relay and sync-all's transfer stages on a host whose shell startup prints a banner.

rsync's protocol runs over the remote shell's stdout, so a `~/.bashrc` banner breaks it ("is your shell
clean?"). agentsync sees the banner in the first command of the run and sends rsync through its filter
(agentsync_fleet/remote/rshfilter.py). Each test compares with a quiet host doing the same thing: the same
files and bytes arrive, the same report comes back, errors read the same. Real sshd hosts, real rsync.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pytest
from conftest import BANNER_ERR, BANNER_OUT, LOGIN_SHELLS
from rsync_support import inventory as inventory_with_backups
from rsync_support import run, write
from test_relay import OFFLINE, commit_dated, commit_facts, cut_off, relay

from agentsync_fleet.sandbox import MOUNT_POINT

MODEL = random.Random(7).randbytes(2_000_000)  # the same bytes on every host; enough to fill every pipe
BANNER = "Welcome to vm! 4 updates can be applied."
SHELL_HOSTS = [f"sh-{shell}" for shell in LOGIN_SHELLS]


def digest_tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.relative_to(root).parts}


def results_entry(name: str) -> dict:
    return {"results": [{"remote": "results/", "local": f"results/{name}/"}]}


@pytest.fixture
def banner(fleet):
    """Give a host (any login shell) a banner on stdout and/or stderr for this test, through its sshrc."""
    written: list[Path] = []

    def give(name: str, out: str = "", err: str = "") -> None:
        host = fleet.sandbox.hosts[name]
        for text, path in ((out, BANNER_OUT), (err, BANNER_ERR)):
            if text:
                written.append(write(host.path(path.removeprefix(MOUNT_POINT + "/")), text))

    yield give
    for path in written:
        path.unlink(missing_ok=True)


def laptop_edits(fleet) -> None:
    """What push-code sends: an edited tracked file and a new untracked one (results/ is git-ignored)."""
    write(fleet.repo("laptop") / "README.md", "edited on the laptop, not committed\n")
    write(fleet.repo("laptop") / "pkg" / "sub" / "mod.py", "NEW = 1\n")


def summary(transfer: dict) -> dict:
    """A transfer's report, less what names the host or the run, and less mtime-only changes (`attrs`: the two
    hosts' checkouts were made at different times)."""
    return {"status": transfer["status"], "files": transfer["files"], "bytes": transfer["bytes"],
            "deleted": transfer["deleted"], "error": transfer["error"].replace(transfer["host"], "HOST"),
            "changes": sorted((c["action"], c["path"]) for c in transfer["changes"] if c["action"] != "attrs"),
            "held_back": sorted((h["path"], h.get("pattern", ""), h["reason"]) for h in transfer["held_back"]),
            "backed_up": sorted(b["path"] for b in transfer["backed_up"]), "warnings": transfer["warnings"]}


def transfers(fleet, name: str) -> dict:
    """results (twice: the second has nothing to move) and push-code for one host: reports and disks."""
    source = fleet.repo(name) / "results"
    write(source / "metrics.json", '{"loss": 0.12}\n')
    write(source / "run1" / "model.bin", MODEL)
    write(source / "notes ü $(x).txt", "odd name\n")
    write(source / ".env", "API_KEY=secret\n")
    local = write(fleet.repo("laptop") / "results" / name / "metrics.json", "my local edit\n").parent
    inv = inventory_with_backups(fleet, {"laptop": {}, name: results_entry(name)})
    seen: dict = {}
    for task in ("results", "results", "push-code"):
        code, data = run(fleet, task, "--host", name, inv=inv)
        transfer = next(iter(data["by_name"].values()))
        seen.setdefault(task, []).append((code, summary(transfer)))
        seen.setdefault("commands", []).extend(leg["command"] for leg in transfer["legs"])
    seen["pulled"] = digest_tree(local)
    seen["pushed"] = digest_tree(fleet.repo(name))
    return seen


def uses_filter(commands: list[str]) -> bool:
    return all("rshfilter.py" in c for c in commands) and len(commands) > 0


def test_results_and_push_code_on_a_host_whose_bashrc_prints_a_banner_match_a_quiet_host(fleet):
    fleet.prepare("noisy")
    laptop_edits(fleet)

    quiet, noisy = transfers(fleet, "cloud"), transfers(fleet, "noisy")

    assert noisy["results"] == quiet["results"] and noisy["push-code"] == quiet["push-code"]
    (code, first), (_, again) = noisy["results"]
    assert code == 0 and first["status"] == "ok" and first["files"] == 3, first
    assert first["bytes"] == len(MODEL) + len('{"loss": 0.12}\n') + len("odd name\n")
    assert first["held_back"] == [(".env", ".env", "secret")] and first["backed_up"] == ["metrics.json"]
    assert again["files"] == 0 and again["bytes"] == 0
    (code, pushed), = noisy["push-code"]
    assert code == 0 and pushed["files"] == 2, pushed
    assert noisy["pulled"] == quiet["pulled"] and noisy["pushed"] == quiet["pushed"]
    assert (fleet.repo("laptop") / "results" / "noisy" / "run1" / "model.bin").read_bytes() == MODEL
    assert (fleet.repo("noisy") / "README.md").read_text() == "edited on the laptop, not committed\n"
    assert uses_filter(noisy["commands"]) and not any("rshfilter" in c for c in quiet["commands"])
    named_after_banner = [p for root in (fleet.repo("laptop"), fleet.repo("noisy")) for p in root.rglob("*Welcome*")]
    assert named_after_banner == []


@pytest.mark.parametrize("name", SHELL_HOSTS)
def test_rsync_through_the_banner_filter_works_on_every_login_shell(fleet, banner, name):
    fleet.prepare(name)
    banner(name, out=f"{BANNER}\n", err="stty: standard input: not a tty\n")
    laptop_edits(fleet)
    fleet.commit("laptop", "feature.py", "X = 1\n", "Add feature")
    write(fleet.repo(name) / "results" / "score.txt", "0.93\n")
    write(fleet.repo(name) / "results" / "run1" / "model.bin", MODEL)
    inv = inventory_with_backups(fleet, {"laptop": {}, name: {"push_code": True, **results_entry(name)}})

    code, data = run_sync(fleet, inv)

    host = next(h for h in data["hosts"] if h["host"] == name)
    assert code == 0 and host["status"] == "ok", json.dumps([s for s in host["steps"] if s["status"] != "ok"])[:6000]
    assert fleet.head(name) == fleet.origin_head()
    steps = {s["stage"]: s for s in host["steps"]}
    assert steps["push-code"]["data"]["files"] == 2 and steps["results"]["data"]["files"] == 2, steps
    assert (fleet.repo(name) / "pkg" / "sub" / "mod.py").read_text() == "NEW = 1\n"
    assert (fleet.repo("laptop") / "results" / name / "run1" / "model.bin").read_bytes() == MODEL
    assert (fleet.repo("laptop") / "results" / name / "score.txt").read_text() == "0.93\n"
    assert uses_filter([c["command"] for s in ("push-code", "results") for c in steps[s]["commands"]
                        if c["command"].startswith("rsync ")])
    assert not any(BANNER in w for w in host["warnings"]), host["warnings"]
    health = fleet.agentsync("health", "--json", inventory=inv)
    warnings = next(h for h in json.loads(health.stdout)["hosts"] if h["host"] == name)["warnings"]
    assert any(w.startswith("noisy shell startup: ") and BANNER in w for w in warnings), warnings


def run_sync(fleet, inv: Path) -> tuple[int, dict]:
    result = fleet.agentsync("sync-all", "--json", inventory=inv)
    assert result.stdout.startswith("{"), result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.mark.parametrize("where", ["stdout", "stderr"])
def test_rsync_errors_through_the_banner_filter_read_exactly_as_on_a_quiet_host(fleet, banner, where):
    for name in ("sh-bash", "sh-dash"):
        fleet.prepare(name)
    banner("sh-dash", **{"out" if where == "stdout" else "err": f"{BANNER}\n"})
    reports = {}
    for name in ("sh-bash", "sh-dash"):  # sh-bash stays quiet
        missing = {"results": [{"remote": "no-such-dir/", "local": f"results/{name}/"}],
                   "rsync": [{"name": "into-nowhere", "direction": "push", "src": "README.md",
                              "dest": "/srv/agentsync/no/such/parent/README.md"}]}
        inv = inventory_with_backups(fleet, {"laptop": {}, name: missing})
        pulled = run(fleet, "results", "--host", name, inv=inv)
        pushed = run(fleet, "push-code", "--host", name, inv=inv)
        reports[name] = [(code, {k: summary(t) | {"hint": t["hint"].replace(name, "HOST"), "detail": t["detail"]}
                                 for k, t in data["by_name"].items()}) for code, data in (pulled, pushed)]

    # rsync itself words a missing destination parent one of two ways (its last message may lose the race with
    # the connection closing: transfer/run.py's _silent_failure), with or without the filter
    nowhere = {name: reports[name][1][1].pop("into-nowhere") for name in reports}
    assert reports["sh-dash"] == reports["sh-bash"]
    (code, pulled), (push_code, pushed) = reports["sh-dash"]
    assert code == 1 and pulled["results"]["status"] == "failed", pulled
    assert "does not exist" in pulled["results"]["error"] and "no-such-dir" in pulled["results"]["error"]
    assert push_code == 1 and pushed["push-code"]["status"] == "ok", pushed
    for failed in nowhere.values():
        assert failed["status"] == "failed" and failed["files"] == 0, failed
        assert "/srv/agentsync/no/such/parent" in failed["error"] + failed["detail"], failed
    assert BANNER not in str(reports["sh-dash"])


def test_patch_relay_from_and_to_a_host_whose_bashrc_prints_a_banner_matches_a_quiet_host(fleet):
    fleet.prepare("noisy")
    outcomes = {}
    for name in ("cloud", "noisy"):
        cut_off(fleet, name)
        base = fleet.head(name)
        commit_dated(fleet, name, {"model/weights.bin": "\x00\x01binary\x02\n", "a b.txt": "spaced\n"},
                     "Binary and spaced files", "2024-01-02T03:04:05+02:00")
        inv = fleet.inventory({"laptop": {}, name: OFFLINE, "gpu": {"validate": "test -f 'a b.txt' && echo ok"}})
        code, report = relay(fleet, inv, "--from", name, "--to", "gpu")
        assert code == 0, report["message"]
        assert commit_facts(fleet, "gpu", f"{base}..HEAD") == commit_facts(fleet, name, f"{base}..HEAD")
        outcomes[name] = (report["status"], report["applied"], report["insertions"], report["files"],
                          report["validation"]["output_tail"],
                          [facts[2:] for facts in commit_facts(fleet, "gpu", "HEAD~1..HEAD")])  # less the author
        fleet.git("gpu", "reset", "-q", "--hard", base)  # the test's own checkout: back for the next source
    assert outcomes["noisy"] == outcomes["cloud"]

    base = fleet.head("noisy")  # and the noisy host as the target
    commit_dated(fleet, "cloud", {"docs/relayed.md": "to the noisy host\n"}, "Docs for noisy", "2024-02-03T04:05:06-05:00")
    inv = fleet.inventory({"laptop": {}, "cloud": OFFLINE, "noisy": {"validate": "test -f docs/relayed.md && echo ok"}})
    code, report = relay(fleet, inv, "--from", "cloud", "--to", "noisy")
    assert code == 0 and report["applied"] == 1 and report["validation"]["output_tail"] == "ok", report
    assert commit_facts(fleet, "noisy", f"{base}..HEAD") == commit_facts(fleet, "cloud", "HEAD~1..HEAD")
    assert fleet.git("noisy", "status", "--porcelain", "--untracked-files=all") == ""


def test_a_direct_transfer_into_a_noisy_host_is_refused_before_anything_moves(fleet):
    fleet.prepare("noisy")
    write(fleet.sandbox.hosts["edge"].path("data") / "weights.bin", MODEL)
    entry = {"name": "straight", "direction": "pull", "src": f"{MOUNT_POINT}/data/", "dest": "noisy:direct-in/",
             "direct": True}
    inv = inventory_with_backups(fleet, {"laptop": {}, "edge": {"rsync": [entry]}, "noisy": {}})

    code, data = run(fleet, "results", "--host", "edge", inv=inv)

    t = data["by_name"]["straight"]
    assert code == 1 and t["status"] == "failed" and t["legs"] == [], t
    assert BANNER in t["error"] and "direct: true" in t["error"] and "nothing was sent" in t["error"]
    assert "remove direct: true" in t["hint"]
    assert not (fleet.repo("noisy") / "direct-in").exists()
