"""The PDE multipliers: the loss squares r + b, b accumulates r per point id (through
shuffled batches and redraws), and with them a constraint a finite penalty leaves
violated is enforced; in the wave problem the PDE term is the shifted one."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from seispinn.errors import ConfigError, TrainingError
from seispinn.experiments.invert import inversion_problem
from seispinn.pinn.problem import StepLosses
from seispinn.pinn.training import TrainOptions, train
from seispinn.pinn.weighting import (
    MultiplierOptions,
    Multipliers,
    WeightingOptions,
    make_weighting,
)


def test_update_accumulates_each_points_residual_by_id():
    m = Multipliers(5, MultiplierOptions(rate=0.5))
    m.update(0, torch.tensor([3, 0]), torch.tensor([4.0, 1.0]), residual=torch.tensor([2.0, -1.0]))
    m.update(1, torch.tensor([0, 4]), torch.tensor([9.0, 1.0]), residual=torch.tensor([3.0, 1.0]))
    torch.testing.assert_close(m.b, torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5]))
    r = torch.tensor([1.0, 1.0])
    torch.testing.assert_close(m.shifted(r, torch.tensor([0, 2])), torch.tensor([2.0, 1.0]))
    assert torch.equal(m.weights(torch.arange(5)), torch.ones(5))
    m.admit(torch.tensor([0]))  # a redrawn point starts without history
    assert float(m.b[0]) == 0.0 and float(m.b[3]) == 1.0
    m.freeze()
    m.update(2, torch.tensor([3]), torch.tensor([1.0]), residual=torch.tensor([5.0]))
    assert float(m.b[3]) == 1.0
    m.unfreeze()
    with pytest.raises(TrainingError, match="signed residual"):
        m.update(3, torch.tensor([3]), torch.tensor([1.0]))


def test_options_refuse_a_rate_that_is_not_positive():
    with pytest.raises(ConfigError, match="rate"):
        MultiplierOptions(rate=0.0)


class _Constrained:
    """Parameters x ``[6]``: a data term ‖x − a‖² against per-point constraints
    r_i = x_i − c_i, in shuffled batches of 3 ids. A penalty's optimum is (a + c)/2,
    |r| = |a − c|/2; the multipliers drive r to 0."""

    def __init__(self, weighting: str) -> None:
        self.x = torch.nn.Module()
        self.x.p = torch.nn.Parameter(torch.zeros(6))
        self.a = torch.tensor([1.0, -1.0, 2.0, 0.5, 0.0, -2.0])
        self.c = torch.tensor([0.0, 1.0, 1.0, -0.5, 1.0, 0.0])
        self.weighting = make_weighting(weighting, 6)
        self.gen = torch.Generator().manual_seed(0)

    def trainable(self):
        return {"x": self.x}

    def losses(self, step: int) -> StepLosses:
        ids = torch.randperm(6, generator=self.gen)[:3]
        r = self.x.p[ids] - self.c[ids]
        pde = self.weighting.weighted_loss(self.weighting.shifted(r, ids) ** 2, ids)
        data = (self.x.p - self.a).square().mean()
        return StepLosses({"pde": pde, "data": data}, ids, r.detach() ** 2, None, r.detach())

    def violation(self) -> float:
        return float((self.x.p - self.c).detach().abs().max())


@pytest.mark.parametrize("name", ["uniform", "multipliers"])
def test_multipliers_enforce_a_constraint_the_penalty_leaves_violated(name):
    problem = _Constrained(name)
    train(problem, TrainOptions(steps=3000, lr=0.02, progress=False))
    if name == "uniform":  # the penalty's compromise: half the gap, measured 0.99
        assert problem.violation() > 0.5
    else:  # keyed by id through shuffled batches: every constraint holds
        assert problem.violation() < 0.05, problem.violation()


def test_the_wave_problems_pde_term_squares_the_shifted_residual():
    from test_surface import _config, _inputs

    config = _config()
    config = dataclasses.replace(config, weighting=WeightingOptions(name="multipliers"))
    problem = inversion_problem(config, _inputs(), torch.device("cpu"))
    assert isinstance(problem.weighting, Multipliers)
    problem.weighting.b.fill_(3.0)
    losses = problem.losses(0)
    r = losses.pde_residual
    assert r is not None and torch.equal(losses.pde_sq, r**2)
    expected = ((r + 3.0) ** 2).mean()
    torch.testing.assert_close(losses.terms["pde"].detach(), expected, rtol=1e-5, atol=0)


def test_the_race_takes_the_multipliers_and_their_options():
    from seispinn.experiments.race import RaceConfig, run_strategy, with_overrides

    config = with_overrides(
        RaceConfig(strategies=("multipliers",), seeds=(0,), steps=200),
        ["multipliers.rate=0.05"],
    )
    assert config.options_for("multipliers") == MultiplierOptions(rate=0.05)
    out = run_strategy(config, "multipliers", 0)
    assert out["diagnostics"]["multiplier_rms"] > 0  # b moved: the update is wired
    assert out["centre_residual"] == out["centre_residual"]  # a number, not NaN
