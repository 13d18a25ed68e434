"""Wavefield snapshots: reference vs PINN runs, with error maps (arrays in, Figure out)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["snapshot_comparison_figure"]


def snapshot_comparison_figure(
    reference: np.ndarray,
    runs: Mapping[str, np.ndarray],
    times: np.ndarray,
    extent: tuple[float, float, float, float],
    *,
    snapshots: list[int] | None = None,
) -> Figure:
    """Rows = chosen snapshot times; columns = reference, then each run and its error.

    Args:
        reference: ``[time, nz, nx]`` reference wavefield (e.g. Deepwave).
        runs: name -> ``[time, nz, nx]`` predicted wavefield on the same grid.
        times: ``[time]`` snapshot times (s).
        extent: ``(x_min, x_max, z_max, z_min)`` in metres.
        snapshots: indices of the times to show (default: up to three, spread out).
    """
    if snapshots is None:
        snapshots = sorted(
            {int(round(i)) for i in np.linspace(0, len(times) - 1, min(3, len(times)))}
        )
    ncol = 1 + 2 * len(runs)
    fig = Figure(figsize=(2.6 * ncol, 2.5 * len(snapshots)), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(
        len(snapshots),
        ncol,
        squeeze=False,
    )
    for row, k in enumerate(snapshots):
        scale = float(np.abs(reference[k]).max()) or 1.0
        panels = [("reference", reference[k])]
        for name, pred in runs.items():
            err = np.linalg.norm(pred[k] - reference[k]) / max(np.linalg.norm(reference[k]), 1e-30)
            panels += [(name, pred[k]), (f"{name} error ({err:.2f})", pred[k] - reference[k])]
        for col, (title, field) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(field, extent=extent, cmap="seismic", vmin=-scale, vmax=scale, aspect="equal")
            ax.set_title(f"{title}\nt = {times[k]:.2f} s", fontsize=8)
            ax.tick_params(labelsize=6)
            if col:
                ax.set_yticklabels([])
    return fig
