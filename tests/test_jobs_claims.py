"""Which job `run` starts, on real sandbox hosts: one job per name even when two runs race for it, and a
preset's typo is refused instead of being run as a shell command."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import AGENTSYNC
from jobs_support import as_json, gpu_reports, inventory, jobs_by_id, kill_all_jobs

from agentsync_fleet.sandbox_fleet import NVIDIA_SMI


@pytest.fixture
def jobs_fleet(fleet, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(fleet.root / "laptop-state"))
    yield fleet
    kill_all_jobs(fleet)


# gpu's nvidia-smi, slow to answer: `run`'s GPU check sits between its name check and the job's start, so two
# runs of one name started together are both inside that window at once
SLOW_SMI = NVIDIA_SMI.replace("#!/bin/sh\n", "#!/bin/sh\nsleep 1.5\n", 1)


def test_two_runs_of_one_name_started_at_the_same_moment_never_both_start(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet)
    env = {**os.environ, "AGENTSYNC_STATE_DIR": str(fleet.root / "state")}
    argv = [*AGENTSYNC, "run", "gpu", "sleep 300", "--name", "twin", "--json", "--inventory", str(inv)]
    with gpu_reports(fleet, SLOW_SMI):
        runs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                for _ in range(2)]
        outcomes = [(run.wait(timeout=120), *run.communicate()) for run in runs]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes == [0, 1], outcomes
    refused = next(err for code, _, err in outcomes if code == 1)
    started = next(as_json(subprocess.CompletedProcess(argv, 0, out, err))["job"] for code, out, err in outcomes
                   if code == 0)
    assert f"a job named 'twin' is already running on gpu (job {started['id']})" in refused
    twins = [j for j in jobs_by_id(fleet, inv).values() if j["name"] == "twin"]
    assert [(j["id"], j["state"]) for j in twins] == [(started["id"], "running")]


def test_a_preset_typo_is_refused_and_never_runs_as_a_shell_command(jobs_fleet):
    fleet = jobs_fleet
    inv = inventory(fleet, jobs={"tirex": {"run": "echo preset"}})
    typo = fleet.agentsync("run", "gpu", "tirx", inventory=inv)
    assert typo.returncode == 2, typo.stdout + typo.stderr
    assert "unknown preset 'tirx' (did you mean tirex?)" in typo.stderr
    assert "agentsync run gpu tirx --literal" in typo.stderr and "Traceback" not in typo.stderr
    as_doc = as_json(fleet.agentsync("run", "gpu", "tirx", "--json", inventory=inv))
    assert as_doc["error"]["message"] == "unknown preset 'tirx' (did you mean tirex?)"

    unknown = fleet.agentsync("run", "gpu", "nosuchprogram", inventory=inv)  # near no preset, and not on gpu
    assert unknown.returncode == 2, unknown.stdout + unknown.stderr
    assert "unknown preset 'nosuchprogram': gpu has no command of that name either" in unknown.stderr
    assert "presets on gpu: tirex" in unknown.stderr
    assert not jobs_by_id(fleet, inv)  # nothing was started for any of them

    program = fleet.agentsync("run", "gpu", "true", "--json", inventory=inv)  # one word the host knows: runs
    assert program.returncode == 0 and as_json(program)["job"]["command"] == "true", program.stderr
    literal = fleet.agentsync("run", "gpu", "tirx", "--literal", "--json", inventory=inv)
    assert literal.returncode == 0, literal.stderr
    assert as_json(literal)["job"]["command"] == "tirx" and as_json(literal)["job"]["preset"] == ""
    preset_word = fleet.agentsync("run", "gpu", "tirex", "--literal", "--json", inventory=inv)
    assert as_json(preset_word)["job"]["command"] == "tirex"  # --literal: never a preset, even its very name
    no_presets = fleet.agentsync("run", "cloud", "tirx", inventory=inv)  # cloud has no presets: as typed
    assert no_presets.returncode == 0, no_presets.stderr
