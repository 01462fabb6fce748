"""Docs that cannot drift: every command in README.md and docs/ composes or parses, every link resolves.

Every ``strf-run`` command is composed as strf-run composes it (``compose_config``, the validated
RunConfig), each job of a sweep on its own, without training; ``strf-report``, ``strf-analyze``,
``strf-predict`` and ``strf-bench`` commands are parsed by the commands' own argparse parsers. Commands
come from fenced shell blocks, ``$ `` lines of terminal output and inline code spans. Placeholders such as
``<run dir>`` are allowed only from the set the getting-started page documents.
"""

from __future__ import annotations

import argparse
import re
import shlex
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Callable, Iterator

import pytest
from hydra import compose, initialize_config_module
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra._internal.utils import get_args_parser
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from strf_runner.bench.cli import bench_parser
from strf_runner.cli import analyze_parser, predict_parser, report_parser, with_fold_sweep
from strf_runner.compose import compose_config, register_configs
from strf_runner.config import RunConfig
from strf_runner.entry import error_line

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PLACEHOLDER_PAGE = ROOT / "docs" / "getting-started.md"
README_LIMIT = 10 * 1024

# What each documented placeholder stands for when a command is checked.
PLACEHOLDERS = {
    "<run dir>": "outputs/runs/2026-11-28/14-03-11_native-linear-synth-s0",
    "<sweep dir>": "outputs/multirun/2026-11-28/14-03-11",
    "<cv dir>": "outputs/runs/2026-11-28/14-03-11_native-linear-ns1-s0",
    "<date>": "2026-11-28",
    "<time>": "14-03-11",
}
ABSENT = object()  # what OmegaConf.select returns for a key the config lacks
MORE = "..."  # "more overrides or flags of your choice": dropped where it stands alone
SHELL_FENCES = {"bash", "sh", "shell", "console"}
SEPARATORS = {"&&", "||", ";", "|"}
ARGPARSE_COMMANDS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "strf-report": report_parser,
    "strf-analyze": analyze_parser,
    "strf-predict": predict_parser,
    "strf-bench": bench_parser,
}
COMMANDS = ("strf-run", *ARGPARSE_COMMANDS)


@dataclass(frozen=True)
class Command:
    """One documented command line: where it is written, its text as written (placeholders and all), and
    the error line a terminal example shows it printing (None: it must work)."""

    page: Path
    line: int
    text: str
    expect_error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}: {self.text}"


def substituted(text: str) -> str:
    """``text`` with the documented placeholders replaced by what they stand for."""
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return text


def invocations(text: str) -> list[list[str]]:
    """The strf-* commands on one shell line, each as its words (command name first), as the shell splits
    them: comments dropped, ``&&``, ``||``, ``;`` and ``|`` between commands, stand-alone ``...`` dropped."""
    found, segment = [], []
    for word in [*shlex.split(substituted(text), comments=True), ";"]:
        if word in SEPARATORS:
            if segment and segment[0] in COMMANDS:
                found.append([w for w in segment if w != MORE])
            segment = []
        else:
            segment.append(word)
    return found


def fenced_blocks(lines: list[str]) -> Iterator[tuple[str | None, int, list[str]]]:
    """(info string or None for prose, first line number, lines) of a page, in order: prose between fences
    comes out as blocks with info None."""
    info: str | None = None
    start, block = 1, []
    for number, line in enumerate(lines, 1):
        fence = re.match(r"^\s*(```|~~~)\s*(\S*)", line)
        if fence and info is None:
            yield None, start, block
            info, start, block = fence.group(2).lower() or "text", number + 1, []
        elif fence and line.strip() in ("```", "~~~"):
            yield info, start, block
            info, start, block = None, number + 1, []
        else:
            block.append(line)
    yield info, start, block


def shell_commands(page: Path, start: int, lines: list[str], prompt_only: bool) -> Iterator[Command]:
    """The documented commands in a fenced block: every line of a shell block (continued lines joined), or in a
    block of terminal output only the lines typed after ``$ ``, with the error line printed after one."""
    joined: list[tuple[int, str]] = []
    for number, line in enumerate(lines, start):
        if joined and joined[-1][1].endswith("\\"):
            joined[-1] = (joined[-1][0], joined[-1][1][:-1].rstrip() + " " + line.strip())
        else:
            joined.append((number, line.strip()))
    for i, (number, line) in enumerate(joined):
        if prompt_only:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        calls = invocations(line)
        if calls:
            after = joined[i + 1][1] if prompt_only and i + 1 < len(joined) else ""
            error = after if re.match(rf"^{re.escape(calls[0][0])}: error: ", after) else None
            yield Command(page, number, line, error)


def inline_commands(page: Path, start: int, lines: list[str]) -> Iterator[Command]:
    """The commands written as inline code in prose (a span may run across the lines of a paragraph)."""
    paragraph: list[tuple[int, str]] = []
    for number, line in [*enumerate(lines, start), (start + len(lines), "")]:
        if line.strip():
            paragraph.append((number, line))
            continue
        text = " ".join(part for _, part in paragraph)
        for span in re.finditer(r"(?<!`)`([^`]+)`(?!`)", text):
            words = span.group(1).split()
            if len(words) > 1 and words[0] in COMMANDS:  # a bare `strf-analyze` in prose names the command
                yield Command(page, paragraph[0][0], " ".join(words))
        paragraph = []


def documented_commands() -> list[Command]:
    """Every strf-* command written in README.md and docs/**/*.md."""
    found: list[Command] = []
    for page in PAGES:
        for info, start, lines in fenced_blocks(page.read_text().splitlines()):
            if info is None:
                found += inline_commands(page, start, lines)
            elif info in SHELL_FENCES:
                found += shell_commands(page, start, lines, prompt_only=False)
            elif info == "text":
                found += shell_commands(page, start, lines, prompt_only=True)
    return found


def check_placeholders(command: Command) -> None:
    """Fails on a ``<...>`` in the command that is not a documented placeholder."""
    uncommented = re.sub(r"\s#.*$", "", command.text)
    unknown = sorted(set(re.findall(r"<[^<>]*>", uncommented)) - set(PLACEHOLDERS))
    assert not unknown, f"{command.where}: placeholders {unknown} are not among {sorted(PLACEHOLDERS)}"


@cache
def sweeper_of(base: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """The sweeper's class and its configured sweep (``hydra.sweeper.params``) of a multirun whose
    non-sweep overrides are ``base``, as Hydra composes them before sweeping."""
    register_configs()
    with initialize_config_module(config_module="strf_runner.conf", version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(base), return_hydra_config=True)
    params = cfg.hydra.sweeper.get("params")
    given = OmegaConf.to_container(params) if params else {}
    return cfg.hydra.sweeper._target_, {key: str(value) for key, value in given.items()}


@cache
def composed(overrides: tuple[str, ...]) -> RunConfig:
    """strf-run's validated config of one job (cached: the pages share jobs)."""
    return compose_config(list(overrides))


def covering(jobs: list[list[str]]) -> list[list[str]]:
    """Jobs of a sweep among which every value of every swept key occurs: job i of the cover takes each
    key's (i mod n)-th value. Composition costs 0.1 s a job, and the full product of a documented sweep
    runs to hundreds; every job's overrides are parsed all the same (Hydra's expansion above)."""
    values: dict[str, list[str]] = {}
    for job in jobs:
        for override in job:
            key = override.split("=", 1)[0]
            if override not in values.setdefault(key, []):
                values[key].append(override)
    width = max((len(v) for v in values.values()), default=0)
    return [[v[i % len(v)] for v in values.values()] for i in range(width)]


def strf_run_jobs(argv: list[str]) -> list[list[str]]:
    """The overrides of the jobs of ``strf-run argv`` to compose, parsed as strf-run and Hydra parse them:
    ``--debug`` and ``--version`` are strf-run's own, the other flags Hydra's (``--help`` and ``--cfg`` show the
    composed config); in a sweep, the folds of ``cv.folds`` are jobs (``with_fold_sweep``), the basic sweeper's
    jobs are the product of the command line's sweeps and the config's ``hydra.sweeper.params``, and
    ``covering`` picks the ones that hold every swept value."""
    argv = [word for word in argv if word != "--debug"]
    if "--version" in argv:
        return []
    args = get_args_parser().parse_args(argv)
    if args.hydra_help or args.shell_completion:
        return []
    overrides = with_fold_sweep(["--multirun", *args.overrides])[1:] if args.multirun else list(args.overrides)
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    sweeps = [o.input_line for o in parsed if o.is_sweep_override()]
    if not args.multirun:
        assert not sweeps, f"sweep overrides {sweeps} without -m: strf-run refuses them"
        return [overrides]
    base = tuple(o.input_line for o in parsed if not o.is_sweep_override())
    sweeper, params = sweeper_of(base)
    if not sweeper.endswith("BasicSweeper"):  # Optuna: its trials' values are drawn at run time from params
        config = OmegaConf.structured(composed(base))
        missing = [key for key in params if OmegaConf.select(config, key, default=ABSENT) is ABSENT]
        assert not missing, f"the sweeper searches keys the config lacks: {missing}"
        return [list(base)]
    batches = BasicSweeper.split_arguments(
        parser.parse_overrides([f"{key}={value}" for key, value in params.items()] + overrides), None)
    return covering([job for batch in batches for job in batch])


def check_argparse_command(name: str, argv: list[str]) -> None:
    """The command's own parser accepts ``argv`` (``--help`` and ``--version`` exit 0)."""
    parser = ARGPARSE_COMMANDS[name]()
    try:
        args = parser.parse_args(argv)
    except SystemExit as done:
        assert done.code == 0, f"{name} refuses these arguments (its message is above)"
        return
    if name == "strf-predict":
        assert args.wav or args.dataset_stimulus, "strf-predict needs at least one --wav FILE or --dataset-stimulus INDEX"


def check(words: list[str]) -> None:
    """The command composes (strf-run: every job to compose) or parses (the others)."""
    name, argv = words[0], words[1:]
    if name == "strf-run":
        for job in strf_run_jobs(argv):
            composed(tuple(job))
    else:
        check_argparse_command(name, argv)


COMMANDS_FOUND = documented_commands()


def test_the_pages_document_commands_of_every_kind():
    kinds = {words[0] for command in COMMANDS_FOUND for words in invocations(command.text)}
    assert kinds == set(COMMANDS), f"no documented command of {sorted(set(COMMANDS) - kinds)}: is the extraction broken?"
    assert any(command.expect_error for command in COMMANDS_FOUND), "no terminal example of an error found"


@pytest.mark.parametrize("command", COMMANDS_FOUND, ids=lambda c: f"{c.page.relative_to(ROOT)}:{c.line}")
def test_documented_command_composes_or_parses(command: Command):
    check_placeholders(command)
    for words in invocations(command.text):
        if command.expect_error is not None:  # a terminal example of a refusal: it is refused, with that line
            shown = command.expect_error.split(": error: ", 1)[1].split("...")[0]
            with pytest.raises(Exception) as refused:
                check(words)
            assert error_line(refused.value).startswith(shown), f"{command.where}: the error line is now {error_line(refused.value)!r}"
            continue
        try:
            check(words)
        except Exception as err:
            raise AssertionError(f"{command.where}\n  {type(err).__name__}: {err}") from err


def test_the_placeholders_tested_are_the_ones_documented():
    documented = set(re.findall(r"^\| `(<[^`]+>)` \|", PLACEHOLDER_PAGE.read_text(), flags=re.MULTILINE))
    assert documented == set(PLACEHOLDERS), (
        f"{PLACEHOLDER_PAGE.relative_to(ROOT)} documents {sorted(documented)}, the test substitutes {sorted(PLACEHOLDERS)}")


def links(page: Path) -> Iterator[tuple[str, str]]:
    """(link text, target) of every Markdown link and image of a page, outside code."""
    for info, _, lines in fenced_blocks(page.read_text().splitlines()):
        if info is not None:
            continue
        prose = re.sub(r"`[^`]*`", "", "\n".join(lines))
        yield from re.findall(r"!?\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", prose)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_linked_file_and_image_exists(page: Path):
    local = [target.split("#", 1)[0] for _, target in links(page)
             if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")]
    missing = [target for target in local if not (page.parent / target).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that do not exist: {missing}"


def test_readme_fits_on_two_screens():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes (at most {README_LIMIT}): move the detail onto a page in docs/"


def test_the_link_check_sees_the_readmes_links():
    targets = [target for _, target in links(ROOT / "README.md")]
    assert "docs/index.md" in targets and "docs/ns1_frontends.png" in targets, f"links found in README.md: {targets}"
