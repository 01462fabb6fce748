"""strf-runner: fit encoding models of auditory-cortex neurons and compare audio front-ends."""

__version__ = "0.1.0"
