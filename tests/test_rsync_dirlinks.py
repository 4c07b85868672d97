"""Symlinked directories on the receiving host (a GPU box's `data -> /mnt/nvme/data`), against real hosts and the
rsync this machine has (Debian 12's archive serves 3.5.0, whose link hardening refuses to write through such a
link); and the pure planning in `transfer/dirlinks.py`."""

from __future__ import annotations

import os
import subprocess

from rsync_support import files, inventory, run, write

from agentsync_fleet.sandbox import MOUNT_POINT
from agentsync_fleet.steps.rsync import RsyncCall
from agentsync_fleet.transfer import dirlinks as D
from agentsync_fleet.transfer.plan import Leg

LAPTOP_ONLY = {"laptop": {}, "gpu": {}}


def big_disk(fleet, name: str):
    return fleet.sandbox.hosts["gpu"].path("bigdisk") / name


def link_on_gpu(fleet, path: str, target: str):
    link = fleet.repo("gpu") / path
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(f"{MOUNT_POINT}/bigdisk/{target}")
    return link


def test_push_code_writes_into_a_linked_directory_and_reports_its_files_under_the_link(fleet):
    write(big_disk(fleet, "data") / "shard-0.bin", "on the big disk\n")
    link_on_gpu(fleet, "data", "data")
    write(fleet.repo("laptop") / "data" / "README.md", "what the data is\n")

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet, LAPTOP_ONLY))

    assert code == 0, data
    assert (fleet.repo("gpu") / "data").is_symlink()
    assert (big_disk(fleet, "data") / "README.md").read_text() == "what the data is\n"
    assert {"action": "new", "path": "data/README.md"} in data["by_name"]["push-code"]["changes"]
    again_code, again = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet, LAPTOP_ONLY))
    assert again_code == 0 and again["by_name"]["push-code"]["changes"] == [], again


def test_a_link_inside_a_linked_directory_is_followed_too(fleet):
    link_on_gpu(fleet, "data", "data")
    (big_disk(fleet, "data")).mkdir(parents=True)
    (big_disk(fleet, "data") / "cache").symlink_to(f"{MOUNT_POINT}/bigdisk/cache")
    big_disk(fleet, "cache").mkdir()
    write(fleet.repo("laptop") / "data" / "cache" / "index.json", "{}\n")
    write(fleet.repo("laptop") / "data" / "top.txt", "top\n")

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet, LAPTOP_ONLY))

    assert code == 0, data
    assert files(big_disk(fleet, "cache")) == {"index.json"}
    assert files(big_disk(fleet, "data")) == {"top.txt"}
    assert (big_disk(fleet, "data") / "cache").is_symlink()


def test_a_file_replaced_behind_a_link_is_backed_up_with_a_working_restore_command(fleet):
    write(big_disk(fleet, "data") / "labels.csv", "old labels\n")
    link_on_gpu(fleet, "data", "data")
    write(fleet.repo("laptop") / "data" / "labels.csv", "new labels\n")

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet, LAPTOP_ONLY))

    assert code == 0, data
    assert (big_disk(fleet, "data") / "labels.csv").read_text() == "new labels\n"
    [backup] = [b for b in data["by_name"]["push-code"]["backed_up"] if b["path"] == "data/labels.csv"]
    subprocess.run(backup["restore"], shell=True, check=True, timeout=30)
    assert (big_disk(fleet, "data") / "labels.csv").read_text() == "old labels\n"
    assert (fleet.repo("gpu") / "data").is_symlink()


def test_a_link_owned_by_another_user_fails_the_entry_with_the_fix_and_sends_nothing(fleet):
    big_disk(fleet, "data").mkdir(parents=True)
    link = link_on_gpu(fleet, "data", "data")
    os.lchown(link, 4321, 4321)  # someone else's link in the checkout: rsync 3.5 would not follow it either
    write(fleet.repo("laptop") / "data" / "README.md", "x\n")
    write(fleet.repo("laptop") / "app.py", "print('hi')\n")

    code, data = run(fleet, "push-code", "--host", "gpu", inv=inventory(fleet, LAPTOP_ONLY))

    assert code == 1, data
    result = data["by_name"]["push-code"]
    assert result["status"] == "failed"
    assert "data is a symlink to a directory that is owned by uid 4321" in result["error"]
    assert "chown -h" in result["hint"]
    assert not (fleet.repo("gpu") / "app.py").exists()
    assert files(big_disk(fleet, "data")) == set()


def test_a_push_entry_with_delete_keeps_the_link_and_backs_up_what_it_deletes_behind_it(fleet):
    write(big_disk(fleet, "models") / "old.bin", "old\n")
    link_on_gpu(fleet, "assets/models", "models")
    assets = fleet.root / "assets"  # outside the laptop's checkout: only the entry sends it
    write(assets / "models" / "new.bin", "new\n")
    write(assets / "notes.txt", "notes\n")
    entry = {"name": "assets", "direction": "push", "src": f"{assets}/", "dest": "assets/", "delete": True}

    code, data = run(fleet, "push-code", "--host", "gpu",
                     inv=inventory(fleet, {"laptop": {}, "gpu": {"rsync": [entry]}}))

    assert code == 0, data
    assert (fleet.repo("gpu") / "assets" / "models").is_symlink()
    assert files(big_disk(fleet, "models")) == {"new.bin"}
    assert (fleet.repo("gpu") / "assets" / "notes.txt").read_text() == "notes\n"
    assert [b["path"] for b in data["by_name"]["assets"]["backed_up"]] == ["models/old.bin"]


def test_a_push_entry_with_a_path_exclude_and_a_linked_directory_is_refused_before_anything_moves(fleet):
    big_disk(fleet, "models").mkdir(parents=True)
    link_on_gpu(fleet, "assets/models", "models")
    assets = fleet.root / "assets"
    write(assets / "models" / "tmp" / "scratch.bin", "scratch\n")
    write(assets / "notes.txt", "notes\n")
    entry = {"name": "assets", "direction": "push", "src": f"{assets}/", "dest": "assets/", "exclude": ["models/tmp"]}

    code, data = run(fleet, "push-code", "--host", "gpu",
                     inv=inventory(fleet, {"laptop": {}, "gpu": {"rsync": [entry]}}))

    assert code == 1, data
    assert "excludes by path (models/tmp)" in data["by_name"]["assets"]["error"]
    assert files(big_disk(fleet, "models")) == set() and not (fleet.repo("gpu") / "assets" / "notes.txt").exists()


# ---------------------------------------------------------------- pure planning


def _leg(**call) -> Leg:
    base = dict(src="/home/me/repo/", dest="gpu:/srv/repo/", rsh=("ssh",), remote="receiver", files_from=True,
                backup_dir="~/b/run/gpu.push-code", excludes=(".git",))
    return Leg(RsyncCall(**(base | call)), "laptop → gpu", receiver=None, dest_dir="/srv/repo/")


def test_split_sends_each_link_into_its_target_and_keeps_it_out_of_the_main_run():
    links = [D.DirLink("data", "/mnt/nvme/data", 0, True), D.DirLink("data/cache", "/mnt/cache", 0, True)]
    files = ["app.py", "data/README.md", "data/cache/index.json", "database.py"]

    plan = D.split(_leg(), links, files)

    assert [(leg.call.src, leg.call.dest, leg.prefix, names) for leg, names in plan] == [
        ("/home/me/repo/", "gpu:/srv/repo/", "", ["app.py", "database.py"]),
        ("/home/me/repo/data/", "gpu:/mnt/nvme/data/", "data/", ["README.md"]),
        ("/home/me/repo/data/cache/", "gpu:/mnt/cache/", "data/cache/", ["index.json"]),
    ]
    assert plan[0][0].call.excludes == (".git", "/data", "/data/cache")
    assert plan[1][0].call.excludes == (".git", "/cache")
    assert plan[1][0].call.backup_dir == "~/b/run/gpu.push-code/data"


def test_split_without_links_is_the_leg_itself():
    leg = _leg()
    assert D.split(leg, [], ["a"]) == [(leg, ["a"])]


def test_a_link_name_with_wildcards_is_excluded_literally():
    assert D.anchored("run[1]/*x") == "/run\\[1]/\\*x"
    assert D.anchored("plain\\name") == "/plain\\name"  # no wildcard: rsync reads the backslash literally


def test_the_probe_answer_survives_a_chatty_login_and_a_newline_in_a_target():
    out = b"Welcome!\n" + D.MARK + b"me 1000\nlink 1 1000 10\n/mnt/a\nb/c\nlink 0 0 2\n/x\n"

    links = D.parse_probe(out, ["data", "models"])

    assert links == [D.DirLink("models", "/mnt/a\nb/c", 1000, True), D.DirLink("data", "/x", 0, True)]
    assert D.parse_probe(D.MARK + b"me 1000\nlink 0 4321 2\n/x\n", ["d"])[0].trusted is False


def test_sent_dirs_lists_every_parent_once():
    assert D.sent_dirs(["a/b/c.txt", "a/d.txt", "e.txt"]) == ["a", "a/b"]


def test_links_inside_secret_or_excluded_directories_are_not_followed():
    links = [D.DirLink("credentials/data", "/x", 0, True), D.DirLink("tmp/data", "/y", 0, True),
             D.DirLink("data", "/z", 0, True)]
    assert [link.path for link in D.followed(links, ("credentials*", "tmp"))] == ["data"]
