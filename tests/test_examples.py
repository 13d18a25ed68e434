"""The shipped example configs load with their own loaders, every file an inversion
config names is there, and the demo is the library's default recipe: a renamed key or
file, or a default that drifts from the demo, fails here, not in a user's first run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from seispinn.cli._checks import check_data_files
from seispinn.config import read_toml
from seispinn.experiments.forward import load_forward_config
from seispinn.experiments.invert import InvertConfig, load_invert_config
from seispinn.survey import load_survey

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIGS = sorted(EXAMPLES.glob("*.toml"))
SURVEYS = sorted((EXAMPLES / "surveys").glob("*.toml"))


def test_every_example_kind_is_present():
    names = [p.name for p in CONFIGS]
    assert sum(n.startswith("forward_") for n in names) >= 4
    assert len(SURVEYS) >= 4
    assert {"demo.toml", "demo_surface.toml", "anomaly_surface.toml"} <= set(names)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_config_loads(path: Path):
    if path.name.startswith("forward_"):
        load_forward_config(path)
    else:
        data = load_invert_config(path).data
        check_data_files(data, path)  # the CLI's own check, before any run
        if data.survey:
            load_survey(data.survey)


@pytest.mark.parametrize("path", SURVEYS, ids=lambda p: p.name)
def test_example_survey_loads(path: Path):
    load_survey(path)


def test_the_demo_names_only_its_data_and_source_and_is_the_default_recipe():
    """`seispinn demo` runs the library's defaults: its config gives nothing but the
    data and the source, and those equal :class:`InvertConfig`'s own, so the demo's
    figures are the defaults' figures."""
    path = EXAMPLES / "demo.toml"
    assert set(read_toml(path)) == {"data", "source"}
    demo, default = load_invert_config(path), InvertConfig()
    for f in dataclasses.fields(InvertConfig):
        assert getattr(demo, f.name) == getattr(default, f.name), f.name
