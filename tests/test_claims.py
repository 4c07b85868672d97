"""Work claims: the rules (pure), and claims on origin's ref seen from every host, with real git and sshd."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest

from agentsync_fleet import inventory
from agentsync_fleet.claims import model, store
from agentsync_fleet.claims.model import Claim, ClaimRefused, Incoming
from agentsync_fleet.errors import UsageError
from agentsync_fleet.remote import Connector
from agentsync_fleet.sandbox_fleet import git

AGENTSYNC = [sys.executable, "-m", "agentsync_fleet"]
HOUR = 3600.0


def a_claim(area: str, who: str = "ann@cloud", at: float = 0.0, email: str = "ann@x", note: str = "") -> Claim:
    return Claim(area, who, who.split("@")[-1], email, note, at, at)


# ------------------------------------------------------------------ the rules


def test_a_free_area_is_claimed_and_a_held_one_is_refused_naming_the_holder():
    change = model.claim({}, a_claim("strategies/"), now=10, ttl=HOUR)
    assert change.message == "claimed 'strategies/' as ann@cloud" and change.claims["strategies/"].since == 10
    with pytest.raises(ClaimRefused) as refused:
        model.claim(change.claims, a_claim("strategies/", who="bob@gpu"), now=20, ttl=HOUR)
    assert "'strategies/' is already claimed by ann@cloud since 1970-01-01 00:00 UTC" in str(refused.value)


def test_overlapping_areas_collide_but_disjoint_ones_do_not():
    held = {"strategies/": a_claim("strategies/", at=0)}
    for area in ("strategies/momentum.py", "strategies", "strategies/*.py"):
        with pytest.raises(ClaimRefused, match="overlapping"):
            model.claim(held, a_claim(area, who="bob@gpu"), now=1, ttl=HOUR)
    assert "apps/" in model.claim(held, a_claim("apps/", who="bob@gpu"), now=1, ttl=HOUR).claims


def test_a_stale_claim_is_taken_over_with_a_warning_and_your_own_claim_is_refreshed():
    held = {"strategies/": a_claim("strategies/", at=0)}
    change = model.claim(held, a_claim("strategies/", who="bob@gpu"), now=5 * HOUR, ttl=4 * HOUR)
    assert change.claims["strategies/"].who == "bob@gpu"
    assert "took over the stale claim on 'strategies/' by ann@cloud" in change.warning
    again = model.claim(held, a_claim("strategies/", note="new note"), now=50, ttl=HOUR)
    assert again.claims["strategies/"].checked_in == 50 and again.claims["strategies/"].since == 0
    assert again.claims["strategies/"].note == "new note" and "already yours" in again.message


def test_only_the_holder_checks_in_or_releases_unless_forced():
    held = {"strategies/": a_claim("strategies/", at=0)}
    assert model.checkin(held, "strategies/", "ann@cloud", now=99).claims["strategies/"].checked_in == 99
    with pytest.raises(ClaimRefused, match="claimed by ann@cloud.*not by bob@gpu"):
        model.checkin(held, "strategies/", "bob@gpu", now=99)
    with pytest.raises(ClaimRefused, match="not by bob@gpu"):
        model.release(held, "strategies/", "bob@gpu")
    assert model.release(held, "strategies/", "bob@gpu", force=True).claims == {}
    with pytest.raises(ClaimRefused, match="'apps/' is not claimed"):
        model.release(held, "apps/", "ann@cloud")


def test_areas_are_paths_inside_the_repo():
    assert model.normalize_area("./strategies/") == "strategies/"
    for bad in ("", "/etc", "../up", "a/../../b"):
        with pytest.raises(UsageError):
            model.normalize_area(bad)
    assert model.area_matches("strategies/", "strategies/momentum.py")
    assert model.area_matches("strategies", "strategies/momentum.py")
    assert model.area_matches("apps/*/config.yaml", "apps/runtime/config.yaml")
    assert not model.area_matches("strategies/", "strategies_old/x.py")


def test_the_claims_document_round_trips_and_staleness_shows_in_the_listing():
    claims = {"b/": a_claim("b/", at=0), "a/": a_claim("a/", who="bob@gpu", at=3 * HOUR)}
    assert model.parse(model.render(claims)) == claims
    rows = model.listing(claims, now=5 * HOUR, ttl=4 * HOUR)
    assert [(r["area"], r["stale"]) for r in rows] == [("a/", False), ("b/", True)]


def test_collisions_name_area_holder_and_files_but_not_the_holders_own_commits():
    claims = {"strategies/": a_claim("strategies/", email="cloud@fleet.example", note="tuning", at=0)}
    incoming = [Incoming("c1", "laptop@fleet.example", ("strategies/momentum.py", "README.md")),
                Incoming("c2", "cloud@fleet.example", ("strategies/own.py",))]
    [warning] = model.collisions(claims, incoming, now=10, ttl=HOUR)
    assert "incoming commits touch 'strategies/', claimed by ann@cloud" in warning and '"tuning"' in warning
    assert "strategies/momentum.py (by laptop@fleet.example)" in warning and "own.py" not in warning
    assert model.collisions(claims, incoming, now=2 * HOUR, ttl=HOUR) == []  # a stale claim warns no more


def test_git_log_output_parses_into_commits_with_files():
    text = "@@commit aaa x@y\n\nsrc/a.py\nsrc/b.py\n@@commit bbb z@w\n\nREADME.md\n"
    assert model.parse_incoming(text) == [Incoming("aaa", "x@y", ("src/a.py", "src/b.py")),
                                          Incoming("bbb", "z@w", ("README.md",))]


def test_a_refused_or_raced_push_is_contention_and_anything_else_a_failure():
    assert store.push_outcome("*\tabc:refs/agentsync/claims\t[new reference]\nDone\nexit=0") == "ok"
    assert store.push_outcome("!\tabc:refs/agentsync/claims\t[rejected] (fetch first)\nDone\nexit=1") == "contended"
    assert store.push_outcome("!\tabc:refs/agentsync/claims\t[remote rejected] (failed to update ref)\nexit=1") \
        == "contended"
    assert store.push_outcome("fatal: could not read from remote repository\nexit=128") == "failed"


# ------------------------------------------------------------------ on the fleet


def cli(fleet, *args: str, inventory) -> subprocess.CompletedProcess:
    return fleet.agentsync(*args, inventory=inventory)


def claims_seen(fleet, inv, host: str) -> dict:
    result = cli(fleet, "claims", "--host", host, "--json", inventory=inv)
    assert result.returncode == 0, result.stderr
    return {row["area"]: {k: v for k, v in row.items() if k != "idle_s"} for row in json.loads(result.stdout)["claims"]}


def test_a_claim_made_from_one_host_is_seen_from_another(fleet):
    inv = fleet.inventory()
    made = cli(fleet, "claim", "strategies/", "--note", "tuning momentum", "--host", "cloud", "--json", inventory=inv)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["message"] == "claimed 'strategies/' as root@cloud"

    seen = claims_seen(fleet, inv, "gpu")
    assert seen["strategies/"]["who"] == "root@cloud" and seen["strategies/"]["note"] == "tuning momentum"
    assert seen["strategies/"]["email"] == "cloud@fleet.example" and not seen["strategies/"]["stale"]
    assert claims_seen(fleet, inv, "laptop") == seen  # the controller's own checkout sees the same
    assert fleet.git("laptop", "ls-remote", "origin", "refs/agentsync/claims").split()[0]  # it lives on origin

    not_yours = cli(fleet, "checkin", "strategies/", "--host", "gpu", inventory=inv)
    assert not_yours.returncode == 1 and "claimed by root@cloud" in not_yours.stderr
    assert cli(fleet, "checkin", "strategies/", "--host", "cloud", inventory=inv).returncode == 0
    released = cli(fleet, "release", "strategies/", "--host", "cloud", inventory=inv)
    assert released.returncode == 0, released.stderr
    assert claims_seen(fleet, inv, "gpu") == {}
    log = git(fleet.origin, "log", "--format=%s", "refs/agentsync/claims")  # one line of history, never rewritten
    assert log.splitlines() == ["agentsync: release 'strategies/' (root@cloud)",
                                "agentsync: check in 'strategies/' (root@cloud)",
                                "agentsync: claim 'strategies/' (root@cloud)"]


def test_a_concurrent_double_claim_yields_one_winner(fleet, monkeypatch):
    """Two claims of the same area from two hosts at once, forced to race: both read the same (empty) claims
    before either writes. Exactly one push lands; the other is refused by git, re-reads, and is told who won."""
    inv_path = fleet.inventory()
    inv = inventory.load(inv_path)
    both_read = threading.Barrier(2, timeout=30)
    outcomes: dict[str, object] = {}
    pushes: list[str] = []
    real_write = store.write

    def write(*args, **kwargs):
        pushes.append(real_write(*args, **kwargs))
        return pushes[-1]

    monkeypatch.setattr(store, "write", write)

    def contender(name: str) -> None:
        host = inv.hosts[name]
        connector = Connector(inv)
        first = []

        def read_then_wait(snap):
            if not first:  # only the first read is synchronised: the retry must see the winner
                first.append(snap)
                both_read.wait()
            now = 1000.0
            me = f"root@{name}"
            return model.claim(snap.claims, Claim("strategies/", me, name, snap.email, name, now, now),
                               now=now, ttl=HOUR), f"claim by {me}"

        try:
            outcomes[name] = store.update(connector.session(host), host, read_then_wait, lambda s: f"root@{name}")
        except ClaimRefused as exc:
            outcomes[name] = exc
        finally:
            connector.close_all()

    threads = [threading.Thread(target=contender, args=(n,)) for n in ("laptop", "cloud")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    winners = [n for n, o in outcomes.items() if isinstance(o, model.Change)]
    losers = [n for n, o in outcomes.items() if isinstance(o, ClaimRefused)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert sorted(pushes) == ["contended", "ok"]  # git itself refused the second, non-fast-forward push
    assert f"already claimed by root@{winners[0]}" in str(outcomes[losers[0]])
    assert claims_seen(fleet, inv_path, "gpu")["strategies/"]["who"] == f"root@{winners[0]}"


def test_two_claim_commands_at_once_leave_exactly_one_holder(fleet):
    inv = fleet.inventory()
    procs = {host: subprocess.Popen([*AGENTSYNC, "claim", "apps/", "--host", host, "--inventory", str(inv)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for host in ("cloud", "gpu")}
    results = {host: (p.wait(60), p.stderr.read()) for host, p in procs.items()}
    winners = [h for h, (code, _) in results.items() if code == 0]
    assert len(winners) == 1, results
    [loser] = [h for h in results if h not in winners]
    assert f"'apps/' is already claimed by root@{winners[0]}" in results[loser][1]
    assert claims_seen(fleet, inv, "laptop")["apps/"]["who"] == f"root@{winners[0]}"


def test_sync_warns_when_incoming_commits_touch_an_area_claimed_by_someone_else(fleet):
    inv = fleet.inventory()
    assert cli(fleet, "claim", "strategies/", "--note", "tuning", "--host", "cloud", inventory=inv).returncode == 0
    fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Laptop tunes momentum")

    result = fleet.agentsync("sync-all", "--json", inventory=inv)
    assert result.returncode == 0, result.stderr
    hosts = {h["host"]: h for h in json.loads(result.stdout)["hosts"]}
    for name in ("cloud", "gpu"):
        [warning] = hosts[name]["warnings"]
        assert "incoming commits touch 'strategies/', claimed by root@cloud" in warning
        assert "strategies/momentum.py (by laptop@fleet.example)" in warning
    assert hosts["laptop"]["warnings"] == []  # nothing came in there: it sent the commit

    fleet.commit("cloud", "strategies/mean.py", "LOOKBACK = 4\n", "Cloud works in its own area")
    own = fleet.agentsync("sync-all", "--json", inventory=inv)
    assert own.returncode == 0, own.stderr
    assert all(h["warnings"] == [] for h in json.loads(own.stdout)["hosts"])  # the holder's own work


def test_an_area_named_with_or_without_its_trailing_slash_is_the_same_claim():
    held = model.claim({}, a_claim("strategies/"), now=0, ttl=HOUR).claims
    assert model.checkin(held, "strategies", "ann@cloud", now=5).claims["strategies/"].checked_in == 5
    assert "strategies" not in model.checkin(held, "strategies", "ann@cloud", now=5).claims
    assert model.release(held, "strategies", "ann@cloud").claims == {}
    bare = model.claim({}, a_claim("strategies"), now=0, ttl=HOUR).claims
    assert model.release(bare, "strategies/", "ann@cloud").claims == {}
    again = model.claim(held, a_claim("strategies"), now=7, ttl=HOUR)  # the holder names it without the slash
    assert list(again.claims) == ["strategies/"] and again.claims["strategies/"].checked_in == 7
    assert again.message == "'strategies/' was already yours; checked in"
    with pytest.raises(ClaimRefused, match="already claimed by ann@cloud"):
        model.claim(held, a_claim("strategies", who="bob@gpu"), now=7, ttl=HOUR)
