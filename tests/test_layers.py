"""Layers point one way, and the architecture page's table of who imports whom is generated from the code.

Every top-level module or subpackage of strf_runner (a "unit") sits in a layer; a unit may import only
units of lower layers (or its own). Imports inside functions count: a lazy import is still a
dependency. ``python tests/test_layers.py --write`` regenerates that table (docs/architecture.md) from the code.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "strf_runner"
PAGE = ROOT / "docs" / "architecture.md"  # the site's architecture page holds the table
START, END = "<!-- layers:start (python tests/test_layers.py --write) -->", "<!-- layers:end -->"

# lowest first; (unit, what it holds)
LAYERS: list[list[tuple[str, str]]] = [
    [("errors", "the exceptions a user can cause (one-line messages) and the warning category"),
     ("atomic", "atomic file writes (temp file + rename), PNG saving"),
     ("identity", "a run config's identity: its hash, and where two configs differ"),
     ("stream", "the chunk-context helper behind every module's `stream(x, state)`")],
    [("registry", "name -> class registries that find their modules by scanning a package"),
     ("memory", "the memory limit one input may ask for (`STRF_RUNNER_MEMORY_LIMIT`), checked before allocating"),
     ("config", "structured-config dataclasses (the schema of every YAML group), validation, `resolve_config`"),
     ("metrics", "cc_norm and friends (Schoppe et al. 2016), losses")],
    [("data", "HDF5 schema and validation, dataset sources by config name (`sources.py`), NS1 reader and "
              "download, NWB conversion (`nwb.py`, `nwb_read.py`), cochleagram, synth generator, torch dataset, "
              "collate and device loader"),
     ("frontends", "one module per front-end, shared pieces (PCEN, FFT filtering, filter spacing), registry")],
    [("models", "readouts (one module each, registry), compiled recurrences, `EncodingModel`"),
     ("preflight", "a run's data against its config before anything is built (window vs lengths, repeats)")],
    [("training", "fitter (early stopping, best-validation restore, resume state), checkpoints, seeding, device")],
    [("results", "the run directory (`rundir.py`: every file name, atomic writes, ownership), per-neuron "
                 "tables, reloading a run; sweep collection, aggregation, statistics, reports")],
    [("tracking", "experiment trackers (`logger=`): copies of a run and of a sweep in TensorBoard, MLflow, "
                  "W&B, each fault-isolated; replaying runs on disk into them")],
    [("analysis", "figures and their tables from arrays (matplotlib's Figure API): filterbanks, STRFs, "
                  "gradient maps, receptive-field audio, traces, sweep figures; `strf-analyze`'s run analysis")],
    [("predict", "`strf-predict`: sound reading and resampling, streamed predictions, output files"),
     ("experiment", "one run end to end: config resolved once -> data -> model -> fit -> test -> run dir")],
    [("display", "rich output: the epoch progress bar, end-of-run and aggregate tables"),
     ("compose", "Hydra glue: the schemas in the ConfigStore, composing a config from overrides"),
     ("entry", "what every console entry point shares: one-line errors, exit status 2"),
     ("exit_status", "strf-run's exit statuses, and the jobs of a sweep that decide it"),
     ("crossval", "cross-validation (`cv.folds=k`) as one command: every fold a run into <cv dir>/fold<f>, then the CV "
                  "dir assembled")],
    [("sweep", "multirun glue: reuse and resume by config hash, failed-job records, the end-of-sweep report")],
    [("launchers", "`hydra/launcher=local_parallel` (a process per job; a killed one is recorded, the rest run "
                   "on) and the Optuna sweeper whose study goes on past a failed trial (the classes Hydra loads "
                   "are in `hydra_plugins/strf_runner_sweep`); the failed-job records all launchers share")],
    [("slurm", "`hydra/launcher=slurm`: submitit's launcher with requests from the run, refusals in one line, "
               "and sweeps that survive cancelled, failed or preempted jobs (the class Hydra loads is in "
               "`hydra_plugins/strf_runner_slurm`)")],
    [("cli", "the console entry points strf-run, strf-report, strf-analyze, strf-predict"),
     ("bench", "`strf-bench`: timings of front-ends and real epochs against naive references")],
]
THIRD_PARTY = ("torch", "numba", "scipy", "h5py", "pandas", "matplotlib", "soundfile", "rich", "hydra", "omegaconf")
RANK = {unit: rank for rank, layer in enumerate(LAYERS) for unit, _ in layer}


def unit_of(module: str) -> str | None:
    """'strf_runner.results.load' -> 'results'; the package itself (its __version__) -> None."""
    parts = module.split(".")
    return parts[1] if parts[0] == "strf_runner" and len(parts) > 1 else None


def imports() -> dict[str, dict[str, set[str]]]:
    """unit -> {"units": strf_runner units it imports, "libs": third-party libraries of THIRD_PARTY}."""
    found: dict[str, dict[str, set[str]]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        unit = unit_of(module.removesuffix(".__init__"))
        if unit is None:
            continue
        entry = found.setdefault(unit, {"units": set(), "libs": set()})
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] if node.module != "strf_runner" else [
                    f"strf_runner.{a.name}" for a in node.names  # a module, not an attribute (__version__)
                    if (PACKAGE / a.name).is_dir() or (PACKAGE / f"{a.name}.py").is_file()
                ]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            for name in names:
                other = unit_of(name)
                if other is not None and other != unit:
                    entry["units"].add(other)
                if name.split(".")[0] in THIRD_PARTY:
                    entry["libs"].add(name.split(".")[0])
    return found


def table() -> str:
    graph = imports()
    rows = ["| layer | unit | holds | imports (from the code) | libraries |", "|---|---|---|---|---|"]
    for rank, layer in enumerate(LAYERS):
        for unit, holds in layer:
            name = f"`{unit}/`" if (PACKAGE / unit).is_dir() else f"`{unit}.py`"
            deps = sorted(graph.get(unit, {}).get("units", set()), key=lambda u: (RANK.get(u, 99), u))
            libs = sorted(graph.get(unit, {}).get("libs", set()))
            rows.append(f"| {rank} | {name} | {holds} | {', '.join(deps) or '-'} | {', '.join(libs) or '-'} |")
    return "\n".join(rows)


def page_with_table(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}\n{END}{tail}"


def test_every_unit_has_a_layer():
    units = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"} | {
        p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file() and p.name != "conf"
    }
    assert units == set(RANK), f"give these a layer: {sorted(units - set(RANK))}; gone: {sorted(set(RANK) - units)}"


def test_every_subpackage_ships_in_the_wheel():
    """pyproject lists its packages by hand: a new subpackage missing there works in an editable install
    and is absent from a real one."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in PACKAGE.rglob("__init__.py")}
    assert found <= listed, f"add to pyproject's packages: {sorted(found - listed)}"


def test_imports_point_down_the_layers():
    upward = [
        f"{unit} (layer {RANK[unit]}) imports {other} (layer {RANK[other]})"
        for unit, entry in imports().items()
        for other in entry["units"]
        if RANK[other] >= RANK[unit]
    ]
    assert not upward, "; ".join(sorted(upward))


def test_architecture_pages_table_is_generated_from_the_code():
    text = PAGE.read_text()
    assert START in text and END in text, "docs/architecture.md lacks the layers table markers"
    assert page_with_table(text) == text, "docs/architecture.md's layer table is stale: run python tests/test_layers.py --write"


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        PAGE.write_text(page_with_table(PAGE.read_text()))
    else:
        print(table())
