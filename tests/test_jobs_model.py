"""Jobs, the pure parts: state rules, references, names, presets, and the parsers of the host scripts' output."""

from __future__ import annotations

import json

import pytest

from agentsync_fleet.errors import UsageError
from agentsync_fleet.jobs import model, scripts
from agentsync_fleet.jobs.model import Job
from agentsync_fleet.models import Host, JobPreset


def a_job(id_: str, name: str = "train", host: str = "gpu", state: str = "exited", started: float = 0.0,
          ended: float | None = 10.0) -> Job:
    return Job(id_, host, name, "python train.py", "/repo", state, 0 if state == "exited" else None,
               started=started, ended=ended)


def test_state_comes_from_the_exit_status_or_from_which_processes_are_left():
    assert model.state_of(0, False, False) == ("exited", "")
    assert model.state_of(3, True, True) == ("exited", "")
    assert model.state_of(143, False, False) == ("killed", "SIGTERM")
    assert model.state_of(137, False, False) == ("killed", "SIGKILL")
    assert model.state_of(None, True, False) == ("running", "")
    assert model.state_of(None, False, True) == ("running", "")  # ended, its wrapper is writing the status
    assert model.state_of(None, False, False) == ("lost", "")


def test_labels_and_the_exit_status_wait_returns():
    killed = Job("a", "gpu", "n", "c", "/", "killed", 143, "SIGTERM")
    assert killed.label == "killed (SIGTERM)" and killed.status_code == 143
    assert Job("a", "gpu", "n", "c", "/", "exited", 7).label == "exited 7"
    lost = Job("a", "gpu", "n", "c", "/", "lost")
    assert lost.label == "lost" and lost.status_code == 1


def test_a_reference_is_an_id_a_unique_prefix_or_a_name():
    jobs = [a_job("abc12345", started=1), a_job("abd99999", name="eval", started=2),
            a_job("ff000000", started=3, state="running", ended=None)]
    assert model.resolve(jobs, "abc12345").id == "abc12345"
    assert model.resolve(jobs, "abd").id == "abd99999"
    assert model.resolve(jobs, "train").id == "ff000000"  # the running one of that name
    with pytest.raises(UsageError, match="prefix of several"):
        model.resolve(jobs, "ab")
    with pytest.raises(UsageError, match="no job 'nope'"):
        model.resolve(jobs, "nope")
    other = [*jobs, a_job("11111111", host="cloud", started=5)]
    with pytest.raises(UsageError, match="several hosts"):
        model.resolve([j for j in other if j.state != "running"], "train")


def test_names_env_and_commands_are_checked():
    assert model.check_name("tirex-val_2") == "tirex-val_2"
    for bad in ("", "-rf", "a b", "x;y", "a.b", "a" * 65, "a\nb"):
        with pytest.raises(UsageError):
            model.check_name(bad)
    assert model.parse_env(["A=1", "B_2=x=y", "C="]) == (("A", "1"), ("B_2", "x=y"), ("C", ""))
    for bad in ("1A=x", "A", "A-B=1"):
        with pytest.raises(UsageError):
            model.parse_env([bad])
    with pytest.raises(UsageError, match="empty"):
        model.check_command(" \n ")
    assert model.default_name("CUDA=0 /usr/bin/python3 -m x") == "python3"
    assert model.default_name("'$(x)'") == "x"
    assert model.default_name("!!") == "job"


def test_a_preset_supplies_command_cwd_env_and_flags_win():
    host = Host("gpu", "~/eon/nt", jobs=(JobPreset("tirex", "python -m sage.tirex", "sage", (("MODE", "fast"),),
                                                   results=True),))
    spec = model.plan(host, "tirex", env=(("MODE", "slow"),), job_id="j1")
    assert (spec.name, spec.command, spec.cwd, spec.env) == ("tirex", "python -m sage.tirex", "~/eon/nt/sage",
                                                             (("MODE", "slow"),))
    assert spec.results and spec.preset == "tirex"
    plain = model.plan(host, "tirexx --fast", cwd="/abs")
    assert plain.preset == "" and plain.command == "tirexx --fast" and plain.cwd == "/abs" and plain.name == "tirexx"


def test_without_all_old_ended_jobs_are_left_out():
    day = model.RECENT_S
    jobs = [a_job("old", ended=0.0), a_job("new", ended=day), a_job("run", state="running", ended=None),
            a_job("gone", state="lost", ended=None)]
    kept = model.shown(jobs, {"gpu": day + 10}, show_all=False)
    assert [j.id for j in kept] == ["new", "run", "gone"]
    assert len(model.shown(jobs, {"gpu": day + 10}, show_all=True)) == 4


EPOCHS = b"epoch 1\repoch 2\n".hex()
FAKE = "x\u2028@@agentsync@@ end\n".encode().hex()
LISTING = """junk from a chatty .bashrc
@@agentsync@@ now
1000
@@agentsync@@ job ab12cd34
job.json\t{"id":"ab12cd34","name":"train","command":"python t.py","cwd":"/r","who":"me@lap"}
facts\t900 0123abcd 1
pid\t4321 4321 777
wrapper\t4320 776
tmux\ttrain
alive\tprocess
alive\twrapper
last\tEPOCHS
@@agentsync@@ job ef56ab78
job.json\t{"id":"ef56ab78","name":"eval","command":"x","cwd":"/r"}
facts\t100 - -
pid\t55 55 9
exit\t143 160
last\tFAKE
@@agentsync@@ gpu
app\t4321 2980 4321 python3
app\t999 100 1 other
@@agentsync@@ end
""".replace("EPOCHS", EPOCHS).replace("FAKE", FAKE)


def test_the_listing_parser_reads_states_run_times_gpu_memory_and_is_not_fooled_by_output():
    now, jobs, complete = scripts.parse_list("gpu", LISTING, gpu=True)
    assert now == 1000 and complete
    running, killed = jobs[1], jobs[0]
    assert (running.label, running.runtime_s, running.pid, running.pgid, running.process_start) == (
        "running", 100.0, 4321, 4321, "777")
    assert running.head == "0123abcd" and running.dirty is True and running.tmux == "train"
    assert running.last_line == "epoch 2" and running.gpu_mib == 2980 and running.who == "me@lap"
    assert (killed.label, killed.runtime_s, killed.head, killed.dirty) == ("killed (SIGTERM)", 60.0, "", None)
    assert killed.last_line == "x @@agentsync@@ end"  # shown, never read as a marker


def test_a_listing_cut_short_is_incomplete():
    assert scripts.parse_list("gpu", LISTING.rsplit("@@agentsync@@ gpu", 1)[0], gpu=True)[2] is False


def test_the_start_parser_tells_every_refusal_apart():
    assert scripts.parse_start("gpu", "x", "duplicate\tab12\n")[:2] == ("duplicate", "ab12")
    assert scripts.parse_start("gpu", "x", "nocwd\t/no\n")[:2] == ("nocwd", "/no")
    outcome, detail, _ = scripts.parse_start("gpu", "x", "busy\t24564\napp\t4242, python3, 22000\n")
    assert outcome == "busy"
    total, apps = scripts.parse_busy(detail)
    assert total == 24564 and apps == [model.GpuUse(4242, 22000.0, 0, "python3")]
    assert "22000 of 24564 MiB held by pid 4242 python3 (22000 MiB)" in model.busy_message("gpu", apps, total)
    assert scripts.parse_start("gpu", "x", "garbage")[0] == "failed"


def test_every_value_reaches_the_host_quoted_once():
    spec = model.JobSpec("id1", "gpu", "n", "echo '$X'; rm -rf /tmp/x", "~/r w", (("K", "a'b $c"),))
    text = scripts.start_script(spec, "~/r w", check_gpu=False)
    assert "'echo '\"'\"'$X'\"'\"'; rm -rf /tmp/x'" in text
    assert json.dumps(spec.record(), separators=(",", ":")) in text.replace("'\"'\"'", "'")
    assert '"$HOME"/\'r w\'' in text
    assert "a'b $c" not in json.dumps(spec.record())  # env values stay out of the record


def test_a_one_word_command_near_a_preset_name_is_a_typo_and_any_other_word_must_be_a_program():
    host = Host("gpu", "~/eon/nt", jobs=(JobPreset("tirex", "python -m sage.tirex"),
                                         JobPreset("validate", "python -m sage.validate")))
    for typo, meant in (("tirx", "tirex"), ("Tirex", "tirex"), ("tierx", "tirex"), ("tirexx", "tirex"),
                        ("valdate", "validate"), ("vlaidte", "validate")):
        with pytest.raises(UsageError, match=rf"unknown preset '{typo}' \(did you mean {meant}\?\)"):
            model.plan(host, typo)
    for word in ("true", "nvidia-smi", "tir", "python3"):  # not near a preset: the host must have the program
        spec = model.plan(host, word)
        assert (spec.command, spec.program, spec.preset) == (word, word, "")
    for typed in ("tirx --fast", "./tirx", "  tirex  "):  # two words, a path: as typed; a preset's name: the preset
        assert model.plan(host, typed).program == ""
    literal = model.plan(host, "tirx", literal=True)
    assert (literal.command, literal.program) == ("tirx", "")
    assert model.plan(host, "tirex", literal=True).preset == ""
    assert model.plan(Host("cloud", "~/r"), "tirx").program == ""  # no presets: nothing to mistype
    assert "--literal" in (model.unknown_program(host, "foo").hint or "")


def test_health_shows_lost_jobs_and_those_that_died_since_the_last_look():
    from agentsync_fleet.jobs.looks import Look, died_since

    def ended(id_: str, code: int, at: float) -> Job:
        return Job(id_, "gpu", id_, "c", "/", "exited", code, started=0.0, ended=at)

    jobs = [ended("old", 3, 100.0), ended("edge", 3, 500.0), ended("new", 1, 600.0), ended("good", 0, 600.0),
            Job("gone", "gpu", "gone", "c", "/", "lost"), Job("run", "gpu", "run", "c", "/", "running")]
    assert [j.id for j in died_since(jobs, 700.0, None)] == ["old", "edge", "new", "gone"]  # first look: a day
    assert [j.id for j in died_since(jobs, 100_000.0, None)] == ["gone"]
    assert [j.id for j in died_since(jobs, 700.0, Look(500.0, frozenset({"edge"})))] == ["new", "gone"]
    assert [j.id for j in died_since(jobs, 700.0, Look(500.0))] == ["edge", "new", "gone"]  # ended in that second
    # three looks in the second the job ended: the third does not show it again either
    from agentsync_fleet.jobs.looks import next_look

    first = next_look(jobs, 500.0, None, died_since(jobs, 500.0, None))
    assert "edge" in first.shown
    second = next_look(jobs, 500.0, first, died_since(jobs, 500.0, first))
    assert "edge" in second.shown and "edge" not in [j.id for j in died_since(jobs, 500.0, second)]


def test_a_job_end_is_journaled_once_per_controller(tmp_path):
    from agentsync_fleet.jobs.looks import Look, Looks

    looks = Looks(tmp_path)
    done = Job("abc123", "gpu", "n", "c", "/", "exited", 0)
    assert looks.first_end(done) and not looks.first_end(done) and not Looks(tmp_path).first_end(done)
    assert not looks.first_end(Job("zz", "gpu", "n", "c", "/", "running"))
    assert not looks.first_end(Job("../x", "gpu", "n", "c", "/", "exited", 0))  # never a path outside
    assert looks.last("gpu") is None
    looks.remember("gpu", Look(12.0, frozenset({"a"})))
    assert Looks(tmp_path).last("gpu") == Look(12.0, frozenset({"a"}))


def test_a_running_job_holds_the_paths_it_protects_and_jobs_not_listed_hold_everything():
    from agentsync_fleet.guard import guarded_paths
    from agentsync_fleet.models import Guard
    from agentsync_fleet.records import GuardState, ProcessInfo, RunningJob

    host = Host("gpu", "~/r", guard=Guard(("v7",), ("apps/runtime/",)))
    touched = {"strategies/a.py", "apps/runtime/v7.py", "README.md", "data/x.parquet"}
    job = RunningJob("j1", "train", 42, ("strategies/", "data/*.parquet"))
    held, holders, blind = guarded_paths(touched, host, None, (job, RunningJob("j2", "idle", 43)))
    assert held == ("data/x.parquet", "strategies/a.py") and not blind
    assert [(h.pid, h.pattern) for h in holders] == [(42, "job train")]
    guard_runs = GuardState("ok", "proc", "", (ProcessInfo("v7", 7, 1, "python v7"),))
    held, holders, _ = guarded_paths(touched, host, guard_runs, (job,))
    assert held == ("apps/runtime/v7.py", "data/x.parquet", "strategies/a.py") and [h.pid for h in holders] == [7, 42]
    assert guarded_paths(touched, host, GuardState("ok", "proc"), ()) == ((), (), "")  # nothing runs: nothing held
    held, holders, blind = guarded_paths(touched, host, GuardState("ok", "proc"), None)
    assert held == tuple(sorted(touched)) and blind == "cannot list the jobs running on gpu"


def test_protect_comes_from_the_preset_and_the_command_line_and_must_stay_in_the_repo():
    host = Host("gpu", "~/r", jobs=(JobPreset("train", "python t.py", protect=("results/",)),))
    assert model.plan(host, "train", protect=("./data/", "results/")).protect == ("results/", "data/")
    assert json.loads(json.dumps(model.plan(host, "python x.py", protect=("a",)).record()))["protect"] == ["a"]
    for bad in ("/etc", "~/x", "a/../../b", "", "a\nb"):
        with pytest.raises(UsageError, match="--protect"):
            model.plan(host, "python x.py", protect=(bad,))
