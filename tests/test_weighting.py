"""Per-point weighting strategies: hand-checked updates, closed-form gradient
norms, id bookkeeping under shuffling and mini-batching, checkpoints."""

from __future__ import annotations

import io
import math
import re

import pytest
import torch
from torch import nn
from torch.func import functional_call

from seispinn.diagnostics.measures import enrichment
from seispinn.errors import ConfigError, TrainingError
from seispinn.pinn import (
    MLP,
    GradNormOptions,
    GradNormWeights,
    PointLoss,
    RBAOptions,
    ResidualBasedAttention,
    SAOptions,
    SelfAdaptiveMask,
    Uniform,
    grad_norms_linear,
    grad_norms_loop,
    grad_norms_vmap,
    make_weighting,
    per_point_grad_norms,
)

# Tiny models: a second thread only spin-waits (conftest.one_thread).
pytestmark = pytest.mark.usefixtures("one_thread")


def regression_loss(model: nn.Module):
    def loss_fn(params, points):
        x, y = points
        return (functional_call(model, params, (x,)).squeeze(-1) - y) ** 2

    return loss_fn


# ------------------------------------------------------------------------------------
# SA-PINN
# ------------------------------------------------------------------------------------


def _ascend(sa: SelfAdaptiveMask, sq: torch.Tensor, ids: torch.Tensor, steps: int = 1) -> None:
    """``steps`` ascent steps of ``sa`` with fixed squared residuals of points ``ids``."""
    for step in range(steps):
        sa.update(step, ids, sq)


def test_sa_plain_ascent_matches_hand_computation():
    # u = θ (one parameter), targets y = (1, 2): r = θ − y = (−1, −2), r² = (1, 4).
    theta = nn.Parameter(torch.tensor(0.0))
    y = torch.tensor([1.0, 2.0])
    ids = torch.tensor([0, 1])
    options = SAOptions(mask="sigmoid", init=0.0, optimizer="sgd", lr=0.5, normalise=False)
    sa = SelfAdaptiveMask(2, options)
    descent = torch.optim.SGD([theta], lr=0.1)

    sq = (theta - y) ** 2
    loss = sa.weighted_loss(sq, ids)
    # L = (1/2) Σ σ(λ_i) r_i² = (1/2)(0.5·1 + 0.5·4) = 1.25
    assert loss.item() == pytest.approx(1.25)
    loss.backward()
    descent.step()
    sa.update(0, ids, sq.detach())

    # λ_i += lr · σ'(0) · r_i² / N = 0.5 · 0.25 · (1, 4) / 2 = (0.0625, 0.25)
    assert sa.lam.tolist() == pytest.approx([0.0625, 0.25])
    # θ −= lr · (1/N) Σ σ(0) · 2 r_i = 0.1 · (1/2) · 0.5 · 2 · (−3) → θ = 0.15
    assert theta.item() == pytest.approx(0.15)
    gamma = sa.weights(ids)
    assert gamma[1] > gamma[0] > 0.5  # the larger residual got the larger γ, both rose


@pytest.mark.parametrize("optimizer", ["scaled", "bounded", "sgd", "adam"])
def test_sa_ascent_attaches_to_ids_not_positions(optimizer):
    in_order = SelfAdaptiveMask(3, SAOptions(optimizer=optimizer, lr=0.1))
    shuffled = SelfAdaptiveMask(3, SAOptions(optimizer=optimizer, lr=0.1))
    _ascend(in_order, torch.tensor([1.0, 4.0, 9.0]), torch.tensor([0, 1, 2]), 3)
    _ascend(shuffled, torch.tensor([9.0, 1.0, 4.0]), torch.tensor([2, 0, 1]), 3)
    torch.testing.assert_close(in_order.lam, shuffled.lam)


def test_the_default_ascent_is_the_bounded_one():
    assert SAOptions().optimizer == "bounded" and SAOptions().rate == 1e-2


@pytest.mark.parametrize("optimizer", ["bounded", "scaled"])
def test_sa_default_ascent_follows_the_residual(optimizer):
    # Equal residuals: every λ rises at the same rate.
    sa = SelfAdaptiveMask(4, SAOptions(optimizer=optimizer))
    _ascend(sa, torch.full((4,), 2.0), torch.arange(4), 20)
    assert float(sa.lam[0]) > 1.0 and torch.allclose(sa.lam, sa.lam[0].expand(4))
    # Double one point's residual: it rises faster, the others together.
    sa = SelfAdaptiveMask(4, SAOptions(optimizer=optimizer))
    _ascend(sa, torch.tensor([2.0, 2.0, 8.0, 2.0]), torch.arange(4), 20)
    assert float(sa.lam[2]) > float(sa.lam[0]) + 0.01
    assert torch.allclose(sa.lam[[0, 1, 3]], sa.lam[0].expand(3))
    # What Adam ascent lacks: with steady gradients every λ climbs alike.
    adam = SelfAdaptiveMask(4, SAOptions(optimizer="adam"))
    _ascend(adam, torch.tensor([2.0, 2.0, 8.0, 2.0]), torch.arange(4), 20)
    assert float(adam.lam[2] - adam.lam[0]) < 0.01 * float(adam.lam[2] - 1.0)


@pytest.mark.parametrize("optimizer", ["bounded", "scaled"])
def test_sa_default_ascent_is_unit_free(optimizer):
    # Fixed residuals in two unit systems (×10): the same relative masks all along.
    sq = torch.tensor([0.5, 1.0, 3.0, 0.1, 2.0, 7.0])
    a, b = (SelfAdaptiveMask(6, SAOptions(optimizer=optimizer)) for _ in range(2))
    for step in range(30):
        ids = torch.tensor([step % 6, (step + 2) % 6, (step + 3) % 6])
        a.update(step, ids, sq[ids])
        b.update(step, ids, 100.0 * sq[ids])  # residuals ×10: r² ×100
        torch.testing.assert_close(a.gamma(), b.gamma())
    assert float(a.gamma().max()) > 1.01  # it did move
    # Plain ascent on the loss carries the units: the same ×10 moves it far more.
    c, d = (SelfAdaptiveMask(6, SAOptions(optimizer="sgd")) for _ in range(2))
    _ascend(c, sq, torch.arange(6), 5)
    _ascend(d, 100.0 * sq, torch.arange(6), 5)
    assert float(d.lam.max() - 1) > 50 * float(c.lam.max() - 1)


def test_bounded_ascent_caps_a_runaway_residual():
    """A source region: 10 of 1,000 points with r² 10⁴ times the rest's. Under the
    scaled ascent their λ grows ×1.2 per visit (λ² ×1.4) and runs away; under the
    bounded one a visit moves λ by at most lr · m'(λ) (×(1 + 2 lr)), and they still
    lead. Both at lr 1e-3."""
    sq = torch.ones(1000)
    sq[:10] = 1e4
    ids = torch.arange(1000)
    # the per-visit bound alone, uncapped (max_relative is tested below)
    scaled = SelfAdaptiveMask(1000, SAOptions(optimizer="scaled", max_relative=None))
    bounded = SelfAdaptiveMask(1000, SAOptions(optimizer="bounded", lr=1e-3, max_relative=None))
    for step in range(50):
        scaled.update(step, ids, sq)
        before = bounded.lam.clone()
        bounded.update(step, ids, sq)
        assert float(bounded.lam[0]) <= float(before[0]) * (1 + 2e-3) + 1e-6
    assert float(scaled.lam[0]) > 1000.0
    assert 1.05 < float(bounded.lam[0]) < 1.11
    assert float(bounded.lam[0]) > float(bounded.lam[500]) > 1.0


@pytest.mark.parametrize(
    ("mask", "init", "lr"), [("square", 1.0, 0.1), ("softplus", 0.0, 0.5), ("sigmoid", -6.0, 50.0)]
)
def test_sa_max_relative_caps_the_mask_and_keeps_its_ranking(mask, init, lr):
    """The same source region under a fast ascent: uncapped, its points end far
    above 20× the mean mask (the rest of the pool switched off); the default cap
    holds them at 20× and ``max_relative = 5`` at 5×, with the source points at
    the cap and a point with a middling residual still above the quiet ones."""
    sq = torch.ones(1000)
    sq[:10], sq[10] = 1e4, 3.0
    ids = torch.arange(1000)
    free = SelfAdaptiveMask(1000, SAOptions(mask=mask, init=init, lr=lr, max_relative=None))
    default = SelfAdaptiveMask(1000, SAOptions(mask=mask, init=init, lr=lr))
    capped = SelfAdaptiveMask(1000, SAOptions(mask=mask, init=init, lr=lr, max_relative=5))
    for step in range(200):
        for sa in (free, default, capped):
            sa.update(step, ids, sq)
        assert float(capped.gamma().max()) <= 5.0 * (1 + 1e-5)
        assert float(default.gamma().max()) <= 20.0 * (1 + 1e-5)
    assert float(free.gamma()[:10].min()) > 20.0
    assert float(default.diagnostics()["capped_fraction"]) == pytest.approx(0.01)
    assert "capped_fraction" not in free.diagnostics()
    rel = capped.gamma()
    assert float(rel[:10].min()) > 4.8
    assert float(rel[10]) > float(rel[11:].max())
    with pytest.raises(ConfigError, match="max_relative must be > 1"):
        SAOptions(max_relative=1.0)


def test_sa_max_relative_holds_within_time_slices_and_for_the_recipes_ascent():
    """The cap is against the mean of the point's own time slice; it holds for the
    forward recipe's unnormalised Adam ascent; a negative square-mask λ keeps its
    sign; and a config turns it off with the word none."""
    from seispinn.config import build_section, parse_overrides
    from seispinn.pinn.weighting import WeightingOptions

    t = torch.linspace(0, 0.99, 1000)
    sq = torch.ones(1000)
    sq[:5] = 1e4  # early points with a large residual
    sq[500:] = 100.0  # late times' larger residual raises their slice's mean
    ids = torch.arange(1000)
    sliced = SelfAdaptiveMask(1000, SAOptions(lr=0.1, time_slices=2, max_relative=5))
    sliced.set_times(t)
    for step in range(200):
        sliced.update(step, ids, sq)
    gamma = sliced._mask(sliced.lam)
    first = gamma[sliced.slice == 0]
    assert float(gamma[:5].min() / first.mean()) == pytest.approx(5.0, rel=0.02)
    assert float(gamma[:5].min() / gamma.mean()) < 4.5  # not the pool's mean
    adam = SelfAdaptiveMask(1000, SAOptions(optimizer="adam", normalise=False, max_relative=3))
    for step in range(300):
        adam.update(step, ids, sq)
    assert float(adam.gamma().max()) <= 3.0 * (1 + 1e-5)
    negative = SelfAdaptiveMask(4, SAOptions(init=-1.0, lr=0.5, max_relative=2))
    for step in range(50):
        negative.update(step, torch.arange(4), torch.tensor([1e4, 1.0, 1.0, 1.0]))
    assert bool((negative.lam < 0).all())
    assert float(negative.gamma().max()) <= 2.0 * (1 + 1e-5)
    off = build_section(WeightingOptions, {"sa": {"max_relative": "none"}}, "run.toml [weighting]")
    assert off.sa.max_relative is None
    over = parse_overrides(["weighting.sa.max_relative=none"])
    assert build_section(WeightingOptions, over["weighting"], "--set").sa.max_relative is None


@pytest.mark.parametrize("optimizer", ["scaled", "bounded", "sgd", "adam"])
def test_sa_points_outside_the_batch_do_not_move(optimizer):
    sa = SelfAdaptiveMask(6, SAOptions(optimizer=optimizer))
    _ascend(sa, torch.ones(6), torch.arange(6))  # every point once: Adam has momentum
    before = sa.lam.clone()
    sa.update(1, torch.tensor([1, 4]), torch.tensor([2.0, 3.0]))
    moved = (sa.lam != before).nonzero()[:, 0].tolist()
    assert moved == [1, 4]


def test_sa_admitted_points_start_from_the_pool_mean():
    sa = SelfAdaptiveMask(4, SAOptions(optimizer="adam"))
    _ascend(sa, torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.arange(4), 3)
    _ascend(sa, torch.tensor([9.0, 9.0]), torch.tensor([2, 3]), 5)
    kept = float(sa.lam[:3].mean())
    sa.admit(torch.tensor([3]))
    assert float(sa.lam[3]) == pytest.approx(kept)
    assert float(sa.adam_steps[3]) == 0.0 and float(sa.adam_m[3]) == 0.0


def test_sa_time_slices_keep_each_times_share_and_rank_within_it():
    """Late points with 10× the residual: over the whole pool the mask moves weight
    to late times; with two time slices each time keeps mean weight 1 and the mask
    still ranks points by residual inside a slice."""
    t = torch.tensor([0.1, 0.2, 0.3, 0.6, 0.7, 0.9])
    sq = torch.tensor([1.0, 2.0, 1.0, 10.0, 20.0, 10.0])
    ids = torch.arange(6)
    pooled = SelfAdaptiveMask(6, SAOptions(lr=0.1))
    sliced = SelfAdaptiveMask(6, SAOptions(lr=0.1, time_slices=2))
    for sa in (pooled, sliced):
        sa.set_times(t)
        _ascend(sa, sq, ids, 20)
    assert float(pooled.weights(ids)[3:].mean()) > 1.05  # late times took weight
    w = sliced.weights(ids)
    torch.testing.assert_close(w[:3].mean(), torch.tensor(1.0))
    torch.testing.assert_close(w[3:].mean(), torch.tensor(1.0))
    assert float(w[1]) > float(w[0]) and float(w[4]) > float(w[3])
    with pytest.raises(ConfigError, match="set_times needs"):
        sliced.set_times(t[:3])
    with pytest.raises(ConfigError, match="needs normalise"):
        SAOptions(time_slices=4, normalise=False)


@pytest.mark.parametrize("mask", ["sigmoid", "square", "softplus"])
def test_sa_masks_grow_faster_on_larger_residuals(mask):
    sa = SelfAdaptiveMask(3, SAOptions(mask=mask, init=0.5, lr=0.1))
    _ascend(sa, torch.tensor([0.01, 0.1, 1.0]), torch.arange(3), 5)
    rel = sa.gamma()
    assert rel[0] < rel[1] < rel[2]


def test_sa_freeze_stops_ascent():
    sa = SelfAdaptiveMask(4)
    sa.freeze()
    _ascend(sa, torch.ones(4), torch.arange(4), 3)
    assert sa.frozen and torch.equal(sa.lam, torch.ones(4))
    assert not sa.weighted_loss(torch.ones(4), torch.arange(4)).requires_grad
    sa.unfreeze()
    _ascend(sa, torch.ones(4), torch.arange(4), 1)
    assert float(sa.lam[0]) > 1.0


def test_sa_adam_first_step_is_the_learning_rate():
    sa = SelfAdaptiveMask(2, SAOptions(mask="square", optimizer="adam", lr=0.1, normalise=False))
    sa.update(0, torch.arange(2), torch.tensor([1.0, 0.0]))
    # Adam's first step is lr · sign(grad) where the grad is non-zero.
    assert sa.lam.tolist() == pytest.approx([1.1, 1.0])


def test_sa_lr_factor_scales_the_ascent():
    full, half = (
        SelfAdaptiveMask(2, SAOptions(optimizer="sgd")),
        SelfAdaptiveMask(2, SAOptions(optimizer="sgd")),
    )
    half.set_lr_factor(0.5)
    _ascend(full, torch.tensor([1.0, 2.0]), torch.arange(2))
    _ascend(half, torch.tensor([1.0, 2.0]), torch.arange(2))
    torch.testing.assert_close(half.lam - 1, 0.5 * (full.lam - 1))


# ------------------------------------------------------------------------------------
# Gradient norms
# ------------------------------------------------------------------------------------


def linear_problem():
    torch.manual_seed(3)
    model = nn.Linear(3, 1)
    x = torch.randn(8, 3)
    with torch.no_grad():
        y = model(x).squeeze(-1) + torch.randn(8)
        y[5] = model(x[5]).squeeze(-1) + 1e-6  # a point already fitted: g ≈ 0
    residual = (model(x).squeeze(-1) - y).detach()
    closed_form = 2 * residual.abs() * torch.sqrt(x.pow(2).sum(1) + 1)  # ‖2 r_i [x_i, 1]‖
    return model, x, y, closed_form


@pytest.mark.parametrize("method", ["linear", "vmap", "loop", "auto"])
def test_grad_norms_linear_model_closed_form(method):
    model, x, y, closed_form = linear_problem()
    norms, used = per_point_grad_norms(PointLoss(model, regression_loss(model), (x, y)), method)
    assert used == ("linear" if method == "auto" else method)
    torch.testing.assert_close(norms, closed_form, rtol=1e-5, atol=1e-6)


def test_gradnorm_first_refresh_matches_formula():
    model, x, y, g = linear_problem()
    options = GradNormOptions(eps=1e-3, w_min=0.5, w_max=2.0, alpha=0.9, every=2)
    gn = GradNormWeights(8, options)
    ids = torch.arange(8)
    point_loss = PointLoss(model, regression_loss(model), (x, y))
    gn.update(0, ids, torch.zeros(8), point_loss)

    target = g.mean() / (g + 1e-3)
    target = target / target.mean()
    expected = 0.9 * 1.0 + 0.1 * target.clamp(0.5, 2.0)
    torch.testing.assert_close(gn.weights(ids), expected, rtol=1e-5, atol=1e-6)
    assert gn.weights(ids)[5] == pytest.approx(0.9 + 0.1 * 2.0)  # tiny g → at the ceiling

    d = gn.diagnostics()
    assert d["clipped_high_fraction"] == pytest.approx(float((target >= 2.0).float().mean()))
    assert d["clipped_high_fraction"] >= 1 / 8
    assert d["target_max"] == pytest.approx(float(target.max()), rel=1e-5)
    assert d["small_grad_gamma"] == pytest.approx(d["relative_max"])
    assert d["refreshes"] == 1

    # step 1 is not a refresh step (every=2): nothing changes
    before = gn.weights(ids).clone()
    gn.update(1, ids, torch.zeros(8), None)
    torch.testing.assert_close(gn.weights(ids), before)


def test_gradnorm_needs_point_loss_on_refresh():
    with pytest.raises(ConfigError, match="point_loss"):
        GradNormWeights(3).update(0, torch.arange(3), torch.ones(3))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(activation="tanh"),
        dict(activation="sin", fourier_features=4, fourier_scale=2.0),
        dict(activation="gelu"),
    ],
)
def test_cheap_grad_norms_equal_exact_on_mlp(kwargs):
    torch.manual_seed(0)
    model = MLP(2, 2, width=12, depth=3, **kwargs)
    x, y = torch.randn(17, 2), torch.randn(17)

    def loss_fn(params, points):
        x, y = points
        u = functional_call(model, params, (x,))
        return (u[:, 0] * u[:, 1] - y) ** 2  # non-linear in the outputs: δ_i is per point

    point_loss = PointLoss(model, loss_fn, (x, y))
    cheap = grad_norms_linear(point_loss)
    assert cheap is not None
    torch.testing.assert_close(cheap, grad_norms_vmap(point_loss), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(cheap, grad_norms_loop(point_loss), rtol=1e-4, atol=1e-6)


def test_input_derivative_losses_fall_back_to_exact():
    torch.manual_seed(1)
    model = MLP(1, 1, width=8, depth=2)
    x = torch.randn(9, 1)

    def autograd_residual(params, points):  # r = u_x − 1 via torch.autograd
        (xb,) = points
        xb = xb.clone().requires_grad_(True)
        u = functional_call(model, params, (xb,))
        (u_x,) = torch.autograd.grad(u.sum(), xb, create_graph=True)
        return (u_x[:, 0] - 1.0) ** 2

    def func_residual(params, points):  # the same with torch.func
        (xb,) = points

        def u(xi):
            return functional_call(model, params, (xi.unsqueeze(0),)).squeeze()

        return (torch.vmap(torch.func.grad(u))(xb)[:, 0] - 1.0) ** 2

    reference = grad_norms_loop(PointLoss(model, autograd_residual, (x,)))
    assert grad_norms_linear(PointLoss(model, autograd_residual, (x,))) is None
    assert grad_norms_linear(PointLoss(model, func_residual, (x,))) is None
    norms, used = per_point_grad_norms(PointLoss(model, autograd_residual, (x,)))
    assert used == "loop"
    torch.testing.assert_close(norms, reference)
    norms, used = per_point_grad_norms(PointLoss(model, func_residual, (x,)))
    assert used == "vmap"
    torch.testing.assert_close(norms, reference, rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="linear"):
        per_point_grad_norms(PointLoss(model, func_residual, (x,)), "linear")


# ------------------------------------------------------------------------------------
# RBA and uniform
# ------------------------------------------------------------------------------------


def test_rba_update_formula():
    rba = ResidualBasedAttention(3, RBAOptions(decay=0.5, eta=0.2, init=1.0, normalise=False))
    ids = torch.tensor([2, 0])
    rba.update(0, ids, torch.tensor([4.0, 1.0]))  # |r| = (2, 1), max 2
    # λ_2 = 0.5·1 + 0.2·2/2 = 0.7; λ_0 = 0.5·1 + 0.2·1/2 = 0.6; λ_1 untouched
    assert rba.lam.tolist() == pytest.approx([0.6, 1.0, 0.7])
    assert rba.weights(torch.arange(3)).tolist() == pytest.approx([0.36, 1.0, 0.49])
    normalised = ResidualBasedAttention(3, RBAOptions(decay=0.5, eta=0.2, init=1.0))
    normalised.update(0, ids, torch.tensor([4.0, 1.0]))
    w = normalised.weights(torch.arange(3))
    assert w.mean().item() == pytest.approx(1.0)
    torch.testing.assert_close(w, torch.tensor([0.36, 1.0, 0.49]) / (1.85 / 3))


def test_rba_from_zero_starts_uniform():
    rba = ResidualBasedAttention(4)
    assert rba.weights(torch.arange(4)).tolist() == [1.0] * 4


def test_uniform_and_weighted_loss():
    u = Uniform(5)
    sq = torch.tensor([1.0, 2.0, 3.0])
    assert u.weighted_loss(sq, torch.tensor([4, 0, 2])).item() == pytest.approx(2.0)
    assert u.diagnostics()["relative_max"] == 1.0


def test_enrichment_formula():
    w = torch.tensor([1.0, 1.0, 2.0, 2.0])
    region = torch.tensor([False, False, True, True])
    assert enrichment(w, region) == pytest.approx((4 / 6) / (2 / 4))
    assert enrichment(torch.ones(4), region) == pytest.approx(1.0)
    assert math.isnan(enrichment(w, torch.zeros(4, dtype=torch.bool)))


# ------------------------------------------------------------------------------------
# Ids: shuffling and mini-batching keep weight i on point i
# ------------------------------------------------------------------------------------

STRATEGY_OPTIONS = {
    "uniform": None,
    "sa": SAOptions(mask="square", init=1.0, optimizer="adam", lr=5e-2),
    "rba": RBAOptions(decay=0.9, eta=0.1),
    "gradnorm": GradNormOptions(every=3, alpha=0.5),
}


def train_full_batch(name: str, shuffle: bool, steps: int = 40):
    """Full-batch weighted fit of a transition; optionally permute the rows every step.

    float64 and an asymmetric target: with a symmetric one, gradients that vanish
    by symmetry are float noise whose sign Adam amplifies, and the summation order
    (which shuffling changes) would then decide the run.
    """
    torch.manual_seed(0)
    n = 16
    model = MLP(1, 1, width=8, depth=2).double()
    x_all = torch.linspace(-1, 1, n, dtype=torch.float64)[:, None]
    y_all = torch.tanh(10 * x_all[:, 0] - 2) + 0.3 * x_all[:, 0]
    weighting = make_weighting(name, n, STRATEGY_OPTIONS[name]).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    order = torch.Generator().manual_seed(1)
    for step in range(steps):
        ids = torch.randperm(n, generator=order) if shuffle else torch.arange(n)
        x, y = x_all[ids], y_all[ids]
        opt.zero_grad()
        sq = (model(x).squeeze(-1) - y) ** 2
        weighting.weighted_loss(sq, ids).backward()
        opt.step()
        weighting.update(step, ids, sq.detach(), PointLoss(model, regression_loss(model), (x, y)))
    return weighting.weights(torch.arange(n)).detach(), model


@pytest.mark.parametrize("name", ["uniform", "sa", "rba", "gradnorm"])
def test_shuffling_keeps_each_points_weight(name):
    w_plain, model_plain = train_full_batch(name, shuffle=False)
    w_shuffled, model_shuffled = train_full_batch(name, shuffle=True)
    if name != "uniform":
        # The weights must differ between points, or a mix-up could not show.
        assert (w_plain / w_plain.mean()).std() > 0.05
    torch.testing.assert_close(w_shuffled, w_plain, rtol=1e-7, atol=1e-9)
    for p, q in zip(model_plain.parameters(), model_shuffled.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-7, atol=1e-9)


def test_sa_minibatches_equal_full_batch_with_plain_ascent():
    # Fixed residuals; each λ_i's ascent step only depends on λ_i and r_i, so an
    # epoch of mini-batches (lr scaled by B/N) equals one full-batch step.
    n, batch, lr, epochs = 12, 4, 2.0, 5
    sq = torch.linspace(0.01, 1.0, n) ** 2
    # Unnormalised masks: with normalisation the mean γ of a mini-batch step depends
    # on which points moved before it.
    options = SAOptions(mask="square", init=1.0, optimizer="sgd", lr=lr, normalise=False)
    full = SelfAdaptiveMask(n, options)
    mini = SelfAdaptiveMask(
        n, SAOptions(mask="square", optimizer="sgd", lr=lr * batch / n, normalise=False)
    )
    order = torch.Generator().manual_seed(0)
    for step in range(epochs):
        full.update(step, torch.arange(n), sq)
        for ids in torch.randperm(n, generator=order).split(batch):
            mini.update(step, ids, sq[ids])
    assert full.gamma().std() > 0.1
    torch.testing.assert_close(mini.lam, full.lam)


def test_rba_minibatches_touch_only_their_points():
    n = 12
    sq = torch.linspace(0.01, 1.0, n) ** 2
    full = ResidualBasedAttention(n, RBAOptions(decay=0.9, eta=0.1))
    mini = ResidualBasedAttention(n, RBAOptions(decay=0.9, eta=0.1))
    full.update(0, torch.arange(n), sq)
    # Batches that each hold the point with the largest residual see the same
    # max |r| as the full batch, so every λ_i ends where the full batch put it.
    top = torch.tensor([n - 1])
    for ids in (torch.tensor([3, 0, 7, 1, 9]), torch.tensor([2, 10, 5, 4, 6, 8])):
        before = mini.lam.clone()
        mini.update(0, torch.cat([ids, top]), sq[torch.cat([ids, top])])
        untouched = torch.ones(n, dtype=torch.bool)
        untouched[ids], untouched[top] = False, False
        torch.testing.assert_close(mini.lam[untouched], before[untouched])
        mini.lam[top] = before[top]  # the shared point takes its update once
    mini.lam[top] = full.lam[top]
    torch.testing.assert_close(mini.lam, full.lam)


def test_gradnorm_minibatch_refresh_is_order_free_and_local():
    torch.manual_seed(0)
    model = MLP(1, 1, width=8, depth=2)
    x, y = torch.linspace(-1, 1, 10)[:, None], torch.tanh(5 * torch.linspace(-1, 1, 10))
    a = GradNormWeights(10, GradNormOptions(every=1))
    b = GradNormWeights(10, GradNormOptions(every=1))
    ids = torch.tensor([7, 2, 5, 0])
    perm = torch.tensor([2, 0, 3, 1])
    a.update(0, ids, torch.zeros(4), PointLoss(model, regression_loss(model), (x[ids], y[ids])))
    pids = ids[perm]
    b.update(0, pids, torch.zeros(4), PointLoss(model, regression_loss(model), (x[pids], y[pids])))
    torch.testing.assert_close(a.weight, b.weight)
    outside = torch.tensor([1, 3, 4, 6, 8, 9])
    assert a.weight[outside].tolist() == [1.0] * 6
    assert not torch.allclose(a.weight[ids], torch.ones(4))


# ------------------------------------------------------------------------------------
# State, factory, validation
# ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["uniform", "sa", "rba", "gradnorm"])
def test_state_dict_round_trip(name):
    source = make_weighting(name, 16, STRATEGY_OPTIONS[name])
    ids = torch.arange(16)
    sq = torch.linspace(0.0, 1.0, 16)
    # Move the state away from its initial value through each strategy's own rule.
    if name in ("sa", "rba"):
        source.update(0, ids, sq)
    elif name == "gradnorm":
        source.refresh(ids[:10], torch.linspace(0.1, 2.0, 10))
    buffer = io.BytesIO()
    torch.save(source.state_dict(), buffer)
    buffer.seek(0)
    restored = make_weighting(name, 16, STRATEGY_OPTIONS[name])
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    if name != "uniform":
        assert not torch.allclose(restored.weights(ids), torch.ones(16))
    torch.testing.assert_close(restored.weights(ids), source.weights(ids))
    assert restored.diagnostics() == pytest.approx(source.diagnostics())
    if name != "uniform":
        with pytest.raises(TrainingError, match="cannot load"):
            make_weighting(name, 5, STRATEGY_OPTIONS[name]).load_state_dict(source.state_dict())


def test_factory_and_validation_errors():
    assert isinstance(make_weighting("sa", 3), SelfAdaptiveMask)
    with pytest.raises(ConfigError, match="unknown strategy 'selfadaptive'"):
        make_weighting("selfadaptive", 3)
    with pytest.raises(ConfigError, match="SAOptions"):
        make_weighting("sa", 3, RBAOptions())
    with pytest.raises(ConfigError, match="mask"):
        SAOptions(mask="relu")
    with pytest.raises(ConfigError, match="w_min"):
        GradNormOptions(w_min=2.0)
    with pytest.raises(ConfigError, match="eps > 0"):
        GradNormOptions(eps=0.0)
    with pytest.raises(ConfigError, match="fixed point"):
        SAOptions(mask="square", init=0.0)
    with pytest.raises(ConfigError, match=r"\[0, 3\)"):
        make_weighting("uniform", 3).weighted_loss(torch.ones(2), torch.tensor([0, 3]))
    with pytest.raises(ConfigError, match="LongTensor"):
        make_weighting("sa", 3).weighted_loss(torch.ones(1), torch.tensor([0], dtype=torch.int32))


def test_mlp_shapes_and_init():
    torch.manual_seed(0)
    net = MLP(3, 2, width=64, depth=3, activation="sin", fourier_features=5)
    assert net(torch.randn(7, 3)).shape == (7, 2)
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert linears[0].in_features == 10 and len(linears) == 4
    assert all(torch.count_nonzero(m.bias) == 0 for m in linears)
    hidden = linears[1].weight
    assert hidden.std().item() == pytest.approx(math.sqrt(2 / (64 + 64)), rel=0.1)
    assert not any(p.requires_grad for p in net.layers[0].buffers())
    with pytest.raises(ConfigError, match="activation"):
        MLP(1, 1, activation="swish2")


def test_grad_norms_from_gram_matrices_match_exact_ones_for_a_wave_residual():
    """A residual built on forward-mode jets (u_tt − c² ∇²u − s) takes the cheap
    path, and its per-point norms equal torch.func's exact ones."""
    from seispinn.pinn.derivatives import mlp_jet

    torch.manual_seed(0)
    net = MLP(3, 1, width=16, depth=2)
    speed = MLP(2, 1, width=8, depth=1)  # a plain-called network beside it

    class Residual(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net, self.speed = net, speed

        def forward(self, x):
            jet = mlp_jet(self.net, x)
            c = 1.0 + 0.1 * torch.tanh(self.speed(x[:, :2]))[:, 0]
            lap = jet.second[:, 0, 0] + jet.second[:, 1, 0]
            return (jet.second[:, 2, 0] - c**2 * lap - x[:, 0]) ** 2

    res = Residual()
    x = torch.randn(40, 3)
    point_loss = PointLoss(res, lambda p, pts: functional_call(res, p, (pts,)), x)
    cheap = grad_norms_linear(point_loss)
    assert cheap is not None
    torch.testing.assert_close(cheap, grad_norms_vmap(point_loss), rtol=1e-4, atol=1e-5)
    assert per_point_grad_norms(point_loss)[1] == "linear"


# ------------------------------------------------------------------------------------
# The registry and a PDE term's weighting options
# ------------------------------------------------------------------------------------


def test_registry_names_class_options_and_field_of_every_strategy():
    from seispinn.pinn.weighting import STRATEGIES, WeightingOptions

    assert list(STRATEGIES) == ["uniform", "gradnorm", "sa", "rba", "multipliers"]
    defaults = WeightingOptions()
    for name, (cls, options_cls, field_name) in STRATEGIES.items():
        chosen = WeightingOptions(name=name)
        built = chosen.build(4)
        assert type(built) is cls and built.name == name
        if options_cls is None:
            assert field_name is None and chosen.options() is None
        else:
            # The options come from the field the registry names, not from a default.
            held = getattr(defaults, field_name)
            assert isinstance(held, options_cls) and chosen.options() is getattr(chosen, field_name)
            assert built.options is chosen.options()


def test_weighting_options_validate_name_and_causal_settings():
    from seispinn.config import build_section
    from seispinn.pinn.weighting import WeightingOptions

    names = "(choose one of uniform, gradnorm, sa, rba, multipliers)"
    with pytest.raises(ConfigError, match=re.escape(f"unknown strategy 'softmax' {names}")):
        WeightingOptions(name="softmax")
    # From a config the message names the key, before the class's own check.
    want = f"run.toml [weighting] name: unknown strategy 'softmax' {names}"
    with pytest.raises(ConfigError, match=re.escape(want)):
        build_section(WeightingOptions, {"name": "softmax"}, "run.toml [weighting]")
    with pytest.raises(ConfigError, match="causal_eps"):
        WeightingOptions(causal_eps=-1.0)
    with pytest.raises(ConfigError, match="causal_bins"):
        WeightingOptions(causal_bins=0)


def test_weighting_options_take_nested_tables_and_overrides():
    from seispinn.config import apply_overrides, build_section, parse_overrides
    from seispinn.pinn.weighting import WeightingOptions

    base = WeightingOptions(gradnorm=GradNormOptions(every=50))
    got = apply_overrides(
        base, parse_overrides(["name=gradnorm", "gradnorm.alpha=0.5", "sa.lr=0.1"]), "weighting"
    )
    assert got.options() == GradNormOptions(every=50, alpha=0.5)  # every kept from the base
    assert got.sa == SAOptions(lr=0.1)
    built = got.build(6)
    assert isinstance(built, GradNormWeights) and built.options.every == 50
    # A TOML [weighting.sa] table; an unknown key names the table and the known keys.
    sa = build_section(WeightingOptions, {"sa": {"optimizer": "sgd"}}, "run.toml [weighting]")
    assert sa.options() == SAOptions(optimizer="sgd", lr=1e-3)  # the recipe's rate kept
    want = (
        "run.toml [weighting.sa]: unknown key 'lrr' "
        "(known: balance, init, lr, mask, max_relative, normalise, optimizer, time_slices)"
    )
    with pytest.raises(ConfigError, match=re.escape(want)):
        build_section(WeightingOptions, {"sa": {"lrr": 1.0}}, "run.toml [weighting]")
    with pytest.raises(ConfigError, match=r"\[weighting.sa\]: unknown SA mask 'relu'"):
        build_section(WeightingOptions, {"sa": {"mask": "relu"}}, "run.toml [weighting]")


def test_old_import_paths_still_work():
    import seispinn.pinn
    import seispinn.pinn.pointgrad as pointgrad
    import seispinn.pinn.weighting as weighting

    for name in ("PointLoss", "per_point_grad_norms", "grad_norms_linear"):
        assert getattr(pointgrad, name) is getattr(seispinn.pinn, name)
    assert weighting.causal_weights(torch.ones(3), torch.zeros(3), 1.0, 4, 0.0).tolist() == [
        1.0,
        1.0,
        1.0,
    ]


# ------------------------------------------------------------------------------------
# Jets: recording and compilation live on the network, for one block only
# ------------------------------------------------------------------------------------


def test_jet_recording_is_per_network_and_ends_with_the_block():
    from seispinn.pinn.derivatives import mlp_jet, record_jet_linears

    torch.manual_seed(0)
    a, b = MLP(2, 1, width=4, depth=2), MLP(2, 1, width=4, depth=1)
    x = torch.randn(5, 2)
    with record_jet_linears(a) as calls:
        mlp_jet(a, x)
        mlp_jet(b, x)  # not asked for: not recorded
        with record_jet_linears([a]) as inner:
            mlp_jet(a, x)
        mlp_jet(a, x)
    mlp_jet(a, x)  # after the block: nothing records
    linears_a = [m for m in a.layers if isinstance(m, nn.Linear)]
    assert [layer for layer, _, _ in calls] == linears_a * 2
    assert [layer for layer, _, _ in inner] == linears_a
    assert all("jet_recorder" not in m.__dict__ for m in (a, b))
    # An explicit recorder needs no block.
    mine: list = []
    jet = mlp_jet(b, x, recorder=mine)
    assert len(mine) == 2 and mine[-1][2].value is jet.value


def test_compiled_jets_switch_only_the_given_networks(monkeypatch):
    import seispinn.pinn.derivatives as derivatives

    ran: list[int] = []

    def fake_compile():
        def propagate(mlp, x, dims, mix):
            ran.append(id(mlp))
            return derivatives._propagate(mlp, x, dims, mix)

        return propagate

    monkeypatch.setattr(derivatives, "_compiled_propagate", fake_compile)
    torch.manual_seed(0)
    a, b = MLP(2, 1, width=4, depth=1), MLP(2, 1, width=4, depth=1)
    holder = nn.ModuleDict({"net": a})
    x = torch.randn(3, 2)
    eager = derivatives.mlp_jet(a, x)
    with derivatives.compiled_jets(True, [holder]):
        compiled = derivatives.mlp_jet(a, x)
        derivatives.mlp_jet(b, x)  # another network stays eager
        with derivatives.record_jet_linears(a):
            derivatives.mlp_jet(a, x)  # a recording always takes the eager path
        with derivatives.compiled_jets(False, a):
            derivatives.mlp_jet(a, x)
        derivatives.mlp_jet(a, x)
    derivatives.mlp_jet(a, x)
    assert ran == [id(a), id(a)]
    torch.testing.assert_close(compiled.second, eager.second)
    assert "jet_compile" not in a.__dict__
