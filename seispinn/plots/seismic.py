"""Figures of velocity models and shot gathers (arrays in, Figure out).

Never imports training code: every function takes models, gathers or arrays.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from seispinn.gathers import ShotGathers
from seispinn.models import VelocityModel

__all__ = ["draw_velocity", "draw_gather", "model_and_gathers_figure"]


def draw_velocity(
    ax: Axes,
    model: VelocityModel,
    *,
    title: str = "velocity",
    vmin: float | None = None,
    vmax: float | None = None,
    sources: tuple[np.ndarray, np.ndarray] | None = None,
    receivers: tuple[np.ndarray, np.ndarray] | None = None,
) -> None:
    """Velocity image (km/s colour bar) with optional source (*) and receiver (v) marks."""
    im = ax.imshow(
        model.values / 1000.0,
        extent=model.extent,
        cmap="viridis",
        aspect="auto",
        vmin=None if vmin is None else vmin / 1000.0,
        vmax=None if vmax is None else vmax / 1000.0,
        interpolation="nearest",
    )
    ax.figure.colorbar(im, ax=ax, label="km/s")
    if receivers is not None:
        ax.plot(receivers[0], receivers[1], "v", color="w", ms=3, mec="k", mew=0.3, ls="none")
    if sources is not None:
        ax.plot(sources[0], sources[1], "*", color="r", ms=9, mec="k", mew=0.5, ls="none")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("z (m)")
    ax.set_title(title)
    ax.set_xlim(model.extent[0], model.extent[1])
    ax.set_ylim(model.extent[2], model.extent[3])


def draw_gather(ax: Axes, gathers: ShotGathers, shot: int, *, clip: float = 0.98) -> None:
    """One shot gather as a grey image, receiver x against time, clipped at a quantile."""
    data = gathers.shot(shot)
    scale = float(np.quantile(np.abs(data), clip)) or 1.0
    rx = gathers.receiver_x[shot, : gathers.n_receivers[shot]]
    t = gathers.times
    ax.imshow(
        data.T,
        extent=(rx.min(), rx.max(), t[-1], t[0]),
        cmap="gray",
        vmin=-scale,
        vmax=scale,
        aspect="auto",
    )
    ax.axvline(gathers.source_x[shot], color="r", lw=0.8, ls="--")
    ax.set_xlabel("receiver x (m)")
    ax.set_ylabel("t (s)")
    ax.set_title(f"shot {shot} (x = {gathers.source_x[shot]:.0f} m)")


def model_and_gathers_figure(
    model: VelocityModel, gathers: ShotGathers, shots: list[int] | None = None
) -> Figure:
    """The model with the acquisition on top, and up to four shot gathers below."""
    shots = shots if shots is not None else _spread(gathers.n_shots, 4)
    # A bare Figure with its own Agg canvas: no pyplot state, no backend switch.
    fig = Figure(figsize=(3.2 * max(len(shots), 2), 7.5), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, len(shots), height_ratios=[1, 1.4])
    draw_velocity(
        fig.add_subplot(grid[0, :]),
        model,
        title="velocity model and acquisition",
        sources=(gathers.source_x, gathers.source_z),
        receivers=(
            gathers.receiver_x[gathers.receiver_mask],
            gathers.receiver_z[gathers.receiver_mask],
        ),
    )
    for k, s in enumerate(shots):
        draw_gather(fig.add_subplot(grid[1, k]), gathers, s)
    return fig


def _spread(n: int, k: int) -> list[int]:
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(n, k))})
