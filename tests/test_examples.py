"""The shipped example configs load with their own loaders, and every file an
inversion config names is there: a renamed key or file fails here, not in a user's
first run."""

from __future__ import annotations

from pathlib import Path

import pytest

from seispinn.cli.invert import check_data_files
from seispinn.experiments.forward import load_forward_config
from seispinn.experiments.invert import load_invert_config
from seispinn.survey import load_survey

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIGS = sorted(EXAMPLES.glob("*.toml"))


def test_every_example_kind_is_present():
    names = [p.name for p in CONFIGS]
    assert sum(n.startswith("forward_") for n in names) >= 4
    assert sum(n.endswith("survey.toml") for n in names) >= 2
    assert "compare_demo.toml" in names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_config_loads(path: Path):
    if path.name.startswith("forward_"):
        load_forward_config(path)
    elif path.name.endswith("survey.toml"):
        load_survey(path)
    else:
        data = load_invert_config(path).data
        check_data_files(data, path)  # the CLI's own check, before any run
        if data.survey:
            load_survey(data.survey)
