"""Canary payloads in every string of the inventory, on every login shell: nothing they say ever runs.

Each string key of schema.py gets a value made of the tricks that break quoting somewhere — single and double
quotes around `$(...)`, backticks, `;`, fish's `\\'`, a newline, `$HOME`, non-ASCII — where each trick, if any
shell on the way read it as code, would create a file named `agentsync-pwn-<key>-<n>`. With such values in
every key at once, `health` and `sync-all` run against real sshd hosts whose login shells are bash, dash, zsh,
fish, tcsh and busybox ash; the values must arrive as data (files, branches, worktrees, S3 keys named by
them) and no canary file may appear anywhere. A key whose validation refuses such a value is tested for the
clear error instead (exit 2, the key named, no traceback), and nothing runs.
"""

from __future__ import annotations

import http.server
import json
import shlex
import shutil
import threading
from pathlib import Path

import pytest
import yaml
from conftest import LOGIN_SHELLS
from s3_support import Bucket, install_aws_cli, laptop_env
from test_real_hosts import clone_into

from agentsync_fleet.sandbox import MOUNT_POINT
from agentsync_fleet.sandbox_fleet import git

SHELL_HOSTS = [f"sh-{shell}" for shell in LOGIN_SHELLS]


def payload(key: str, *, spaces: bool = True, newline: bool = True) -> str:
    """A value for `key` that would create agentsync-pwn-<key>-<n> if read as code; no `/` (paths stay one
    name). `spaces=False`: for git refs and URLs, which cannot hold spaces (`${IFS}` stands in)."""
    pwn = [f"agentsync-pwn-{key}-{n}" for n in range(1, 7)]
    if not spaces:
        return f"c-{key}$(touch${{IFS}}{pwn[0]})`touch${{IFS}}{pwn[1]}`;touch${{IFS}}{pwn[2]};'\"x"
    text = (f"c {key} x'$(touch {pwn[0]})'\"$(touch {pwn[1]})\"`touch {pwn[2]}`;touch {pwn[3]};"
            f"\\';touch {pwn[4]} #$HOME ü")
    return text + (f"\n touch {pwn[5]}" if newline else "")


def canaries(fleet, name: str) -> list[str]:
    """Every agentsync-pwn-* file: on the host's disk and the laptop's side of this test (anywhere below), the
    shared home, /tmp, / and the directory the CLI runs in."""
    deep = [fleet.sandbox.hosts[name].path(), fleet.root]
    shallow = [Path.home(), Path("/tmp"), Path("/"), Path.cwd()]
    return sorted({str(p) for root in deep for p in root.rglob("agentsync-pwn-*")} |
                  {str(p) for root in shallow for p in root.glob("agentsync-pwn-*")})


class NotFoundServer:
    """An HTTP server on the controller (hosts share its network): every path is a 404, each one logged."""

    def __init__(self):
        paths = self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                paths.append(self.path)
                self.send_error(404)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def http_404():
    server = NotFoundServer()
    yield server
    server.close()


@pytest.fixture
def aws_on(sandbox, aws_env):
    """The AWS CLI on one shell host for this test (only cloud and gpu have it all session)."""
    added = []

    def give(name: str) -> None:
        install_aws_cli(sandbox, (name,), aws_env)
        added.append(sandbox.hosts[name].bin_dir / "aws")

    yield give
    for path in added:
        path.unlink(missing_ok=True)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


class Values:
    """One payload per inventory key (the names are the keys they go into)."""

    def __init__(self):
        p = payload
        one_line = {"newline": False}  # checkout and transfer paths, rsync patterns: a newline is refused (below)
        self.repo, self.branch, self.remote = p("repo", **one_line), p("branch", spaces=False), p("remote", spaces=False)
        self.wt_path, self.wt_branch = p("wtpath", **one_line), p("wtbranch", spaces=False)
        self.process, self.critical = p("process"), p("critical")
        self.res_remote, self.res_local, self.res_exclude = p("resremote", **one_line), p("reslocal", **one_line), \
            p("resexclude", **one_line)
        self.src, self.dest, self.rsync_exclude = p("rsyncsrc", **one_line), p("rsyncdest", **one_line), \
            p("rsyncexclude", **one_line)
        self.s3_path, self.s3_prefix, self.s3_exclude = p("s3path"), p("s3prefix", newline=False), p("s3exclude")
        self.metric_file, self.metric_key = p("metricfile"), p("metrickey")
        self.http, self.untracked = p("http", spaces=False), p("untracked")
        self.job_cwd, self.job_env = p("jobcwd"), p("jobenv")
        self.secret, self.backup = p("secret", newline=False), p("backup")
        self.notify, self.ssh_config, self.state = p("notify"), p("sshconfig", newline=False), p("state")


def host_settings(v: Values, http_port: int, bucket: Bucket) -> dict:
    return {
        "repo": f"{MOUNT_POINT}/{v.repo}", "branch": v.branch, "remote": v.remote,
        "guard": {"processes": [v.process], "critical_files": [v.critical]},
        "worktrees": [{"path": f"{MOUNT_POINT}/{v.wt_path}", "branch": v.wt_branch, "merge": v.branch}],
        "results": [{"remote": v.res_remote + "/", "local": f"results/{v.res_local}/", "exclude": [v.res_exclude]}],
        "rsync": [{"name": "canary-push", "direction": "push", "src": v.src, "dest": v.dest,
                   "exclude": [v.rsync_exclude]}],
        "push_code": True,
        "s3": [{"path": v.s3_path, "url": bucket.url(v.s3_prefix), "direction": "up", "exclude": [v.s3_exclude]}],
        "checks": [{"name": "canary-metric", "metric": {"file": v.metric_file, "key": v.metric_key, "min": 0.5}},
                   {"name": "canary-http", "http": {"url": f"http://127.0.0.1:{http_port}/{v.http}", "expect": 404}}],
        "allow_untracked": [v.untracked, v.metric_file, v.res_remote + "/", v.s3_path + "/", v.src, v.dest],
        # `run` is code for the login shell ($SHELL -c, as `ssh HOST cmd`): one every shell reads alike
        # (fish in the POSIX locale re-encodes non-ASCII in what it exports and prints: a UTF-8 locale, as users have)
        "jobs": {"canary": {"run": "printenv CANARY; pwd", "cwd": v.job_cwd,
                            "env": {"CANARY": v.job_env, "LC_ALL": "C.UTF-8"}}},
    }


def prepare_host(fleet, name: str, v: Values) -> Path:
    """The host's checkout at the payload path, on the payload branch of the payload remote, with the files the
    inventory names (results, a metric file, an untracked file, an S3 directory)."""
    fleet.git("laptop", "push", "-q", "origin", f"HEAD:refs/heads/{v.branch}")
    repo = clone_into(fleet, name, v.repo)
    git(repo, "remote", "rename", "origin", v.remote)
    git(repo, "fetch", "-q", v.remote)
    git(repo, "checkout", "-q", "-B", v.branch, "--track", f"{v.remote}/{v.branch}")
    write(repo / v.res_remote / "score.txt", "0.93\n")
    write(repo / v.res_remote / v.res_exclude, "left out by the entry's exclude\n")
    write(repo / v.metric_file, json.dumps({v.metric_key: 0.9}))
    write(repo / v.untracked, "allowed untracked\n")
    (repo / v.job_cwd).mkdir()  # empty: git does not list it
    write(repo / v.s3_path / "weights.bin", "w" * 100)
    write(repo / v.s3_path / v.s3_exclude, "left out of S3\n")
    return repo


def inventory(fleet, name: str, v: Values, http_port: int, bucket: Bucket) -> Path:
    config = fleet.root / v.ssh_config
    shutil.copy(fleet.ssh_config, config)
    path = fleet.inventory({"laptop": {}, name: host_settings(v, http_port, bucket)}, s3=bucket.settings(),
                           notify={"command": shlex.join(["printf", "%s", v.notify])})
    data = yaml.safe_load(path.read_text())
    data["ssh_config"] = str(config)
    data["transfers"] = {"backup_dir": f"{MOUNT_POINT}/.agentsync-backups/{v.backup}", "secrets": [v.secret]}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(fleet, task: str, inv: Path, v: Values, aws_env: dict, *args: str) -> tuple[int, dict]:
    env = {**laptop_env(aws_env), "AGENTSYNC_STATE_DIR": str(fleet.root / v.state),
           "XDG_STATE_HOME": str(fleet.root / "laptop-state")}  # the laptop's job records: this test's own
    result = fleet.agentsync(task, *args, "--json", inventory=inv, env=env)
    assert result.stdout.startswith("{"), result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.mark.parametrize("name", SHELL_HOSTS)
def test_canaries_in_every_inventory_string_create_nothing_and_arrive_as_data_on_every_login_shell(
        fleet, name, moto_s3, aws_env, aws_on, http_404):
    v, bucket = Values(), Bucket(moto_s3)
    aws_on(name)
    repo = prepare_host(fleet, name, v)
    inv = inventory(fleet, name, v, http_404.port, bucket)

    code, health = cli(fleet, "health", inv, v, aws_env)
    report = next(h for h in health["hosts"] if h["host"] == name)
    assert code == 0 and report["passed"], json.dumps({k: v for k, v in report.items() if k not in ("checks", "repo")})
    assert report["repo"]["branch"] == v.branch and report["guard"]["status"] == "ok"
    assert {c["name"]: c["passed"] for c in report["checks"]} == {"canary-metric": True, "canary-http": True}
    assert canaries(fleet, name) == []

    new = fleet.commit("laptop", "strategies/momentum.py", "WINDOW = 30\n", "Tune strategy")
    fleet.git("laptop", "push", "-q", "origin", f"HEAD:refs/heads/{v.branch}")
    write(fleet.repo("laptop") / v.src, "pushed by the rsync entry\n")
    code, result = cli(fleet, "sync-all", inv, v, aws_env)
    host = next(h for h in result["hosts"] if h["host"] == name)
    assert code == 0 and host["status"] == "ok", json.dumps({k: host[k] for k in ("message", "warnings")} | {"steps": [s for s in host["steps"] if s["status"] != "ok"]})[:4000]
    assert git(repo, "rev-parse", "HEAD") == new and git(repo, "rev-parse", "--abbrev-ref", "HEAD") == v.branch
    gitdir = (fleet.sandbox.hosts[name].path(v.wt_path) / ".git").read_text().removeprefix("gitdir: ").strip()
    head = fleet.sandbox.hosts[name].path(gitdir.removeprefix(MOUNT_POINT + "/")) / "HEAD"  # as the host sees it
    assert head.read_text() == f"ref: refs/heads/{v.wt_branch}\n"
    assert (fleet.repo("laptop") / "results" / v.res_local / "score.txt").read_text() == "0.93\n"
    assert not (fleet.repo("laptop") / "results" / v.res_local / v.res_exclude).exists()
    assert (repo / v.dest).read_text() == "pushed by the rsync entry\n"
    assert bucket.keys() == {f"{v.s3_prefix}/weights.bin": 100}
    assert any(p.startswith("/c-http") for p in http_404.paths)
    assert result["notify"]["ok"] is True, result["notify"]
    assert canaries(fleet, name) == []

    code, started = cli(fleet, "run", inv, v, aws_env, name, "canary")  # the job preset: its cwd and env are data
    assert code == 0, started
    code, _ = cli(fleet, "wait", inv, v, aws_env, started["job"]["id"])
    logs = fleet.agentsync("logs", started["job"]["id"], inventory=inv,
                           env={"AGENTSYNC_STATE_DIR": str(fleet.root / v.state),
                                "XDG_STATE_HOME": str(fleet.root / "laptop-state")})
    assert code == 0 and logs.stdout == f"{v.job_env}\n{MOUNT_POINT}/{v.repo}/{v.job_cwd}\n", logs
    assert canaries(fleet, name) == []


# ---------------------------------------------------------------- values validation refuses


def _set(data: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data[int(part)] if isinstance(data, list) else data[part]
    if isinstance(data, list):
        data[int(last)] = value
    else:
        data[last] = value


BASE_HOST = {"ssh": "sh-bash", "repo": f"{MOUNT_POINT}/crpbot",
             "worktrees": [{"path": "wt", "branch": "wt", "merge": "main"}],
             "rsync": [{"name": "r", "direction": "push", "src": "a", "dest": "b", "exclude": ["x"]}],
             "results": [{"remote": "results/", "local": "results/h/"}],
             "s3": [{"path": "m", "url": "s3://bucket-name/m", "direction": "up"}],
             "s3_settings": {"profile": "p", "region": "eu-central-1", "endpoint_url": "http://127.0.0.1:9"},
             "checks": [{"name": "c", "run": "true"}], "jobs": {"j": {"run": "true"}}}
REFUSED = [  # (where, the value, what the error says)
    ("hosts.NAME", payload("hostname"), "host name"),
    ("order", [payload("order")], "which is not defined under hosts"),
    ("defaults", {"branch": payload("defaultbranch", spaces=False) + " x"}, "is not a valid git branch name"),
    ("defaults", {"remote": payload("defaultremote")}, "is not a valid git branch name"),
    ("s3", {"profile": payload("topprofile"), "region": "eu-central-1"}, "is not a profile name"),
    ("hosts.h.ssh", payload("ssh"), "is not an ssh_config alias"),
    ("hosts.h.ssh", payload("sshnospace", spaces=False), "is not an ssh_config alias"),
    ("hosts.h.branch", payload("branchspaces"), "is not a valid git branch name"),
    ("hosts.h.remote", payload("remotespaces"), "is not a valid git branch name"),
    ("hosts.h.zerotier", payload("zerotier"), "is not 16 hex digits"),
    ("hosts.h.worktrees.0.branch", payload("wtbranchspaces"), "is not a valid git branch name"),
    ("hosts.h.worktrees.0.merge", payload("wtmergespaces"), "is not a valid git branch name"),
    ("hosts.h.worktrees.0.strategy", payload("strategy"), "merge"),
    ("hosts.h.rsync.0.name", payload("rsyncname"), "is not a valid name"),
    ("hosts.h.rsync.0.direction", payload("direction"), "push"),
    ("hosts.h.rsync.0.exclude.0", payload("rsyncexcludenl"), "must be one non-empty line"),
    ("hosts.h.results.0.exclude", [payload("resexcludenl")], "must be one non-empty line"),
    ("hosts.h.repo", f"{MOUNT_POINT}/" + payload("reponl"), "must be one line"),
    ("hosts.h.worktrees.0.path", payload("wtpathnl"), "must be one line"),
    ("hosts.h.results.0.remote", payload("resremotenl"), "the path contains a control character"),
    ("hosts.h.results.0.local", payload("reslocalnl"), "the path contains a control character"),
    ("hosts.h.rsync.0.src", payload("rsyncsrcnl"), "the path contains a control character"),
    ("hosts.h.rsync.0.dest", payload("rsyncdestnl"), "the path contains a control character"),
    ("hosts.h.s3.0.url", "s3://" + payload("bucket", spaces=False), "not a valid bucket name"),
    ("hosts.h.s3.0.url", "s3://bucket-name/" + payload("s3prefixnl"), "contains control characters"),
    ("hosts.h.s3_settings.profile", payload("profile"), "is not a profile name"),
    ("hosts.h.s3_settings.region", payload("region"), "is not a region name"),
    ("hosts.h.s3_settings.endpoint_url", payload("endpoint"), "is not an http:// or https:// URL"),
    ("hosts.h.checks.0.name", payload("checkname"), "letters, digits"),
    ("hosts.h.jobs.NAME", payload("jobname"), "is not a job name"),
    ("hosts.h.jobs.j.env", {payload("envname"): "x"}, "is not a variable name"),
    ("transfers.secrets", [payload("secretnl")], "must be one non-empty line"),
    ("transfers.not_secret", [payload("notsecret")], "not a built-in secret pattern"),
    ("transfers.backup_dir", "~" + payload("backupuser"), "names another user's home"),
    ("lock_ttl", payload("lockttl"), "duration"),
    ("claim_ttl", payload("claimttl"), "duration"),
    ("control_persist", payload("persist"), "duration"),
    ("notify.command", payload("notifyquote") + " '", "cannot be split into arguments"),
]


@pytest.mark.parametrize("where,value,says", REFUSED, ids=[f"{i}-{r[0]}" for i, r in enumerate(REFUSED)])
def test_a_canary_that_validation_refuses_is_a_clear_error_naming_the_key_and_nothing_runs(fleet, where, value, says):
    data = {"ssh_config": str(fleet.ssh_config), "hosts": {"laptop": {"local": True, "repo": str(fleet.repo("laptop"))},
                                                           "h": json.loads(json.dumps(BASE_HOST))},
            "notify": {"command": "true"}, "transfers": {"backup_dir": "/tmp/x"}}
    if where == "hosts.NAME":
        data["hosts"][value] = data["hosts"].pop("h")
    elif where == "hosts.h.jobs.NAME":
        data["hosts"]["h"]["jobs"] = {value: {"run": "true"}}
    else:
        _set(data, where, value)
    path = fleet.root / "fleet.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for task in ("health", "sync-all"):
        result = fleet.agentsync(task, "--json", inventory=path)
        assert result.returncode == 2, (task, result.stdout, result.stderr)
        error = json.loads(result.stdout)
        text = json.dumps(error)
        assert says in text and str(path) in text, error
        key = where.split(".")[-1]
        assert key in ("NAME", "0") or key in text, error
        assert "Traceback" not in result.stderr
    assert canaries(fleet, "sh-bash") == []
