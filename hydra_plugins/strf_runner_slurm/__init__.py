"""strf-runner's SLURM launcher (``hydra/launcher=slurm``), where Hydra looks for launchers.

Its behaviour is in ``strf_runner/slurm.py``. Without the ``[sweep]`` extra (hydra-submitit-launcher)
there is no SLURM launcher, and this module defines nothing, so Hydra's plugin scan stays quiet.
"""

try:
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
except ImportError:
    SubmititSlurmLauncher = None

if SubmititSlurmLauncher is not None:
    from strf_runner.slurm import SurvivingJobs

    class SlurmLauncher(SurvivingJobs, SubmititSlurmLauncher):
        """submitit's SLURM launcher whose sweeps survive their jobs (strf_runner.slurm)."""
