"""Inversion figures: true / start / inverted models and their errors (models in,
Figure out; never imports training)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from seispinn.models import VelocityModel
from seispinn.plots.seismic import draw_velocity

__all__ = ["inversion_figure"]


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
        im = ax.imshow(
            diff,
            extent=true.extent,
            cmap="seismic",
            vmin=-scale,
            vmax=scale,
            aspect="auto",
            interpolation="nearest",
        )
        ax.set_title(f"{name} − true (rel. L2 {rel:.3f})", fontsize=9)
        fig.colorbar(im, ax=ax, label="m/s")
    return fig
