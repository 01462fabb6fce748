"""Readouts and the encoding model that joins a front-end to a readout."""

from strf_runner.models.encoding import EncodingModel
from strf_runner.models.registry import READOUTS, build_readout

__all__ = ["READOUTS", "EncodingModel", "build_readout"]
