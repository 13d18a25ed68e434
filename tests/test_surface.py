"""The pieces for inverting surface data: the causal gate's derivatives are the
product rule's, it holds δu at zero before the direct wave; the network's extended
source and the closed-form direction have the finite-difference update's sign; a
seeded round starts from the reconstruction; the diagnostics of where an extension
lives; and the options refuse what they cannot do."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from seispinn.acquisition import Acquisition, Source
from seispinn.diagnostics.extension import depth_share, early_share, edge_share, first_arrival
from seispinn.errors import ConfigError
from seispinn.experiments.invert import InvertConfig, inversion_problem, load_invert_config
from seispinn.inputs import InversionInputs
from seispinn.modelling.simulate import ModellingOptions, simulate
from seispinn.models import ModelPrior, gaussian_anomaly, homogeneous
from seispinn.pinn.closed_form import network_extension
from seispinn.pinn.collocation import CollocationOptions
from seispinn.pinn.gate import CausalGate, GatedWavefield
from seispinn.pinn.wave import MultiShotWavefield, Scales

SOURCE = Source(30.0, 8.0, 0.15)
SCALES = Scales(xc=200.0, zc=150.0, lx=200.0, lz=150.0, t_max=0.4, u_scale=1e-3)


def test_gated_wavefield_derivatives_are_the_product_rule():
    """u_tt, ∇²u and the gradient of G·M against nested autograd, float64, two shots,
    points before, across and after the gate."""
    torch.manual_seed(0)
    inner = MultiShotWavefield(SCALES, [100.0, 300.0], "shared", width=16, depth=2).double()
    gate = CausalGate([100.0, 300.0], [20.0, 20.0], SOURCE, 2500.0).double()
    wf = GatedWavefield(inner, gate)
    pts = torch.rand(50, 3, dtype=torch.float64) * torch.tensor([400.0, 300.0, 0.4])
    shot = torch.arange(50) % 2
    d = wf.derivatives(pts, shot, with_gradient=True)
    p = pts.clone().requires_grad_(True)
    u = wf(p, shot)
    g = torch.autograd.grad(u.sum(), p, create_graph=True)[0]
    h = [torch.autograd.grad(g[:, k].sum(), p, retain_graph=True)[0][:, k] for k in range(3)]
    torch.testing.assert_close(d.u, u.detach(), rtol=1e-10, atol=1e-14)
    torch.testing.assert_close(d.u_tt, h[2], rtol=1e-7, atol=1e-10)
    torch.testing.assert_close(d.laplacian, h[0] + h[1], rtol=1e-7, atol=1e-14)
    torch.testing.assert_close(d.gradient, g.detach(), rtol=1e-8, atol=1e-14)
    torch.testing.assert_close(wf.gradient(pts, shot), g.detach(), rtol=1e-8, atol=1e-14)


def test_the_gate_closes_before_the_direct_wave_can_arrive():
    gate = CausalGate([0.0], [0.0], SOURCE, 2000.0)
    shot = torch.zeros(3, dtype=torch.long)
    # 400 m away the direct wave starts 0.2 s after the wavelet's onset, peaks 0.15 s on.
    onset = SOURCE.delay - 1.2 / SOURCE.freq
    t = torch.tensor([onset + 0.2 - 0.125, onset + 0.2, onset + 0.2 + 0.15])
    pts = torch.stack([torch.full((3,), 400.0), torch.zeros(3), t], 1)
    g = gate.value(pts, shot)
    assert g[0] < 0.02 and 0.45 < g[1] < 0.55 and g[2] > 0.99


def _inputs() -> InversionInputs:
    rx = np.linspace(20.0, 380.0, 10)[None]
    acq = Acquisition([200.0], [40.0], rx, np.full_like(rx, 20.0), 0.002, 200, 8.0, 0.15)
    true = gaussian_anomaly(41, 31, 10.0, 2000.0, 300.0, (200.0, 170.0), 50.0)
    gathers = simulate(true, acq, ModellingOptions(source_sigma=SOURCE.sigma))
    start = homogeneous(41, 31, 10.0, 2000.0)
    return InversionInputs(gathers, start, SOURCE, true, ModelPrior(c_min=1800, c_max=2600))


def _config(**physics) -> InvertConfig:
    base = InvertConfig()
    return dataclasses.replace(
        base,
        data=dataclasses.replace(base.data, holdout_every=0, water_depth=0, water_velocity=0),
        physics=dataclasses.replace(base.physics, rounds=1, **physics),
        collocation=CollocationOptions(n_points=400, batch_size=200, data_batch=200),
    )


def test_a_causal_problem_gates_its_scattered_field():
    problem = inversion_problem(_config(causal=True), _inputs(), torch.device("cpu"))
    wf = problem.wavefield
    assert isinstance(wf, GatedWavefield) and wf.gate.c_max == 2600.0  # the range's top
    with torch.no_grad():
        for p in wf.parameters():
            p.normal_()  # any network: the gate decides where δu may be
    pts = torch.tensor([[380.0, 290.0, 0.05], [380.0, 290.0, 0.38]])
    shot = torch.zeros(2, dtype=torch.long)
    torch.testing.assert_close(wf(pts, shot), wf.gate.value(pts, shot) * wf.inner(pts, shot))
    assert "pde" in problem.losses(0).terms  # the terms evaluate through the gate


def test_network_extension_is_zero_for_a_zero_field_and_has_the_update_sign():
    """At step 0 (δu = 0) the extension vanishes and u_tt is the background's; a δu
    equal to a positive multiple of u0_tt·(δm) makes e point to −δm·u_tt's sign."""
    problem = inversion_problem(_config(), _inputs(), torch.device("cpu"))
    f = network_extension(problem, stride=8)
    assert float(f.e.abs().max()) == 0.0 and float(f.du.abs().max()) == 0.0
    bg = problem.formulation.background
    torch.testing.assert_close(f.u_tt[:, 0], bg.u_tt[0, ::8].double(), rtol=0, atol=0)


def test_a_seeded_round_fits_the_reconstruction_first():
    config = _config(seed_steps=5)
    problem = inversion_problem(config, _inputs(), torch.device("cpu"))
    assert problem.seed_field is not None and problem.seed_steps == 5
    assert len(problem.seed_field.values) == 31 * 41 * 100  # every other sample, 0.4 s
    assert float(problem.seed_field.values.abs().max()) > 0  # the data reach the field
    assert "seed" in problem.losses(4).terms and "seed" not in problem.losses(5).terms


def test_surface_options_need_the_scattered_field():
    for key in ({"physics": {"causal": True}}, {"physics": {"seed_steps": 10}}):
        with pytest.raises(ConfigError, match="need .physics. formulation = 'scattered'"):
            load_invert_config(None, {"physics": {"formulation": "total", **key["physics"]}})
    with pytest.raises(ConfigError, match="velocity update"):
        load_invert_config(None, {"velocity": {"update": "newton"}})


def test_extension_diagnostics_on_hand_made_fields():
    field = np.zeros((4, 1, 5, 6))
    field[:, :, 4] = 1.0  # all in the bottom row
    share = depth_share(field)
    assert share[4] == pytest.approx(1.0) and share[:4].sum() == 0
    assert edge_share(field, cells=1) == pytest.approx(1.0)
    u0 = np.zeros((4, 1, 5, 6))
    u0[2:] = 1.0  # the wave arrives at step 2 everywhere
    tau = first_arrival(u0, dt=0.1)
    assert np.allclose(tau, 0.2)
    assert early_share(field, tau, 0.1) == pytest.approx(0.5)  # steps 0 and 1 of 4


def test_a_closed_form_inversion_updates_the_velocity_between_rounds_only_downhill(tmp_path):
    """Wired end to end through ``invert``: the velocity is held inside each round (a
    reconstruction), one closed-form update follows each round, an accepted update
    lowers the FD data misfit and moves only free cells, and the rounds' starts are
    the updated models."""
    from seispinn.experiments.invert import invert

    base = _config()
    config = dataclasses.replace(
        base,
        physics=dataclasses.replace(base.physics, rounds=2),
        velocity=dataclasses.replace(base.velocity, update="closed_form"),
        training=dataclasses.replace(base.training, steps=40, progress=False),
    )
    inputs = _inputs()
    result = invert(inputs, config, tmp_path / "run", score_heldout=False)
    updates = result.metrics["velocity_updates"]
    assert len(updates) == 2
    for u in updates:
        if u["accepted"]:
            assert u["misfit"] < u["misfit_before"] and 0 < u["change"] <= 0.1 + 1e-9
    after_first = updates[0].get("misfit", updates[0]["misfit_before"])
    assert updates[1]["misfit_before"] == pytest.approx(after_first, rel=1e-6)
    moved = np.abs(result.model.values - inputs.start.values) > 1e-3
    assert moved.any() == any(u["accepted"] for u in updates)
    assert not moved[:2].any() and not moved[-2:].any()  # the edge frame stays
    first = np.load(tmp_path / "run" / "round0" / "velocity.npy")  # round 1's start
    assert np.allclose(first, inputs.start.values) != updates[0]["accepted"]


def test_the_closed_form_trial_length_is_set_in_velocity_not_by_the_directions_size(
    monkeypatch,
):
    """A network's extended source changes size from round to round: the same
    direction 1000× larger must start its line search at the same velocity change
    (twice the last accepted), not at a step 1000× longer."""
    import seispinn.pinn.closed_form as cf
    from seispinn.pinn.velocity import ClosedFormOptions, GridVelocity

    inputs = _inputs()
    use = np.ones(inputs.gathers.receiver_mask.shape, dtype=bool)
    update = cf.ClosedFormUpdate(inputs, use, ClosedFormOptions(smoothing=20.0))
    true_dm = 1.0 / inputs.true.values.astype(np.float64) ** 2 - update.model.m
    u_tt = torch.ones((3, 1, *true_dm.shape), dtype=torch.float64)
    size = {"k": 1.0}

    def fields(problem, stride):
        e = size["k"] * torch.from_numpy(true_dm)[None, None].expand_as(u_tt)
        return cf.NetworkFields(u_tt, e.clone(), torch.zeros_like(u_tt), 0.01)

    monkeypatch.setattr(cf, "network_extension", fields)
    problem = type("P", (), {})()
    problem.velocity = GridVelocity(inputs.start)
    model = update(problem)
    size["k"] = 1000.0
    problem.velocity = GridVelocity(model)
    update(problem)
    first, second = update.history
    assert first["accepted"] and first["change"] == pytest.approx(0.02)
    assert second["accepted"] and second["change"] == pytest.approx(0.04)
    assert second["misfit"] < first["misfit"] < first["misfit_before"]
