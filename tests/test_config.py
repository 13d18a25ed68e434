"""Strict survey configs: unknown keys, wrong types and bad ranges fail up front."""

from __future__ import annotations

from pathlib import Path

import pytest

from seispinn.errors import ConfigError, ModelError
from seispinn.models import homogeneous
from seispinn.survey import load_survey

DATA = Path(__file__).resolve().parents[1] / "data"


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def test_shipped_survey_loads():
    s = load_survey(DATA / "survey.toml")
    model = s.model.build()
    acq = s.acquisition.build(model)
    assert model.shape == (61, 201) and acq.n_shots == 5
    assert s.modelling.accuracy == 8


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[model]\nnxx = 3\n", r"\[model\]: unknown key 'nxx'"),
        ("[modle]\n", r"unknown section \[modle\]"),
        ("[model]\nnx = 'ten'\n", r"\[model\] nx: expected an integer"),
        ("[model]\ndx = -1.0\n", r"\[model\].*dx must be positive"),
        ("[acquisition]\nduration = 0\n", r"must be positive"),
        ("[modelling]\nfree_surface = 1\n", r"free_surface: expected true or false"),
        ("[modelling]\naccuracy = 3\n", r"\[modelling\]: accuracy must be 2, 4, 6 or 8"),
        ("[model]\ngenerator = 'salt'\n", r"\[model\]: unknown generator 'salt'"),
        ("[model]\ncentre = [1.0]\n", r"centre must be \[x, z\]"),
        ("[model\n", "not valid TOML"),
    ],
)
def test_bad_configs_name_key_and_reason(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_survey(_write(tmp_path, text))


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.toml: no such config file"):
        load_survey(tmp_path / "nope.toml")


def test_receivers_outside_model_are_rejected_before_modelling(tmp_path):
    bad = "[model]\nnx = 11\nnz = 11\n[acquisition]\nreceiver_depth = 500.0\n"
    with pytest.raises(ConfigError, match=r"\[acquisition\] receiver_depth: 500.0 m lies outside"):
        load_survey(_write(tmp_path, bad))
    # A model from elsewhere (simulate --model) is checked when the line is laid out.
    s = load_survey(_write(tmp_path, "[acquisition]\nreceiver_depth = 500.0\n"))
    with pytest.raises(ModelError, match="outside the model"):
        s.acquisition.build(homogeneous(11, 11, 10.0, 2000.0))
