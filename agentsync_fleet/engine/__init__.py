"""The stage kernel: what every sync-all stage is and shares, knowing no feature.

`context.RunContext` is the typed state of one run (the inventory, the
hosts' records, the preflight facts, and named fields for what one stage
tells a later one); `stage.Stage` is the protocol a stage follows and
`stage.step()` records one step on one host; `moves` gives a stage its
checkout and moves it under the guards. `pipeline.py` lists the stages.
"""
