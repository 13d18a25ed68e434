"""Inversion figures: true / start / inverted models and their errors, observed vs
predicted gathers, loss curves (arrays, models or history records in, Figure
out; never imports training)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from seispinn.gathers import ShotGathers
from seispinn.models import VelocityModel
from seispinn.plots.seismic import draw_velocity

__all__ = [
    "inversion_figure",
    "fwi_figure",
    "gather_comparison_figure",
    "loss_curves_figure",
]


def inversion_figure(
    true: VelocityModel, start: VelocityModel, inverted: Mapping[str, VelocityModel]
) -> Figure:
    """Top row: true, start, then each inverted model (one colour scale, km/s).
    Bottom row: start − true, then each inverted − true (m/s, one symmetric scale),
    titled with the relative L2 error."""
    ncol = 2 + len(inverted)
    fig = Figure(figsize=(3.6 * ncol, 5.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, ncol, squeeze=False)
    models = {"true": true, "start": start, **inverted}
    lo = min(float(m.values.min()) for m in models.values())
    hi = max(float(m.values.max()) for m in models.values())
    for ax, (name, m) in zip(axes[0], models.items(), strict=True):
        draw_velocity(ax, m, title=name, vmin=lo, vmax=hi)
    axes[1, 0].axis("off")
    errors = {"start": start, **inverted}
    scale = max(float(np.abs(m.values - true.values).max()) for m in errors.values()) or 1.0
    for ax, (name, m) in zip(axes[1, 1:], errors.items(), strict=True):
        diff = m.values - true.values
        rel = np.linalg.norm(diff) / np.linalg.norm(true.values)
        _diverging(fig, ax, diff, true, scale, f"{name} − true (rel. L2 {rel:.3f})", "m/s")
    return fig


def fwi_figure(
    true: VelocityModel | None,
    start: VelocityModel,
    inverted: VelocityModel,
    gradient: np.ndarray | None,
    bands: Sequence[Mapping[str, float]],
) -> Figure:
    """A conventional FWI run: the inverted model, its error (m/s, when the truth is
    known), the first update direction ``[nz, nx]`` (symmetric scale clipped at its 99th
    percentile: the sources' spikes would hide the rest) and the misfit of each
    band at its start and end (log scale)."""
    fig = Figure(figsize=(15.0, 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    draw_velocity(axes[0], inverted, title="FWI")
    if true is not None:
        diff = inverted.values - true.values
        scale = float(np.abs(start.values - true.values).max()) or 1.0
        rel = np.linalg.norm(diff) / np.linalg.norm(true.values)
        _diverging(fig, axes[1], diff, inverted, scale, f"FWI − true (rel. L2 {rel:.3f})", "m/s")
    else:
        axes[1].axis("off")
    if gradient is not None:
        # Only the direction's shape matters (the line search sets its length):
        # shown relative to its 99th percentile, with + a velocity increase.
        scale = float(np.quantile(np.abs(gradient), 0.99)) or 1.0
        label = "first update direction"
        _diverging(fig, axes[2], gradient / scale, inverted, 1.0, label, "relative")
    else:
        axes[2].axis("off")
    ax = axes[3]
    for k, b in enumerate(bands):
        label = f"{b['corner']:g} Hz" if b["corner"] else "full band"
        ax.semilogy([2 * k, 2 * k + 1], [b["misfit_start"], b["misfit_end"]], "o-", label=label)
    ax.set_xticks([])
    ax.set_ylabel("misfit (each band's own)")
    ax.set_title("misfit per band: start → end", fontsize=9)
    ax.legend(fontsize=8)
    return fig


def _diverging(
    fig: Figure, ax, values: np.ndarray, grid: VelocityModel, scale: float, title: str, unit: str
) -> None:
    im = ax.imshow(
        values,
        extent=grid.extent,
        cmap="seismic",
        vmin=-scale,
        vmax=scale,
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label=unit)


def gather_comparison_figure(
    observed: ShotGathers,
    predicted: ShotGathers | Mapping[str, ShotGathers],
    shot: int = 0,
    *,
    held_out: np.ndarray | None = None,
    clip: float = 0.98,
) -> Figure:
    """Shot ``shot``: observed, then each predicted gather and its difference to the
    observed, one grey scale (a quantile of the observed); held-out receivers
    (``[shot, receiver]`` bool) marked by ticks on top."""
    preds = {"predicted": predicted} if isinstance(predicted, ShotGathers) else dict(predicted)
    panels = [("observed", observed.shot(shot))]
    for name, g in preds.items():
        panels += [(name, g.shot(shot)), (f"{name} − observed", g.shot(shot) - observed.shot(shot))]
    scale = float(np.quantile(np.abs(observed.shot(shot)), clip)) or 1.0
    n = observed.n_receivers[shot]
    rx = observed.receiver_x[shot, :n]
    order = np.argsort(rx, kind="stable")
    t = observed.times
    fig = Figure(figsize=(2.6 * len(panels), 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, data) in zip(axes, panels, strict=True):
        # Receivers in x order (wells put several at one x): trace number on the axis.
        ax.imshow(
            data[order].T,
            extent=(0, n, t[-1], t[0]),
            cmap="gray",
            vmin=-scale,
            vmax=scale,
            aspect="auto",
            interpolation="nearest",
        )
        ticks = np.nonzero(held_out[shot, :n][order])[0] + 0.5 if held_out is not None else []
        if len(ticks):
            ax.plot(ticks, np.full(len(ticks), t[0]), "v", color="orange", ms=4, clip_on=False)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("trace (by receiver x)")
        ax.set_ylabel("t (s)")
    fig.suptitle(f"shot {shot} (source x = {observed.source_x[shot]:.0f} m)")
    return fig


def loss_curves_figure(
    history: Sequence[Mapping[str, float]] | Mapping[str, Sequence[Mapping[str, float]]],
) -> Figure:
    """Each loss term (``loss_*`` keys of history records) against the step, log
    scale; ``{label: history}`` overlays runs, one panel per term."""
    runs = {"": history} if not isinstance(history, Mapping) else dict(history)
    terms = sorted({k for h in runs.values() for r in h for k in r if k.startswith("loss_")})
    terms = terms or ["loss"]
    fig = Figure(figsize=(4.0 * len(terms), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(terms), squeeze=False)[0]
    for ax, term in zip(axes, terms, strict=True):
        for label, h in runs.items():
            steps = [r["step"] for r in h if term in r]
            values = [r[term] for r in h if term in r]
            ax.plot(steps, values, label=label or None)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_title(term.removeprefix("loss_"), fontsize=9)
        if any(runs):
            ax.legend(fontsize=7)
    return fig
