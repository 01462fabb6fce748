"""The memory limit (strf_runner/memory.py): parsed sizes, the default from the machine, refusals in one line."""

from __future__ import annotations

import os

import pytest

from strf_runner.errors import ConfigError
from strf_runner.memory import ENV, MemoryLimitError, check_allocation, machine_memory, memory_limit, parse_bytes


@pytest.mark.parametrize("text, expected", [("123", 123), ("512M", 512 << 20), ("8G", 8 << 30), ("1.5T", 3 << 39),
                                            ("2GiB", 2 << 30), ("64 k", 64 << 10)])
def test_sizes_parse_in_powers_of_1024(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "-1G", "0", "lots", "8X"])
def test_a_size_that_is_not_one_names_the_variable(text):
    with pytest.raises(ConfigError, match=ENV):
        parse_bytes(text)


def test_the_default_is_half_of_what_the_process_may_use(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < machine_memory() <= physical
    assert memory_limit() == machine_memory() // 2


def test_an_allocation_over_the_limit_is_refused_in_one_line_naming_what_asked(monkeypatch):
    monkeypatch.setenv(ENV, "1M")
    check_allocation(1 << 20, "x")
    for size in ((1 << 20) + 1, float("inf"), float("nan")):
        with pytest.raises(MemoryLimitError) as err:
            check_allocation(size, "dataset.path s.nwb: sound 'a'")
        message = str(err.value)
        assert message.startswith("dataset.path s.nwb: sound 'a' would need ") and "\n" not in message
        assert f"limit of 1 MiB ({ENV})" in message
