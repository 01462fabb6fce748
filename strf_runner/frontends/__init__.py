"""Audio front-ends (the wav2spec slot): stimulus batch -> neural-rate spectrogram (B, 1, F, T)."""

from strf_runner.frontends.base import Frontend
from strf_runner.frontends.registry import FRONTENDS, build_frontend

__all__ = ["FRONTENDS", "Frontend", "build_frontend"]
