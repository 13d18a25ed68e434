"""The measures everyone reports the same way (docs/method.md, Measures), in one place.

Plain functions on arrays (numpy arrays, or torch tensors, which are moved to the
CPU): relative L2, RMS inside and outside a region, γ enrichment, the rank
correlation of γ with |residual|, the mask's effective share of points, velocity
errors of a model against the truth (whole, illuminated part, anomaly) and the
held-out data misfit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr

__all__ = [
    "relative_l2",
    "band_rms",
    "enrichment",
    "rank_correlation",
    "effective_share",
    "anomaly_region",
    "velocity_scores",
    "heldout_misfit",
]


def _array(values: Any, dtype: Any = np.float64) -> np.ndarray:
    """A numpy copy of an array or a (possibly CUDA, possibly graph-attached) tensor."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=dtype)


def relative_l2(a: Any, b: Any) -> float:
    """‖a − b‖ / ‖b‖ (0-safe denominator), any matching shapes."""
    a, b = _array(a, None), _array(b, None)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def band_rms(values: Any, in_band: Any) -> tuple[float, float]:
    """RMS of ``values`` ``[N]`` inside and outside a region (``[N]`` bool);
    NaN for an empty side."""
    v, inside = _array(values), _array(in_band, bool)

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x**2))) if x.size else float("nan")

    return rms(v[inside]), rms(v[~inside])


def enrichment(weights: Any, in_region: Any) -> float:
    """γ enrichment: share of Σw inside the region ÷ share of the points there
    (1 = no preference, > 1 = weight concentrated there); NaN for an empty region
    or zero weights. ``weights``, ``in_region``: ``[N]``."""
    w, inside = _array(weights), _array(in_region, bool)
    if not inside.any() or w.sum() <= 0:
        return float("nan")
    return float(w[inside].sum() / w.sum() / inside.mean())


def rank_correlation(gamma: Any, residual: Any) -> float:
    """Spearman rank correlation of γ with |residual| over the points (``[N]`` each):
    an SA mask that follows its residual is clearly positive. NaN when either is
    constant (uniform weighting has no ranking)."""
    g, r = _array(gamma), np.abs(_array(residual))
    if g.size < 2 or np.ptp(g) == 0 or np.ptp(r) == 0:
        return float("nan")
    return float(spearmanr(g, r).statistic)


def effective_share(weights: Any) -> float:
    """The share of the points a weighting effectively enforces its term on:
    ``(Σw)² / (N Σw²)`` over ``[N]`` weights (Kish's effective sample size ÷ N).
    1 for equal weights; f when the weight sits evenly on a share f of the points
    and is 0 elsewhere; 1/N when one point holds it all. NaN for no points or
    zero weights. A mask that balances a source region by switching the term off
    everywhere else scores near 0, whatever its enrichment."""
    w = _array(weights)
    sq = float(np.sum(w**2))
    if w.size == 0 or sq <= 0:
        return float("nan")
    return float(np.sum(w) ** 2 / (w.size * sq))


def anomaly_region(true: np.ndarray, start: np.ndarray, fraction: float = 0.2) -> np.ndarray:
    """``[nz, nx]`` bool: where the truth differs from the start by more than
    ``fraction`` of the largest difference (the anomaly of an anomaly test)."""
    diff = np.abs(true - start)
    return diff > fraction * diff.max() if diff.max() > 0 else np.zeros_like(diff, dtype=bool)


def velocity_scores(
    inverted: np.ndarray,
    start: np.ndarray,
    true: np.ndarray,
    illuminated: np.ndarray | None = None,
) -> dict[str, float]:
    """Velocity errors of the inverted and starting models ``[nz, nx]`` (m/s):
    relative L2 and RMSE (m/s) over the whole model and, given ``illuminated``
    ``[nz, nx]`` bool, over that part; inside :func:`anomaly_region`, the error
    ratio and reduction."""
    out: dict[str, float] = {}
    parts = {"": np.ones(true.shape, dtype=bool)}
    if illuminated is not None:
        parts["_illuminated"] = illuminated
    for tag, mask in parts.items():
        for name, m in (("", inverted), ("start_", start)):
            diff = (m - true)[mask]
            out[f"{name}velocity_error{tag}"] = relative_l2(m[mask], true[mask])
            out[f"{name}velocity_rmse{tag}"] = float(np.sqrt(np.mean(diff.astype(np.float64) ** 2)))
    region = anomaly_region(true, start)
    if region.any():
        err_in = np.linalg.norm((inverted - true)[region])
        err_start = np.linalg.norm((start - true)[region])
        out["anomaly_error_ratio"] = float(err_in / max(err_start, 1e-30))
        out["anomaly_error_reduction"] = 1.0 - out["anomaly_error_ratio"]
    return out


def heldout_misfit(predicted: np.ndarray, observed: np.ndarray, held_out: np.ndarray) -> float:
    """Relative L2 misfit of ``predicted`` to ``observed`` traces ``[shot, receiver,
    time]`` at the receivers where ``held_out`` ``[shot, receiver]`` holds (NaN
    when there are none)."""
    if not held_out.any():
        return float("nan")
    return relative_l2(predicted[held_out], observed[held_out])
