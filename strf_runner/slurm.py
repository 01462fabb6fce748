"""``hydra/launcher=slurm``: submitit's SLURM launcher, made to survive its jobs.

Hydra takes launchers only from the ``hydra_plugins`` package: the launcher class is
``hydra_plugins.strf_runner_slurm.SlurmLauncher``, this module's ``SurvivingJobs`` on top of the
submitit plugin's SLURM launcher. It is imported by Hydra's plugin scan on every start, so it imports
nothing heavy until a sweep is launched.

The plugin's launcher submits the sweep as one job array and then asks every job for its result: one
job that SLURM cancelled, killed for its time limit or memory, or lost with its node raises in the
parent, and the whole sweep ends in a traceback with no aggregate. This subclass:

* fills the resources the config leaves ``null`` from the run config: no GPU request at all when
  ``trainer.device=cpu`` (else one GPU), ``cpus_per_task`` = ``trainer.threads`` (4 when unset);
* turns a submission that sbatch refuses (a GPU on a partition without GPUs, more CPUs or memory than
  a node has) into one line that quotes sbatch and the requests, before anything runs;
* waits for every job, and records each one that ended without a result in its run dir, with SLURM's
  state and job id (``strf_runner.launchers.record_ended``, shared with ``hydra/launcher=local_parallel``):
  ``slurm.json`` beside a saved training state (the run is unfinished, and a re-run of the sweep resumes
  it), else ``failed.json``. The sweep then goes on to its aggregate, which lists those runs, and one line
  says what happened and that re-running the same command trains only what is missing; strf-run exits
  with status 1 (``strf_runner.exit_status``: every job of the array counts).

Preemption and time limits: submitit sends USR2 ahead of the limit (``signal_delay_s``) or on
preemption, calls ``checkpoint`` (the plugin's: resubmit the same job) and requeues it. The requeued
job starts the same run again; finding the run's ``last.pt``, it resumes from its last finished epoch
and ends as an uninterrupted run would. An explicit ``scontrol requeue`` does the same.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from omegaconf import DictConfig, OmegaConf

from strf_runner.errors import ConfigError
from strf_runner.exit_status import SWEEP_JOBS

log = logging.getLogger(__name__)
DEFAULT_CPUS = 4
REQUESTS = ("partition", "cpus_per_task", "gpus_per_node", "gres", "mem_gb", "timeout_min")


def resources(params: dict[str, Any], config: DictConfig) -> dict[str, Any]:
    """The launcher's parameters with the ``null`` requests filled from the run config."""
    out = dict(params)
    if out.get("gpus_per_node") is None and out.get("gres") is None:
        device = str(OmegaConf.select(config, "trainer.device", default="auto"))
        out["gpus_per_node"] = None if device == "cpu" else 1  # None: no GPU flag in the script at all
    if out.get("cpus_per_task") is None:
        threads = OmegaConf.select(config, "trainer.threads", default=None)
        out["cpus_per_task"] = int(threads) if threads is not None else DEFAULT_CPUS
    return out


class SurvivingJobs:
    """What the SLURM launcher adds to submitit's (a mixin before its class; see the module docstring).
    Uses the plugin launcher's ``params``, ``config``, ``hydra_context`` and ``__call__``."""

    params: dict[str, Any]
    config: DictConfig | None
    hydra_context: Any

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        from strf_runner.launchers import ended_job_return

        assert self.config is not None
        self.params = resources(self.params, self.config)
        jobs = self._submit(job_overrides, initial_job_idx)
        returns, ended = [], []
        for idx, (overrides, job) in enumerate(zip(job_overrides, jobs), start=initial_job_idx):
            try:
                returns.append(job.results()[0])
                SWEEP_JOBS.add(returns[-1].hydra_cfg.hydra.runtime.output_dir)
            except submitit.core.utils.UncompletedJobError as err:
                state = job.state
                job_dir = self._record(list(overrides), idx, job.job_id, state, err)
                SWEEP_JOBS.add(job_dir)
                ended.append(f"{job.job_id} {state} ({job_dir.name})")
                returns.append(ended_job_return(overrides, job_dir))
        if ended:
            print(f"strf-run: {len(ended)} of {len(jobs)} SLURM jobs ended before their run finished: "
                  f"{'; '.join(ended)}; their run dirs say so (failed.json or slurm.json); re-run the same "
                  "command to train only what is missing", file=sys.stderr)
        return returns

    def _submit(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
        """Submit the sweep as one job array; its jobs, not waited for. The executor and its parameters are
        built as the plugin's ``launch`` builds them (nested parameters, ``additional_parameters`` and
        ``setup``, arrive as plain containers from its ``__init__``): that method submits and waits in one
        step, with no hook between the two, so this is the part of it that has to be restated. What differs
        is only the sbatch refusal in one line."""
        import submitit
        from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

        assert self.config is not None
        generic = set(OmegaConf.structured(BaseQueueConf).keys())
        executor = submitit.AutoExecutor(cluster="slurm", folder=self.params["submitit_folder"],
                                         slurm_max_num_timeout=self.params["max_num_timeout"])
        executor.update_parameters(**{k if k in generic else f"slurm_{k}": v for k, v in self.params.items()
                                      if k not in ("submitit_folder", "max_num_timeout")})
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        if "mode" in self.config.hydra.sweep:  # hydra.sweep.mode, as Hydra's own launchers honour it
            os.chmod(sweep_dir, int(str(self.config.hydra.sweep.mode), 8))
        args = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            args.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's complaint: it is in our line
                return executor.map_array(self, *zip(*args))
        except submitit.core.utils.FailedJobError as err:  # sbatch refused the array
            said = " ".join(str(err).split()) or type(err).__name__
            asked = ", ".join(f"{k}={self.params[k]}" for k in REQUESTS if self.params.get(k) is not None)
            hint = "; no GPUs there? device=cpu asks for none" if "gres" in said.lower() else ""
            raise ConfigError(f"SLURM refused the sweep's jobs: {said} (hydra.launcher: {asked}){hint}") from err

    def _record(self, overrides: list[str], idx: int, job_id: str, state: str, err: BaseException) -> Path:
        """Write what SLURM said into the job's run dir (``record_ended``); return the dir."""
        from strf_runner.launchers import job_config, record_ended
        from strf_runner.results.rundir import SLURM

        assert self.hydra_context is not None and self.config is not None
        record = {"slurm_job_id": job_id, "slurm_state": state,
                  "error": f"SLURM job {job_id} ended {state} before the run finished"}
        return record_ended(job_config(self.hydra_context, self.config, overrides, idx, job_id), record, err, SLURM)
