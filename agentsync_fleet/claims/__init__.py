"""Work claims: who is working on which area of the repo, kept on a ref in origin.

`model.py` holds the rules (pure), `store.py` reads and updates the ref by
compare-and-swap through a host's session, `stage.py` is the sync-all stage
that warns when incoming commits touch someone else's claimed area.
"""
