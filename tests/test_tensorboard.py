"""TensorBoard logs of a training run: written, readable, and refused cleanly when the
optional package is missing."""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from seispinn.acquisition import Acquisition, Source
from seispinn.diagnostics.tensorboard import MISSING, check_available, image_rgb
from seispinn.errors import ConfigError
from seispinn.experiments.invert import InvertConfig, invert
from seispinn.inputs import InversionInputs
from seispinn.modelling.simulate import ModellingOptions, simulate
from seispinn.models import gaussian_anomaly, homogeneous
from seispinn.pinn.collocation import CollocationOptions
from seispinn.pinn.training import TrainOptions
from seispinn.pinn.wave import NetworkOptions

SOURCE = Source(30.0, 8.0, 0.15)


def _inputs() -> InversionInputs:
    rx = np.tile(np.linspace(20.0, 380.0, 10), (1, 1))
    acq = Acquisition([200.0], [40.0], rx, np.full_like(rx, 20.0), 0.002, 200, 8.0, 0.15)
    true = gaussian_anomaly(41, 31, 10.0, 2000.0, 300.0, (200.0, 150.0), 50.0)
    gathers = simulate(true, acq, ModellingOptions(source_sigma=SOURCE.sigma))
    return InversionInputs(gathers, homogeneous(41, 31, 10.0, 2000.0), SOURCE, true)


def test_a_run_writes_readable_events(tmp_path):
    base = InvertConfig()
    config = dataclasses.replace(
        base,
        network=NetworkOptions(width=16, depth=2),
        physics=dataclasses.replace(base.physics, rounds=1),
        collocation=CollocationOptions(n_points=600, batch_size=128, data_batch=128),
        training=TrainOptions(
            steps=20,
            log_every=5,
            snapshot_every=10,
            progress=False,
            tensorboard=True,
            frozen_until={"velocity": 10},
        ),
    )
    invert(_inputs(), config, tmp_path / "run", score_heldout=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    for tag in (
        "loss/pde",
        "loss/data",
        "lr/wavefield",
        "lr/velocity",
        "points/relative_max",
        "gamma/rank_correlation",
        "gamma/enrichment",
        "gamma/effective_share",
        "gamma/source_to_other",
        "velocity/error",
    ):
        assert tag in scalars, (tag, sorted(scalars))
    assert [e.step for e in events.Scalars("loss/pde")] == [0, 5, 10, 15, 19]
    # The velocity is frozen for the first 10 steps: its rate is 0 until then.
    lr_velocity = [e.value for e in events.Scalars("lr/velocity")]
    assert lr_velocity[:2] == [0.0, 0.0] and min(lr_velocity[2:]) > 0
    assert all(e.value > 0 for e in events.Scalars("lr/wavefield"))
    # Snapshots at steps 0 and 10 and the final one at 20: γ and velocity images.
    for tag in ("gamma/xz_by_time", "velocity/model"):
        assert [e.step for e in events.Images(tag)] == [0, 10, 20], tag
    first = events.Images("velocity/model")[0]
    assert (first.height, first.width) == (31, 41)  # [nz, nx]
    errors = [e.value for e in events.Scalars("velocity/error")]
    assert errors[0] == pytest.approx(_start_error(), rel=1e-4)


def _start_error() -> float:
    inputs = _inputs()
    t, s = inputs.true.values.astype(np.float64), inputs.start.values
    return float(np.linalg.norm(s - t) / np.linalg.norm(t))


def test_missing_package_is_one_config_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import raises ImportError
    with pytest.raises(ConfigError, match="needs the tensorboard package"):
        check_available()
    assert "\n" not in MISSING


def test_cli_refuses_tensorboard_without_the_package_before_any_work(monkeypatch, tmp_path, capsys):
    from seispinn.cli import main

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    run_dir = tmp_path / "run"
    code = main(
        [
            "invert",
            "--config",
            "examples/anomaly_wells.toml",
            "--run-dir",
            str(run_dir),
            "--tensorboard",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tensorboard package" in err[0]
    assert not run_dir.exists()  # nothing simulated, nothing written


def test_image_rgb_spans_the_values_and_marks_empty_bins():
    img = image_rgb(np.array([[0.0, 1.0], [np.nan, 0.5]]))
    assert img.shape == (2, 2, 3) and img.dtype == np.uint8
    assert (img[1, 0] == 0).all()  # NaN: black
    assert not (img[0, 0] == img[0, 1]).all()
