"""What is done with result files once a run has written them.

- `results`: reading OMB result files and their sidecars;
- `report` and `charts`: `bench report`'s HTML page and its PNG charts;
- `compare`: `bench compare`'s figures and verdicts.
"""
