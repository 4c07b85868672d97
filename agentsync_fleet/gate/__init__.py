"""The deploy gate the team defines: custom checks, expected untracked files, processes expected up.

`model` holds the pure nouns and rules (no I/O), `metrics` reads metric files'
text, `commands` builds the remote shell text and parses what comes back, and
`runner` is the only part that talks to a host (through a session).
"""
