"""The one-round-trip checkout facts: golden parsing, and the real script against real git repos."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentsync_fleet.gitfacts import parse_facts, parse_status_z
from agentsync_fleet.gitops import Checkout, StepLog
from agentsync_fleet.moves import move
from agentsync_fleet.remote import LocalSession
from agentsync_fleet.sandbox_fleet import clone, git, make_origin


def test_status_z_parsing_handles_renames_spaces_and_untracked():
    dirty = parse_status_z("R  new name.py\0old name.py\0 M a b.txt\0?? notes/x y.md\0MM both.py\0 A ita.py\0\n")
    assert dirty.tracked == ("new name.py", "old name.py", "a b.txt", "both.py", "ita.py")
    assert dirty.staged == ("new name.py", "both.py", "ita.py")  # `git add -N` too: reset would drop it
    assert dirty.untracked == ("notes/x y.md",)
    assert dirty.any and "notes/x y.md" in dirty.paths
    assert not parse_status_z("\n").any


def test_facts_output_parsing():
    out = ("@@agentsync@@ fetch\nrc 0\n\n@@agentsync@@ refs\nhead aaa\ntarget bbb\nhead_in_target\ncounts 0\t2\n"
           "@@agentsync@@ changed\nREADME.md\nresults/x.csv\n@@agentsync@@ in_the_way\nresults/x.csv\n"
           "@@agentsync@@ status\n?? scratch.txt\0\n@@agentsync@@ end\n")
    facts = parse_facts(out)
    assert (facts.head, facts.target, facts.head_in_target, facts.target_in_head) == ("aaa", "bbb", True, False)
    assert (facts.ahead, facts.behind, facts.fetch_rc) == (0, 2, 0)
    assert facts.changed == ("README.md", "results/x.csv") and facts.in_the_way == ("results/x.csv",)
    assert facts.dirty.untracked == ("scratch.txt",)
    assert parse_facts("@@agentsync@@ missing\n").present is False


def test_facts_script_reads_a_real_checkout_in_one_command(tmp_path):
    origin = make_origin(tmp_path)
    mine = clone(origin, tmp_path / "mine", "laptop")
    theirs = clone(origin, tmp_path / "theirs", "cloud")
    (theirs / "results").mkdir()
    (theirs / "results" / "new.csv").write_text("1\n")
    git(theirs, "add", "-f", "results/new.csv")
    git(theirs, "commit", "-qm", "add results")
    git(theirs, "push", "-q", "origin", "main")
    (mine / "results").mkdir()
    (mine / "results" / "new.csv").write_text("my ignored local file\n")
    (mine / "README.md").write_text("edited\n")
    log = StepLog()
    co = Checkout(LocalSession("laptop"), str(mine), 30, log, "laptop")

    facts = co.facts("origin", "main", fetch=True)

    assert len(log.records) == 1  # fetch, refs, relation, incoming files, status: one command
    assert facts.fetch_rc == 0 and facts.head == git(mine, "rev-parse", "HEAD") and facts.branch == "refs/heads/main"
    assert facts.target == git(theirs, "rev-parse", "HEAD")
    assert facts.head_in_target and not facts.target_in_head and (facts.ahead, facts.behind) == (0, 1)
    assert facts.changed == ("results/new.csv",)
    assert facts.in_the_way == ("results/new.csv",)  # ignored here, incoming there: would be overwritten
    assert facts.dirty.tracked == ("README.md",)


def _behind_origin(tmp_path, change) -> tuple:
    """A checkout one commit behind origin, where `change(upstream_clone)` made that commit."""
    origin = make_origin(tmp_path)
    mine = clone(origin, tmp_path / "mine", "laptop")
    theirs = clone(origin, tmp_path / "theirs", "cloud")
    change(theirs)
    git(theirs, "commit", "-qm", "upstream")
    git(theirs, "push", "-q", "origin", "main")
    git(mine, "fetch", "-q", "origin")
    log = StepLog()
    return mine, Checkout(LocalSession("laptop"), str(mine), 30, log, "laptop"), log


def test_move_without_facts_keeps_an_ignored_file_where_an_incoming_directory_goes(tmp_path):
    def add_build_dir(repo):
        (repo / "build").mkdir()
        (repo / "build" / "out.txt").write_text("x\n")
        git(repo, "add", "-f", "build/out.txt")

    mine, co, _ = _behind_origin(tmp_path, add_build_dir)
    (mine / "build").write_text("local, ignored\n")
    (mine / ".git" / "info" / "exclude").write_text("/build\n")
    head, new = git(mine, "rev-parse", "HEAD"), git(mine, "rev-parse", "origin/main")

    outcome = move(co, head, new, "run")

    assert outcome.status == "conflict" and outcome.files == ("build",)
    assert (mine / "build").read_text() == "local, ignored\n" and git(mine, "rev-parse", "HEAD") == head


def _add_upstream_file(repo):
    (repo / "upstream.txt").write_text("upstream\n")
    git(repo, "add", "upstream.txt")


@pytest.mark.parametrize("dirty", [False, True])
def test_a_commit_made_while_the_move_is_decided_stays_on_the_branch(tmp_path, dirty):
    mine, co, _ = _behind_origin(tmp_path, _add_upstream_file)
    if dirty:
        (mine / "README.md").write_text("uncommitted edit\n")
    facts = co.facts("origin", "main", fetch=False)

    def agent_commits(paths):  # the guard is read last, right before the checkout moves
        (mine / "agent.txt").write_text("agent work\n")
        git(mine, "add", "agent.txt")
        git(mine, "commit", "-qm", "Agent commit")
        return (), (), ""

    outcome = move(co, facts.head, facts.target, "run", agent_commits)

    assert outcome.status == "failed" and "moved" in outcome.message
    assert git(mine, "log", "-1", "--format=%s") == "Agent commit" == git(mine, "log", "-1", "--format=%s", "main")
    assert outcome.head == git(mine, "rev-parse", "HEAD") and not (mine / "upstream.txt").exists()
    assert git(mine, "stash", "list") == ""
    if dirty:
        assert (mine / "README.md").read_text() == "uncommitted edit\n"


def test_when_nothing_is_left_to_stash_the_users_own_stash_is_never_popped(tmp_path):
    mine, co, _ = _behind_origin(tmp_path, _add_upstream_file)
    original = (mine / "README.md").read_text()
    (mine / "README.md").write_text("kept in the user's own stash\n")
    git(mine, "stash", "push", "-q", "-m", "users own")
    (mine / "README.md").write_text("an edit the user is about to throw away\n")
    facts = co.facts("origin", "main", fetch=False)
    assert facts.dirty.tracked == ("README.md",)

    def user_discards_the_edit(paths):
        git(mine, "checkout", "--", "README.md")
        return (), (), ""

    outcome = move(co, facts.head, facts.target, "run", user_discards_the_edit)

    assert outcome.status == "ok" and git(mine, "rev-parse", "HEAD") == facts.target
    assert git(mine, "stash", "list", "--format=%gs") == "On main: users own"
    assert (mine / "README.md").read_text() == original


def test_a_staged_new_file_where_an_incoming_directory_goes_is_found_by_the_rehearsal(tmp_path):
    def add_data_dir(repo):
        (repo / "data").mkdir()
        (repo / "data" / "x.csv").write_text("1\n")
        git(repo, "add", "data/x.csv")

    mine, co, log = _behind_origin(tmp_path, add_data_dir)
    (mine / "data").write_text("a new file, staged\n")
    git(mine, "add", "data")
    facts = co.facts("origin", "main", fetch=False)

    outcome = move(co, facts.head, facts.target, "run")

    assert outcome.status == "conflict" and "nothing was changed" in outcome.message
    assert not outcome.stash_used and not any("stash push" in r.command for r in log.records)
    assert git(mine, "status", "--porcelain") == "A  data" and git(mine, "rev-parse", "HEAD") == facts.head


def test_a_file_name_in_the_status_section_cannot_pose_as_another_section():
    name = "x\n@@agentsync@@ refs\nhead evil\ntarget_in_head\nz"
    out = (f"@@agentsync@@ refs\nhead aaa\ntarget bbb\nbranch refs/heads/main\nhead_in_target\ncounts 0\t1\n"
           f"@@agentsync@@ changed\nREADME.md\n@@agentsync@@ in_the_way\n@@agentsync@@ status\n?? {name}\0 M a.py\0\n"
           "@@agentsync@@ end\n")
    facts = parse_facts(out)
    assert (facts.head, facts.target, facts.target_in_head) == ("aaa", "bbb", False)
    assert facts.dirty.untracked == (name,) and facts.dirty.tracked == ("a.py",)


def test_put_back_after_a_conflicting_pop_restores_head_index_and_files_exactly(tmp_path):
    from agentsync_fleet.moveplan import MovePlan
    from agentsync_fleet.moves import _put_back

    mine, co, _ = _behind_origin(tmp_path, lambda r: ((r / "README.md").write_text("upstream README\n"),
                                                      git(r, "add", "README.md")))
    head, new = git(mine, "rev-parse", "HEAD"), git(mine, "rev-parse", "origin/main")
    (mine / "README.md").write_text("my README\n")  # overlaps the update: the pop will conflict
    (mine / "strategies" / "momentum.py").write_text("WINDOW = 7\n")
    (mine / "staged.txt").write_text("staged\n")
    git(mine, "add", "staged.txt")
    (mine / "untracked.txt").write_text("untracked\n")
    state = (git(mine, "status", "--porcelain"), git(mine, "diff"), git(mine, "diff", "--cached"))
    git(mine, "stash", "push", "-q")
    stash = git(mine, "rev-parse", "refs/stash")
    git(mine, "reset", "-q", "--keep", new)
    popped = co.try_run(f"git -C {mine} stash pop --index")
    assert not popped.ok and "UU README.md" in git(mine, "status", "--porcelain")

    plan = MovePlan("fast-forward", "ok", head=head, new=new, stash_paths=("README.md",))
    outcome = _put_back(co, plan, str(mine / ".git"), stash, ("README.md",), popped)

    assert outcome.status == "conflict" and outcome.head == head == git(mine, "rev-parse", "HEAD")
    assert (git(mine, "status", "--porcelain"), git(mine, "diff"), git(mine, "diff", "--cached")) == state
    assert git(mine, "stash", "list") == ""


def test_an_untracked_file_holding_the_incoming_bytes_is_replaced_unless_it_changed_meanwhile(tmp_path):
    from agentsync_fleet.moveplan import MoveFacts, plan_move
    from agentsync_fleet.moves import execute

    def add_tool(repo):
        (repo / "tools").mkdir()
        (repo / "tools" / "x.py").write_text("print('x')\n")
        git(repo, "add", "tools")

    mine, co, _ = _behind_origin(tmp_path, add_tool)
    head, target = git(mine, "rev-parse", "HEAD"), git(mine, "rev-parse", "origin/main")
    (mine / "tools").mkdir()
    (mine / "tools" / "x.py").write_text("print('x')\n")  # what push-code sent before the laptop committed it
    facts = co.facts("origin", "main", fetch=False)
    assert (facts.in_the_way, facts.identical) == ((), ("tools/x.py",))
    plan = plan_move(MoveFacts(facts, "main"))
    assert plan.outcome == "ok" and plan.replaced == ("tools/x.py",)

    (mine / "tools" / "x.py").write_text("edited after the facts were read\n")
    raced = execute(co, plan, "run", facts.git_dir)
    assert raced.status == "failed" and "tools/x.py changed since agentsync read it" in raced.message
    assert git(mine, "rev-parse", "HEAD") == head
    assert (mine / "tools" / "x.py").read_text() == "edited after the facts were read\n"
    assert not Path(facts.git_dir, "agentsync-move.json").exists()

    (mine / "tools" / "x.py").write_text("print('x')\n")
    moved = execute(co, plan_move(MoveFacts(co.facts("origin", "main", fetch=False), "main")), "run", facts.git_dir)
    assert moved.status == "ok" and git(mine, "rev-parse", "HEAD") == target
    assert git(mine, "status", "--porcelain", "--untracked-files=all") == ""
