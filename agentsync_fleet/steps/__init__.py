"""Pure builders of the commands each step family runs (git, worktrees, ...): text in, text out."""
