"""Transfers at the edges, against real hosts and the real rsync: secrets in any letter case or directory,
missing paths, wildcard characters, nested repositories, .git, symlinks, restore commands."""

from __future__ import annotations

import os
import subprocess

from rsync_support import files, inventory, run, write

from agentsync_fleet.inventory import load as load_inventory
from agentsync_fleet.sandbox import MOUNT_POINT
from agentsync_fleet.transfer import plan as P
from agentsync_fleet.transfer.run import Runner

REPO = f"{MOUNT_POINT}/crpbot"






def test_push_code_holds_back_secrets_in_any_letter_case_and_inside_directories_named_like_secrets(fleet):
    laptop = fleet.repo("laptop")
    fleet.commit("laptop", "credentials/aws.json", '{"key": "AKIA..."}\n', "Add credentials (oops)")
    write(laptop / ".ENV", "API_KEY=1\n")  # .gitignore has .env; on a case-insensitive disk this is that file
    write(laptop / "deploy" / "Server.PEM", "-----BEGIN PRIVATE KEY-----\n")
    write(laptop / "deploy" / ".env.d" / "prod", "DB_PASSWORD=2\n")
    write(laptop / "app.py", "print('fine')\n")

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet, {"laptop": {}, "gpu": {}}))

    assert code == 0, data
    sent = files(fleet.repo("gpu"))
    assert "app.py" in sent
    secrets = {"credentials/aws.json", ".ENV", "deploy/Server.PEM", "deploy/.env.d/prod"}
    assert not secrets & sent, secrets & sent
    held = {h["path"]: h["pattern"] for h in data["by_name"]["push-code"]["held_back"]}
    assert held == {"credentials/aws.json": "credentials*", ".ENV": ".env", "deploy/Server.PEM": "*.pem",
                    "deploy/.env.d/prod": ".env.*"}


def test_results_hold_back_secrets_in_any_letter_case(fleet):
    out = fleet.repo("gpu") / "results"
    write(out / "score.txt", "0.9\n")
    write(out / "run1" / "Deploy.KEY", "k\n")
    write(out / "ID_RSA", "k\n")
    inv = inventory(fleet, {"laptop": {}, "gpu": {"results": [{"remote": "results/", "local": "results/gpu/"}]}})

    code, data = run(fleet, "results", "--host", "gpu", inv=inv)

    assert code == 0, data
    assert files(fleet.repo("laptop") / "results" / "gpu") == {"score.txt"}
    held = {h["path"]: h["pattern"] for h in data["by_name"]["results"]["held_back"]}
    assert held == {"run1/Deploy.KEY": "*.key", "ID_RSA": "id_rsa*"}
    assert data["by_name"]["results"]["excluded"] == 0


def test_a_source_inside_a_directory_named_like_a_secret_is_refused_before_anything_moves(fleet):
    write(fleet.repo("gpu") / "config" / "credentials" / "aws.json", "secret\n")
    write(fleet.repo("gpu") / "config" / "app.yaml", "fine\n")
    entries = [{"name": "creds", "direction": "pull", "src": "config/credentials/", "dest": "c/"},
               {"name": "config", "direction": "pull", "src": "config/", "dest": "config-gpu/"}]
    inv = inventory(fleet, {"laptop": {}, "gpu": {"rsync": entries}})

    code, data = run(fleet, "results", "--host", "gpu", inv=inv)

    creds = data["by_name"]["creds"]
    assert code == 1 and creds["status"] == "failed" and creds["legs"] == []
    assert "gpu.creds: src 'config/credentials/' names 'credentials', which matches the secret pattern " \
        "'credentials*'; secrets never travel" in creds["error"]
    assert not (fleet.repo("laptop") / "c").exists()
    assert data["by_name"]["config"]["status"] == "ok"  # the entry that does not name a secret still runs
    assert files(fleet.repo("laptop") / "config-gpu") == {"app.yaml"}


def test_a_missing_source_or_destination_parent_names_the_host_and_the_path(fleet):
    write(fleet.repo("cloud") / "data" / "a.txt", "a\n")
    write(fleet.repo("laptop") / "data" / "a.txt", "a\n")
    entries = [{"name": "gone", "direction": "pull", "src": "nosuch/", "dest": "x/"},
               {"name": "gone-file", "direction": "pull", "src": "nosuch.txt", "dest": "x/"}]
    pushes = [{"name": "local-gone", "direction": "push", "src": "nolocal/", "dest": "y/"},
              {"name": "deep", "direction": "push", "src": "data/", "dest": "no/such/parent/"}]
    relay = [{"name": "relay-gone", "direction": "pull", "src": "nosuch/", "dest": "gpu:in/"}]
    inv = inventory(fleet, {"laptop": {}, "gpu": {"rsync": entries + pushes}, "cloud": {"rsync": relay}})

    code, data = run(fleet, "results", "--host", "gpu,cloud", inv=inv)
    push_code, pushed = run(fleet, "push-code", "--host", "gpu", inv=inv)

    assert code == 1 and push_code == 1
    laptop = fleet.repo("laptop")
    expected = {
        "gone": f"the source gpu:{REPO}/nosuch does not exist",
        "gone-file": f"the source gpu:{REPO}/nosuch.txt does not exist",
        "relay-gone": f"the source cloud:{REPO}/nosuch does not exist",
        "local-gone": f"the source laptop:{laptop}/nolocal does not exist",
        "deep": f"gpu:{REPO}/no/such does not exist (rsync creates only the last directory of the destination)",
    }
    got = {**data["by_name"], **pushed["by_name"]}
    for name, message in expected.items():
        assert got[name]["status"] == "failed" and got[name]["error"] == message, (name, got[name]["error"])
        assert "some files could not be transferred" not in got[name]["error"]
    assert "entry 'gone' of gpu" in got["gone"]["hint"] and f"relative to gpu's repo ({REPO})" in got["gone"]["hint"]
    assert "mkdir -p" in got["deep"]["hint"]
    people = fleet.agentsync("results", "--host", "gpu", inventory=inv)
    assert f"failed: the source gpu:{REPO}/nosuch does not exist" in people.stdout


def test_wildcard_characters_in_paths_are_literal_on_every_host(fleet):
    for host in ("gpu", "cloud"):
        write(fleet.repo(host) / "out" / "run[1]" / "wanted.txt", "the directory named run[1]\n")
        write(fleet.repo(host) / "out" / "run1" / "other.txt", "what the glob run[1] matches\n")
    entries = [{"name": "brackets", "direction": "pull", "src": "out/run[1]/", "dest": "brackets/"},
               {"name": "star", "direction": "pull", "src": "out/*/", "dest": "star/"}]
    relay = [{"name": "relay", "direction": "pull", "src": "out/run[1]/", "dest": "gpu:in[2]*/"}]
    inv = inventory(fleet, {"laptop": {}, "gpu": {"rsync": entries}, "cloud": {"rsync": relay}})

    code, data = run(fleet, "results", "--host", "gpu,cloud", inv=inv)

    assert files(fleet.repo("laptop") / "brackets") == {"wanted.txt"}
    assert files(fleet.repo("gpu") / "in[2]*") == {"wanted.txt"}  # the receiving side's path is literal too
    assert data["by_name"]["brackets"]["status"] == data["by_name"]["relay"]["status"] == "ok"
    star = data["by_name"]["star"]  # no directory is named '*': nothing moves
    assert code == 1 and star["error"] == f"the source gpu:{REPO}/out/* does not exist", star["error"]
    assert not (fleet.repo("laptop") / "star").exists()


def test_push_code_sends_a_nested_repository_as_its_own_git_sees_it_never_its_ignored_files(fleet):
    nested = fleet.repo("laptop") / "vendor" / "tool"
    write(nested / "tool.py", "TOOL = 1\n")
    write(nested / ".gitignore", "local.conf\n")
    write(nested / "local.conf", "token = not-a-secret-by-name\n")  # ignored by the nested repo's own git
    subprocess.run(["git", "init", "-q", str(nested)], check=True)
    subprocess.run(["git", "-C", str(nested), "add", "tool.py", ".gitignore"], check=True)
    write(nested / "new.py", "NEW = 1\n")  # untracked, not ignored
    (fleet.repo("laptop") / "docs-link").symlink_to("README.md")  # a link is sent as a link, never followed

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet, {"laptop": {}, "gpu": {}}))

    assert code == 0, data
    sent = files(fleet.repo("gpu") / "vendor" / "tool")
    assert sent == {"tool.py", ".gitignore", "new.py"}, sent
    assert (fleet.repo("gpu") / "docs-link").is_symlink()


def test_a_symlinked_directory_on_the_receiving_host_stays_a_symlink(fleet):
    big_disk = fleet.sandbox.hosts["gpu"].path("bigdisk") / "data"
    write(big_disk / "shard-0.bin", "on the big disk\n")
    (fleet.repo("gpu") / "data").symlink_to(f"{MOUNT_POINT}/bigdisk/data")  # a common GPU-box layout
    write(fleet.repo("laptop") / "data" / "README.md", "what the data is\n")

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet, {"laptop": {}, "gpu": {}}))

    assert code == 0, data
    assert (fleet.repo("gpu") / "data").is_symlink()  # not replaced by a directory
    assert files(big_disk) == {"shard-0.bin", "README.md"}
    assert data["by_name"]["push-code"]["backed_up"] == []


def test_no_transfer_moves_git_data_into_a_checkout(fleet):
    mine = fleet.commit("laptop", "mine.py", "ONLY_HERE = 1\n", "Unpushed work on the laptop")
    write(fleet.repo("gpu") / "results" / "score.txt", "0.9\n")
    entry = {"name": "tree", "direction": "pull", "src": "./", "dest": "./", "delete": True}
    inv = inventory(fleet, {"laptop": {}, "gpu": {"rsync": [entry]}})

    code, data = run(fleet, "results", "--host", "gpu", inv=inv)

    assert code == 0, data
    assert fleet.head("laptop") == mine and fleet.git("laptop", "log", "-1", "--format=%s") == \
        "Unpushed work on the laptop"
    assert (fleet.repo("laptop") / "results" / "score.txt").read_text() == "0.9\n"
    assert not any(".git/" in b["path"] or b["path"] == ".git" for b in data["by_name"]["tree"]["backed_up"])


def test_a_pulled_symlink_is_never_followed_by_a_later_pull(fleet):
    outside = fleet.root / "outside-the-results"  # on the laptop, e.g. ~/.ssh
    outside.mkdir()
    results = fleet.repo("gpu") / "results"
    results.mkdir()
    (results / "x").symlink_to(outside)  # run 1: the GPU box (or code running there) sends a link
    inv = inventory(fleet, {"laptop": {}, "gpu": {"results": [{"remote": "results/", "local": "results/gpu/"}]}})
    assert run(fleet, "results", "--host", "gpu", inv=inv)[0] == 0
    (results / "x").unlink()
    write(results / "x" / "authorized_keys", "ssh-ed25519 AAAA... intruder\n")  # run 2: a dir of that name

    code, data = run(fleet, "results", "--host", "gpu", inv=inv)

    assert code == 0, data
    assert not (outside / "authorized_keys").exists()  # nothing written through the link
    assert (fleet.repo("laptop") / "results" / "gpu" / "x" / "authorized_keys").is_file()


def test_a_replaced_symlink_is_restored_as_the_symlink_it_was(fleet):
    write(fleet.repo("gpu") / "results" / "latest", "a regular file on gpu\n")
    mine = fleet.repo("laptop") / "results" / "gpu" / "latest"
    mine.parent.mkdir(parents=True)
    mine.symlink_to("run-42/")  # the laptop's own pointer to a run it has not pulled yet (dangling)
    inv = inventory(fleet, {"laptop": {}, "gpu": {"results": [{"remote": "results/", "local": "results/gpu/"}]}})

    code, data = run(fleet, "results", "--host", "gpu", inv=inv)

    assert code == 0 and not mine.is_symlink(), data
    (backup,) = data["by_name"]["results"]["backed_up"]
    subprocess.run(backup["restore"], shell=True, check=True, timeout=30)
    assert mine.is_symlink() and os.readlink(mine) == "run-42/"


def test_a_file_pulled_under_another_name_has_working_restore_commands(fleet):
    write(fleet.repo("gpu") / "checkpoints" / "best.pt", "the newest weights\n")
    mine = write(fleet.repo("laptop") / "models" / "gpu-best.pt", "the laptop's weights\n")
    entry = {"name": "best", "direction": "pull", "src": "checkpoints/best.pt", "dest": "models/gpu-best.pt"}
    inv = inventory(fleet, {"laptop": {}, "gpu": {"rsync": [entry]}})

    code, data = run(fleet, "results", "--host", "gpu", inv=inv)

    assert code == 0 and mine.read_text() == "the newest weights\n", data
    t = data["by_name"]["best"]
    subprocess.run(t["backed_up"][0]["restore"], shell=True, check=True, timeout=30)
    assert mine.read_text() == "the laptop's weights\n"
    mine.write_text("again replaced\n")
    subprocess.run(t["restore_all"], shell=True, check=True, timeout=30)
    assert mine.read_text() == "the laptop's weights\n" and files(mine.parent) == {"gpu-best.pt"}


def test_when_rsync_loses_the_far_ends_message_the_runner_asks_the_host_which_path_is_missing(fleet):
    """rsync (3.2.7 and 3.5.0 alike, ~1 run in 6 here) can exit 11 with nothing on stderr: the remote rsync's
    message loses the race with the connection closing. The runner then asks the host what that message said."""
    entries = [{"name": "deep", "direction": "push", "src": "data/", "dest": "no/such/parent/"},
               {"name": "gone", "direction": "pull", "src": "nosuch/", "dest": "x/"},
               {"name": "fine", "direction": "push", "src": "data/", "dest": "data/"}]
    inv = load_inventory(inventory(fleet, {"laptop": {}, "gpu": {"rsync": entries}}))
    runner = Runner(inv, P.LegOptions.for_inventory(inv, "run-1", str(fleet.root / "state")))
    routes = {e.name: P.entry_route(inv, inv.hosts["gpu"], e) for e in inv.hosts["gpu"].rsync}

    said = {name: runner._silent_failure(route, P.legs(route, runner.opts, runner.ssh)[-1])
            for name, route in routes.items()}

    assert said["deep"].reason == "no parent" and said["deep"].message == \
        f"gpu:{REPO}/no/such does not exist (rsync creates only the last directory of the destination)"
    assert said["gone"].reason == "no source" and said["gone"].message == f"the source gpu:{REPO}/nosuch does not exist"
    assert said["fine"] is None  # the paths are there: rsync's own exit code stands
