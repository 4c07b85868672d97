"""Patch relay: carry commits from a host that cannot reach the git server to one that can.

`export` finds and writes the patches on the source, `apply` applies them on
the target (backup branch first, computed in a scratch worktree, validated,
rolled back on failure), `bundle` brings the converged branch back to the
source, and `core` ties one relay together for `patch-relay` and sync-all.
"""
