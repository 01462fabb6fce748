"""Experiment trackers (``logger=...``): copies of a run in the tracking tool a lab already uses.

The run directory stays the source of truth. A tracker receives what the run has anyway (its resolved
config, one record per epoch from the fitter, the summary and files at the end) and never fails or
slows the run: ``Trackers`` turns any exception of one tracker into a single warning line naming it,
and drops it for the rest of the run.
"""


