"""Curriculum figures: where the per-point mask γ went over (x, z, t), and when.

Every function takes a :class:`~seispinn.diagnostics.gamma.GammaSnapshot` (or a
list of them) or a path — a run folder (its γ snapshots) or one ``.npz`` — and
returns a matplotlib Figure; nothing here imports training code. The random
collocation points are binned onto a coarse (t, z, x) grid; γ is shown relative
to its mean (1 = the uniform weight) on one logarithmic colour scale per figure,
so panels are comparable.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from seispinn.diagnostics.gamma import (
    GammaGrid,
    GammaSnapshot,
    bin_points,
    curriculum,
    load_gamma,
    load_gamma_series,
)

__all__ = [
    "gamma_slices_figure",
    "gamma_sections_figure",
    "gamma_histogram_figure",
    "gamma_evolution_figure",
    "gamma_animation",
    "residual_gamma_figure",
    "curriculum_figure",
]

SnapshotLike = GammaSnapshot | str | Path
Shape = tuple[int, int, int]
_SHAPE = None  # auto: about 8 points per (t, z, x) bin


def _shape(points: np.ndarray, shape: Shape | None, nt: int = 6, per_bin: int = 8) -> Shape:
    """``shape`` or one with about ``per_bin`` points per bin, square-ish in (x, z)."""
    if shape is not None:
        return shape
    cells = max(len(points) / (nt * per_bin), 1.0)
    aspect = float(np.ptp(points[:, 0]) or 1.0) / float(np.ptp(points[:, 1]) or 1.0)
    nz = max(2, int(round(np.sqrt(cells / aspect))))
    nx = max(2, int(round(cells / nz)))
    return (nt, nz, nx)


def _series(obj: SnapshotLike | Sequence[GammaSnapshot]) -> list[GammaSnapshot]:
    if isinstance(obj, GammaSnapshot):
        return [obj]
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        return [load_gamma(path)] if path.suffix == ".npz" else load_gamma_series(path)
    return list(obj)


def _snapshot(obj: SnapshotLike) -> GammaSnapshot:
    """The snapshot itself, an ``.npz``, or a run folder's last snapshot."""
    return _series(obj)[-1]


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _select(snap: GammaSnapshot, shot: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keep = np.ones(len(snap.points), bool) if shot is None else snap.shot == shot
    return snap.points[keep], snap.gamma[keep], snap.residual[keep]


def _log_norm(*arrays: np.ndarray) -> LogNorm:
    """One log scale for all finite positive values: 1st to 99.5th percentile."""
    vals = np.concatenate([a[np.isfinite(a) & (a > 0)].ravel() for a in arrays] + [np.ones(1)])
    lo, hi = np.quantile(vals, [0.01, 0.995])
    if hi <= lo * 1.001:
        lo, hi = lo / 2, hi * 2
    return LogNorm(vmin=lo, vmax=hi)


def _marks(ax: Axes, snap: GammaSnapshot, shot: int | None) -> None:
    if len(snap.receivers):
        ax.plot(*snap.receivers.T, "v", color="w", ms=3, mec="k", mew=0.3, ls="none")
    src = snap.sources if shot is None else snap.sources[shot : shot + 1]
    ax.plot(*src.T, "*", color="r", ms=9, mec="k", mew=0.5, ls="none")


def _image(
    ax: Axes, values: np.ndarray, extent: tuple[float, ...], norm: LogNorm, title: str
) -> object:
    im = ax.imshow(
        np.ma.masked_invalid(values),
        extent=extent,
        norm=norm,
        cmap="magma",
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_title(title, fontsize=9)
    return im


def _slice_axes(ax: Axes, grid: GammaGrid) -> None:
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z (m)")
    ax.set_xlim(grid.x_edges[0], grid.x_edges[-1])
    ax.set_ylim(grid.z_edges[-1], grid.z_edges[0])


def _project(values: np.ndarray, reduce: str) -> np.ndarray:
    """Mean or max over the time axis of ``[nt, nz, nx]``, ignoring empty (NaN) bins;
    NaN where a column has no point at all."""
    filled = np.isfinite(values)
    if reduce == "max":
        out = np.where(filled, values, -np.inf).max(axis=0)
    else:
        out = np.where(filled, values, 0.0).sum(axis=0) / np.maximum(filled.sum(axis=0), 1)
    return np.where(filled.any(axis=0), out, np.nan)


def _projections(
    snaps: Sequence[GammaSnapshot], reduce: str, shape: Shape | None
) -> tuple[list[GammaGrid], list[np.ndarray], LogNorm]:
    """Each snapshot's γ binned, its projection over t, and one colour scale for all."""
    grids = [bin_points(s.points, s.gamma, _shape(s.points, shape), reduce=reduce) for s in snaps]
    projs = [_project(g.values, reduce) for g in grids]
    return grids, projs, _log_norm(*projs)


def _time_bins(grid: GammaGrid, times: Sequence[float] | None, n: int = 4) -> list[int]:
    centres = grid.t_centres
    if times is None:
        return sorted(
            {int(round(k)) for k in np.linspace(0, len(centres) - 1, min(n, len(centres)))}
        )
    return [int(np.argmin(np.abs(centres - t))) for t in times]


def gamma_slices_figure(
    snap: SnapshotLike,
    times: Sequence[float] | None = None,
    *,
    shot: int | None = None,
    shape: Shape | None = _SHAPE,
) -> Figure:
    """γ/mean(γ) in (x, z) at the time bins nearest ``times`` (s; default four
    spread over the window), then its mean and max over t; sources (*) and
    receivers (v) marked; one log colour scale. ``shot``: only that shot's points."""
    s = _snapshot(snap)
    pts, gamma, _ = _select(s, shot)
    mean = bin_points(pts, gamma, _shape(pts, shape))
    peak = bin_points(pts, gamma, _shape(pts, shape), reduce="max")
    bins = _time_bins(mean, times)
    proj_mean, proj_max = _project(mean.values, "mean"), _project(peak.values, "max")
    panels = [(mean.values[k], f"t ≈ {mean.t_centres[k]:.3f} s") for k in bins]
    panels += [(proj_mean, "mean over t"), (proj_max, "max over t")]
    norm = _log_norm(*(p for p, _ in panels))
    fig = _figure(3.2 * len(panels), 3.4)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (values, title) in zip(axes, panels, strict=True):
        im = _image(ax, values, mean.extent, norm, title)
        _marks(ax, s, shot)
        _slice_axes(ax, mean)
    fig.colorbar(im, ax=list(axes), label="γ / mean γ")
    fig.suptitle(f"γ over (x, z) at step {s.step}" + ("" if shot is None else f", shot {shot}"))
    return fig


def gamma_sections_figure(
    snap: SnapshotLike,
    source: int = 0,
    *,
    halfwidth: float | None = None,
    shape: Shape | None = _SHAPE,
) -> Figure:
    """Depth–time section through the source's x and x–time section through its
    depth: mean γ/mean(γ) of that shot's points within ``halfwidth`` m of the
    section line (default: the source radius, else 1/10 of the model width)."""
    s = _snapshot(snap)
    pts, gamma, _ = _select(s, source if len(s.sources) > 1 else None)
    xs, zs = s.sources[source]
    width = halfwidth or (
        s.source_radius if np.isfinite(s.source_radius) else 0.1 * float(np.ptp(pts[:, 0]) or 1)
    )
    nt, nz, nx = _shape(pts, shape)
    sections = []
    for near, n_bins, label, line in (
        (np.abs(pts[:, 0] - xs) <= width, (nt, nz, 1), "z (m)", zs),
        (np.abs(pts[:, 1] - zs) <= width, (nt, 1, nx), "x (m)", xs),
    ):
        near = near if near.any() else np.ones(len(pts), bool)
        grid = bin_points(pts[near], gamma[near], n_bins)
        values = grid.values.reshape(nt, -1).T  # [space, time]
        edges = grid.z_edges if label.startswith("z") else grid.x_edges
        extent = (grid.t_edges[0], grid.t_edges[-1], edges[-1], edges[0])
        sections.append((values, extent, label, line))
    norm = _log_norm(*(v for v, _, _, _ in sections))
    fig = _figure(9.0, 3.6)
    axes = fig.subplots(1, 2)
    titles = (f"depth–time at x = {xs:.0f} m", f"x–time at z = {zs:.0f} m")
    for ax, (values, extent, label, line), title in zip(axes, sections, titles, strict=True):
        im = _image(ax, values, extent, norm, title)
        ax.axhline(line, color="c", lw=0.8, ls="--")
        if np.isfinite(s.active_until) and s.active_until < extent[1]:
            ax.axvline(s.active_until, color="w", lw=0.8, ls=":")  # end of the source window
        ax.set_xlim(extent[0], extent[1])
        ax.set_xlabel("t (s)")
        ax.set_ylabel(label)
    fig.colorbar(im, ax=list(axes), label="γ / mean γ")
    fig.suptitle(f"γ sections through source {source}, step {s.step}")
    return fig


def gamma_histogram_figure(snaps: SnapshotLike | Sequence[GammaSnapshot]) -> Figure:
    """Histogram of γ/mean(γ) (log bins) for each snapshot given, labelled by step."""
    series = _series(snaps)
    fig = _figure(5.0, 3.4)
    ax = fig.subplots()
    allv = np.concatenate([s.gamma[s.gamma > 0] for s in series] + [np.ones(1)])
    lo, hi = float(allv.min()), float(allv.max())
    if hi <= lo * 1.001:
        lo, hi = lo / 2, hi * 2
    edges = np.geomspace(lo, hi, 41)
    for s in series:
        ax.hist(s.gamma, bins=edges, histtype="step", label=f"step {s.step}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axvline(1.0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("γ / mean γ")
    ax.set_ylabel("points")
    ax.set_title("distribution of the relative mask")
    ax.legend(fontsize=7)
    return fig


def gamma_evolution_figure(
    series: SnapshotLike | Sequence[GammaSnapshot],
    *,
    reduce: str = "max",
    shape: Shape | None = _SHAPE,
    max_panels: int = 6,
) -> Figure:
    """γ/mean(γ) projected over t (``reduce`` = ``'max'`` or ``'mean'``) at up to
    ``max_panels`` snapshot steps, one log colour scale: where the mask went, and when."""
    snaps = _series(series)
    if len(snaps) > max_panels:
        keep = np.unique(np.linspace(0, len(snaps) - 1, max_panels).round().astype(int))
        snaps = [snaps[k] for k in keep]
    grids, projs, norm = _projections(snaps, reduce, shape)
    fig = _figure(3.2 * len(snaps), 3.4)
    axes = fig.subplots(1, len(snaps), squeeze=False)[0]
    for ax, s, g, proj in zip(axes, snaps, grids, projs, strict=True):
        im = _image(ax, proj, g.extent, norm, f"step {s.step}")
        _marks(ax, s, None)
        _slice_axes(ax, g)
    fig.colorbar(im, ax=list(axes), label=f"{reduce} over t of γ / mean γ")
    fig.suptitle("γ during training")
    return fig


def gamma_animation(
    series: SnapshotLike | Sequence[GammaSnapshot],
    path: str | Path,
    *,
    fps: float = 2.0,
    reduce: str = "max",
    shape: Shape | None = _SHAPE,
) -> Path:
    """Write the γ projection over t, one frame per snapshot, as a GIF (Pillow) or,
    for a ``.mp4`` path where ffmpeg exists, an MP4; returns the path written (a
    ``.gif`` beside it when ffmpeg is missing)."""
    from matplotlib.animation import FFMpegWriter, FuncAnimation, PillowWriter

    snaps = _series(series)
    path = Path(path)
    if path.suffix == ".mp4" and shutil.which("ffmpeg") is None:
        path = path.with_suffix(".gif")
    grids, projs, norm = _projections(snaps, reduce, shape)
    fig = _figure(5.0, 3.8)
    ax = fig.subplots()
    im = _image(ax, projs[0], grids[0].extent, norm, f"step {snaps[0].step}")
    _marks(ax, snaps[0], None)
    _slice_axes(ax, grids[0])
    fig.colorbar(im, ax=ax, label=f"{reduce} over t of γ / mean γ")

    def frame(k: int) -> list:
        im.set_data(np.ma.masked_invalid(projs[k]))
        ax.set_title(f"step {snaps[k].step}", fontsize=9)
        return [im]

    anim = FuncAnimation(fig, frame, frames=len(snaps), blit=False)
    writer = FFMpegWriter(fps=fps) if path.suffix == ".mp4" else PillowWriter(fps=fps)
    anim.save(str(path), writer=writer)
    return path


def residual_gamma_figure(
    snap: SnapshotLike,
    times: Sequence[float] | None = None,
    *,
    shot: int | None = None,
    shape: Shape | None = _SHAPE,
) -> Figure:
    """|PDE residual| (top) beside γ/mean(γ) (bottom) at the same time slices: the
    mask next to what it answers to. Each row has one log colour scale."""
    s = _snapshot(snap)
    pts, gamma, res = _select(s, shot)
    g_grid = bin_points(pts, gamma, _shape(pts, shape))
    has_res = bool(np.all(np.isfinite(res)))
    r_grid = bin_points(pts, res if has_res else np.zeros_like(gamma), _shape(pts, shape))
    bins = _time_bins(g_grid, times)
    fig = _figure(3.2 * len(bins), 6.4)
    axes = fig.subplots(2, len(bins), squeeze=False)
    rows = (
        (r_grid, "|r|", "magma" if has_res else None),
        (g_grid, "γ / mean γ", "magma"),
    )
    for row, (grid, label, _) in enumerate(rows):
        norm = _log_norm(*(grid.values[k] for k in bins))
        for ax, k in zip(axes[row], bins, strict=True):
            title = f"{label}, t ≈ {grid.t_centres[k]:.3f} s"
            if row == 0 and not has_res:
                title = "residual not recorded"
            im = _image(ax, grid.values[k], grid.extent, norm, title)
            _marks(ax, s, shot)
            _slice_axes(ax, grid)
        fig.colorbar(im, ax=list(axes[row]), label=label)
    fig.suptitle(f"residual and mask at step {s.step}")
    return fig


def curriculum_figure(
    runs: SnapshotLike
    | Sequence[GammaSnapshot]
    | Mapping[str, SnapshotLike | Sequence[GammaSnapshot]],
) -> Figure:
    """The automatic curriculum as curves over training steps: γ enrichment in the
    source region (docs/method.md, Measures), the source-region ÷ elsewhere residual ratio, the
    rank correlation of γ with |r| and γ's effective share of the points; ``runs`` is
    one run (folder or snapshots) or ``{label: run}`` to overlay."""
    if not isinstance(runs, Mapping):
        runs = {"": runs}
    fig = _figure(17.0, 3.4)
    ax_e, ax_r, ax_c, ax_s = fig.subplots(1, 4)
    for label, run in runs.items():
        c = curriculum(_series(run))
        ax_e.plot(c["step"], c["enrichment"], "o-", ms=3, label=label or None)
        ax_r.plot(c["step"], c["residual_ratio"], "o-", ms=3, label=label or None)
        ax_c.plot(c["step"], c["rank_correlation"], "o-", ms=3, label=label or None)
        ax_s.plot(c["step"], c["effective_share"], "o-", ms=3, label=label or None)
    ax_e.axhline(1.0, color="k", lw=0.8, ls="--")
    ax_e.set_xlabel("step")
    ax_e.set_ylabel("γ enrichment in the source region")
    ax_e.set_title("where the mask goes")
    ax_r.set_yscale("log")
    ax_r.set_xlabel("step")
    ax_r.set_ylabel("RMS |r| source region ÷ elsewhere")
    ax_r.set_title("what it answers to")
    ax_c.axhline(0.0, color="k", lw=0.8, ls="--")
    ax_c.set_ylim(-1.05, 1.05)
    ax_c.set_xlabel("step")
    ax_c.set_ylabel("rank correlation of γ with |r|")
    ax_c.set_title("does the mask follow the residual")
    ax_s.set_ylim(0.0, 1.05)
    ax_s.set_xlabel("step")
    ax_s.set_ylabel("effective share of points, (Σγ)² / (N Σγ²)")
    ax_s.set_title("how much of the domain it keeps")
    if any(runs):
        ax_e.legend(fontsize=8)
    return fig
