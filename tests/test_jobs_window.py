"""Which old job records a listing reads in full: the window's rule (pure), and the list script that applies it,
run by the real `sh` under `faketime` on records written as a host keeps them (the host's side is this machine)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from jobs_support import write_old_jobs

from agentsync_fleet.errors import UsageError
from agentsync_fleet.guardprobe import PROC_FUNCTIONS
from agentsync_fleet.jobs import model, scripts
from agentsync_fleet.jobs.looks import SETTLE_S, Look, Looks, died_since, listing_window
from agentsync_fleet.jobs.model import RECENT_S, Window, shown

NOW = 1_700_000_000
DAY = RECENT_S


def machine() -> str:
    """This machine as the scripts name it (a record of another machine is never listed)."""
    return subprocess.run(["sh", "-c", "\n".join([*PROC_FUNCTIONS, 'printf %s "$machine"'])],
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    return tmp_path / "agentsync" / "jobs"


def ended_at(base, *epochs: int) -> list[str]:
    """One record per epoch, ended then (ids in the order given)."""
    here = machine()
    return [write_old_jobs(base, here, 1, epoch, first=i)[0] for i, epoch in enumerate(epochs)]


def listed(window: Window | None, job_id: str | None = None, match: str | None = None) -> dict:
    """The jobs the list script prints at NOW on the host's clock, by id."""
    frozen = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(NOW))  # libfaketime: an absolute time stands still
    out = subprocess.run(["faketime", "-f", frozen, "sh", "-c", scripts.list_script(False, job_id, window, match)],
                         capture_output=True, text=True, check=True, env={**os.environ, "TZ": "UTC"}).stdout
    now, jobs, complete = scripts.parse_list("here", out, False)
    assert complete and now == NOW
    return {j.id: j for j in jobs}


def test_a_listing_window_reads_what_its_command_may_show_or_has_not_journaled():
    assert listing_window(None) == Window(RECENT_S, (), omit_older=False)  # never listed: old ends still to journal
    assert listing_window(NOW - 5) == Window(RECENT_S, (NOW - 5 - SETTLE_S,), omit_older=True)
    assert listing_window(NOW - 5, Look(NOW - 3 * DAY)) == Window(RECENT_S, (NOW - 3 * DAY, NOW - 5 - SETTLE_S),
                                                                  omit_older=True)
    assert Window.everything().recent_s is None


def test_jobs_ended_before_the_cutoff_are_listed_without_their_last_line_or_left_out(state):
    at_cutoff, before, long_ago = ended_at(state, NOW - DAY, NOW - DAY - 1, NOW - 30 * DAY)
    brief = listed(Window())
    assert brief[at_cutoff].last_line == "last words of old0"
    assert brief[before].last_line == "" and brief[long_ago].last_line == ""
    assert brief[before].label == "exited 0" and brief[before].ended == NOW - DAY - 1  # the rest as before
    assert set(listed(Window(omit_older=True))) == {at_cutoff}
    assert listed(Window(since=(NOW - 30 * DAY,)))[long_ago].last_line == "last words of old2"
    assert all(j.last_line for j in listed(Window.everything()).values())
    assert all(j.last_line for j in listed(None).values())
    assert listed(Window(omit_older=True), long_ago)[long_ago].last_line == "last words of old2"  # one job: in full


def test_a_job_without_a_readable_end_is_always_read_in_full(state):
    lost, garbled = ended_at(state, NOW - 9 * DAY, NOW - 9 * DAY)
    (state / lost / "exit").unlink()  # its process is gone and no status was written: `lost`, shown by `jobs`
    (state / garbled / "exit").write_text("0 soon\n")
    jobs = listed(Window(omit_older=True))
    assert jobs[lost].label == "lost" and jobs[lost].last_line == "last words of old0"
    assert jobs[garbled].last_line == "last words of old1"


@pytest.mark.parametrize("last_look", [None, NOW - 3 * DAY, NOW - 60])
def test_every_job_jobs_or_health_shows_is_read_in_full(state, last_look):
    ends = [NOW - s for s in (0, 1, 600, DAY - 1, DAY, DAY + 1, 2 * DAY, 3 * DAY - 1, 3 * DAY, 3 * DAY + 1, 40 * DAY)]
    ids = ended_at(state, *ends)
    for i in ids:
        (state / i / "exit").write_text((state / i / "exit").read_text().replace("0 ", "3 ", 1))  # all failed
    everything = list(listed(None).values())
    look = Look(last_look) if last_look is not None else None
    by_jobs = {j.id for j in shown(everything, {"here": NOW}, False)}
    by_health = {j.id for j in died_since(everything, NOW, look)}
    for listed_before in (None, NOW - DAY, NOW - 5):  # never, a day ago, just now
        for window, need in ((listing_window(listed_before), by_jobs), (listing_window(listed_before, look), by_health)):
            assert {i for i, j in listed(window).items() if j.last_line} >= need


def test_the_last_listing_is_remembered_per_host_and_nonsense_is_forgotten(tmp_path):
    looks = Looks(tmp_path)
    assert looks.listed("gpu") is None
    looks.remember_listed("gpu", NOW + 0.7)
    assert looks.listed("gpu") == NOW
    for text in ("inf", "nan", "", "soon"):
        (tmp_path / "jobs" / "listed" / "gpu").write_text(text)
        assert looks.listed("gpu") is None
    looks.remember_listed("../etc", NOW)
    assert looks.listed("../etc") is None and not (tmp_path / "etc").exists()


@pytest.mark.parametrize(("ref", "kept"), [("01d00003", 1), ("01d0000", 12), ("0", 12), ("", 12), ("old3", 1),
                                           ("same", 4), ("*", 0), ("old3'; x", 0), ("nope", 0)])
def test_a_listing_for_a_reference_keeps_every_job_it_may_name_and_resolves_it_alike(state, ref, kept):
    ids = ended_at(state, *[NOW - i * DAY for i in range(12)])
    for i in ids[8:]:  # four jobs of one name, as a preset run every night leaves them
        record = json.loads((state / i / "job.json").read_text())
        (state / i / "job.json").write_text(json.dumps({**record, "name": "same"}, separators=(",", ":")) + "\n")
        (state / i / "name").write_text("same\n")

    def resolved(jobs: dict) -> str:
        try:
            return model.resolve(list(jobs.values()), ref).id
        except UsageError as exc:
            return exc.message

    everything, matching = listed(None), listed(Window(), match=ref)
    assert len(matching) == kept and resolved(matching) == resolved(everything)
