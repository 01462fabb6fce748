"""What strf-runner's own sweep plugins do, and what they share with the SLURM launcher
(``strf_runner.slurm``). The classes Hydra loads are in ``hydra_plugins/strf_runner_sweep``; Hydra's
plugin scan imports them on every start, so this module imports nothing heavy until a sweep runs.

- ``hydra/launcher=local_parallel`` (``ProcessPerJob``): ``n_jobs`` jobs at a time on this machine,
  each in a process of its own. A job whose process ends without a result (killed from outside: the
  OOM killer, ``kill -9``; a crash) is recorded in its run dir as the SLURM launcher records a job
  SLURM ended (``record_ended``): ``ended.json`` beside a saved training state (the run is unfinished,
  and a re-run of the sweep resumes it), else ``failed.json``. The other jobs run on, the sweep ends
  with its aggregate, which lists the run, and one line on stderr says what happened. (joblib's
  process pool, which this launcher replaces, stops every job of the sweep when one of its worker
  processes dies, and cannot tell which job that process ran.) Ctrl-C or SIGTERM stops the sweep: the
  jobs' processes, which leave SIGINT to it, are sent SIGTERM, and each run keeps its last finished epoch.
- The Optuna sweeper of ``+experiment=tune`` (``run_study``): a trial whose run did not finish with a
  score (failed, killed, or a score that is NaN, as a run diverging at a high learning rate gives) is
  told to the study as failed, and the study goes on; the best trial is written if any trial has a score.
"""

from __future__ import annotations

import functools
import logging
import math
import multiprocessing
import os
import signal
import sys
from collections import deque
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Sequence

from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from omegaconf import DictConfig, OmegaConf, open_dict

from strf_runner.errors import ConfigError
from strf_runner.exit_status import INTERRUPTED, SWEEP_JOBS

log = logging.getLogger(__name__)


def job_config(hydra_context: Any, config: DictConfig, overrides: Sequence[str], num: int, job_id: str) -> DictConfig:
    """The config of job ``num`` of a sweep (task and hydra nodes), composed as Hydra's launchers do."""
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config.hydra.job):
        sweep_config.hydra.job.num = num
        sweep_config.hydra.job.id = job_id
    return sweep_config


def job_dir(sweep_config: DictConfig) -> Path:
    """The run dir of the job whose config (``job_config``) is ``sweep_config``."""
    return Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)


def record_ended(sweep_config: DictConfig, record: dict[str, Any], err: BaseException, resumable_as: str) -> Path:
    """Write why a sweep job's process ended before its run did (``record``: its ``error`` line and what
    the launcher knows) into the job's run dir, and return the dir. Beside a saved training state it goes
    to ``resumable_as`` (slurm.json, ended.json), and a re-run of the sweep resumes the run; else to
    failed.json, with the job's config.yaml. A finished run is left as it is."""
    from strf_runner.results.rundir import LAST_STATE, RunDir
    from strf_runner.sweep import record_failure

    path = job_dir(sweep_config)
    run = RunDir(path)
    if run.finished:
        return path
    if (path / LAST_STATE).is_file():
        run.write_json(resumable_as, {**record, "error": record["error"] + f"; its last finished epoch is in "
                                      f"{LAST_STATE}: re-run the sweep to resume it"})
    else:
        task = OmegaConf.masked_copy(sweep_config, [k for k in sweep_config if k != "hydra"])
        record_failure(path, task, err, record["error"], extra=record)
    return path


def ended_job_return(overrides: Sequence[str], path: Path) -> JobReturn:
    """What a launcher returns for a job that ended without a result: a NaN score, which the sweepers
    take for a run that did not finish (``run_study`` tells it to the study as failed)."""
    return JobReturn(overrides=list(overrides), working_dir=str(path), status=JobStatus.COMPLETED,
                     _return_value=math.nan)


# --------------------------------------------------------------------------------- local_parallel


class ProcessPerJob:
    """``hydra/launcher=local_parallel``: a mixin before Hydra's Launcher (see the module docstring)."""

    def __init__(self, n_jobs: int = 2) -> None:
        self.n_jobs = n_jobs
        self.config: DictConfig | None = None
        self.task_function: Any = None
        self.hydra_context: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: DictConfig) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import cloudpickle

        assert self.config is not None and self.hydra_context is not None
        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        at_once = self._at_once()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Launching {len(job_overrides)} jobs locally, {at_once} at a time, each in a process of its own; "
                 f"sweep output dir: {sweep_dir}")
        jobs = []
        for num, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))}")
            config = job_config(self.hydra_context, self.config, overrides, num, f"{self.config.hydra.job.name}_{num}")
            jobs.append(_Job(num, list(overrides), config))
        common = cloudpickle.dumps((self.hydra_context, self.task_function, Singleton.get_state()))
        context = _job_context()
        waiting, running, ended = deque(jobs), [], []
        try:
            while waiting or running:
                while waiting and len(running) < at_once:
                    running.append(waiting.popleft())
                    running[-1].start(context, common)
                ready = wait([obj for job in running for obj in job.waitables()])
                for job in [job for job in running if job.poll(ready)]:
                    running.remove(job)
                    if job.returned is None:
                        ended.append(f"#{job.num} {job.ending()} ({job.record().name})")
        except KeyboardInterrupt:
            _stop(running)
            raise
        for job in jobs:
            SWEEP_JOBS.add(job.dir)
        if ended:
            print(f"strf-run: {len(ended)} of {len(jobs)} jobs ended before their run finished: {'; '.join(ended)}; "
                  "their run dirs say so (failed.json or ended.json); re-run the same command to train only what is "
                  "missing", file=sys.stderr)
        return [job.returned or ended_job_return(job.overrides, job.dir) for job in jobs]

    def _at_once(self) -> int:
        """How many jobs run at the same time: n_jobs, or one per CPU core for -1."""
        if self.n_jobs == -1:
            return os.cpu_count() or 1
        if isinstance(self.n_jobs, int) and self.n_jobs >= 1:
            return self.n_jobs
        raise ConfigError(f"hydra.launcher.n_jobs={self.n_jobs} must be a number of jobs >= 1, or -1 for one per "
                          "CPU core")


# what a job imports before its run starts (torch._inductor: torch.use_deterministic_algorithms imports it)
PRELOAD = ["torch", "torch._inductor", "strf_runner.cli", "strf_runner.experiment"]


def _job_context() -> Any:
    """How a job's process starts: forked from a server process that has imported ``PRELOAD`` once
    (``forkserver``), so that a job does not pay torch's import (seconds) again; the server is a fresh
    interpreter that has run no torch op, so no threads or CUDA state are forked. Where there is no
    forkserver (Windows), a fresh interpreter per job (``spawn``)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


class _Job:
    """One job of a local_parallel sweep: its config, its process, and the JobReturn it sent back."""

    def __init__(self, num: int, overrides: list[str], config: DictConfig) -> None:
        self.num, self.overrides, self.config = num, overrides, config
        self.dir = job_dir(config)
        self.process: Any = None
        self.results: Connection | None = None
        self.returned: JobReturn | None = None

    def start(self, context: Any, common: bytes) -> None:
        """Start the job's process; the sweep's process keeps the reading end of the pipe it answers on."""
        import cloudpickle

        reader, writer = context.Pipe(duplex=False)
        self.process = context.Process(target=_job_process, args=(common, cloudpickle.dumps(self.config), writer),
                                       name=f"strf-run job #{self.num}")
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by a spawned job and the forkserver
        try:
            self.process.start()
        finally:
            signal.signal(signal.SIGINT, previous)
        writer.close()
        self.results = reader

    def waitables(self) -> list[Any]:
        return [self.process.sentinel] + ([self.results] if self.results is not None else [])

    def poll(self, ready: list[Any]) -> bool:
        """Take the job's JobReturn if ``ready`` (from ``wait``) says it came; True once its process ended."""
        import cloudpickle

        ended = self.process.sentinel in ready
        if self.results is not None and (self.results in ready or ended):
            if self.results.poll():  # a result sent just before the process ended still waits in the pipe
                try:
                    self.returned = cloudpickle.loads(self.results.recv_bytes())
                except EOFError:  # the process ended without sending one
                    pass
                self.results.close()
                self.results = None
        if ended:
            self.process.join()
            if self.results is not None:
                self.results.close()
                self.results = None
        return ended

    def ending(self) -> str:
        """How the job's process ended, in words: 'was killed by SIGKILL', 'exited with status 3'."""
        code = self.process.exitcode
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        if code == INTERRUPTED:
            return "was stopped by SIGTERM"
        return f"exited with status {code}"

    def record(self) -> Path:
        """Write into the job's run dir that its process ended before the run did (``record_ended``)."""
        from strf_runner.results.rundir import ENDED

        record = {"exit_code": self.process.exitcode, "error": f"its process {self.ending()} before the run finished"}
        return record_ended(self.config, record, ChildProcessError(record["error"]), ENDED)


def _job_process(common: bytes, job: bytes, results: Connection) -> None:
    """The process of one local_parallel job: runs it and sends its JobReturn back. SIGTERM stops the run
    as Ctrl-C does (it keeps its last finished epoch) and the process exits with INTERRUPTED; SIGINT is
    ignored (inherited from ``_Job.start``): Ctrl-C in the terminal is the sweep's process's to pass on."""
    import cloudpickle

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        hydra_context, task_function, singleton_state = cloudpickle.loads(common)
        config = cloudpickle.loads(job)
        setup_globals()
        Singleton.set_state(singleton_state)
        HydraConfig.instance().set_config(config)
        returned = run_job(hydra_context=hydra_context, task_function=task_function, config=config,
                           job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    results.send_bytes(cloudpickle.dumps(returned))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop(running: list[_Job]) -> None:
    """Stop the jobs still running: SIGTERM, then wait for each (a second Ctrl-C kills them at once)."""
    for job in running:
        if job.process.is_alive():
            job.process.terminate()
    try:
        for job in running:
            job.process.join()
    except KeyboardInterrupt:
        for job in running:
            job.process.kill()
        raise


# ----------------------------------------------------------------------------------------- Optuna


def run_study(impl: Any, arguments: list[str]) -> None:
    """The study of the Optuna sweeper (``impl``: hydra-optuna-sweeper's OptunaSweeperImpl, set up), as
    its own ``sweep`` runs it, except that a trial whose run did not finish with a score is told to the
    study as failed (never as a NaN value, which optuna refuses, ending the whole sweep) and the study goes
    on, unless more than ``hydra.sweeper.max_failure_rate`` of a batch of trials failed: then it stops early.
    The best trial goes to optimization_results.yaml if any trial has a score."""
    import optuna
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides
    from optuna.trial import TrialState

    folds = OmegaConf.select(impl.config, "cv.folds")
    if folds is not None:
        raise ConfigError(f"cv.folds={folds} cannot be used with the Optuna sweeper (+experiment=tune): a trial's "
                          "objective is one run's validation score; tune without cv.folds, then cross-validate the "
                          "best parameters with strf-run cv.folds=k")
    directions = impl._get_directions()
    if len(directions) != 1:
        raise ConfigError(f"hydra.sweeper.direction={directions}: strf-run's objective is one number (the run's "
                          "best validation score), so give one direction")
    impl._process_searchspace_config()
    distributions, fixed = create_params_from_overrides(impl._parse_sweeper_params_config() + list(arguments))
    distributions = {**(impl.search_space_distributions or {}), **distributions}
    for name in fixed:
        distributions.pop(name, None)
    sampler, n_trials = impl.sampler, impl.n_trials
    grid = isinstance(sampler, functools.partial) and sampler.func == optuna.samplers.GridSampler
    if grid:
        choices = {name: impl._to_grid_sampler_choices(d) for name, d in distributions.items()}
        sampler = sampler(choices)
        n_trials = min(n_trials, math.prod(len(c) for c in choices.values()))
    study = optuna.create_study(study_name=impl.study_name, storage=impl.storage, sampler=sampler,
                                directions=directions, load_if_exists=True)
    log.info(f"Study name: {study.study_name}; storage: {impl.storage}; sampler: {type(sampler).__name__}; "
             f"direction: {directions[0]}")
    to_go = n_trials
    while to_go > 0:
        trials = [study.ask() for _ in range(min(to_go, impl.n_jobs))]
        returns = impl.launcher.launch(impl._configure_trials(trials, distributions, fixed),
                                       initial_job_idx=impl.job_idx)
        impl.job_idx += len(returns)
        failed = 0
        for trial, ret in zip(trials, returns):
            value, why = _score(ret)
            if value is None:
                failed += 1
                log.warning(f"Trial {trial.number} told to the study as failed: {why}")
            try:
                study.tell(trial, state=TrialState.FAIL) if value is None else study.tell(trial, value)
            except RuntimeError as err:  # the grid sampler asks to stop the study once its grid is done
                if not (grid and "`Study.stop` is supposed to be invoked" in str(err)):
                    raise
        to_go -= len(trials)
        if failed / len(trials) > impl.max_failure_rate and to_go > 0:
            print(f"strf-run: the study stops after trial {trials[-1].number}: {failed} of the {len(trials)} trials "
                  f"of its last batch failed, more than hydra.sweeper.max_failure_rate={impl.max_failure_rate}",
                  file=sys.stderr)
            break
    if not any(t.state == TrialState.COMPLETE for t in study.trials):
        print("strf-run: no trial of the study finished with a score: no optimization_results.yaml",
              file=sys.stderr)
        return
    best = study.best_trial
    log.info(f"Best parameters: {best.params}")
    log.info(f"Best value: {best.value}")
    OmegaConf.save(OmegaConf.create({"name": "optuna", "best_params": best.params, "best_value": best.value}),
                   Path(str(impl.config.hydra.sweep.dir)) / "optimization_results.yaml")


def _score(ret: JobReturn) -> tuple[float | None, str]:
    """A trial's value, the run's best validation score, or None and why there is none."""
    if ret.status != JobStatus.COMPLETED:
        from strf_runner.entry import error_line

        return None, f"its job raised {error_line(ret._return_value)}"
    value = float(ret.return_value)
    return (value, "") if math.isfinite(value) else (None, "its run did not finish with a score (its run dir says why)")
