"""Deepwave forward modelling checked against the analytic 2D Green's function."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seispinn.acquisition import Acquisition, ricker
from seispinn.errors import ModelError
from seispinn.modelling.analytic import gaussian_source_trace, point_source_trace
from seispinn.modelling.simulate import (
    ModellingOptions,
    fitting_halfwidth,
    gaussian_source_weights,
    simulate,
    wavefield_snapshots,
)
from seispinn.models import homogeneous, layered

C = 2000.0
XS = ZS = 600.0
OFFSETS = np.array([150.0, 300.0, 450.0])


@pytest.fixture(scope="module")
def medium():
    return homogeneous(241, 241, 5.0, C)


def _acq(rx, rz, nt=1001):
    return Acquisition(
        source_x=[XS],
        source_z=[ZS],
        receiver_x=rx,
        receiver_z=rz,
        dt=0.0005,
        nt=nt,
        freq=10.0,
        delay=0.15,
    )


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_point_source_matches_greens_function_at_three_offsets(medium):
    acq = _acq(XS + OFFSETS, np.full(3, ZS))
    gathers = simulate(medium, acq)
    assert gathers.data.shape == (1, 3, 1001)
    for k, r in enumerate(OFFSETS):
        ref = point_source_trace(r, C, acq.times, 10.0, 0.15)
        assert _rel(gathers.data[0, k], ref) <= 0.01, r


@pytest.mark.parametrize("source_off", [(0.0, 0.0), (1.1, 2.6)])
def test_off_grid_points_match_greens_function_within_0_2_percent(medium, source_off):
    """Receivers 2.3 m / 1.7 m off the nodes in x and z (snapping would shift arrivals
    by ~1 ms), with the source on a node and off it: as close to the analytic trace as
    on-node receivers (Deepwave's default Hicks half-width 4 gave 0.7-1.3 %)."""
    sx, sz = XS + source_off[0], ZS + source_off[1]
    acq = _acq(sx + OFFSETS[:2] + 2.3, np.full(2, sz - 1.7))
    acq = Acquisition([sx], [sz], acq.receiver_x, acq.receiver_z, acq.dt, acq.nt, 10.0, 0.15)
    gathers = simulate(medium, acq)
    for k in range(2):
        r = np.hypot(OFFSETS[k] + 2.3, 1.7)
        ref = point_source_trace(r, C, acq.times, 10.0, 0.15)
        assert _rel(gathers.data[0, k], ref) <= 2e-3, (source_off, r)


def test_off_grid_points_near_an_absorbing_edge_narrow_the_window(medium):
    """Deepwave refuses a window that reaches past an absorbing edge: a receiver 1.3
    cells below the top is placed with a half-width that fits, not refused."""
    acq = _acq(np.array([XS + 150.0 + 2.3]), np.array([6.5]))
    assert fitting_halfwidth_for(medium, acq) == 2
    trace = simulate(medium, acq).data[0, 0]
    assert np.isfinite(trace).all() and np.abs(trace).max() > 0
    assert fitting_halfwidth_for(medium, _acq(XS + OFFSETS + 2.3, np.full(3, ZS))) == 8


def fitting_halfwidth_for(model, acq) -> int:
    rec = torch.from_numpy(
        np.stack(
            [(acq.receiver_z - model.z0) / model.dz, (acq.receiver_x - model.x0) / model.dx], -1
        )
    )
    return fitting_halfwidth([rec], model.shape, ModellingOptions())


def test_gaussian_source_matches_spread_greens_function(medium):
    acq = _acq([XS + 300.0], [ZS])
    gathers = simulate(medium, acq, ModellingOptions(source_sigma=15.0))
    ref = gaussian_source_trace(300.0, 0.0, C, acq.times, 10.0, 0.15, 15.0)
    assert _rel(gathers.data[0, 0], ref) <= 0.01
    # ...and it is not the point-source answer (the spread is visible).
    point = point_source_trace(300.0, C, acq.times, 10.0, 0.15)
    assert _rel(gathers.data[0, 0], point) > 0.05


def test_gaussian_source_has_unit_mass(medium):
    _, w = gaussian_source_weights(medium, XS, ZS, 15.0)
    assert np.sum(w) * medium.dx * medium.dz == pytest.approx(1.0, abs=1e-4)


def test_gaussian_source_outside_model_is_rejected(medium):
    with pytest.raises(ModelError):
        gaussian_source_weights(medium, -500.0, ZS, 15.0)


def test_snapshots_match_greens_function_at_their_times(medium):
    acq = _acq([XS + 100.0], [ZS], nt=801)
    snaps = wavefield_snapshots(medium, acq, [0.2, 0.3])
    assert snaps.values.shape == (2, 241, 241)
    np.testing.assert_allclose(snaps.times, [0.2, 0.3])
    row = snaps.values[1, int(ZS / 5.0)]
    dist = np.abs(medium.x - XS)
    far = dist > 50.0
    ref = np.array([point_source_trace(d, C, np.array([0.3]), 10.0, 0.15)[0] for d in dist[far]])
    assert _rel(row[far], ref) <= 0.01


def test_repeated_snapshot_times_give_equal_frames(medium):
    acq = _acq([XS + 100.0], [ZS], nt=401)
    snaps = wavefield_snapshots(medium, acq, [0.15, 0.15, 0.1])
    np.testing.assert_array_equal(snaps.values[0], snaps.values[1])
    assert np.abs(snaps.values[0]).max() > 0 and np.abs(snaps.values[2]).max() > 0


def test_bad_modelling_options_are_rejected():
    with pytest.raises(ModelError, match="accuracy"):
        ModellingOptions(accuracy=3)
    with pytest.raises(ModelError, match="pml_width"):
        ModellingOptions(pml_width=-2)


def test_snapshot_time_outside_record_is_rejected(medium):
    acq = _acq([XS + 100.0], [ZS], nt=101)
    with pytest.raises(ModelError, match="snapshot times"):
        wavefield_snapshots(medium, acq, [1.0])


def test_free_surface_reflects_with_opposite_polarity():
    model = homogeneous(161, 101, 5.0, C)
    acq = Acquisition(
        source_x=[400.0],
        source_z=[100.0],
        receiver_x=[400.0],
        receiver_z=[100.0],
        dt=0.0005,
        nt=601,
        freq=10.0,
        delay=0.15,
    )
    absorbing = simulate(model, acq).data[0, 0]
    free = simulate(model, acq, ModellingOptions(free_surface=True)).data[0, 0]
    ghost = free - absorbing
    # u = 0 on the plane z = z0 - dz = -5 m acts as an image source of opposite
    # sign at z = -110 m, 210 m above the source.
    image = -point_source_trace(210.0, C, acq.times, 10.0, 0.15)
    assert _rel(ghost, image) < 0.01


def test_layer_produces_reflection_and_shots_are_independent():
    model = layered(121, 81, 5.0, [200.0], [2000.0, 3000.0])
    acq = Acquisition(
        source_x=[150.0, 450.0],
        source_z=[20.0, 20.0],
        receiver_x=[[300.0], [300.0]],
        receiver_z=[[20.0], [20.0]],
        dt=0.0005,
        nt=701,
        freq=10.0,
        delay=0.15,
    )
    both = simulate(model, acq, shots_per_batch=2).data
    one_by_one = simulate(model, acq, shots_per_batch=1).data
    np.testing.assert_allclose(both, one_by_one, rtol=1e-5, atol=1e-7)
    # Symmetric shots around the receiver record the same trace.
    np.testing.assert_allclose(both[0, 0], both[1, 0], rtol=1e-4, atol=1e-6)
    homog = simulate(homogeneous(121, 81, 5.0, 2000.0), acq).data
    refl = both[0, 0] - homog[0, 0]
    # Source and receiver are 150 m apart, 180 m above the interface: the reflection
    # travels 2·sqrt(75² + 180²) m at 2000 m/s after the wavelet's peak.
    t_refl = 2 * np.hypot(75.0, 180.0) / 2000.0 + 0.15
    peak_time = acq.times[np.argmax(np.abs(refl))]
    assert abs(peak_time - t_refl) < 0.01


def test_ricker_starts_at_zero_and_peaks_at_delay():
    w = ricker(10.0, 0.001, 400)
    assert abs(w[0]) < 1e-3
    assert np.argmax(w) == 150


def test_source_outside_model_is_rejected(medium):
    acq = _acq([XS], [ZS])
    bad = Acquisition(
        source_x=[5000.0],
        source_z=[ZS],
        receiver_x=acq.receiver_x,
        receiver_z=acq.receiver_z,
        dt=acq.dt,
        nt=acq.nt,
        freq=acq.freq,
        delay=acq.delay,
    )
    with pytest.raises(ModelError, match="outside the model"):
        simulate(medium, bad)
