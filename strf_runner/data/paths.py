"""Where datasets are cached."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_VAR = "STRF_RUNNER_DATA"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The dataset cache folder: ``root`` if given, else $STRF_RUNNER_DATA, else the user cache dir."""
    if root is not None:
        return Path(root).expanduser()
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    return Path(platformdirs.user_cache_dir("strf-runner"))
