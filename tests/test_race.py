"""The 1D race: its figures on a reduced configuration, the shared trainer, overrides,
CLI, figure."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from seispinn.cli import main
from seispinn.diagnostics.measures import band_rms
from seispinn.errors import ConfigError
from seispinn.experiments import race
from seispinn.experiments.race import (
    METRICS,
    RaceConfig,
    format_table,
    run_race,
    run_strategy,
    with_overrides,
)
from seispinn.pinn.networks import MLP
from seispinn.pinn.regression import RegressionProblem
from seispinn.pinn.training import TrainOptions, train
from seispinn.pinn.weighting import SAOptions, SelfAdaptiveMask, Uniform

# Tiny models: a second thread only spin-waits (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


# Fewer seeds and steps than the default (3 × 800 instead of 5 × 2000), with a
# larger θ learning rate so that the fits get as far in fewer steps.
FAST = RaceConfig(steps=800, lr=3e-3, seeds=(0, 1, 2), strategies=("uniform", "sa"))


@pytest.fixture(scope="module")
def fast_race():
    return run_race(FAST)


def test_sa_beats_uniform_on_the_fast_race(fast_race):
    s = fast_race.summary()
    uniform, sa = s["uniform"], s["sa"]
    # The seed's claims: the centre/outer ratio drops by at least 2x, the centre
    # error falls below uniform's, and the mask concentrates in the centre.
    assert sa["ratio"] <= 0.5 * uniform["ratio"]
    assert sa["centre_residual"] < uniform["centre_residual"]
    assert sa["enrichment"] >= 1.5
    assert uniform["enrichment"] == pytest.approx(1.0)
    assert uniform["effective_share"] == pytest.approx(1.0)
    assert 0.0 < sa["effective_share"] < 1.0  # the mask leans: fewer points carry the fit
    assert uniform["ratio"] > 2.0  # the pathology is there to be fixed


def test_summary_layout(fast_race):
    s = fast_race.summary()
    assert list(s) == ["uniform", "sa"]
    for entry in s.values():
        for metric in METRICS:
            assert math.isfinite(entry[metric])
            spread = entry["spread"][metric]
            assert spread["min"] <= spread["q25"] <= entry[metric] <= spread["q75"] <= spread["max"]
        assert [r["seed"] for r in entry["per_seed"]] == [0, 1, 2]
        assert len(entry["per_seed"][0]["weights"]) == FAST.n_points
    assert s["sa"]["options"]["mask"] == FAST.sa.mask
    table = format_table(s)
    assert table.splitlines()[1].startswith("uniform") and "3 seeds" in table


def test_same_seed_same_start_and_deterministic():
    config = RaceConfig(steps=5, seeds=(0,), strategies=("uniform",))
    a = run_strategy(config, "uniform", 0)
    b = run_strategy(config, "uniform", 0)
    c = run_strategy(config, "uniform", 1)
    assert a["prediction"] == b["prediction"]
    assert a["prediction"] != c["prediction"]


def test_runs_go_through_the_shared_trainer_full_batch(monkeypatch):
    seen = []

    def spy(problem, options, *args, **kwargs):
        step = problem.losses(0)
        seen.append((options, step.terms, step.pde_ids))
        return train(problem, options, *args, **kwargs)

    monkeypatch.setattr(race, "train", spy)
    config = RaceConfig(steps=7, lr=2e-3, seeds=(3,), strategies=("sa",))
    run_strategy(config, "sa", 3)
    [(options, terms, ids)] = seen
    assert (options.steps, options.lr, options.lr_final, options.seed) == (7, 2e-3, 2e-3, 3)
    assert list(terms) == ["pde"] and ids.tolist() == list(range(config.n_points))


def test_lbfgs_stage_freezes_the_weights():
    x = torch.linspace(-1, 1, 30)
    y = torch.tanh(20 * x)

    def fit(lbfgs_steps):
        torch.manual_seed(0)
        problem = RegressionProblem(MLP(1, 1, 16, 2), x, y, SelfAdaptiveMask(30))
        options = TrainOptions(
            steps=50, lr=1e-2, lr_final=1e-2, lbfgs_steps=lbfgs_steps, progress=False
        )
        train(problem, options)
        with torch.no_grad():
            return problem.weighting, float(problem.residual().pow(2).mean())

    (sa, refined), (plain_sa, plain) = fit(20), fit(0)
    assert sa.lam.grad is None  # no ascent gradient was accumulated during L-BFGS
    torch.testing.assert_close(sa.lam, plain_sa.lam)  # λ stayed where Adam left it
    assert refined < 0.5 * plain  # while L-BFGS improved θ


def test_race_problem_losses_match_a_plain_mean():
    x = torch.linspace(-1, 1, 30)
    y = torch.tanh(20 * x)
    torch.manual_seed(0)
    model = MLP(1, 1, 8, 1)
    step = RegressionProblem(model, x, y, Uniform(30)).losses(0)
    with torch.no_grad():
        sq = (model(x[:, None]).squeeze(-1) - y) ** 2
    torch.testing.assert_close(step.terms["pde"].detach(), sq.mean())
    torch.testing.assert_close(step.pde_sq, sq)


def test_gradnorm_over_correction_shows_in_diagnostics():
    run = run_strategy(with_overrides(FAST, ["steps=300"]), "gradnorm", 0)
    d = run["diagnostics"]
    # Points with the smallest per-point gradients (already fitted) get the
    # largest weights, and the centre gets less than its share.
    assert d["small_grad_gamma"] > 2.0
    assert run["enrichment"] < 1.0
    assert d["refreshes"] == 30


def test_band_rms():
    residual = torch.tensor([3.0, -4.0, 1.0, 1.0])
    in_band = torch.tensor([True, True, False, False])
    centre, outer = band_rms(residual, in_band)
    assert centre == pytest.approx(math.sqrt(12.5)) and outer == pytest.approx(1.0)
    assert math.isnan(band_rms(residual, torch.ones(4, dtype=torch.bool))[1])


def test_overrides_parse_and_reject():
    items = [
        "steps=10",
        "seeds=3,7",
        "strategies=sa,uniform",
        "sa.mask=sigmoid",
        "sa.init=-3",
        "gradnorm.chunk_size=64",
        "gradnorm.every=4",
        "rba.normalise=false",
    ]
    config = with_overrides(RaceConfig(), items)
    assert config.steps == 10 and config.seeds == (3, 7)
    assert config.strategies == ("sa", "uniform")
    assert config.sa == SAOptions(mask="sigmoid", init=-3.0)
    assert config.gradnorm.chunk_size == 64 and config.gradnorm.every == 4
    assert config.rba.normalise is False
    # The nested form (as parse_overrides makes it) and TOML lists say the same.
    nested = {"steps": 10, "seeds": [3, 7], "sa": {"mask": "sigmoid", "init": -3}}
    same = with_overrides(RaceConfig(), [*items[:2], *items[3:5]])
    assert with_overrides(RaceConfig(), nested) == same
    assert with_overrides(RaceConfig(), ["seeds=[3, 7]"]).seeds == (3, 7)
    assert with_overrides(RaceConfig(), ["steps=1", "steps=2"]).steps == 2  # the last wins
    for bad, match in [
        ("stepz=1", "unknown key 'stepz'"),
        ("steps=ten", "expected an integer"),
        ("steps", "key=value"),
        ("sa=x", "table"),
        ("sa.mask=relu", "mask"),
        ("sa.lr=-1", "lr must be positive"),
        ("strategies=uniform,magic", "strategies"),
        ("band=2", "band"),
        ("steps=0", "nothing would be trained"),
    ]:
        with pytest.raises(ConfigError, match=match):
            with_overrides(RaceConfig(), [bad])


def test_cli_writes_json_and_plot(tmp_path, capsys):
    out, fig = tmp_path / "race.json", tmp_path / "race.png"
    rc = main(
        [
            "race", "--strategies", "uniform,sa,rba", "--n-seeds", "1", "--steps", "20",
            "--workers", "1", "--sa-mask", "sigmoid", "--sa-init", "-3", "--json", str(out),
            "--plot", str(fig),
        ]
    )  # fmt: skip
    assert rc == 0
    report = json.loads(out.read_text())
    assert list(report) == ["uniform", "sa", "rba"]
    for entry in report.values():
        assert {"centre_residual", "outer_residual", "ratio", "enrichment", "seconds"} <= set(entry)
        assert {"dense_centre_residual", "dense_outer_residual", "dense_ratio"} <= set(entry)
        assert len(entry["per_seed"]) == 1
    assert report["sa"]["options"] == {"mask": "sigmoid", "init": -3.0, "optimizer": "bounded",
                                       "lr": None, "normalise": True, "time_slices": 1,
                                       "balance": False, "max_relative": 20.0}  # fmt: skip
    assert fig.stat().st_size > 10_000
    assert "uniform" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--set", "sa.mask=relu"], "mask"),
        (["--set", "steps"], "key=value"),
        (["--steps", "0"], "nothing would be trained"),
        (["--n-seeds", "0"], "n-seeds"),
    ],
)
def test_cli_bad_setting_is_one_line(capsys, argv, match):
    rc = main(["race", *argv, "--workers", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and match in err


def test_cli_maps_flags_to_settings_and_set_wins(monkeypatch):
    seen = []

    def fake_race(config, progress=None):
        seen.append(config)
        raise ConfigError("stop here")

    monkeypatch.setattr(race, "run_race", fake_race)
    argv = ["race", "--n-seeds", "2", "--steps", "9", "--sa-mask", "sigmoid", "--sa-init", "-3",
            "--sa-lr", "0.02", "--sa-optimizer", "sgd", "--strategies", "sa,rba",
            "--set", "workers=1", "--set", "rba.decay=0.99"]  # fmt: skip
    assert main(argv) == 2
    [config] = seen
    assert config.seeds == (0, 1) and config.steps == 9 and config.strategies == ("sa", "rba")
    assert config.sa == SAOptions(mask="sigmoid", init=-3.0, optimizer="sgd", lr=0.02)
    assert config.workers == 1 and config.rba.decay == 0.99  # --set beats --workers' default


def test_plot_module_imports_no_training_code():
    code = (
        "import sys, seispinn.plots.race as p; "
        "bad = [m for m in sys.modules if m.startswith(('torch', 'seispinn.experiments', "
        "'seispinn.pinn'))]; assert not bad, bad; "
        "fig = p.plot_race([-1, 0, 1], [0, 0, 1], [-1, 0, 1], [0, 0, 1], "
        "{'uniform': {'prediction': [0, 0, 1], 'weights': [1, 1, 1]}}, band=0.2); "
        "assert len(fig.axes) == 3"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parallel_workers_give_the_same_figures():
    config = RaceConfig(steps=20, seeds=(0, 1), strategies=("uniform", "sa"))
    serial = run_race(config).runs
    parallel = run_race(with_overrides(config, ["workers=2"])).runs
    for name in serial:
        for a, b in zip(serial[name], parallel[name], strict=True):
            assert a["seed"] == b["seed"]
            assert a["prediction"] == b["prediction"] and a["weights"] == b["weights"]
