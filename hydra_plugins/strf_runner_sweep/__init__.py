"""strf-runner's local launcher (``hydra/launcher=local_parallel``) and Optuna sweeper (``+experiment=tune``),
where Hydra looks for plugins.

Their behaviour is in ``strf_runner/launchers.py``. Without the ``[sweep]`` extra (hydra-optuna-sweeper)
there is no Optuna sweeper, and this module defines only the launcher, so Hydra's plugin scan stays quiet.
"""

from hydra.plugins.launcher import Launcher

from strf_runner.launchers import ProcessPerJob, run_study

try:
    from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as PluginOptunaSweeper
except ImportError:
    PluginOptunaSweeper = None


class LocalParallelLauncher(ProcessPerJob, Launcher):
    """n_jobs jobs at a time on this machine, each in a process of its own (strf_runner.launchers)."""


if PluginOptunaSweeper is not None:

    class OptunaSweeper(PluginOptunaSweeper):
        """hydra-optuna-sweeper's sweeper, whose study goes on past a failed trial (strf_runner.launchers)."""

        def sweep(self, arguments: list[str]) -> None:
            return run_study(self.sweeper, arguments)
