"""Helpers shared by more than one test module, one concern a module: plain functions and constants, no
fixtures (those stay in the conftest.py files). Test modules import from here, never from one another.

- ``data``: datasets in memory (``make_content``) and the tiny synthetic dataset's fields (``TINY_DATASET``).
- ``runs``: one run in-process (``tiny_config``, ``interrupt_after``).
- ``commands``: ``strf-run`` as a subprocess (``strf_run``, ``TINY_ARGS``), for end-to-end tests only.
- ``fakes``: run directories built by hand (``write_fake_run``, ``run_config``, ``fake_scores``).
- ``reference``: the independent metric reference (``ref_cc_norm``, ``ref_signal_power``, ...).
"""
