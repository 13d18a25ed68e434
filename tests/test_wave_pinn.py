"""The wave-equation PINN: residual, derivatives, exact IC, source, training, resume."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from seispinn.acquisition import Source
from seispinn.experiments.forward import (
    forward_problem,
    load_forward_config,
    reference_model,
    run_forward,
)
from seispinn.io.runfolder import load_checkpoint
from seispinn.pinn.collocation import Box, batch_ids, sample_collocation
from seispinn.pinn.training import train
from seispinn.pinn.wave import Scales, WavefieldNet, gaussian_source_density, wave_residual

SCALES = Scales(xc=0.0, zc=0.0, lx=500.0, lz=400.0, t_max=0.35, u_scale=0.1)


def _points(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(n, 3, generator=g, dtype=torch.float64)
    return p * torch.tensor([1000.0, 800.0, 0.35], dtype=torch.float64) - torch.tensor(
        [500.0, 400.0, 0.0], dtype=torch.float64
    )


def test_plane_wave_zeroes_the_residual():
    c, k = 2000.0, 2 * math.pi / 300.0
    kx, kz = k * 0.6, k * 0.8
    w = c * k
    p = _points().requires_grad_(True)
    u = torch.sin(kx * p[:, 0] + kz * p[:, 1] - w * p[:, 2])
    g = torch.autograd.grad(u.sum(), p, create_graph=True)[0]
    h = [torch.autograd.grad(g[:, i].sum(), p, retain_graph=True)[0][:, i] for i in range(3)]
    r = wave_residual(h[2], h[0] + h[1], torch.full_like(u, c), torch.zeros_like(u))
    assert r.abs().max() < 1e-6 * (w**2)
    # A wrong velocity leaves a residual of the size of u_tt.
    r_bad = wave_residual(h[2], h[0] + h[1], torch.full_like(u, 1.1 * c), torch.zeros_like(u))
    assert r_bad.abs().max() > 0.1 * w**2


@pytest.mark.parametrize("exact_ic", [True, False])
def test_network_derivatives_match_autograd(exact_ic):
    torch.manual_seed(0)
    net = WavefieldNet(SCALES, width=16, depth=2, exact_ic=exact_ic, fourier_features=4).double()
    p = _points().requires_grad_(True)
    der = net.derivatives(p)
    u = net(p)
    g = torch.autograd.grad(u.sum(), p, create_graph=True)[0]
    h = [torch.autograd.grad(g[:, i].sum(), p, retain_graph=True)[0][:, i] for i in range(3)]
    torch.testing.assert_close(der.u, u)
    torch.testing.assert_close(der.u_tt, h[2])
    torch.testing.assert_close(der.laplacian, h[0] + h[1])
    u_again, u_t = net.value_and_time_derivative(p)
    torch.testing.assert_close(u_again, u)
    torch.testing.assert_close(u_t, g[:, 2])


def test_exact_ic_vanishes_at_t0():
    torch.manual_seed(1)
    net = WavefieldNet(SCALES, width=32, depth=3).double()
    p = _points(200)
    p[:, 2] = 0.0
    assert net(p).abs().max() == 0.0
    assert net.value_and_time_derivative(p)[1].abs().max() == 0.0
    soft = WavefieldNet(SCALES, width=32, depth=3, exact_ic=False).double()
    assert soft(p).abs().max() > 1e-4


def test_source_integrates_to_the_wavelet():
    src = Source(sigma=35.0, freq=10.0, delay=0.15)
    h = 2.0
    xs = torch.arange(-400.0, 400.0, h, dtype=torch.float64)
    zz, xx = torch.meshgrid(xs, xs, indexing="ij")
    for t in (0.1, 0.15, 0.2):
        pts = torch.stack(
            [xx.ravel(), zz.ravel(), torch.full((xx.numel(),), t, dtype=torch.float64)], 1
        )
        xs0, zs0 = torch.full_like(pts[:, 0], 12.0), torch.full_like(pts[:, 0], -7.0)
        density = gaussian_source_density(pts, xs0, zs0, src)
        integral = density.sum() * h * h
        expected = float(src.wavelet(torch.tensor(t, dtype=torch.float64)))
        assert float(integral) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_collocation_ids_and_near_source_share():
    box = Box(-500, 500, -500, 500, 0.35)
    s = sample_collocation(
        box, 10_000, sources=[(0.0, 0.0)], near_source_fraction=0.2, near_source_radius=50.0
    )
    assert torch.equal(s.ids, torch.arange(10_000))
    assert int(s.near_source.sum()) == 2000
    r = s.points[:, :2].norm(dim=1)
    assert (r[s.near_source] < 150).float().mean() > 0.95
    assert (r[~s.near_source] < 150).float().mean() < 0.1
    assert bool(box.contains(s.points).all())
    a, b = batch_ids(3, 100, 32, seed=5), batch_ids(3, 100, 32, seed=5)
    assert torch.equal(a, b)
    epoch = torch.cat([batch_ids(k, 100, 32, seed=5) for k in range(4)])
    assert torch.equal(epoch.sort().values, torch.arange(100))


def _tiny(name="uniform", steps=60, exact_ic=True, collocation=None, **training):
    return load_forward_config(
        None,
        {
            "training": {
                "steps": steps,
                "log_every": 10,
                "progress": False,
                "checkpoint_every": 20,
                "lr": 2e-3,
                **training,
            },
            "collocation": {
                "n_points": 2000,
                "batch_size": 500,
                "n_ic": 500,
                **(collocation or {}),
            },
            "network": {"width": 24, "depth": 2, "exact_ic": exact_ic},
            "weighting": {"name": name},
            "reference": {"dx": 10.0, "padding": 200.0},
        },
    )


def _problem(config):
    return forward_problem(config, reference_model(config), torch.device("cpu"))


@pytest.mark.parametrize("exact_ic", [True, False])
def test_short_run_decreases_every_loss_term(exact_ic):
    torch.set_num_threads(1)
    config = _tiny(steps=80, exact_ic=exact_ic)
    history = train(_problem(config), config.training)
    first, last = history[0], history[-1]
    terms = [k for k in first if k.startswith("loss_")]
    assert ("loss_ic" in terms) == (not exact_ic)
    for k in terms:
        assert last[k] < first[k], k


@pytest.mark.parametrize("resample_every", [0, 10])
def test_resume_continues_the_same_trajectory(tmp_path, resample_every):
    # With a resampled pool (events at steps 10, 20, 30) the resumed run starts at
    # step 20, itself an event: it must rebuild the pool and restart those points.
    torch.set_num_threads(1)
    pool = {"resample_every": resample_every}
    full = _tiny("sa", steps=40, collocation=pool)
    straight = _problem(full)
    train(straight, full.training, tmp_path / "a")
    half = _tiny("sa", steps=40, collocation=pool)
    first = _problem(half)
    original = first.losses

    def interrupted(step):
        if step == 27:  # between checkpoints (every 20 steps)
            raise KeyboardInterrupt
        return original(step)

    first.losses = interrupted
    with pytest.raises(KeyboardInterrupt):
        train(first, half.training, tmp_path / "b")
    state = load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert state["step"] == 20
    resumed = _problem(half)
    train(resumed, half.training, tmp_path / "b", resume=True)
    for (k, a), b in zip(
        straight.wavefield.state_dict().items(),
        resumed.wavefield.state_dict().values(),
        strict=True,
    ):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=k)
    torch.testing.assert_close(
        straight.weighting.state_dict()["lam"], resumed.weighting.state_dict()["lam"]
    )
    torch.testing.assert_close(straight.points.points, resumed.points.points)


def test_a_resampled_pool_redraws_a_share_and_restarts_its_weights():
    config = _tiny("sa", collocation={"resample_every": 10, "resample_fraction": 0.25})
    problem = _problem(config)
    first = problem.points
    problem.weighting.lam.copy_(torch.arange(2000, dtype=torch.float32))
    problem.losses(9)
    assert problem.points is first  # no event yet
    problem.losses(10)
    moved = (problem.points.points != first.points).any(1)
    assert int(moved.sum()) == 500  # a quarter of the pool, every coordinate fresh
    assert torch.equal(problem.points.shot, first.shot)
    assert torch.equal(problem.points.near_source, first.near_source)
    assert problem.points.points[:, 2].min() >= 0 and problem.points.points[:, 2].max() <= 0.5
    kept = torch.arange(2000.0)[~moved].mean()
    torch.testing.assert_close(problem.weighting.lam[moved], kept.expand(500))
    assert torch.equal(problem.weighting.lam[~moved], torch.arange(2000.0)[~moved])
    # Two events in turn, or jumped to (a resume): the same pool.
    problem.losses(20)
    jumped = _problem(config)
    jumped.losses(25)
    assert torch.equal(jumped.points.points, problem.points.points)
    jumped.losses(3)  # back before the first event (a divergence retry): the first pool
    assert torch.equal(jumped.points.points, first.points)


def test_sa_time_slices_follow_the_points_times_through_a_resampling():
    config = _tiny("sa", collocation={"resample_every": 10})
    config = dataclasses.replace(
        config,
        weighting=dataclasses.replace(
            config.weighting,
            sa=dataclasses.replace(config.weighting.sa, normalise=True, time_slices=4),
        ),
    )
    problem = _problem(config)

    def expected() -> torch.Tensor:
        t = problem.points.points[:, 2] / problem.scales.t_max
        return (t * 4).long().clamp(0, 3)

    assert torch.equal(problem.weighting.slice, expected())
    assert set(problem.weighting.slice.tolist()) == {0, 1, 2, 3}
    before = problem.weighting.slice.clone()
    problem.losses(10)  # a quarter of the pool redrawn
    assert torch.equal(problem.weighting.slice, expected())
    assert not torch.equal(problem.weighting.slice, before)


def test_nan_stops_with_step_term_and_checkpoint(tmp_path):
    config = _tiny(steps=30)
    problem = _problem(config)
    train(problem, _tiny(steps=20).training, tmp_path)
    original = problem.losses

    def poisoned(step):
        out = original(step)
        if step >= 25:
            out.terms["pde"] = out.terms["pde"] * float("nan")
        return out

    problem.losses = poisoned
    from seispinn.errors import TrainingError

    with pytest.raises(TrainingError, match=r"'pde' became nan at step 25; last good checkpoint"):
        train(problem, config.training, tmp_path, resume=True)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 20


def test_checkpoint_loading_is_weights_only(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "checkpoint.pt"
    torch.save({"x": Evil()}, bad, pickle_protocol=2)
    from seispinn.errors import TrainingError

    with pytest.raises(TrainingError, match="not a loadable"):
        load_checkpoint(bad)
    del pickle


def test_reference_model_frame_and_layers():
    config = load_forward_config(
        None,
        {
            "model": {
                "generator": "layered",
                "interfaces": [100.0],
                "velocities": [2000.0, 3000.0],
            },
            "reference": {"dx": 10.0, "padding": 100.0},
        },
    )
    m = reference_model(config)
    assert m.x0 == pytest.approx(-600.0) and m.z0 == pytest.approx(-600.0)
    col = m.values[:, 0]
    z = m.z
    assert np.all(col[z < 95] == 2000.0) and np.all(col[z > 105] == 3000.0)


def test_forward_cli_writes_the_run_folder(tmp_path, capsys):
    from seispinn.cli import main

    config = tmp_path / "tiny.toml"
    config.write_text(
        "[network]\nwidth = 16\ndepth = 2\n"
        "[collocation]\nn_points = 1000\nbatch_size = 250\n"
        "[weighting]\nname = 'sa'\n"
        "[training]\nsteps = 6\ncheckpoint_every = 3\nsnapshot_every = 3\nprogress = false\n"
        "[reference]\ndx = 10.0\npadding = 200.0\nsnapshot_times = [0.2, 0.3]\n"
    )
    run = tmp_path / "run"
    assert main(["forward", "--config", str(config), "--run-dir", str(run)]) == 0
    for name in ("config.toml", "checkpoint.pt", "history.json", "metrics.json", "snapshots.npz"):
        assert (run / name).exists(), name
    assert sorted(p.name for p in (run / "gamma").iterdir()) == [
        "step_000000.npz",
        "step_000003.npz",
        "step_000006.npz",
    ]
    g = np.load(run / "gamma" / "step_000006.npz")
    assert g["points"].shape == (1000, 3) and g["gamma"].shape == (1000,)
    assert g["gamma"].mean() == pytest.approx(1.0, rel=1e-5)
    out = capsys.readouterr().out
    assert "wavefield error" in out


def test_forward_cli_rejects_bad_config_up_front(tmp_path, capsys):
    from seispinn.cli import main

    config = tmp_path / "bad.toml"
    config.write_text("[training]\nsteps = 0\n")
    assert main(["forward", "--config", str(config), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "nothing would be trained" in err and err.count("\n") == 1
    config.write_text("[source]\nx = 5000.0\n")
    assert main(["forward", "--config", str(config)]) == 2
    assert "outside the scored region" in capsys.readouterr().err
    config.write_text("[weighting]\nname = 'magic'\n")
    assert main(["forward", "--config", str(config)]) == 2
    assert "unknown strategy 'magic'" in capsys.readouterr().err


def test_annealing_moves_the_ic_term_weight():
    torch.set_num_threads(1)
    config = _tiny(steps=6, exact_ic=False, anneal=True, anneal_every=2, log_every=1)
    history = train(_problem(config), config.training)
    assert "weight_ic" in history[-1]
    assert history[-1]["weight_ic"] != pytest.approx(1.0)


def test_reduced_forward_pinn_beats_the_zero_field():
    """The validation, scaled down (48×3 network, 8,000 points, 2,000 steps, ~50 s):
    the exact-IC SA run of the forward recipe must beat the trivial field u ≡ 0
    (error 1) by a fifth (a half-learnt field at 0.9 fails). Measured: 0.73
    (uniform: 1.07; at 1,000 steps SA 0.93 and uniform 0.96 have not yet learnt
    the wave).

    The seed's soft-IC claim (SA's source-region residual far below uniform's) is
    not asserted: it did not reproduce here at any budget (README, forward PINN;
    at this size SA's source residual was 13.0 vs uniform's 12.2, and its masks
    put slightly less than average weight there, enrichment 0.95)."""
    torch.set_num_threads(2)
    config = load_forward_config(
        None,
        {
            "network": {"width": 48, "depth": 3},
            "collocation": {"n_points": 8000, "batch_size": 2048},
            "weighting": {"name": "sa"},
            "training": {"steps": 2000, "lr": 2e-3, "progress": False},
            "reference": {"dx": 10.0, "padding": 300.0},
        },
    )
    metrics = run_forward(config, None)
    assert metrics["wavefield_error"] < 0.8, metrics


def test_causal_weights_follow_the_formula():
    from seispinn.pinn.weighting import causal_weights

    t = torch.tensor([0.01, 0.02, 0.12, 0.13, 0.25, 0.33])
    sq = torch.tensor([1.0, 3.0, 4.0, 0.0, 10.0, 1.0])
    assert torch.equal(causal_weights(sq, t, 0.35, 4, 0.0), torch.ones(6))
    w = causal_weights(sq, t, 0.35, 4, 0.5)
    # bins of 0.0875 s: [0, 0, 1, 1, 2, 3]; bin means L = [2, 2, 10, 1]
    expected = torch.exp(-0.5 * torch.tensor([0.0, 0.0, 2.0, 2.0, 4.0, 14.0]))
    assert torch.allclose(w, expected)
    assert not w.requires_grad


def test_sa_normalised_masks_average_one():
    from seispinn.pinn.weighting import SAOptions, SelfAdaptiveMask

    sa = SelfAdaptiveMask(50, SAOptions(normalise=True, optimizer="sgd", lr=0.1))
    sa.lam.copy_(torch.linspace(0.5, 3.0, 50))
    w = sa.weights(torch.arange(50))
    assert float(w.mean()) == pytest.approx(1.0, rel=1e-6)
    # The plain ascent is the gradient of the normalised loss: lr · 2 λ_i r_i² / mean / B.
    r2 = torch.rand(50)
    sa.update(0, torch.arange(50), r2)
    lam = torch.linspace(0.5, 3.0, 50)
    mean = float((lam**2).mean())
    assert torch.allclose(sa.lam, lam + 0.1 * 2 * lam * r2 / mean / 50, rtol=1e-5)


def test_reference_cache_is_reused_without_modelling(tmp_path, monkeypatch):
    import seispinn.experiments.forward as fwd

    config = _tiny()
    model = reference_model(config)
    ref, times = fwd.cached_reference_snapshots(config, model, tmp_path)
    assert len(list(tmp_path.glob("reference_*.npz"))) == 1

    def boom(*args, **kwargs):
        raise AssertionError("modelled again")

    monkeypatch.setattr(fwd, "reference_snapshots", boom)
    again, times2 = fwd.cached_reference_snapshots(config, model, tmp_path)
    np.testing.assert_array_equal(again, ref)
    np.testing.assert_array_equal(times2, times)
    # A different source is a different reference: it must not be served from the cache.
    other = load_forward_config(None, {"source": {"freq": 12.0}, "reference": {"dx": 10.0}})
    with pytest.raises(AssertionError, match="modelled again"):
        fwd.cached_reference_snapshots(other, reference_model(other), tmp_path)


def test_partial_sections_keep_the_recipe_defaults(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[training]\nlr = 5e-4\n[network]\ndepth = 3\n")
    config = load_forward_config(cfg)
    assert config.training.lr == 5e-4 and config.training.steps == 4000
    assert config.network.depth == 3 and config.network.width == 128
    assert config.weighting.name == "sa"


class _TwoModules:
    """A least-squares problem with two trainable modules a and b."""

    def __init__(self, with_c: bool = False):
        from seispinn.pinn.weighting import make_weighting

        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        self.c = torch.nn.Linear(2, 1) if with_c else None
        self.weighting = make_weighting("uniform", 8)
        self.x = torch.rand(8, 2)

    def trainable(self):
        return {"a": self.a, "b": self.b} | ({"c": self.c} if self.c is not None else {})

    def losses(self, step):
        from seispinn.pinn.problem import StepLosses

        out = self.a(self.x) + self.b(self.x) + (self.c(self.x) if self.c is not None else 0)
        sq = (out - 1.0)[:, 0] ** 2
        ids = torch.arange(8)
        return StepLosses({"pde": self.weighting.weighted_loss(sq, ids)}, ids, sq.detach())


def test_frozen_module_does_not_move_before_its_step():
    from seispinn.pinn.training import TrainOptions

    p = _TwoModules()
    b0 = p.b.weight.detach().clone()
    opts = TrainOptions(steps=5, progress=False, frozen_until={"b": 5}, lr_scale={"a": 2.0})
    train(p, opts)
    assert torch.equal(p.b.weight, b0)
    with pytest.raises(Exception, match="not a trainable module"):
        train(p, TrainOptions(steps=1, progress=False, frozen_until={"velocity": 3}))


def test_alternating_modules_move_only_in_their_turns():
    from seispinn.errors import ConfigError
    from seispinn.pinn.training import TrainOptions

    p = _TwoModules(with_c=True)
    moved = []  # per step: which of a, b, c changed

    def watch(step: int) -> None:
        now = [m.weight.detach().clone() for m in (p.a, p.b, p.c)]
        moved.append([not torch.equal(x, y) for x, y in zip(now, watch.last, strict=True)])
        watch.last = now

    watch.last = [m.weight.detach().clone() for m in (p.a, p.b, p.c)]
    opts = TrainOptions(
        steps=7, progress=False, alternate={"b": 2, "a": 1}, frozen_until={"c": 4}, snapshot_every=1
    )
    train(p, opts, on_snapshot=watch)
    # Turns b, b, a, b, b, a, b; c is not in the schedule: it moves once unfrozen.
    assert moved == [
        [False, True, False],
        [False, True, False],
        [True, False, False],
        [False, True, False],
        [False, True, True],
        [True, False, True],
        [False, True, True],
    ]
    with pytest.raises(ConfigError, match="two or more modules"):
        TrainOptions(alternate={"a": 5})
    with pytest.raises(ConfigError, match="not a trainable module"):
        train(p, TrainOptions(steps=1, progress=False, alternate={"a": 1, "velocity": 1}))
