"""Velocity models, generators and acquisition geometry."""

from __future__ import annotations

import numpy as np
import pytest

from seispinn.acquisition import Acquisition, surface_line
from seispinn.errors import ModelError
from seispinn.models import (
    VelocityModel,
    elliptic_anomaly,
    gaussian_anomaly,
    homogeneous,
    layered,
    marmousi_style,
)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (np.array([[1500.0, np.nan]]), "NaN"),
        (np.array([[1500.0, np.inf]]), "NaN or infinite"),
        (np.array([[1500.0, -1.0]]), "positive"),
        (np.array([[1500.0, 0.0]]), "positive"),
        (np.ones(3), "2D"),
    ],
)
def test_invalid_velocities_are_rejected(values, match):
    with pytest.raises(ModelError, match=match):
        VelocityModel(values, 10.0, 10.0, source="bad.sgy")


@pytest.mark.parametrize(("dx", "dz"), [(0.0, 1.0), (1.0, -2.0), (float("nan"), 1.0)])
def test_invalid_spacing_is_rejected(dx, dz):
    with pytest.raises(ModelError, match="spacing"):
        VelocityModel(np.ones((2, 2)), dx, dz)


def test_error_names_the_source():
    with pytest.raises(ModelError, match="model.sgy"):
        VelocityModel(np.array([[np.nan]]), 1.0, 1.0, source="model.sgy")


def test_coordinates_extent_and_crop():
    m = VelocityModel(np.arange(12, dtype=float).reshape(3, 4) + 1, 10.0, 5.0, x0=100.0, z0=20.0)
    np.testing.assert_allclose(m.x, [100, 110, 120, 130])
    np.testing.assert_allclose(m.z, [20, 25, 30])
    assert m.extent == (100.0, 130.0, 30.0, 20.0)
    c = m.crop(x_range=(110, 120), z_range=(25, 30))
    assert c.shape == (2, 2) and c.x0 == 110 and c.z0 == 25
    np.testing.assert_array_equal(c.values, m.values[1:, 1:3])
    with pytest.raises(ModelError, match="outside"):
        m.crop(x_range=(500, 600))


def test_resample_is_exact_for_linear_fields_and_at():
    z, x = np.meshgrid(np.arange(11) * 10.0, np.arange(21) * 10.0, indexing="ij")
    m = VelocityModel(1500 + 2 * x + 3 * z, 10.0, 10.0)
    r = m.resample(5.0)
    assert r.shape == (21, 41)
    zz, xx = np.meshgrid(r.z, r.x, indexing="ij")
    np.testing.assert_allclose(r.values, 1500 + 2 * xx + 3 * zz, rtol=1e-6)
    np.testing.assert_allclose(
        m.at(np.array([12.5]), np.array([33.0])), [1500 + 25 + 99], rtol=1e-6
    )


def test_smoothed_keeps_constant_and_smooths_a_step():
    h = homogeneous(30, 20, 10.0, 2000.0)
    np.testing.assert_allclose(h.smoothed(50.0).values, 2000.0, rtol=1e-6)
    step = layered(30, 40, 10.0, [200.0], [2000.0, 3000.0])
    s = step.smoothed(40.0)
    col = s.values[:, 15]
    assert np.all(np.diff(col) >= -1e-3) and 2000 < col[20] < 3000
    assert np.abs(np.diff(col)).max() < 0.5 * 1000


def test_generators_shapes_and_values():
    lay = layered(10, 10, 10.0, [30.0, 60.0], [1500.0, 2000.0, 2500.0])
    np.testing.assert_array_equal(lay.values[:, 0], [1500] * 3 + [2000] * 3 + [2500] * 4)
    g = gaussian_anomaly(51, 41, 10.0, 2000.0, 300.0, (250.0, 200.0), 50.0)
    assert g.values[20, 25] == pytest.approx(2300.0) and g.values[0, 0] == pytest.approx(2000.0)
    e = elliptic_anomaly(51, 41, 10.0, 2000.0, 2500.0, (250.0, 200.0), (100.0, 50.0))
    assert e.values[20, 25] == 2500 and e.values[20, 36] == 2000 and e.values[20, 34] == 2500


def test_marmousi_style_is_seeded_and_geological():
    a = marmousi_style(200, 60, 10.0, seed=3)
    b = marmousi_style(200, 60, 10.0, seed=3)
    c = marmousi_style(200, 60, 10.0, seed=4)
    np.testing.assert_array_equal(a.values, b.values)
    assert not np.array_equal(a.values, c.values)
    v = a.values
    assert 1450 <= v.min() and v.max() <= 4700
    assert np.all(v[0] == 1500.0)  # water on top
    # Velocity rises with depth on average, and the model is laterally varying.
    means = v.mean(axis=1)
    assert means[-10:].mean() > means[10:20].mean() + 500
    assert np.std(v[40]) > 50
    assert v.max() > 4000


def test_surface_line_geometry():
    m = homogeneous(101, 31, 10.0, 2000.0)
    acq = surface_line(m, n_shots=3, n_receivers=5, freq=8.0, dt=0.001, duration=0.5)
    np.testing.assert_allclose(acq.source_x, [20, 500, 980])
    assert acq.receiver_x.shape == (3, 5) and acq.nt == 501
    assert np.all(acq.source_z == 20.0)
    assert acq.delay == pytest.approx(1.5 / 8.0)


def test_acquisition_outside_model_names_position():
    m = homogeneous(11, 11, 10.0, 2000.0)
    acq = Acquisition([50.0], [50.0], [[50.0, 150.0]], [[0.0, 0.0]], 0.001, 10, 10.0, 0.15)
    with pytest.raises(ModelError, match=r"receiver .* x=150.0"):
        acq.check_inside(m)


def test_well_receivers_extend_a_surface_line():
    from seispinn.acquisition import surface_line, with_well_receivers
    from seispinn.models import homogeneous

    model = homogeneous(61, 41, 10.0, 2000.0)
    acq = surface_line(model, n_shots=2, n_receivers=5, freq=10.0, dt=0.002, duration=0.2)
    wells = with_well_receivers(acq, model, [0.0, 600.0], 4)
    assert wells.receiver_x.shape == (2, 13)
    np.testing.assert_array_equal(wells.receiver_x[:, 5:9], 0.0)
    np.testing.assert_array_equal(wells.receiver_x[:, 9:], 600.0)
    z = wells.receiver_z[0, 5:9]
    assert z[0] > acq.receiver_z[0, 0] and z[-1] == pytest.approx(380.0) and np.all(np.diff(z) > 0)
