"""Command lines for patch relay, built from argv and quoted (like `steps/git.py`).

Every option that changes what travels is spelled out rather than left to the
host's git config: format-patch gets fixed prefixes, suffix, no signoff and
mboxrd quoting, and empty commits too (`--always`); `git am` keeps the
subject as written (`-k`), carriage returns, and empty commits. The dry-run plan shows these exact lines.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from ..shell import Raw, join, path_arg
from .git import ENV, git

RELAY_DIR = "agentsync-relay"
# Re-creating commits that already exist: the target's commit hooks (which could edit the message) stay out.
NO_HOOKS = ("-c", "core.hooksPath=/dev/null")


def relay_dir(common_dir: str, relay_id: str) -> str:
    """Where one relay keeps its files on a host: inside .git, never in the working tree."""
    return f"{common_dir.rstrip('/')}/{RELAY_DIR}/{relay_id}"


def has_commit(path: str, sha: str) -> str:
    return git(path, "cat-file", "-e", f"{sha}^{{commit}}")


def merge_base(path: str, a: str, b: str) -> str:
    return git(path, "merge-base", a, b)


def commits(path: str, base: str, head: str) -> str:
    return git(path, "log", "--reverse", f"--format={LOG_FORMAT}", f"{base}..{head}")


def merges(path: str, base: str, head: str) -> str:
    return git(path, "rev-list", "--count", "--merges", f"{base}..{head}")


def written_names(path: str, base: str, head: str) -> str:
    """Every path any commit of the range adds or changes (renames split, so a new name shows as added)."""
    return git(path, "-c", "core.quotepath=off", "log", "-z", "--format=", "--name-only", "--no-renames",
               "--diff-filter=d", f"{base}..{head}")


def numstat(path: str, base: str, head: str) -> str:
    return git(path, "-c", "core.quotepath=off", "diff", "--numstat", "-z", "-M", base, head)


def format_patch(path: str, out_dir: str, base: str, head: str) -> str:
    return git(path, "format-patch", "--always", "-k", "--full-index", "--binary", "--pretty=mboxrd", "--src-prefix=a/",
               "--dst-prefix=b/", "--no-signoff", "--no-signature", "--no-attach", "--suffix=.patch", "-o", out_dir,
               f"{base}..{head}")


def am(path: str, patches: list[str]) -> str:
    return git(path, "am", "-3", "-k", "--keep-cr", "--patch-format=mboxrd", "--empty=keep", *patches)


def am_abort(path: str) -> str:
    return git(path, "am", "--abort")


def message_file(relay_dir: str, index: int) -> str:
    """Where commit number `index` (1-based, patch order) keeps its exact message beside the patches."""
    return f"{relay_dir}/{index:04d}.msg"


def write_messages(path: str, relay_dir: str, shas: list[str]) -> str:
    """Each commit's raw message, byte for byte (the commit object after its headers), into NNNN.msg files.

    format-patch + am lose parts of some messages (a `---` line ends the message, a multi-line first
    paragraph becomes one subject line); these files let the target restore them exactly.
    """
    for sha in shas:
        if not re.fullmatch(r"[0-9a-f]{40,64}", sha):
            raise ValueError(f"not a commit id: {sha!r}")
    return " && ".join(git(path, "cat-file", "commit", sha) + " | sed '1,/^$/d' > " +
                       shlex.quote(message_file(relay_dir, index)) for index, sha in enumerate(shas, 1))


def keep_message(path: str, message: str) -> str:
    """Give HEAD exactly the message in file `message` (amend keeps author and date), unless it has it already."""
    return (git(path, "cat-file", "commit", "HEAD") + " | sed '1,/^$/d' | " + join(["cmp", "-s", "-", message])
            + " || " + git(path, *NO_HOOKS, "commit", "--amend", "--quiet", "--allow-empty", "--cleanup=verbatim",
                           "-F", message))


def apply_3way(path: str, patch: str) -> str:
    return git(path, "apply", "--3way", patch)


def apply_reject(path: str, patch: str) -> str:
    return git(path, "apply", "--reject", patch)


def commit_as(path: str, author: str, email: str, date: str, message: str) -> str:
    """Commit the index as the original commit: its author, date and exact message (file `message`)."""
    return join([Raw("env"), f"GIT_AUTHOR_NAME={author}", f"GIT_AUTHOR_EMAIL={email}", f"GIT_AUTHOR_DATE={date}",
                 Raw(ENV), "git", "-C", path_arg(path), *NO_HOOKS, "commit", "--quiet", "--allow-empty",
                 "--cleanup=verbatim", "-F", message])


def index_changed(path: str) -> str:
    """Exit 1 if the index differs from HEAD (something to commit), 0 if not."""
    return git(path, "diff", "--cached", "--quiet")


def create_branch(path: str, name: str, commit: str) -> str:
    return git(path, "branch", name, commit)


def bundle_create(path: str, bundle: str, ref: str, known: list[str]) -> str:
    return git(path, "bundle", "create", "--quiet", bundle, ref, *(f"^{sha}" for sha in known))


def bundle_verify(path: str, bundle: str) -> str:
    return git(path, "bundle", "verify", "--quiet", bundle)


def bundle_heads(path: str, bundle: str) -> str:
    return git(path, "bundle", "list-heads", bundle)


def fetch_bundle(path: str, bundle: str, ref: str, dest: str) -> str:
    """Fetch `ref` from the bundle into `dest`; no `+`, so a non-fast-forward is refused."""
    return git(path, "fetch", "--quiet", "--no-tags", bundle, f"{ref}:{dest}")


def make_dir(path: str) -> str:
    return join(["mkdir", "-p", "--", path])


def remove_relay_dir(path: str) -> str:
    """Remove a relay's own directory; refuses anything that is not one (it is our path, built above)."""
    if f"/{RELAY_DIR}/" not in path or path.rstrip("/").endswith(RELAY_DIR):
        raise ValueError(f"not a relay directory: {path}")
    return join(["rm", "-rf", "--", path])


def copy_file(src: str, dest: str) -> str:
    return make_dir(posixpath.dirname(dest)) + " && " + join(["cp", "--", src, dest])


def validate(repo_path: Raw, command: str) -> str:
    """The inventory's `validate:` command, run in the repo by `sh -c`.

    The one place where text runs as shell: it is the user's own command, from their inventory, on their
    own host. It is passed as one quoted argument to `sh -c`; nothing of ours is spliced into it.
    """
    return join(["cd", repo_path]) + " && " + join(["sh", "-c", command])


LOG_FORMAT = "%H%x1f%an%x1f%ae%x1f%aI%x1f%s%x1e"  # parsed by `parse_commits`
