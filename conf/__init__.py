# Makes conf/ importable as strf_runner.conf (see pyproject.toml), so Hydra finds it as pkg://strf_runner.conf
# in editable and regular installs alike.
