"""Conventional FWI with Deepwave: the gradient passes a Taylor test, the band-limited
misfit vanishes at the true model, a small inversion moves toward the truth; and the
illumination measure."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from seispinn.acquisition import Acquisition, Source
from seispinn.errors import ConfigError, ModelError
from seispinn.experiments.invert import load_invert_config
from seispinn.modelling.fwi import FWIOptions, fwi, fwi_memory, preconditioner, update_mask
from seispinn.modelling.illumination import illuminated_mask, illumination
from seispinn.modelling.misfit import TraceMisfit, lowpass, lowpass_operator
from seispinn.modelling.simulate import ModellingOptions, simulate
from seispinn.models import ModelPrior, gaussian_anomaly, homogeneous

SIGMA, FREQ, DELAY = 20.0, 12.0, 0.1
SOURCE = Source(SIGMA, FREQ, DELAY)


def _setup(nt: int = 120):
    true = gaussian_anomaly(30, 24, 10.0, 2000.0, 300.0, (150.0, 130.0), 40.0)
    acq = Acquisition(
        [60.0, 240.0],
        [30.0, 30.0],
        np.linspace(20.0, 280.0, 8),
        np.full(8, 210.0),
        0.002,
        nt,
        FREQ,
        DELAY,
    )
    observed = simulate(true, acq, ModellingOptions(source_sigma=SIGMA, pml_width=10))
    return true, observed


def test_lowpass_operator_is_the_filter_as_a_matrix():
    rng = np.random.default_rng(0)
    traces = rng.standard_normal((3, 200))
    op = lowpass_operator(200, 0.002, 10.0)
    np.testing.assert_allclose(traces @ op.numpy(), lowpass(traces, 0.002, 10.0), atol=1e-10)
    assert lowpass_operator(200, 0.002, 0.0) is None  # full band
    t = np.arange(400) * 0.002
    low, high = np.sin(2 * np.pi * 3 * t), np.sin(2 * np.pi * 80 * t)
    filtered = lowpass(low + high, 0.002, 10.0)
    inner = slice(100, 300)  # away from the ends' transients
    np.testing.assert_allclose(filtered[inner], low[inner], atol=0.03)  # 80 Hz gone, 3 Hz kept


@pytest.mark.parametrize("corner", [6.0, 0.0])
def test_misfit_is_zero_at_the_true_model_in_every_band(corner):
    true, observed = _setup()
    m = TraceMisfit(observed, true, SOURCE, corner=corner, modelling=ModellingOptions(pml_width=10))
    assert float(m(torch.from_numpy(true.values))) < 1e-10
    start = homogeneous(true.nx, true.nz, 10.0, 2000.0)
    assert float(m(torch.from_numpy(start.values))) > 1e-4


def test_fwi_gradient_passes_the_taylor_test():
    """J(c + h δc) − J(c) is O(h); minus h ⟨∇J, δc⟩ it is O(h²)."""
    true, observed = _setup()
    m = TraceMisfit(observed, true, SOURCE, modelling=ModellingOptions(pml_width=10))
    c = torch.full(true.shape, 2050.0, dtype=torch.float64, requires_grad=True)
    j0 = m(c)
    (g,) = torch.autograd.grad(j0, c)
    rng = np.random.default_rng(1)
    dc = torch.from_numpy(rng.standard_normal(true.shape)) * 50.0
    hs = np.array([0.1, 0.05, 0.025, 0.0125])
    e1, e2 = [], []
    with torch.no_grad():
        for h in hs:
            jh = float(m(c + h * dc))
            e1.append(abs(jh - float(j0)))
            e2.append(abs(jh - float(j0) - h * float((g * dc).sum())))
    slope1 = np.polyfit(np.log(hs), np.log(e1), 1)[0]
    slope2 = np.polyfit(np.log(hs), np.log(e2), 1)[0]
    assert 0.9 < slope1 < 1.1, (e1, slope1)
    assert 1.8 < slope2 < 2.2, (e2, slope2)


def _small_fwi(observed, start, options, prior=None):
    return fwi(
        observed,
        start,
        SOURCE,
        options=options,
        modelling=ModellingOptions(pml_width=10),
        progress=False,
        prior=prior,
    )


def test_small_fwi_moves_the_anomaly_toward_the_truth():
    true, observed = _setup()
    start = homogeneous(true.nx, true.nz, 10.0, 2000.0)
    options = FWIOptions(frequencies=(8.0, 0.0), iterations=6, smoothing=20.0)
    result = _small_fwi(observed, start, options)
    err = np.linalg.norm(result.model.values - true.values)
    err0 = np.linalg.norm(start.values - true.values)
    assert err < 0.8 * err0
    lo, hi = 0.9 * 2000.0, 1.1 * 2000.0  # the default bounds around the start
    assert result.model.values.min() >= lo - 1e-3 and result.model.values.max() <= hi + 1e-3
    first = [h["misfit"] for h in result.history if h["stage"] == 1]
    assert first[-1] < first[0]
    # The line search accepts only decreases: the accepted misfits fall in every band.
    for stage in (0, 1):
        kept = [h["misfit"] for h in result.history if h["stage"] == stage and h["accepted"]]
        assert all(b <= a for a, b in zip(kept, kept[1:], strict=False)), kept
    assert [b["corner"] for b in result.bands] == [8.0, 0.0]
    assert result.bands[1]["misfit_end"] < result.bands[1]["misfit_start"]
    assert {h["corner"] for h in result.history} == {8.0, 0.0}


def test_surface_only_fwi_recovers_a_buried_anomaly():
    """Three surface shots, 17 surface receivers, a +300 m/s Gaussian body at 120 m
    depth and a homogeneous start: the reflections constrain the body, so the
    default FWI (auto bands, preconditioned L-BFGS) must remove most of the error
    (measured: 0.033 → 0.0055, 17 % of the start's)."""
    true = gaussian_anomaly(40, 25, 10.0, 2000.0, 300.0, (200.0, 120.0), 40.0)
    acq = Acquisition(
        [60.0, 200.0, 340.0],
        [20.0] * 3,
        np.arange(40.0, 370.0, 20.0),
        np.full(17, 20.0),
        0.002,
        200,
        FREQ,
        DELAY,
    )
    modelling = ModellingOptions(pml_width=10)
    observed = simulate(true, acq, dataclasses.replace(modelling, source_sigma=None))
    start = homogeneous(40, 25, 10.0, 2000.0)
    options = FWIOptions(iterations=6, smoothing=20.0)
    point = Source(0.0, FREQ, DELAY)
    result = fwi(
        observed,
        start,
        point,
        options=options,
        modelling=modelling,
        true=true,
        progress=False,
        prior=ModelPrior(c_min=1800.0, c_max=2400.0),
    )
    err0 = np.linalg.norm(start.values - true.values)
    err = np.linalg.norm(result.model.values - true.values)
    assert err < 0.4 * err0, (err / err0, result.bands)
    assert [b["corner"] for b in result.bands] == [6.0, 9.0, 0.0]
    errors = [b["error"] for b in result.bands]
    assert errors[-1] < errors[0] < float(err0 / np.linalg.norm(true.values))


def test_batched_backward_gives_the_whole_misfit_and_gradient():
    # One shot per batch, each batch back-propagated before the next is modelled,
    # so that shots_per_batch bounds the wavefield history alive at once.
    true, observed = _setup()
    start = homogeneous(30, 24, 10.0, 2000.0)
    opts = ModellingOptions(pml_width=10)
    whole = TraceMisfit(observed, start, SOURCE, modelling=opts)
    batched = TraceMisfit(observed, start, SOURCE, modelling=opts, shots_per_batch=1)
    assert len(batched.batches) == 2
    p1 = torch.zeros(24, 30, requires_grad=True)
    p2 = torch.zeros(24, 30, requires_grad=True)
    base = torch.from_numpy(start.values)
    j1 = whole(base + 100 * torch.tanh(p1))
    j1.backward()
    j2 = batched.backward(base + 100 * torch.tanh(p2))
    assert j2 == pytest.approx(float(j1.detach()), rel=1e-5)
    torch.testing.assert_close(p2.grad, p1.grad, rtol=1e-4, atol=1e-6 * float(p1.grad.abs().max()))
    # The estimate follows the batch, not the survey.
    one = fwi_memory(observed, start, FWIOptions(shots_per_batch=1)).parts
    two = fwi_memory(observed, start, FWIOptions(shots_per_batch=2)).parts
    assert two["propagation (Deepwave)"] > 1.5 * one["propagation (Deepwave)"]


def test_preconditioner_is_symmetric_positive_and_deepens_the_update():
    """L-BFGS needs M symmetric positive semi-definite; dividing by the source
    energy must lift the update away from the source, and the water layer and the
    edge frame must not move."""
    true, observed = _setup()
    options = FWIOptions(smoothing=20.0)
    m = preconditioner(true, observed, SOURCE, options, ModellingOptions(pml_width=10), 40.0)
    rng = np.random.default_rng(2)
    a, b = (torch.from_numpy(rng.standard_normal(true.shape)) for _ in range(2))
    assert float((m(a) * b).sum()) == pytest.approx(float((a * m(b)).sum()), rel=1e-9)
    assert float((m(a) * a).sum()) > 0
    ones = m(torch.ones(true.shape, dtype=torch.float64)).numpy()
    assert np.all(ones[true.z < 40.0] == 0) and np.all(ones[:, :2] == 0)
    plain = preconditioner(
        true,
        observed,
        SOURCE,
        dataclasses.replace(options, precondition="none"),
        ModellingOptions(pml_width=10),
        40.0,
    )
    flat = plain(torch.ones(true.shape, dtype=torch.float64)).numpy()
    # Deep (z = 200 m, below the receivers' depth of the sources) against shallow
    # (z = 50 m) relative to the unpreconditioned map.
    deep, shallow = (20, 15), (5, 15)
    assert ones[deep] / ones[shallow] > 2 * flat[deep] / flat[shallow]


def test_known_water_layer_is_set_and_never_updated():
    true, observed = _setup()
    start = homogeneous(true.nx, true.nz, 10.0, 2000.0)
    options = FWIOptions(frequencies=(0.0,), iterations=2)
    prior = ModelPrior(water_depth=25.0, water_velocity=1900.0)
    result = _small_fwi(observed, start, options, prior)
    water = result.model.values[start.z < 25.0]
    assert water.shape[0] == 3 and np.all(water == 1900.0)
    assert np.abs(result.model.values[3:] - 2000.0).max() > 1.0  # below it, FWI moved


def test_update_mask_freezes_the_edges_and_tapers_around_sources():
    true, observed = _setup()
    mask = update_mask(true, observed, FWIOptions(edge_cells=2, source_taper=30.0))
    assert np.all(mask[:2] == 0) and np.all(mask[:, -2:] == 0)
    iz, ix = 3, 6  # (30 m, 60 m): the first source
    assert mask[iz, ix] < 1e-6 and mask[12, 15] > 0.9


def test_fwi_options_and_config_section_are_checked(tmp_path):
    with pytest.raises(ValueError, match="optimizer"):
        FWIOptions(optimizer="sgd")
    with pytest.raises(ValueError, match="precondition"):
        FWIOptions(precondition="hessian")
    with pytest.raises(ModelError, match="c_min < c_max"):
        ModelPrior(c_min=3000.0, c_max=2000.0)
    # No corners given: the stages follow the source's band (half, three quarters
    # of the peak frequency, then the full band).
    assert FWIOptions().stages(8.0) == (4.0, 6.0, 0.0)
    assert FWIOptions(frequencies=(3.0, 0.0)).stages(8.0) == (3.0, 0.0)
    bad = tmp_path / "bad.toml"
    bad.write_text('[data]\nsurvey = "x.toml"\nstart_velocity = 2000.0\n[fwi]\niteration = 3\n')
    with pytest.raises(ConfigError, match="unknown key 'iteration'"):
        load_invert_config(bad)


def test_illumination_is_symmetric_and_decays_away_from_the_acquisition():
    model = homogeneous(41, 30, 10.0, 2000.0)
    acq = Acquisition([200.0], [20.0], [100.0, 300.0], [20.0, 20.0], 0.002, 150, FREQ, DELAY)
    ill = illumination(model, acq, ModellingOptions(source_sigma=SIGMA, pml_width=10))
    np.testing.assert_allclose(ill, ill[:, ::-1], rtol=1e-3)  # mirror symmetric about x = 200
    assert ill[3, 20] > 4 * ill[-1, 20]  # shallow beats deep (2D spreading)
    mask = illuminated_mask(np.array([[1.0, 10.0], [100.0, 0.0]]), fraction=0.05)
    assert mask.tolist() == [[False, True], [True, False]]


def test_fwi_command_inverts_a_config_alone_and_writes_the_run_folder(tmp_path, capsys):
    """`seispinn fwi`: the baseline by itself on an inversion config's data, the
    same receivers held out; the model moves toward the truth on both the used and
    the held-out traces. A misspelt key is one line, before any data are made."""
    import json
    from pathlib import Path

    from seispinn.cli import main

    config = Path(__file__).resolve().parents[1] / "examples" / "anomaly_wells.toml"
    run = tmp_path / "run"
    args = ["fwi", "--config", str(config), "--run-dir", str(run)]
    assert main([*args, "--set", "fwi.iteratons=2"]) == 2
    err = capsys.readouterr().err
    assert "--set fwi.iteratons=2: [fwi]: unknown key 'iteratons'" in err and err.count("\n") == 1
    assert not run.exists()
    assert main([*args, "--set", "fwi.iterations=2", "--set", "fwi.frequencies=[0.0]"]) == 0
    out = capsys.readouterr().out
    assert f"-> {run / 'inverted.sgy'}" in out
    for name in ("config.toml", "inverted.sgy", "predicted.sgy", "heldout.npy", "bands.json"):
        assert (run / name).exists(), name
    m = json.loads((run / "metrics.json").read_text())
    assert m["velocity_error"] < 0.95 * m["start_velocity_error"]
    assert m["heldout_misfit"] < m["start_heldout_misfit"]
    assert m["options"]["iterations"] == 2 and m["evaluations"] >= 2
    held = np.load(run / "heldout.npy")
    assert held.any() and not held.all()  # every 4th receiver, as `invert` holds out
    assert m["at_bounds"] < 0.05 and "velocity bounds" not in capsys.readouterr().err
    # Bounds that cap the +600 m/s anomaly shape the model, and the run says so.
    capped = [*args, "--run-dir", str(tmp_path / "capped"), "--set", "data.c_max=2100.0"]
    assert main([*capped, "--set", "fwi.iterations=2", "--set", "fwi.frequencies=[0.0]"]) == 0
    assert "ended on the velocity bounds (1600-2100 m/s)" in capsys.readouterr().err
    capped_metrics = json.loads((tmp_path / "capped" / "metrics.json").read_text())
    assert capped_metrics["at_bounds"] > 0.05 and capped_metrics["bounds"] == [1600.0, 2100.0]
