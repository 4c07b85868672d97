"""Golden tests of the one move decision (`moveplan.plan_move`): facts in, plan out, no I/O."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agentsync_fleet.gitfacts import CheckoutFacts, Commit, Dirty, Process, Writer, parse_status_z
from agentsync_fleet.moveplan import MoveFacts, Replay, needs_replay, plan_move

H, T, N = "h" * 40, "t" * 40, "n" * 40
BEHIND = CheckoutFacts(present=True, head=H, branch="refs/heads/main", target=T, head_in_target=True, behind=2,
                       changed=("README.md", "src/app.py"), incoming=(Commit("abc1234", "Ann", "Fix"),),
                       diffstat=" README.md | 2 +-")


def facts(checkout: CheckoutFacts = BEHIND, **more) -> MoveFacts:
    return MoveFacts(checkout, "main", **more)


def behind(**changes) -> MoveFacts:
    return facts(replace(BEHIND, **changes))


GOLDEN = {
    "at origin": (behind(target=H, head_in_target=True, target_in_head=True, behind=0), "nothing", "ok", "ok"),
    "ahead": (behind(head_in_target=False, target_in_head=True, ahead=1, behind=0), "nothing", "ok", "ok"),
    "behind, clean": (behind(), "fast-forward", "ok", "ok"),
    "dirty elsewhere": (behind(dirty=Dirty(("notes.md",), ("x.tmp",))), "fast-forward", "ok", "ok"),
    "branch switched": (behind(branch="refs/heads/exp"), "refuse", "skipped",
                        "skipped: checked out on 'exp', inventory expects 'main'; left alone"),
    "detached": (behind(branch=""), "refuse", "skipped",
                 "skipped: checked out on '(detached)', inventory expects 'main'; left alone"),
    "rebase in progress": (behind(in_progress=("rebase",)), "refuse", "skipped",
                           "skipped: rebase in progress; left alone (finish or abort it by hand)"),
    "missing": (facts(CheckoutFacts(present=False)), "refuse", "failed", "failed: the repo does not exist"),
    "fetch failed": (behind(fetch_rc=128, fetch_error="could not read from remote"), "refuse", "failed",
                     "failed: git fetch failed: could not read from remote"),
    "no origin branch": (behind(target=None, head_in_target=False), "refuse", "failed",
                         "failed: the origin branch does not exist (is the branch pushed?)"),
    "untracked in the way": (behind(in_the_way=("src/app.py",)), "refuse", "conflict", "conflict in src/app.py"),
    "unreachable": (replace(facts(), reachable=False, unreachable_reason="timeout: no answer"), "refuse",
                    "unreachable", "unreachable: timeout: no answer"),
}


@pytest.mark.parametrize("name", GOLDEN)
def test_the_plan_for_each_checkout_state(name):
    mf, action, outcome, predicted = GOLDEN[name]
    plan = plan_move(mf)
    assert (plan.action, plan.outcome, plan.predicted) == (action, outcome, predicted)
    assert plan.incoming == mf.checkout.incoming and plan.diffstat == mf.checkout.diffstat


def test_only_staged_paths_and_edits_the_update_overlaps_are_stashed():
    dirty = Dirty(tracked=("README.md", "metrics.csv", "staged.py", "data/new.csv"), untracked=("nohup.out",),
                  staged=("staged.py",))
    plan = plan_move(behind(dirty=dirty, changed=("README.md", "data")))
    assert plan.outcome == "ok" and plan.stash_paths == ("README.md", "staged.py", "data/new.csv")
    assert "metrics.csv" not in plan.stash_paths and "nohup.out" not in plan.stash_paths


def test_a_staged_rename_takes_its_source_along():
    dirty = parse_status_z("R  new.py\0old.py\0")
    assert plan_move(behind(dirty=dirty)).stash_paths == ("new.py", "old.py")


def test_an_unstaged_edit_listed_right_after_a_staged_file_is_not_taken_for_a_rename_source():
    dirty = parse_status_z("A  staged.txt\0 M strategies/momentum.py\0")
    assert plan_move(behind(dirty=dirty)).stash_paths == ("staged.txt",)


def test_nothing_is_stashed_when_nothing_staged_overlaps():
    plan = plan_move(behind(dirty=Dirty(tracked=("metrics.csv",))))
    assert plan.outcome == "ok" and plan.stash_paths == ()


def test_a_file_a_process_writes_to_is_never_rewritten_the_process_is_named():
    writer = Writer("metrics.csv", Process(4242, "python train.py"))
    dirty = Dirty(tracked=("metrics.csv",), staged=("metrics.csv",))
    plan = plan_move(behind(dirty=dirty, writers=(writer,)))
    assert (plan.action, plan.outcome) == ("refuse", "guarded")
    assert "pid 4242 (python train.py)" in plan.reason and plan.files == ("metrics.csv",)
    # the same writer, on a file the move leaves alone, is no reason to refuse
    assert plan_move(behind(dirty=Dirty(tracked=("metrics.csv",)), writers=(writer,))).outcome == "ok"


def test_an_incoming_change_to_a_file_being_written_is_refused():
    plan = plan_move(behind(writers=(Writer("src/app.py", Process(7, "tail -f")),)))
    assert plan.outcome == "guarded" and plan.predicted.startswith("guarded: ")


def test_guard_verdict_refuses_unless_allowed():
    runner = Process(99, "python v7_runtime.py", "v7_runtime")
    refused = plan_move(replace(facts(), critical=("src/app.py",), guard_running=(runner,)))
    assert refused.outcome == "guarded" and refused.predicted == "guarded by v7_runtime on src/app.py"
    allowed = plan_move(replace(facts(), critical=("src/app.py",), guard_running=(runner,), allow_running=True))
    assert allowed.outcome == "ok" and allowed.guard is not None and allowed.guard.allowed
    assert plan_move(replace(facts(), critical=("src/app.py",))).guard is None  # nothing running


def test_a_rehearsed_pop_conflict_is_a_conflict_before_anything_moves():
    mf = replace(behind(dirty=Dirty(tracked=("README.md",))), pop_conflicts=("README.md",))
    plan = plan_move(mf)
    assert plan.outcome == "conflict" and plan.files == ("README.md",) and not plan.moves


def test_own_commits_need_a_rehearsal_and_its_result_decides():
    diverged = behind(head_in_target=False, ahead=1)
    assert needs_replay(diverged) and not needs_replay(behind())
    assert plan_move(replace(diverged, replay=Replay(N))).action == "rebase"
    assert plan_move(replace(diverged, replay=Replay(N))).new == N
    conflict = plan_move(replace(diverged, replay=Replay(None, ("src/app.py",), "CONFLICT (content)")))
    assert conflict.outcome == "conflict" and conflict.predicted == "conflict in src/app.py"
    merged = plan_move(replace(diverged, strategy="merge", replay=Replay(N)))
    assert merged.action == "merge"


def test_git_refusing_to_commit_is_not_called_a_conflict():
    refused = Replay(None, output="error: gpg failed to sign the data", refused="error: gpg failed to sign the data")
    plan = plan_move(replace(behind(head_in_target=False, ahead=1), replay=refused))
    assert plan.outcome == "failed" and "not a conflict" in plan.reason and "gpg failed" in plan.reason


def test_a_stale_index_lock_is_named_with_its_age():
    plan = plan_move(behind(index_lock_age=7260))
    assert plan.outcome == "failed" and "index.lock (2h old)" in plan.reason and "rm .git/index.lock" in plan.reason
    assert not needs_replay(behind(index_lock_age=5, head_in_target=False))


def test_an_explicit_destination_moves_even_backwards():
    back = behind(target=N, head_in_target=False, target_in_head=True)
    assert plan_move(back).action == "nothing"
    plan = plan_move(replace(back, branch=None, to=N))
    assert (plan.action, plan.new) == ("move", N)


def test_untracked_files_holding_the_incoming_bytes_are_replaced_not_in_the_way():
    plan = plan_move(behind(identical=("src/app.py",)))
    assert (plan.action, plan.outcome, plan.replaced) == ("fast-forward", "ok", ("src/app.py",))
    mixed = plan_move(behind(in_the_way=("README.md",), identical=("src/app.py",)))
    assert (mixed.outcome, mixed.files, mixed.replaced) == ("conflict", ("README.md",), ())
