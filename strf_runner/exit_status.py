"""``strf-run``'s exit status, and the jobs of a sweep that decide it.

=====  ==========================================================================================
0      every run finished
1      a single run whose training failed (TrainingError: failed.json), or any run of a sweep that
       failed or did not finish, whatever the reason (the sweep's aggregate and one line say which)
2      the command, its config, data or files are at fault: one line names the key, file or value
130    interrupted (Ctrl-C, SIGTERM): the last finished epoch is kept; re-run to resume
=====  ==========================================================================================

A sweep is judged on the jobs this process launched, each by its run dir once the sweep has ended
(finished: summary.json), never on everything in its sweep dir, where another sweep may be writing at
the same time. ``SWEEP_JOBS`` collects them: the end-of-sweep callback (``strf_runner.sweep``) starts
it and adds the jobs that run in this process (Hydra's basic launcher); the launchers that run jobs in
other processes (``hydra/launcher=local_parallel``, ``slurm``) add theirs, the ones that ended without
a result included.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

FINISHED = 0
RUN_FAILED = 1
REFUSED = 2
INTERRUPTED = 130


class SweepJobs:
    """The run dirs of the jobs that the sweep of this process launched; empty and ignoring ``add``
    until ``start`` (a job run in a worker process adds to that process's own, unstarted, collection)."""

    def __init__(self) -> None:
        self._dirs: dict[Path, None] | None = None
        self.counts: Counter[str] = Counter()

    def start(self) -> None:
        self._dirs = {}
        self.counts = Counter()

    def add(self, job_dir: str | Path) -> None:
        if self._dirs is not None:
            self._dirs[Path(job_dir).resolve()] = None

    def end(self) -> Counter[str]:
        """How the jobs ended, read from their run dirs: the number of runs by status (finished, failed,
        unfinished, corrupt), also kept as ``counts``."""
        from strf_runner.results.collect import survey_run

        self.counts = Counter(survey_run(job_dir).status for job_dir in self._dirs or {})
        return self.counts

    @property
    def not_finished(self) -> int:
        return sum(n for status, n in self.counts.items() if status != "finished")

    @property
    def exit_status(self) -> int:
        """RUN_FAILED if a job of the ended sweep did not finish, else FINISHED (also outside a sweep)."""
        return RUN_FAILED if self.not_finished else FINISHED


SWEEP_JOBS = SweepJobs()
