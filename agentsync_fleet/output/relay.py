"""How a patch relay looks: what travels, how it was applied, and what to do when it did not."""

from __future__ import annotations

from rich.markup import escape

from ..steps.git import ENV as GIT_ENV
from . import console

STYLE = {"ok": "green", "nothing": "green", "planned": "cyan", "refused": "red", "conflict": "red",
         "guarded": "yellow", "validation-failed": "red", "failed": "red", "unreachable": "red", "skipped": "yellow"}
NEXT = {
    "refused": "take the protected file out of those commits on the source, then relay again",
    "conflict": "apply the kept patches by hand on the target (git am -3), or fix the source's commits",
    "validation-failed": "fix the failure on the source (or the target's validate command) and relay again",
    "guarded": "stop the guarded process yourself when it is safe, or rerun with --allow-running",
}


def _counts(r) -> str:
    files = f"{len(r.files)} file(s), +{r.insertions} -{r.deletions}"
    return f"{len(r.commits)} commit(s), {files}"


def render_relay(r, dry_run: bool = False) -> None:
    out = console()
    style = STYLE.get(r.status, "white")
    out.print(f"[bold]patch-relay[/] {escape(r.source)} → {escape(r.target)} ({escape(r.source_branch)})"
              + (" — dry run, nothing will be changed" if dry_run else ""))
    if r.base:
        out.print(f"  base {r.base[:8]}: {escape(r.base_how)}", soft_wrap=True)
    if r.commits:
        out.print(f"  {_counts(r)}")
        for c in r.commits:
            out.print(f"    {c['sha'][:8]} {escape(c['subject'])} [dim]({escape(c['author'])}, {c['date']})[/]",
                      soft_wrap=True)
    if r.backup_branch:
        out.print(f"  backup branch: {escape(r.backup_branch)} at {r.head_before[:8]}")
    if r.method:
        how = "git am -3" if r.method == "am" else "git apply --3way (git am failed)"
        skipped = f", {r.skipped} already there" if r.skipped else ""
        out.print(f"  applied with {how}: {r.applied} new commit(s){skipped}; "
                  f"{escape(r.target)} {r.head_before[:8]}→{r.head_after[:8]}"
                  + (" (stash used)" if r.stash_used else ""))
    if r.validation:
        verdict = "[green]passed[/]" if r.validation["ok"] else "[red]failed[/]"
        out.print(f"  validation `{escape(r.validation['command'])}`: {verdict}")
    if r.pushed:
        out.print("  pushed to origin")
    for command in r.plan:
        out.print(f"    [dim]$[/] {escape(command.replace(GIT_ENV + ' ', ''))}", soft_wrap=True)
    out.print(f"[{style}]{r.status}[/]" + (f": {escape(r.message)}" if r.message else ""), soft_wrap=True)
    if r.rejects:
        out.print(f"  rejected hunks: {escape(', '.join(r.rejects))} (in {escape(r.kept_in)}/rejects)", soft_wrap=True)
    if r.status in NEXT:
        out.print(f"  [dim]next: {NEXT[r.status]}[/]", soft_wrap=True)
