"""PINN inversion: bounded velocity network, data term, multi-shot wavefields, a reduced
anomaly inversion, the CLI and the Python API from SEG-Y to SEG-Y."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from seispinn.acquisition import Source
from seispinn.cli import main
from seispinn.diagnostics.measures import anomaly_region
from seispinn.errors import ConfigError
from seispinn.experiments.invert import InvertConfig, inversion_problem, invert, load_invert_config
from seispinn.gathers import ShotGathers
from seispinn.inputs import InversionInputs, holdout_mask, prepare_inputs
from seispinn.io import read_velocity
from seispinn.models import gaussian_anomaly, homogeneous
from seispinn.pinn.collocation import CollocationOptions
from seispinn.pinn.derivatives import mlp_jet
from seispinn.pinn.formulations import PhysicsOptions
from seispinn.pinn.networks import MLP
from seispinn.pinn.velocity import VelocityNet, VelocityNetOptions
from seispinn.pinn.wave import MultiShotWavefield, Scales

SCALES = Scales(xc=500.0, zc=250.0, lx=500.0, lz=250.0, t_max=0.5, u_scale=1e-4)


def _blow_up(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 50.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_velocity_network_respects_its_bounds_for_any_weights(seed):
    start = gaussian_anomaly(101, 51, 10.0, 2000.0, 400.0, (500.0, 250.0), 80.0)
    x = torch.rand(5000) * 1400 - 200  # also outside the model
    z = torch.rand(5000) * 800 - 150
    pert = VelocityNet(SCALES, start, VelocityNetOptions("perturbation", max_perturbation=0.25))
    c0 = pert.start(x, z)
    assert torch.allclose(pert(x, z), c0)  # zero last layer: starts at c0
    _blow_up(pert, seed)
    c = pert(x, z)
    assert torch.all(c >= 0.75 * c0 - 1e-3) and torch.all(c <= 1.25 * c0 + 1e-3)
    assert (c - c0).abs().max() > 0.2 * c0.min()  # the weights did push it to the bounds
    bounded = VelocityNet(SCALES, None, VelocityNetOptions("bounds"), bounds=(1500.0, 4500.0))
    _blow_up(bounded, seed)
    cb = bounded(x, z)
    assert cb.min() >= 1500 and cb.max() <= 4500 and cb.max() - cb.min() > 2000


def test_perturbation_mode_needs_a_start_and_options_are_checked():
    with pytest.raises(ConfigError, match="starting model"):
        VelocityNet(SCALES, None, VelocityNetOptions())
    with pytest.raises(ConfigError, match="max_perturbation"):
        VelocityNetOptions(max_perturbation=1.5)


def test_jet_along_the_first_inputs_matches_autograd():
    torch.manual_seed(0)
    mlp = MLP(4, 1, 16, 2).double()
    x = torch.rand(32, 4, dtype=torch.float64, requires_grad=True)
    jet = mlp_jet(mlp, x, dims=3)
    assert jet.first.shape == (32, 3, 1)
    g = torch.autograd.grad(mlp(x).sum(), x, create_graph=True)[0]
    for k in range(3):
        h = torch.autograd.grad(g[:, k].sum(), x, retain_graph=True)[0][:, k]
        assert torch.allclose(jet.first[:, k, 0], g[:, k], atol=1e-12)
        assert torch.allclose(jet.second[:, k, 0], h, atol=1e-10)
    # Mixed rows: weighted sums of pure second derivatives (a Laplacian and ∂_tt).
    mix = torch.tensor([[2.0, 0.5, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    mixed = mlp_jet(mlp, x, dims=3, mix=mix)
    assert mixed.second.shape == (32, 2, 1)
    assert torch.allclose(
        mixed.second[:, 0, 0], 2 * jet.second[:, 0, 0] + 0.5 * jet.second[:, 1, 0]
    )
    assert torch.allclose(mixed.second[:, 1, 0], jet.second[:, 2, 0])


@pytest.mark.parametrize("mode", ["shared", "per_shot"])
def test_multishot_wavefield_derivatives_and_initial_condition(mode):
    torch.manual_seed(0)
    wf = MultiShotWavefield(SCALES, [200.0, 500.0, 800.0], mode, width=16, depth=2).double()
    pts = torch.rand(60, 3, dtype=torch.float64) * torch.tensor([1000.0, 500.0, 0.5])
    shot = torch.arange(60) % 3
    d = wf.derivatives(pts, shot)
    assert torch.allclose(d.u, wf(pts, shot), atol=1e-14)
    pts_g = pts.clone().requires_grad_(True)
    u = wf(pts_g, shot)
    g = torch.autograd.grad(u.sum(), pts_g, create_graph=True)[0]
    hs = [torch.autograd.grad(g[:, k].sum(), pts_g, retain_graph=True)[0][:, k] for k in range(3)]
    assert torch.allclose(d.u_tt, hs[2], rtol=1e-8, atol=1e-12)
    assert torch.allclose(d.laplacian, hs[0] + hs[1], rtol=1e-8, atol=1e-16)
    t0 = pts.clone()
    t0[:, 2] = 0
    assert wf(t0, shot).abs().max() == 0  # exact initial condition
    # Shots differ: the same point gives different fields for different shots.
    assert not torch.allclose(wf(pts, torch.zeros_like(shot)), wf(pts, torch.ones_like(shot)))


def _analytic(x, z, t, shot):
    return np.sin(0.013 * x + 0.007 * z - 40.0 * t + shot) * np.exp(-3 * t)


class _AnalyticWavefield(torch.nn.Module):
    def forward(self, points, shot):
        p = points.double()
        return torch.sin(0.013 * p[:, 0] + 0.007 * p[:, 1] - 40.0 * p[:, 2] + shot) * torch.exp(
            -3 * p[:, 2]
        )


def _small_inputs(receiver_offset: float = 0.0) -> InversionInputs:
    start = homogeneous(101, 51, 10.0, 2000.0)
    rx = np.array([[103.7, 251.3, 399.9, 512.2, 733.3], [98.1, 300.05, 455.5, 600.6, 870.2]])
    rz = np.full_like(rx, 23.4)
    dt, nt = 0.004, 120
    t = dt * np.arange(nt)
    data = np.stack(
        [_analytic(rx[s, :, None], rz[s, :, None], t[None], s) for s in range(2)]
    ).astype(np.float32)
    gathers = ShotGathers(data, [250.0, 750.0], [20.0, 20.0], rx + receiver_offset, rz, dt)
    return InversionInputs(gathers, start, Source(20.0, 10.0, 0.15))


def _config(holdout_every: int) -> InvertConfig:
    """The total-field formulation: the network is u itself, so a network that is
    the traces' own wavefield fits them exactly."""
    base = InvertConfig()
    return dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, holdout_every=holdout_every),
        physics=PhysicsOptions(formulation="total", edges="open", rounds=1),
        collocation=CollocationOptions(n_points=200, data_batch=10_000),
    )


def test_data_term_is_zero_when_the_network_reproduces_the_traces():
    config = _config(holdout_every=0)
    problem = inversion_problem(config, _small_inputs(), torch.device("cpu"))
    problem.wavefield = _AnalyticWavefield()
    ids = torch.arange(len(problem.data.values))
    assert len(ids) == 2 * 5 * 120
    assert float(problem.data_misfit(ids)) < 1e-12
    # Receivers between grid nodes are used where they are: moving them by half a
    # cell (what snapping would do) makes the term clearly non-zero.
    moved = inversion_problem(config, _small_inputs(receiver_offset=5.0), torch.device("cpu"))
    moved.wavefield = _AnalyticWavefield()
    assert float(moved.data_misfit(ids)) > 1e-3


def test_held_out_receivers_never_enter_the_data_term():
    config = _config(holdout_every=2)
    inputs = _small_inputs()
    problem = inversion_problem(config, inputs, torch.device("cpu"))
    held = holdout_mask(inputs.gathers, 2)
    assert held.sum() == 4  # receivers 1 and 3 of each shot
    used_x = set(np.round(problem.data.points[:, 0].numpy(), 2).tolist())
    g = inputs.gathers
    for s, r in zip(*np.nonzero(held), strict=True):
        assert round(float(g.receiver_x[s, r]), 2) not in used_x


def test_anomaly_region_marks_the_anomaly():
    true = gaussian_anomaly(101, 51, 10.0, 2000.0, 400.0, (500.0, 250.0), 80.0)
    start = homogeneous(101, 51, 10.0, 2000.0)
    region = anomaly_region(true.values, start.values)
    iz, ix = np.nonzero(region)
    assert abs(ix.mean() * 10 - 500) < 11 and abs(iz.mean() * 10 - 250) < 11
    assert 0.01 < region.mean() < 0.2


def _reduced_anomaly_config(tmp_path, weighting="sa", steps=2000):
    """The anomaly test scaled down, in the total-field formulation (whose source
    region SA's mask must find): one surface shot, surface and well receivers, 5 Hz,
    a 64×3 wavefield network, a velocity MLP frozen for the first half."""
    survey = tmp_path / "survey.toml"
    survey.write_text(
        """
[model]
generator = "gaussian_anomaly"
nx = 61
nz = 41
dx = 10.0
velocity = 2000.0
amplitude = 600.0
centre = [300.0, 200.0]
radius = 90.0
[acquisition]
n_shots = 1
n_receivers = 20
freq = 5.0
dt = 0.002
duration = 0.4
source_depth = 30.0
receiver_depth = 20.0
well_x = [20.0, 100.0, 180.0, 260.0, 340.0, 420.0, 500.0, 580.0]
well_receivers = 8
"""
    )
    return load_invert_config(
        None,
        {
            "data": {
                "survey": str(survey),
                "start_velocity": 2000.0,
                "holdout_every": 4,
                "c_min": 1600.0,
                "c_max": 2800.0,
            },
            "source": {"sigma": 40.0, "freq": 5.0, "delay": 0.24},
            "physics": {"formulation": "total", "edges": "open", "rounds": 1},
            "network": {"width": 64, "depth": 3},
            "velocity": {"mode": "perturbation", "width": 24, "depth": 2},
            "collocation": {"n_points": 8000, "batch_size": 1024, "data_batch": 1024},
            "weighting": {"name": weighting, "sa": {"lr": 1e-2}},
            "training": {
                "steps": steps,
                "lr": 2e-3,
                "progress": False,
                "checkpoint_every": 1000,
                "term_weights": {"data": 1000.0},
                "frozen_until": {"velocity": steps // 2},
            },
        },
    )


def test_reduced_anomaly_inversion_moves_velocity_toward_the_truth(tmp_path):
    """~1 min: the velocity error inside the anomaly must drop below 0.8 of the
    start's (measured 0.44–0.48 at 2,500 steps, uniform and SA)."""
    torch.set_num_threads(2)
    config = _reduced_anomaly_config(tmp_path)
    inputs = prepare_inputs(config.data, config.source, tmp_path / "run")
    result = invert(inputs, config, tmp_path / "run", score_heldout=False)
    m = result.metrics
    assert m["anomaly_error_ratio"] < 0.8, m
    # The default SA mask follows its residual and leans on the source region.
    assert m["rank_correlation"] > 0.5 and m["enrichment"] > 1.5, m
    assert m["gamma_effective_share"] == m["effective_share"] < 1.0, m
    # The written model round-trips and is the returned one.
    back = read_velocity(tmp_path / "run" / "inverted.sgy")
    np.testing.assert_array_equal(back.values, result.model.values)
    # Inside the anomaly the velocity went up, toward the +600 m/s truth.
    region = anomaly_region(inputs.true.values, inputs.start.values)
    assert (result.model.values - inputs.start.values)[region].mean() > 100.0


def _toml_table(name: str, values: dict) -> list[str]:
    """TOML lines of a table and its sub-tables (``[weighting]``, ``[weighting.sa]``)."""
    lines = [f"[{name}]"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in values.items() if not isinstance(v, dict | None)]
    for k, v in values.items():
        if isinstance(v, dict):
            lines += _toml_table(f"{name}.{k}", v)
    return lines


def test_invert_cli_writes_the_run_folder(tmp_path, capsys):
    config = _reduced_anomaly_config(tmp_path, steps=4)
    config = dataclasses.replace(
        config, collocation=dataclasses.replace(config.collocation, n_points=2000)
    )
    cfg = tmp_path / "inv.toml"
    d = dataclasses.asdict(config)
    lines = []
    for section in ("data", "source", "physics", "network", "velocity", "collocation", "weighting"):
        lines += _toml_table(section, d[section])
    lines += ["[training]", "steps = 4", "progress = false", "snapshot_every = 2"]
    cfg.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    assert main(["invert", "--config", str(cfg), "--run-dir", str(run), "--steps", "4"]) == 0
    for name in (
        "config.toml",
        "config.json",
        "observed.sgy",
        "true.sgy",
        "checkpoint.pt",
        "history.json",
        "inverted.sgy",
        "metrics.json",
    ):
        assert (run / name).exists(), name
    assert sorted(p.name for p in (run / "gamma").iterdir())[0] == "step_000000.npz"
    g = np.load(run / "gamma" / "step_000000.npz")
    assert g["shot"].shape == g["gamma"].shape == (2000,)
    assert set(np.unique(g["shot"])) == {0} and g["sources"].shape == (1, 2)
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["heldout_misfit"]) and metrics["steps"] == 4
    # Resume continues without error and keeps the run folder valid.
    assert (
        main(["invert", "--config", str(cfg), "--run-dir", str(run), "--steps", "6", "--resume"])
        == 0
    )
    assert json.loads((run / "metrics.json").read_text())["steps"] == 6


def test_invert_cli_resumes_a_run_of_several_rounds(tmp_path, capsys, monkeypatch):
    """`--resume` finds the round a multi-round run stopped in (its checkpoint is in
    run/round{k}/, not run/) and finishes it to the uninterrupted result, whatever
    path names the config; other settings, a new step count included, are refused
    naming that round's config.json; a fresh run clears an earlier run's rounds."""
    config = _reduced_anomaly_config(tmp_path, steps=4)
    config = dataclasses.replace(
        config, collocation=dataclasses.replace(config.collocation, n_points=2000)
    )
    d = dataclasses.asdict(config)
    d["data"]["survey"] = "survey.toml"  # relative to the config, as in examples/
    d["physics"]["rounds"] = 2
    lines = []
    for section in ("data", "source", "physics", "network", "velocity", "collocation", "weighting"):
        lines += _toml_table(section, d[section])
    lines += ["[training]", "steps = 4", "progress = false"]
    cfg = tmp_path / "inv.toml"
    cfg.write_text("\n".join(lines) + "\n")
    run = tmp_path / "run"
    (run / "round7").mkdir(parents=True)
    (run / "round7" / "checkpoint.pt").write_text("an earlier run's")
    monkeypatch.chdir(tmp_path)
    assert main(["invert", "--config", "inv.toml", "--run-dir", str(run)]) == 0
    assert sorted(p.name for p in run.glob("round*")) == ["round0", "round1"]
    finished = (run / "inverted.sgy").read_bytes()
    # What a kill during round 1, after its last checkpoint, leaves behind.
    for name in ("round1/velocity.npy", "metrics.json", "inverted.sgy"):
        (run / name).unlink()
    args = ["invert", "--config", str(cfg), "--run-dir", str(run), "--resume"]
    capsys.readouterr()
    for extra, key in (
        (["--set", "training.lr=0.5"], "training.lr"),
        (["--steps", "6"], "training.steps 4 -> 6"),
    ):
        assert main([*args, *extra]) == 2
        err = capsys.readouterr().err
        assert f"{run / 'round1' / 'config.json'}: the run was made with other settings" in err, err
        assert key in err, err
    assert main(args) == 0  # an absolute --config this time: the same survey file
    assert (run / "inverted.sgy").read_bytes() == finished
    assert json.loads((run / "metrics.json").read_text())["steps"] == 8


def test_invert_cli_rejects_bad_config_with_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[data]\nshots = "missing.sgy"\nstart_velocity = 2000.0\n[velocty]\nwidth = 3\n')
    assert main(["invert", "--config", str(cfg), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown section [velocty]" in err[0] and "bad.toml" in err[0]
    cfg.write_text(
        '[data]\nshots = "missing.sgy"\nstart_velocity = 2000.0\n[source]\nfreq = 10.0\n'
    )
    assert main(["invert", "--config", str(cfg), "--run-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "missing.sgy" in err[0]


def test_inversion_figure_has_models_and_error_panels():
    from seispinn.plots.inversion import inversion_figure

    true = gaussian_anomaly(61, 41, 10.0, 2000.0, 600.0, (300.0, 200.0), 90.0)
    start = homogeneous(61, 41, 10.0, 2000.0)
    half = dataclasses.replace(start, values=(start.values + true.values) / 2)
    fig = inversion_figure(true, start, {"uniform": start, "sa": half})
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:4] == ["true", "start", "uniform", "sa"]
    errs = [t for t in titles if "− true" in t]
    assert len(errs) == 3
    # half-way model: half the start's error
    rel = [float(t.split("L2 ")[1].rstrip(")")) for t in errs]
    assert rel[2] == pytest.approx(rel[0] / 2, rel=0.01) and rel[1] == rel[0]


def test_residual_forms_differ_by_powers_of_the_velocity():
    base = _config(holdout_every=0)
    res = {}
    for form in ("velocity", "slowness", "symmetric"):
        config = dataclasses.replace(base, physics=PhysicsOptions(form))
        problem = inversion_problem(config, _small_inputs(), torch.device("cpu"))
        with torch.no_grad():  # a velocity that is not the start's, so the forms differ
            for p in problem.velocity.parameters():
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
        pts, shot = problem.points.points[:300], problem.points.shot[:300]
        c = problem.velocity(pts[:, 0], pts[:, 1]).detach()
        res[form] = (problem.residual(pts, shot).detach(), c, problem.c_ref)
    r_v, c, c0 = res["velocity"]
    assert (c / c0 - 1).abs().max() > 0.05
    assert torch.allclose(res["slowness"][0], r_v * (c0 / c) ** 2, rtol=1e-4, atol=1e-3)
    assert torch.allclose(res["symmetric"][0], r_v * (c0 / c), rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="residual"):
        PhysicsOptions("other")


class _PlaneWave(torch.nn.Module):
    """u = sin(k·x − ωt), ω = c|k|: a source-free solution for velocity c."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.k = (0.011, 0.007)
        self.w = c * float(np.hypot(*self.k))

    def derivatives(self, points, shot):
        from seispinn.pinn.wave import WaveDerivatives

        ph = self.k[0] * points[:, 0] + self.k[1] * points[:, 1] - self.w * points[:, 2]
        u = torch.sin(ph)
        return WaveDerivatives(u, -(self.w**2) * u, -(self.k[0] ** 2 + self.k[1] ** 2) * u)


def test_implied_velocity_recovers_the_velocity_of_an_exact_wavefield():
    from seispinn.pinn.formulations import implied_velocity

    problem = inversion_problem(_config(holdout_every=0), _small_inputs(), torch.device("cpu"))
    problem.wavefield = _PlaneWave(2300.0)
    pts, shot = problem.points.points, problem.points.shot
    f = problem.formulation
    quiet = (pts[:, 0] - f.source_x[shot]) ** 2 + (pts[:, 1] - f.source_z[shot]) ** 2 > 250.0**2
    c = implied_velocity(problem, quiet)
    assert c["velocity_form"] == pytest.approx(2300.0, rel=1e-4)
    assert c["slowness_form"] == pytest.approx(2300.0, rel=1e-4)
    # A wrong wavefield (twice the time derivative) is seen as a faster medium.
    problem.wavefield = _PlaneWave(2300.0 * np.sqrt(2))
    assert implied_velocity(problem, quiet)["velocity_form"] > 3000.0
