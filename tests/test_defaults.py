"""One copy of each default: the YAML options restate nothing of their schema, and every front-end's and
readout's config schema agrees with its constructor (the constructor is what a saved run is rebuilt with)."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import yaml

from strf_runner.compose import REGISTRIES
from strf_runner.config import BUDGET_KEYS, TrainerConfig
from strf_runner.frontends.native_pcen import NativePCEN
from strf_runner.frontends.pcen import PCEN
from strf_runner.frontends.registry import FRONTENDS
from strf_runner.models.registry import READOUTS

CONF = Path(__file__).resolve().parents[1] / "conf"
SCHEMA_REF = re.compile(r"/schema_(dataset|frontend|model|trainer)_?(\w*)@_here_")
SCHEMAS = {registry.group: {entry.name: entry.config for entry in registry} for registry in REGISTRIES}
SCHEMAS["trainer"] = {"": TrainerConfig}
# constructor arguments that come from the data, not the config (Frontend.geometry, the readout's sizes)
GEOMETRY = {"n_bands", "audio_fs", "hop", "n_neurons"}
# constructor arguments kept out of the config on purpose: numerical guards and a fixed layout
INTERNAL = {"eps", "floor", "in_channels"}


def schema_defaults(schema: type) -> dict[str, object]:
    return {f.name: f.default for f in dataclasses.fields(schema) if f.default is not dataclasses.MISSING}


def primary_options() -> list[Path]:
    """The YAML option of each schema kind: conf/<group>/<name>.yaml and the trainer's default.yaml
    (variants such as sincnet_env, statenet_ref or model/ns1/* exist to set values, and may pin some)."""
    files = [CONF / "trainer" / "default.yaml"]
    for group in ("dataset", "frontend", "model"):
        files += [p for p in (CONF / group).glob("*.yaml") if yaml.safe_load(p.read_text()).get("name") == p.stem]
    return files


@pytest.mark.parametrize("path", primary_options(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_yaml_option_restates_no_default_of_its_schema(path):
    text = path.read_text()
    group, kind = SCHEMA_REF.search(text).groups()
    defaults = schema_defaults(SCHEMAS[group][kind])
    values = {k: v for k, v in yaml.safe_load(text).items() if k not in ("defaults", "name")}
    restated = sorted(k for k, v in values.items() if k in defaults and v == defaults[k])
    assert not restated, f"{path.name} restates its schema's defaults for {restated}: keep them in config.py only"


def constructor_defaults(cls: type) -> dict[str, object]:
    params = inspect.signature(cls.__init__).parameters
    return {n: p.default for n, p in params.items() if n != "self" and p.kind is p.POSITIONAL_OR_KEYWORD}


@pytest.mark.parametrize("group, registry", [("frontend", FRONTENDS), ("model", READOUTS)])
def test_every_schema_agrees_with_its_constructor(group, registry):
    """Each registered class: every config field but the name and the training budget is a constructor
    argument with the same default, and every constructor argument a user may set is a config field."""
    not_args = {"name", "lr"} | (set(BUDGET_KEYS) if group == "model" else set())
    problems = []
    for name in registry.names():
        schema = registry.get(name).config
        fields = {k: v for k, v in schema_defaults(schema).items() if k not in not_args}
        ctor = constructor_defaults(registry.get(name).build)
        for key, default in fields.items():
            if key not in ctor:
                problems.append(f"{name}: config field {key} is no constructor argument")
            elif ctor[key] != default:
                problems.append(f"{name}.{key}: config {default!r}, constructor {ctor[key]!r}")
        hidden = set(ctor) - set(fields) - GEOMETRY - INTERNAL
        problems += [f"{name}: constructor argument {key} cannot be set from the config" for key in sorted(hidden)]
    assert not problems, "; ".join(problems)


def test_native_pcen_initialises_pcen_as_pcen_does():
    pcen, native = constructor_defaults(PCEN), constructor_defaults(NativePCEN)
    shared = set(pcen) & set(native) - GEOMETRY
    assert shared and {k: native[k] for k in shared} == {k: pcen[k] for k in shared}
