"""sync-all: an ordered plan of stages across the fleet (preflight → publish → converge → worktrees → ...)."""
