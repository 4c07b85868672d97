"""Run routes: each leg is one rsync process; its output becomes a `TransferResult`.

A failure never raises out of `Runner.run`: it is the transfer's status,
with the host named and what to do next, so one bad host or entry never
stops the others.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable
from dataclasses import replace

from ..errors import FleetError, HostUnreachable
from ..guard import is_critical
from ..models import Host, Inventory
from ..remote import rshfilter
from ..shell import join, quote_path
from ..steps.rsync import PARTIAL_DIR, remote_command, rsync_argv, secret_rules, ssh_argv
from ..steps.rsync_tool import version_script
from . import dirlinks as D
from . import plan as P
from .facts import RsyncTools, ask, guard_processes
from .model import LegResult, TransferEvent, TransferResult
from .parse import HIDING, Change, Diagnosis, Progress, RsyncOutput, diagnose, feed, parse_backup, unescape
from .proc import SshSettings, git_files, stream

Listener = Callable[[TransferEvent], None]
UNREACHABLE = ("host key changed", "host key unknown", "auth", "refused", "dns", "timeout", "network")


class Runner:
    """Runs routes of one inventory for one run (one run id, one set of options)."""

    def __init__(self, inv: Inventory, opts: P.LegOptions, listener: Listener = lambda event: None, *,
                 rerun: str = "the same command", allow_running: bool = False, connector=None,
                 tools: RsyncTools | None = None):
        self.inv, self.opts, self.listener = inv, opts, listener
        self.rerun, self.allow_running = rerun, allow_running
        self.ssh = SshSettings(inv, connector)  # the run's connector: one resolution, one master per host
        self.tools = tools or RsyncTools()

    def commands(self, route: P.Route) -> list[str]:
        """The exact command lines of a route, for plans."""
        return [shlex.join(self._argv(leg)) for leg in P.legs(route, self.opts, self.ssh)]

    def run(self, route: P.Route) -> TransferResult:
        result = TransferResult(route.owner.name, route.entry.name, route.entry.kind, route.src.display,
                                route.dest.display, route.mode, self.opts.dry_run)
        start = time.monotonic()
        self.listener(TransferEvent(result.key, "start", f"{route.src.display} → {route.dest.display}"))
        try:
            files = self._code_files(route, result) if route.is_code else None
            for leg, names in self._planned(route, files, result):
                stdin = None if names is None else _nul_list(names)
                if not self._run_leg(route, leg, result, stdin):
                    break
        except HostUnreachable as exc:  # the connector's own diagnosis (a ProxyJump loop, say)
            result.fail("unreachable", exc.message, exc.hint or "")
        except FleetError as exc:
            result.fail("failed", exc.message, exc.hint or "")
        result.duration_s = round(time.monotonic() - start, 3)
        self.listener(TransferEvent(result.key, "end", result=result))
        return result

    def _planned(self, route: P.Route, files: list[str] | None,
                 result: TransferResult) -> list[tuple[P.Leg, list[str] | None]]:
        """The route's legs, each with the rsync its ends have (checked once per run) and its file list. A push
        from the laptop also sends into each symlinked directory on the receiving host by its own run
        (transfer/dirlinks.py), so rsync 3.5's link hardening keeps such a layout working. When a host cannot
        be asked, nothing runs and the result says why."""
        legs = P.legs(route, self.opts, self.ssh)
        push = route.mode == "local" and route.src.local and not route.dest.local
        dirs = (D.sent_dirs(files) if files is not None else D.walk_dirs(legs[0].call.src)) if push else []
        links: list[D.DirLink] = []
        for host in _far_ends(route):
            asked = self._ask(host, legs[0], route.dest.resolved, dirs if host is route.dest.host else [], result)
            if asked is None:
                return []
            links = asked if host is route.dest.host else links
        legs = [self._with_tools(leg) for leg in legs]
        if not push:
            return [(leg, files) for leg in legs]
        host = route.dest.host
        left_out = (*self.opts.settings.secrets, ".git", *(e.strip("/") for e in route.entry.exclude))
        links = D.followed(links, left_out)
        D.check_trusted(links, host.name, route.dest.resolved)
        D.check_excludes(links, route.entry.exclude, route.key)
        return D.split(legs[0], links, files)

    def _ask(self, host: Host, leg: P.Leg, root: str, dirs: list[str],
             result: TransferResult) -> list[D.DirLink] | None:
        """One round trip to `host`: its rsync (first time this run) and which of `dirs` under `root` are
        symlinked directories. None: the host could not be asked (the result says why)."""
        failure = self.ssh.failure(host)
        if failure is not None:  # its master could not be opened: ssh's reason, in the words `health` uses
            result.fail("unreachable", failure.message, failure.hint or "")
            return None
        want_tool = not self.tools.known(host)
        if not want_tool and not dirs:
            return []
        script = (version_script() if want_tool else "") + (D.probe_script(root, dirs) if dirs else "")
        code, stdout, stderr, noise = ask(self.ssh, host, script)
        problem = diagnose(code, stderr, host.name, "the laptop", host.name)
        if problem is not None and problem.reason in UNREACHABLE:
            result.fail("unreachable", problem.message, self._hint(problem, leg), problem.detail)
            return None
        if problem is not None:
            result.fail("failed", f"could not ask {host.name} which rsync it has (exit {code})",
                        "nothing was sent; `agentsync health` shows what is wrong", problem.detail)
            return None
        if want_tool:
            self.tools.record(host, stdout.decode("utf-8", "replace"), noise)
        return D.parse_probe(stdout, dirs) if dirs else []

    def _with_tools(self, leg: P.Leg) -> P.Leg:
        """The leg with the rsync each end runs; a missing or too old one is a FleetError naming the host.
        A peer whose shell startup prints a banner is reached through the banner filter (remote/rshfilter.py);
        a quiet one keeps plain ssh, with no start-up cost added."""
        program = (self.tools.local() if leg.on is None else self.tools.remote(leg.on)).path
        remote = self.tools.remote(leg.peer).path if leg.peer is not None else "rsync"
        call = replace(leg.call, program=program, remote_program=remote)
        noise = self.tools.noise(leg.peer) if leg.peer is not None else ""
        if noise and leg.on is not None:
            raise FleetError(f"{leg.peer.name}'s login shell prints {noise!r} before every command, which breaks "
                             f"rsync run on {leg.on.name} (direct: true); nothing was sent", host=leg.peer.name,
                             hint="remove direct: true (the relay through the laptop filters the banner), or make "
                                  f"{leg.peer.name}'s startup files print only in interactive shells")
        if noise:
            call = replace(call, rsh=tuple(rshfilter.rsh_argv(call.rsh)))
        return replace(leg, call=call)

    def _argv(self, leg: P.Leg) -> list[str]:
        argv = rsync_argv(leg.call)
        if leg.on is None:
            return argv
        hop = self.ssh(leg.on)  # direct: rsync runs on the source host, started over ssh
        return [*ssh_argv(hop), hop.target, remote_command(argv)]

    def _run_leg(self, route: P.Route, leg: P.Leg, result: TransferResult, stdin: bytes | None) -> bool:
        if self.opts.dry_run and route.mode == "relay" and leg.final and self._cache_only(route, leg, result):
            return True
        argv = self._argv(leg)
        if not self.opts.dry_run and leg.on is None and leg.receiver is None:
            parent = os.path.dirname(leg.call.dest.rstrip("/")) or "/"
            try:  # rsync creates the last directory only
                os.makedirs(parent, exist_ok=True)
            except OSError as exc:
                raise FleetError(f"cannot create {parent} on the laptop: {exc.strerror}") from None
        out = RsyncOutput()

        def on_record(line: str) -> None:
            parsed = feed(out, line)
            if isinstance(parsed, Progress):
                self.listener(TransferEvent(result.key, "progress", leg.label, progress=parsed))
            elif isinstance(parsed, Change):
                self.listener(TransferEvent(result.key, "change", leg.label, change=parsed))

        finished = stream(argv, on_record, stdin)
        errors = keep_notices(out, finished.stderr)
        stats = out.stats
        result.legs.append(LegResult(leg.label, shlex.join(argv), finished.code, round(finished.duration_s, 3),
                                     stats.get("files", 0), stats.get("bytes", 0),
                                     stats.get("sent", 0) + stats.get("received", 0), stats.get("matched", 0)))
        self._absorb(route, leg, out, result)
        if finished.code == 24:
            result.warnings.append("some source files vanished while the transfer ran (they were not sent)")
        # direct: ssh to the source host failed (no rsync ran), or the source host's own rsync → target did
        second_hop = leg.on is not None and "rsync" in errors
        problem = diagnose(finished.code, errors, self._where(leg, second_hop), *self._sides(leg))
        if problem is None:
            return True
        if problem.reason in ("files", "failed") and not errors.strip() and leg.on is None:
            problem = self._silent_failure(route, leg) or problem
        hint = self._path_hint(problem, route) or self._hint(problem, leg, second_hop)
        result.fail("unreachable" if problem.reason in UNREACHABLE else "failed", problem.message, hint,
                    problem.detail)
        return False

    def _silent_failure(self, route: P.Route, leg: P.Leg) -> Diagnosis | None:
        """rsync (3.2 and 3.5 alike) sometimes exits 11 without the far end's message: the remote rsync's last
        words lose the race with the connection closing. Ask that host the question its message would have
        answered: is the destination's parent (or the source) there?"""
        far = leg.receiver or leg.peer
        if far is None:
            return None
        receiving = leg.receiver is not None
        path = (os.path.dirname(leg.dest_dir.rstrip("/")) if receiving else route.src.resolved.rstrip("/")) or "/"
        code, stdout, _, _ = ask(self.ssh, far, f"[ -e {quote_path(path)} ] || echo agentsync-missing\n")
        if code != 0 or b"agentsync-missing" not in stdout:
            return None
        if receiving:
            return Diagnosis("no parent", f"{far.name}:{path} does not exist (rsync creates only the last directory "
                                          "of the destination)", path=path)
        return Diagnosis("no source", f"the source {far.name}:{path} does not exist", path=path)

    def _sides(self, leg: P.Leg) -> tuple[str, str]:
        """The machines holding this leg's source and destination (a relay's cache is on the laptop)."""
        laptop = P.controller(self.inv).name
        receiver = leg.receiver.name if leg.receiver is not None else laptop
        if leg.on is not None:
            return leg.on.name, receiver
        return (laptop if leg.receiver is not None else leg.peer.name), receiver

    def _path_hint(self, problem: Diagnosis, route: P.Route) -> str:
        """What to do about a path that is not there, in the inventory's terms."""
        if problem.reason == "no source" and route.is_code:
            return f"a file git listed was removed while push-code ran; run {self.rerun} again"
        if problem.reason == "no source":
            side = route.src.host
            return (f"check src of the entry '{route.entry.name}' of {route.owner.name} (a relative path is "
                    f"relative to {side.name}'s repo ({side.repo}), ~/ is its home); nothing was moved")
        if problem.reason == "no parent":
            return (f"create it first (on {route.dest.host.name}: mkdir -p {shlex.quote(problem.path)}) or correct dest "
                    f"of the entry '{route.entry.name}' of {route.owner.name}; nothing was moved")
        return ""

    @staticmethod
    def _cache_only(route: P.Route, leg: P.Leg, result: TransferResult) -> bool:
        """A dry run fills no cache, so a relay's second leg can only compare the cache the last run left.
        Before any real run there is none: say so, and count what the first leg would bring (True: skip)."""
        if os.path.exists(leg.call.src):
            result.warnings.append(f"dry run: the changes on {route.dest.display} are computed from the laptop's "
                                   f"relay cache as the last run left it, before what would come from "
                                   f"{route.src.host.name} (listed first)")
            return False
        result.warnings.append(f"dry run: the laptop's relay cache is still empty, so what would change on "
                               f"{route.dest.display} shows after the first real run; listed is what would come "
                               f"from {route.src.host.name}")
        result.files, result.bytes = result.legs[-1].files, result.legs[-1].bytes
        return True

    @staticmethod
    def _where(leg: P.Leg, second_hop: bool) -> str:
        if leg.on is not None:
            return f"{leg.peer.name} (as seen from {leg.on.name})" if second_hop else leg.on.name
        return leg.peer.name if leg.peer is not None else "the laptop"

    def _hint(self, problem: Diagnosis, leg: P.Leg, second_hop: bool = False) -> str:
        if second_hop and problem.reason in UNREACHABLE:
            return (f"direct: true uses {leg.on.name}'s own ssh: it needs a key {leg.peer.name} accepts and "
                    f"{leg.peer.name}'s host key in its known_hosts (compare the fingerprint first); or remove "
                    "direct: true to relay through the laptop")
        host = (leg.on or leg.peer).name if (leg.on or leg.peer) else "the host"
        if problem.partial:
            return (f"nothing is lost: files at the destination are unchanged or backed up; when {host} is back, "
                    f"run {self.rerun} again to finish. A file cut off half-way resumes from {PARTIAL_DIR}/ "
                    "next to it, if the receiving side could keep it there; a receiving host that died could "
                    "not: that file is sent again, and rsync's half-written .NAME.XXXXXX beside it can be deleted")
        return {
            "host key unknown": f"check the fingerprint with the host's owner, then run: agentsync trust {host}",
            "host key changed": f"if {host} was reinstalled, remove its old key (ssh-keygen -R) and run: "
                                f"agentsync trust {host}",
            "auth": f"check the IdentityFile ssh_config gives for {host}",
            "no rsync": f"install rsync on {host} (Debian/Ubuntu: apt-get install rsync)",
            "files": "see rsync's messages below; fix them and run it again",
        }.get(problem.reason, f"is {host} up, and its network (VPN/ZeroTier) connected? `agentsync health` shows it")

    def _absorb(self, route: P.Route, leg: P.Leg, out: RsyncOutput, result: TransferResult) -> None:
        secrets = secret_rules(self.opts.settings.secrets)  # the rule rsync names → the secret pattern
        seen = {h["path"] for h in result.held_back}
        for path, rule in out.hidden:
            if rule in secrets and leg.prefix + path not in seen:
                result.held_back.append({"path": leg.prefix + path, "pattern": secrets[rule], "reason": "secret"})
                seen.add(leg.prefix + path)
            elif rule not in secrets and rule != ".git" and not rule.startswith(PARTIAL_DIR) and \
                    (rule in route.entry.exclude or not rule.startswith("/")):  # "/data": sent by its own run
                result.excluded += 1
        shown = leg.final or self.opts.dry_run
        for change in out.changes if shown else ():
            item = {"action": change.action, "path": leg.prefix + change.path}
            result.changes.append(item | ({"leg": leg.label} if route.mode == "relay" else {}))
        if not leg.final:
            return
        result.files += out.stats.get("files", 0)
        result.bytes += out.stats.get("bytes", 0)
        result.wire_bytes = sum(leg_.wire_bytes for leg_ in result.legs)
        result.deleted += out.stats.get("deleted", 0)
        if self.opts.dry_run:
            return  # rsync -n announces the backups of deletions it would make; nothing was backed up
        backed_up = [(leg.prefix + path, where) for path, where in out.backed_up]
        for path, where in backed_up:
            result.backed_up.append({"path": path, "backup": where, "restore": self._restore(leg, where, path)})
        if backed_up and not result.backup_dir:
            path, where = backed_up[0]
            result.backup_dir = where[: -len(path) - 1]
            result.restore_all = self._on_receiver(leg, ["rsync", "-rlpt", "--", result.backup_dir + "/",
                                                         _dest_root(leg.dest_dir, path) + "/"])

    def _restore(self, leg: P.Leg, backup: str, path: str) -> str:
        # -a: a backed-up symlink comes back as the link (cp -p would copy what it points to, or fail)
        return self._on_receiver(leg, ["cp", "-a", "--", backup, _dest_root(leg.dest_dir, path) + "/" + path])

    def _on_receiver(self, leg: P.Leg, argv: list[str]) -> str:
        if leg.receiver is None:
            return shlex.join(argv)
        target = self.ssh(leg.receiver)
        hop = ["ssh", *(["-F", target.config] if target.config else []),
               *(["-p", str(target.port)] if target.port else []), target.target]
        return shlex.join([*hop, join(argv)])

    def _code_files(self, route: P.Route, result: TransferResult) -> list[str]:
        """push-code's file list: git's view of the laptop's checkout, minus guarded files while a guard runs."""
        files = git_files(P.controller(self.inv).repo)
        host = route.owner
        if host.guard.processes and host.guard.critical_files:
            files = self._guarded(host, files, result)
        return files

    def _guarded(self, host: Host, files: list[str], result: TransferResult) -> list[str]:
        critical = [f for f in files if is_critical(f, host.guard.critical_files)]
        if not critical:
            return files
        state = guard_processes(self.ssh, host)
        if state.unknown and self.allow_running:
            result.warnings.append(f"--allow-running: sent {', '.join(critical)} though processes on {host.name} "
                                   f"cannot be seen ({state.detail})")
            return files
        if state.unknown:
            result.held_back += [{"path": f, "reason": "guard", "pid": None, "command": f"unknown: {state.detail}"}
                                 for f in critical]
            return [f for f in files if f not in set(critical)]
        if not state.processes:
            return files
        proc = state.processes[0]
        if self.allow_running:
            result.warnings.append(f"--allow-running: sent {', '.join(critical)} while pid {proc.pid} "
                                   f"({proc.command}) runs")
            return files
        result.held_back += [{"path": f, "reason": "guard", "pid": proc.pid, "command": proc.command}
                             for f in critical]
        return [f for f in files if f not in set(critical)]


def _nul_list(names: list[str]) -> bytes:
    return b"".join(name.encode("utf-8", "surrogateescape") + b"\0" for name in names)


def _far_ends(route: P.Route) -> list[Host]:
    """The remote machines whose rsync a route starts (the receiving one first: it is the one asked about links)."""
    return [p.host for p in (route.dest, route.src) if not p.local]


def _dest_root(dest: str, path: str) -> str:
    """The directory rsync's backup paths are relative to: the destination, or its parent when the destination
    names the file itself (`src: ckpt/best.pt, dest: models/gpu-best.pt` backs up `gpu-best.pt`)."""
    if dest.endswith("/"):
        return dest.rstrip("/")
    if "/" not in path and dest.rsplit("/", 1)[-1] == path:
        return dest.rsplit("/", 1)[0] or "/"
    return dest


def keep_notices(out: RsyncOutput, stderr: str) -> str:
    """When rsync fails, the notices still in flight (a file it backed up, one it held back) land on stderr:
    keep them in the report, and return the rest — the actual error text."""
    errors = []
    for line in stderr.splitlines():
        if (backup := parse_backup(line)) is not None:
            out.backed_up.append(backup)
        elif (hidden := HIDING.match(line)) is not None:
            out.hidden.append((unescape(hidden.group(2)), hidden.group(3)))
        else:
            errors.append(line)
    return "\n".join(errors)
