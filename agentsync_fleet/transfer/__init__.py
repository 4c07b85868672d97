"""rsync transfers: push code to a host, bring results back, host-to-host relays.

`entries` reads and checks the inventory's `rsync:` / `results:` keys,
`plan` turns an entry into a route (which machine and path on each side),
`../steps/rsync.py` builds the exact ssh and rsync argv, `parse` reads
rsync's output, `run` executes a route (the only I/O here), `stages` plugs
the transfers into sync-all.
"""
