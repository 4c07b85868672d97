"""Jobs: long commands started on a fleet host, detached, watched and brought to an end from the laptop.

`model.py` holds the rules (pure): what a job is, its state from the facts a
host reports, names, presets, which job a reference means. `scripts.py`
builds the POSIX sh scripts that start, list, follow and cancel jobs on a
host, each with the parser of its output. `runner.py` runs them through the
hosts' sessions. Nothing needs installing on a host but `sh` and `setsid`
(tmux is used when present).
"""
