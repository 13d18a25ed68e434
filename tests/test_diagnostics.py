"""Curriculum diagnostics: the γ measures on hand-made snapshots, and every plotting
function on tiny inputs (figures made, axes and titles as promised, no exception on
a single time slice or a single shot), the run-folder figures and `seispinn plot`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from seispinn.cli import main
from seispinn.diagnostics.gamma import (
    GammaSnapshot,
    bin_points,
    curriculum,
    effective_share,
    enrichment,
    load_gamma,
    load_gamma_series,
    residual_ratio,
    source_region,
)
from seispinn.errors import SeispinnError
from seispinn.gathers import ShotGathers
from seispinn.io import write_shots, write_velocity
from seispinn.models import gaussian_anomaly, homogeneous
from seispinn.plots.curriculum import (
    curriculum_figure,
    gamma_animation,
    gamma_evolution_figure,
    gamma_histogram_figure,
    gamma_sections_figure,
    gamma_slices_figure,
    residual_gamma_figure,
)
from seispinn.plots.inversion import gather_comparison_figure, inversion_figure, loss_curves_figure
from seispinn.plots.run import run_figures


def _snapshot(step: int = 0, n: int = 2000, shots: int = 2, boost: float = 4.0, seed: int = 0):
    """Points over 400 × 200 m × 0.3 s; γ and |r| raised near each shot's source early on."""
    rng = np.random.default_rng(seed)
    pts = np.stack([rng.uniform(0, 400, n), rng.uniform(0, 200, n), rng.uniform(0, 0.3, n)], 1)
    shot = rng.integers(0, shots, n)
    sources = np.array([[100.0, 20.0], [300.0, 20.0]])[:shots]
    near = ((pts[:, :2] - sources[shot]) ** 2).sum(1) <= 50.0**2
    near &= pts[:, 2] <= 0.1
    gamma = np.where(near, boost, 1.0)
    residual = np.where(near, 10.0, 1.0)
    return GammaSnapshot(
        step=step,
        points=pts,
        ids=np.arange(n),
        shot=shot,
        gamma=gamma / gamma.mean(),
        residual=residual,
        sources=sources,
        receivers=np.array([[50.0, 10.0], [350.0, 10.0]]),
        source_radius=50.0,
        active_until=0.1,
    )


def test_source_region_enrichment_and_residual_ratio_on_a_hand_made_snapshot():
    s = _snapshot(boost=4.0)
    region = source_region(s)
    share = region.mean()
    # γ = 4 inside, 1 outside: enrichment = 4 / (4 share + 1 − share)
    assert enrichment(s.gamma, region) == pytest.approx(4.0 / (4 * share + 1 - share))
    assert residual_ratio(s) == pytest.approx(10.0)
    assert enrichment(np.ones(10), np.zeros(10, bool)) != enrichment(
        np.ones(10), np.zeros(10, bool)
    )
    uniform = _snapshot(boost=1.0)
    assert enrichment(uniform.gamma, source_region(uniform)) == pytest.approx(1.0)
    # Points of shot 1 near shot 0's source are not in the region: the region is per shot.
    s0 = np.array([100.0, 20.0])
    other = (s.shot == 1) & (((s.points[:, :2] - s0) ** 2).sum(1) < 40.0**2)
    assert other.any() and not region[other].any()


def test_effective_share_counts_the_points_a_mask_keeps():
    assert effective_share(np.full(8, 3.0)) == pytest.approx(1.0)  # scale-free
    # weight spread evenly on a quarter of the points, none elsewhere: a quarter
    assert effective_share(np.r_[np.ones(25), np.zeros(75)]) == pytest.approx(0.25)
    assert effective_share(np.r_[1.0, np.zeros(9)]) == pytest.approx(0.1)  # one point: 1/N
    # γ = 4 on a share s, 1 elsewhere: (4s + 1 − s)² / (16s + 1 − s)
    s = 0.2
    assert effective_share(np.r_[np.full(20, 4.0), np.ones(80)]) == pytest.approx(
        (3 * s + 1) ** 2 / (15 * s + 1)
    )
    assert np.isnan(effective_share(np.zeros(5))) and np.isnan(effective_share(np.zeros(0)))


def test_bin_points_mean_and_max_and_empty_bins():
    pts = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [1.0, 1.0, 1.0]])
    grid = bin_points(pts, np.array([1.0, 3.0, 5.0]), (1, 2, 2))
    assert grid.values[0, 0, 0] == 2.0 and grid.values[0, 1, 1] == 5.0
    assert np.isnan(grid.values[0, 0, 1])
    peak = bin_points(pts, np.array([1.0, 3.0, 5.0]), (1, 2, 2), reduce="max")
    assert peak.values[0, 0, 0] == 3.0


def test_snapshot_round_trip_and_bad_files(tmp_path):
    s = _snapshot(step=7)
    (tmp_path / "gamma").mkdir()
    s.save(tmp_path / "gamma" / "step_000007.npz")
    _snapshot(step=2).save(tmp_path / "gamma" / "step_000002.npz")
    back = load_gamma(tmp_path / "gamma" / "step_000007.npz")
    assert back.step == 7 and np.allclose(back.gamma, s.gamma) and back.source_radius == 50.0
    assert [x.step for x in load_gamma_series(tmp_path)] == [2, 7]
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SeispinnError, match="junk.npz"):
        load_gamma(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", points=np.zeros((2, 3)))
    with pytest.raises(SeispinnError, match="missing ids"):
        load_gamma(tmp_path / "partial.npz")
    with pytest.raises(SeispinnError, match="no γ snapshots"):
        load_gamma_series(tmp_path / "gamma")


def test_curriculum_numbers_follow_the_mask():
    series = [_snapshot(step=k * 10, boost=1.0 + k) for k in range(4)]
    c = curriculum(series)
    assert c["step"] == [0.0, 10.0, 20.0, 30.0]
    assert c["enrichment"][0] == pytest.approx(1.0)
    assert np.all(np.diff(c["enrichment"]) > 0)
    # the more the mask piles on the source region, the fewer points it keeps
    assert c["effective_share"][0] == pytest.approx(1.0)
    assert np.all(np.diff(c["effective_share"]) < 0)


def _titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.get_title()]


def test_gamma_slices_figure_panels_titles_and_one_colour_scale():
    fig = gamma_slices_figure(_snapshot(), times=[0.05, 0.25], shape=(8, 10, 10))
    titles = _titles(fig)
    assert titles[:2] == ["t ≈ 0.056 s", "t ≈ 0.244 s"] and titles[2:4] == [
        "mean over t",
        "max over t",
    ]
    norms = {(im.norm.vmin, im.norm.vmax) for ax in fig.axes for im in ax.get_images()}
    assert len(norms) == 1
    one = gamma_slices_figure(_snapshot(), times=[0.1], shot=1)  # a single slice, a single shot
    assert len([t for t in _titles(one) if t.startswith("t ≈")]) == 1
    # every point at one time: a degenerate time axis must not break it
    s = _snapshot()
    flat = GammaSnapshot(
        **{**s.__dict__, "points": np.c_[s.points[:, :2], np.zeros(len(s.points))]}
    )
    gamma_slices_figure(flat)
    assert "max over t" in _titles(gamma_slices_figure(_snapshot(shots=1)))


def test_sections_histogram_evolution_residual_and_curriculum_figures(tmp_path):
    series = [_snapshot(step=k, boost=1.0 + k) for k in range(3)]
    sec = gamma_sections_figure(series[-1], source=1)
    assert _titles(sec) == ["depth–time at x = 300 m", "x–time at z = 20 m"]
    assert sec.axes[0].get_xlabel() == "t (s)"
    hist = gamma_histogram_figure(series)
    assert hist.axes[0].get_xscale() == "log" and len(hist.axes[0].get_legend().texts) == 3
    gamma_histogram_figure(_snapshot(boost=1.0))  # uniform: every γ/mean = 1
    evo = gamma_evolution_figure(series)
    assert _titles(evo) == ["step 0", "step 1", "step 2"]
    res = residual_gamma_figure(series[-1], times=[0.05])
    assert _titles(res)[0].startswith("|r|") and _titles(res)[1].startswith("γ / mean γ")
    cur = curriculum_figure(
        {"sa": series, "uniform": [_snapshot(step=k, boost=1.0) for k in range(3)]}
    )
    lines = cur.axes[0].get_lines()
    assert [ln.get_label() for ln in lines[:2]] == ["sa", "uniform"]
    assert np.allclose(lines[1].get_ydata(), 1.0)
    share = cur.axes[3].get_lines()
    assert np.allclose(share[1].get_ydata(), 1.0) and np.all(share[0].get_ydata()[1:] < 1.0)
    gif = gamma_animation(series, tmp_path / "g.mp4")
    assert gif.exists() and gif.stat().st_size > 0


def _gathers(shots: int = 1) -> ShotGathers:
    rng = np.random.default_rng(0)
    return ShotGathers(
        data=rng.standard_normal((shots, 6, 50)).astype(np.float32),
        source_x=np.full(shots, 100.0),
        source_z=np.full(shots, 20.0),
        receiver_x=np.tile(np.linspace(0, 400, 6), (shots, 1)),
        receiver_z=np.full((shots, 6), 10.0),
        dt=0.004,
    )


def test_gather_loss_and_velocity_figures():
    obs = _gathers()
    pred = ShotGathers(
        obs.data * 0.9, obs.source_x, obs.source_z, obs.receiver_x, obs.receiver_z, obs.dt
    )
    fig = gather_comparison_figure(
        obs, {"sa": pred, "fwi": pred}, 0, held_out=np.array([[0, 1, 0, 0, 1, 0]], bool)
    )
    assert _titles(fig) == ["observed", "sa", "sa − observed", "fwi", "fwi − observed"]
    diff = fig.axes[2].get_images()[0].get_array()
    assert np.allclose(diff, -0.1 * obs.data[0].T, atol=1e-6)
    hist = [
        {"step": 0, "loss_pde": 1.0, "loss_data": 2.0},
        {"step": 10, "loss_pde": 0.5, "loss_data": 1.0},
    ]
    losses = loss_curves_figure({"uniform": hist, "sa": hist})
    assert _titles(losses) == ["data", "pde"] and losses.axes[0].get_yscale() == "log"
    true = gaussian_anomaly(20, 10, 10.0, 2000.0, 300.0, (100.0, 50.0), 30.0)
    start = homogeneous(20, 10, 10.0, 2000.0)
    vel = inversion_figure(true, start, {"sa": start})
    assert "true" in _titles(vel) and any("rel. L2" in t for t in _titles(vel))


def test_run_figures_and_the_plot_command(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "gamma").mkdir(parents=True)
    for k in (0, 5):
        _snapshot(step=k, boost=1.0 + k).save(run / "gamma" / f"step_{k:06d}.npz")
    true = gaussian_anomaly(40, 20, 10.0, 2000.0, 300.0, (200.0, 100.0), 40.0)
    write_velocity(run / "true.sgy", true)
    write_velocity(run / "start.sgy", homogeneous(40, 20, 10.0, 2000.0))
    write_velocity(run / "inverted.sgy", true)
    write_shots(run / "observed.sgy", _gathers())
    write_shots(run / "predicted.sgy", _gathers())
    np.save(run / "heldout.npy", np.zeros((1, 6), bool))
    (run / "history.json").write_text(json.dumps([{"step": 0, "loss_pde": 1.0}]))
    names = {p.name for p in run_figures(run)}
    assert {
        "velocity.png",
        "gathers.png",
        "losses.png",
        "gamma_slices.png",
        "curriculum.png",
    } <= names
    assert (
        main(["plot", "gamma", str(run), "--out", str(tmp_path / "g"), "--times", "0.05,0.2"]) == 0
    )
    assert (tmp_path / "g" / "gamma_sections.png").exists()
    assert main(["plot", "run", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such run folder" in err
