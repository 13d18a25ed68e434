"""The race figure: fits, errors along x and per-point weights, per strategy.

Takes plain arrays and result dicts (as written by the race's JSON), never
training code, and returns a :class:`matplotlib.figure.Figure` drawn with the
Agg canvas, so it works headless and leaves pyplot's global state alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["plot_race", "STRATEGY_COLOURS"]

#: One colour per strategy, the same in every panel and every figure.
STRATEGY_COLOURS = {
    "uniform": "tab:grey",
    "gradnorm": "tab:orange",
    "sa": "tab:blue",
    "rba": "tab:green",
}


def _colour(name: str, index: int) -> str:
    return STRATEGY_COLOURS.get(name, f"C{index}")


def plot_race(
    x_train: Sequence[float],
    y_train: Sequence[float],
    x_dense: Sequence[float],
    y_dense: Sequence[float],
    runs: Mapping[str, Mapping[str, Any]],
    band: float | None = None,
    title: str | None = None,
) -> Figure:
    """Draw one race run per strategy in three panels.

    Args:
        x_train, y_train: ``[N]`` training points and target values.
        x_dense, y_dense: ``[M]`` dense grid and the true function on it.
        runs: strategy name -> a run with ``"prediction"`` (``[M]``, the fit on the
            dense grid) and ``"weights"`` (``[N]``, per-point weights divided by
            their mean, i.e. γ / mean(γ) for SA).
        band: half-width of the central band to shade (None: no shading).
        title: figure title.

    Returns:
        The figure: (left) fits against the truth, (middle) ``|u − u*|`` along x
        on a log scale, (right) per-point relative weights as grouped bars.
    """
    x_train, y_train = np.asarray(x_train), np.asarray(y_train)
    x_dense, y_dense = np.asarray(x_dense), np.asarray(y_dense)
    fig = Figure(figsize=(15, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    ax_fit, ax_err, ax_w = fig.subplots(1, 3)

    ax_fit.plot(x_dense, y_dense, color="black", lw=2.5, alpha=0.35, label="truth")
    ax_fit.plot(x_train, y_train, "k.", ms=5, label="training points")
    width = 0.8 * float(np.min(np.diff(x_train))) / max(len(runs), 1) if len(x_train) > 1 else 0.01
    for k, (name, run) in enumerate(runs.items()):
        colour = _colour(name, k)
        prediction = np.asarray(run["prediction"])
        ax_fit.plot(x_dense, prediction, color=colour, lw=1.2, label=name)
        error = np.abs(prediction - y_dense)
        ax_err.semilogy(x_dense, np.maximum(error, 1e-12), color=colour, lw=1.0, label=name)
        offset = (k - (len(runs) - 1) / 2) * width
        ax_w.bar(
            x_train + offset, np.asarray(run["weights"]), width=width, color=colour, label=name
        )
    for ax in (ax_fit, ax_err, ax_w):
        if band is not None:
            ax.axvspan(-band, band, color="gold", alpha=0.15, lw=0)
        ax.set_xlabel("x")
    ax_w.axhline(1.0, color="black", lw=0.8, ls="--")
    ax_fit.set_title("fit")
    ax_err.set_title("|u − u*| on the dense grid")
    ax_w.set_title("per-point weight / mean (γ / mean γ for SA)")
    ax_fit.legend(fontsize=8)
    ax_w.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
