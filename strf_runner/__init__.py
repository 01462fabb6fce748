"""strf-runner: fit encoding models of auditory-cortex neurons and compare audio front-ends."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("strf-runner")  # written once, in pyproject.toml
except PackageNotFoundError:  # a source tree on sys.path that was never installed: no version to report
    __version__ = "0+unknown"
