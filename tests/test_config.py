"""Strict survey configs: unknown keys, wrong types and bad ranges fail up front."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from seispinn.config import apply_overrides, build_section, load_sections, parse_overrides
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


# --- The override language: nested tables, dotted keys of any depth -------------------


@dataclass(frozen=True)
class _Inner:
    lr: float = 0.1
    optimizer: str = "adam"
    mask: str = "square"


@dataclass(frozen=True)
class _Section:
    name: str = field(default="sa", metadata={"choices": ("sa", "rba"), "what": "strategy"})
    seeds: tuple[int, ...] = (0, 1)
    weights: dict[str, float] = field(default_factory=dict)
    inner: _Inner = field(default_factory=_Inner)
    tuned: _Inner = field(default_factory=lambda: _Inner(lr=0.5))


@dataclass(frozen=True)
class _Config:
    run: _Section = field(default_factory=_Section)


_SECTIONS = {"run": _Section}


def test_parse_overrides_nests_dotted_keys_of_any_depth():
    got = parse_overrides(
        ["weighting.sa.optimizer=sgd", "training.steps=5", "steps=3", "a.b={x = 1, y = 'z'}"]
    )
    assert got == {
        "weighting": {"sa": {"optimizer": "sgd"}},
        "training": {"steps": 5},
        "steps": 3,
        "a": {"b": {"x": 1, "y": "z"}},
    }
    # TOML values keep their type; a bare word stays a string.
    assert parse_overrides(["x=1.5", "y=true", "z='q'", "w=[1, 2]", "v=sa"]) == {
        "x": 1.5,
        "y": True,
        "z": "q",
        "w": [1, 2],
        "v": "sa",
    }


@pytest.mark.parametrize("item", ["training.steps", "training..steps=1", ".steps=1", "=1", "a.=1"])
def test_parse_overrides_rejects_items_without_key_or_value(item):
    with pytest.raises(ConfigError, match=re.escape(repr(item))):
        parse_overrides([item])


def test_parse_overrides_rejects_a_key_below_a_value():
    with pytest.raises(ConfigError, match="'a.b' is already set"):
        parse_overrides(["a.b=1", "a.b.c=2"])


def test_nested_toml_table_keeps_the_other_nested_defaults(tmp_path):
    path = _write(tmp_path, "[run]\nname = 'rba'\n[run.inner]\noptimizer = 'sgd'\n")
    cfg = load_sections(_Config(run=_Section(inner=_Inner(lr=0.3))), _SECTIONS, path)
    assert cfg.run.name == "rba"
    assert cfg.run.inner == _Inner(lr=0.3, optimizer="sgd")  # lr from the base, not the class
    assert cfg.run.tuned == _Inner(lr=0.5)


def test_nested_set_reaches_a_nested_field_and_keeps_its_siblings():
    cfg = load_sections(_Config(), _SECTIONS, None, parse_overrides(["run.inner.lr=0.02"]))
    assert cfg.run.inner == _Inner(lr=0.02)
    # Without a base, a nested table starts from the field's own default (lr=0.5 here).
    built = build_section(_Section, {"tuned": {"mask": "sigmoid"}}, "x [run]")
    assert built.tuned == _Inner(lr=0.5, mask="sigmoid")


def test_nested_overrides_deep_merge_into_the_files_tables(tmp_path):
    path = _write(
        tmp_path, "[run]\nname = 'rba'\nweights = {data = 2.0}\n[run.inner]\nmask = 'exp'\n"
    )
    overrides = parse_overrides(["run.inner.lr=0.7", "run.weights.ic=3"])
    cfg = load_sections(_Config(), _SECTIONS, path, overrides)
    assert cfg.run.name == "rba"
    assert cfg.run.inner == _Inner(lr=0.7, mask="exp")  # the file's mask survives
    assert cfg.run.weights == {"data": 2.0, "ic": 3.0}


def test_unknown_nested_key_names_the_full_path_and_the_known_keys(tmp_path):
    path = _write(tmp_path, "[run.inner]\nlrr = 1.0\n")
    want = f"{path} [run.inner]: unknown key 'lrr' (known: lr, mask, optimizer)"
    with pytest.raises(ConfigError, match=re.escape(want)):
        load_sections(_Config(), _SECTIONS, path)
    with pytest.raises(ConfigError, match=re.escape("cfg.inner: unknown key 'lrr'")):
        apply_overrides(_Section(), parse_overrides(["inner.lrr=1"]), "cfg")
    with pytest.raises(ConfigError, match=re.escape("[run] inner: expected a table, got 5")):
        build_section(_Section, {"inner": 5}, "x [run]")


def test_comma_separated_string_is_a_list():
    cfg = load_sections(_Config(), _SECTIONS, None, parse_overrides(["run.seeds=0,1,2"]))
    assert cfg.run.seeds == (0, 1, 2)
    assert build_section(_Section, {"seeds": "4, 5,"}, "x").seeds == (4, 5)
    with pytest.raises(ConfigError, match="seeds: expected an integer, got 'a'"):
        build_section(_Section, {"seeds": "1,a"}, "x")


def test_one_value_for_a_list_setting_is_a_list_of_one():
    assert build_section(_Section, parse_overrides(["seeds=3"]), "x").seeds == (3,)


def test_the_word_none_resets_an_optional_setting():
    @dataclass(frozen=True)
    class Chunked:
        chunk_size: int | None = 64

    assert build_section(Chunked, parse_overrides(["chunk_size=none"]), "x").chunk_size is None
    assert build_section(Chunked, parse_overrides(["chunk_size=8"]), "x").chunk_size == 8
    with pytest.raises(ConfigError, match="chunk_size: expected an integer, got 'many'"):
        build_section(Chunked, parse_overrides(["chunk_size=many"]), "x")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("weights = 5", r"\[run\] weights: expected a table of name = value, got 5"),
        ("weights = {data = 'big'}", r"\[run\] weights.data: expected a number, got 'big'"),
    ],
)
def test_dict_valued_key_with_a_wrong_value_is_named(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        load_sections(_Config(), _SECTIONS, _write(tmp_path, f"[run]\n{text}\n"))


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "+nan"])
def test_non_finite_numbers_are_refused(value):
    with pytest.raises(
        ConfigError, match=rf"\[run.inner\] lr: must be finite, got {value.lstrip('+')}"
    ):
        load_sections(_Config(), _SECTIONS, None, parse_overrides([f"run.inner.lr={value}"]))
    with pytest.raises(ConfigError, match="weights.data: must be finite"):
        build_section(_Section, {"weights": {"data": float(value)}}, "x")


def test_apply_overrides_copies_with_nested_changes():
    base = _Section(name="rba", inner=_Inner(mask="exp"))
    got = apply_overrides(base, parse_overrides(["inner.lr=0.25", "seeds=7,8"]), "race")
    assert got == _Section(name="rba", seeds=(7, 8), inner=_Inner(lr=0.25, mask="exp"))
    assert base.inner.lr == 0.1  # the original is untouched
    assert apply_overrides(base, {}, "race") == base
    with pytest.raises(ConfigError, match=r"race: unknown key 'nme' \(known: inner, name"):
        apply_overrides(base, {"nme": "x"}, "race")


def test_a_field_with_choices_takes_only_those():
    assert build_section(_Section, {"name": "rba"}, "x").name == "rba"
    want = "config [run] name: unknown strategy 'magic' (choose one of sa, rba)"
    with pytest.raises(ConfigError, match=re.escape(want)):
        load_sections(_Config(), _SECTIONS, None, {"run": {"name": "magic"}})
