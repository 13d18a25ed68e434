"""The per-point mask γ over (x, z, t): snapshots, binning and the curriculum measures.

A :class:`GammaSnapshot` is what a run saves every ``snapshot_every`` steps
(``gamma/step_XXXXXX.npz``): the collocation points, their stable ids and shots,
γ_i — the point's weight divided by the mean weight, 1 everywhere for uniform
weighting — and the PDE residual |r_i| at that step, the sources and receivers, and
the source region's radius and active window (docs/method.md, "Measures").
:func:`gamma_snapshot` takes one from a problem; the rest is numpy only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seispinn.diagnostics.measures import effective_share, enrichment, rank_correlation
from seispinn.errors import SeispinnError

__all__ = [
    "GammaSnapshot",
    "gamma_snapshot",
    "GammaGrid",
    "load_gamma",
    "load_gamma_series",
    "source_region",
    "residual_ratio",
    "source_measures",
    "bin_points",
    "curriculum",
]

_KEYS = ("points", "ids", "shot", "sources")


@dataclass(frozen=True, eq=False)
class GammaSnapshot:
    """γ at one training step.

    Attributes:
        step: training step.
        points: ``[N, 3]`` collocation points (x m, z m, t s).
        ids: ``[N]`` stable point ids.
        shot: ``[N]`` shot index of each point.
        gamma: ``[N]`` γ_i, the weight over the mean weight (1 everywhere for uniform).
        residual: ``[N]`` |PDE residual| at the step (NaN when not recorded).
        sources: ``[shot, 2]`` source positions (x, z) in m.
        receivers: ``[M, 2]`` receiver positions (x, z) in m (may be empty).
        source_radius: radius (m) of the source region.
        active_until: end (s) of the wavelet's active window.
    """

    step: int
    points: np.ndarray
    ids: np.ndarray
    shot: np.ndarray
    gamma: np.ndarray
    residual: np.ndarray
    sources: np.ndarray
    receivers: np.ndarray
    source_radius: float
    active_until: float

    def save(self, path: str | Path) -> None:
        np.savez_compressed(
            path,
            step=self.step,
            points=self.points.astype(np.float32),
            ids=self.ids,
            shot=self.shot,
            gamma=self.gamma.astype(np.float32),
            residual=self.residual.astype(np.float32),
            sources=np.asarray(self.sources, np.float64).reshape(-1, 2),
            receivers=np.asarray(self.receivers, np.float64).reshape(-1, 2),
            source_radius=self.source_radius,
            active_until=self.active_until,
        )

    @property
    def t_max(self) -> float:
        return float(self.points[:, 2].max()) if len(self.points) else 0.0


def gamma_snapshot(problem: Any, step: int) -> GammaSnapshot:
    """γ and |r| over all collocation points of ``problem`` (a
    :class:`seispinn.pinn.problem.WaveProblem`) now, as a :class:`GammaSnapshot`."""
    p, shots = problem.points, problem.shots
    return GammaSnapshot(
        step=step,
        points=p.points.detach().cpu().numpy(),
        ids=p.ids.cpu().numpy(),
        shot=p.shot.cpu().numpy(),
        gamma=problem.weighting.gamma().detach().cpu().numpy(),
        residual=problem.all_residuals().abs().cpu().numpy(),
        sources=np.stack([shots.x, shots.z], 1).astype(np.float64),
        receivers=problem.receivers.reshape(-1, 2),
        source_radius=problem.source_radius,
        active_until=shots.source.active_until(),
    )


def _step_from_name(path: Path) -> int:
    m = re.search(r"(\d+)", path.stem)
    return int(m.group(1)) if m else 0


def load_gamma(path: str | Path) -> GammaSnapshot:
    """A snapshot from its ``.npz``; a missing or malformed file is one clear error."""
    path = Path(path)
    try:
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise SeispinnError(f"{path}: not a readable γ snapshot ({exc})") from None
    # Snapshots written before γ had one name on disk call it relative_weight.
    if "gamma" not in data and "relative_weight" in data:
        data["gamma"] = data["relative_weight"]
    missing = [k for k in (*_KEYS, "gamma") if k not in data]
    if missing:
        raise SeispinnError(f"{path}: not a γ snapshot (missing {', '.join(missing)})")
    n = len(data["points"])
    if data["points"].shape != (n, 3) or any(len(data[k]) != n for k in ("ids", "shot")):
        raise SeispinnError(f"{path}: points, ids and shot disagree in length")
    residual = data.get("residual", np.full(n, np.nan, dtype=np.float32))
    return GammaSnapshot(
        step=int(data["step"]) if "step" in data else _step_from_name(path),
        points=data["points"].astype(np.float64),
        ids=data["ids"],
        shot=data["shot"].astype(np.int64),
        gamma=data["gamma"].astype(np.float64),
        residual=residual.astype(np.float64),
        sources=data["sources"].reshape(-1, 2),
        receivers=data.get("receivers", np.zeros((0, 2))).reshape(-1, 2),
        source_radius=float(data.get("source_radius", np.nan)),
        active_until=float(data.get("active_until", np.nan)),
    )


def load_gamma_series(run_dir: str | Path) -> list[GammaSnapshot]:
    """All snapshots of a run folder (``run_dir/gamma/*.npz``), by step."""
    folder = Path(run_dir) / "gamma"
    files = sorted(folder.glob("*.npz"), key=_step_from_name)
    if not files:
        raise SeispinnError(f"{run_dir}: no γ snapshots (expected {folder}/step_XXXXXX.npz)")
    series = [load_gamma(f) for f in files]
    # The final snapshot repeats the last periodic one when steps is a multiple of it.
    return list({s.step: s for s in series}.values())


def source_region(snap: GammaSnapshot) -> np.ndarray:
    """``[N]`` bool: within ``source_radius`` of the point's own shot's source while
    the wavelet is active (docs/method.md, Measures)."""
    src = snap.sources[np.clip(snap.shot, 0, len(snap.sources) - 1)]
    r2 = ((snap.points[:, :2] - src) ** 2).sum(axis=1)
    return (r2 <= snap.source_radius**2) & (snap.points[:, 2] <= snap.active_until)


def residual_ratio(snap: GammaSnapshot) -> float:
    """RMS |r| inside the source region ÷ RMS outside (NaN if either is empty or
    the residual was not recorded)."""
    region = source_region(snap)
    r = snap.residual
    if not region.any() or region.all() or not np.all(np.isfinite(r)):
        return float("nan")
    return float(np.sqrt(np.mean(r[region] ** 2) / max(np.mean(r[~region] ** 2), 1e-300)))


def source_measures(snap: GammaSnapshot) -> dict[str, float]:
    """The source-region measures at one snapshot: RMS |r| in the source region and elsewhere, their
    ratio, the γ enrichment there, the share of points there, the rank
    correlation of γ with |r| over all points (NaN for a uniform mask) and γ's
    effective share of the points (1 for a uniform mask)."""
    region = source_region(snap)
    r = snap.residual
    rms_in = float(np.sqrt(np.mean(r[region] ** 2))) if region.any() else float("nan")
    rms_out = float(np.sqrt(np.mean(r[~region] ** 2))) if not region.all() else float("nan")
    return {
        "source_residual": rms_in,
        "other_residual": rms_out,
        "source_to_other": residual_ratio(snap),
        "enrichment": enrichment(snap.gamma, region),
        "source_region_share": float(region.mean()),
        "rank_correlation": rank_correlation(snap.gamma, r),
        "effective_share": effective_share(snap.gamma),
    }


@dataclass(frozen=True)
class GammaGrid:
    """Point values binned onto a regular (t, z, x) grid.

    Attributes:
        values: ``[nt, nz, nx]`` per-bin mean (or max); NaN where a bin holds no point.
        x_edges, z_edges, t_edges: bin edges (m, m, s).
    """

    values: np.ndarray
    x_edges: np.ndarray
    z_edges: np.ndarray
    t_edges: np.ndarray

    @property
    def t_centres(self) -> np.ndarray:
        return 0.5 * (self.t_edges[1:] + self.t_edges[:-1])

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """For ``imshow`` of an (x, z) slice with depth down."""
        return (self.x_edges[0], self.x_edges[-1], self.z_edges[-1], self.z_edges[0])


def _edges(values: np.ndarray, n: int) -> np.ndarray:
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        hi = lo + 1.0
    return np.linspace(lo, hi, n + 1)


def bin_points(
    points: np.ndarray,
    values: np.ndarray,
    shape: tuple[int, int, int] = (8, 24, 32),
    *,
    reduce: str = "mean",
) -> GammaGrid:
    """Bin point values ``[N]`` at points ``[N, 3]`` (x, z, t) onto ``shape`` =
    (nt, nz, nx) bins spanning the points; ``reduce`` is ``'mean'`` or ``'max'``."""
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    nt, nz, nx = shape
    xe, ze, te = _edges(points[:, 0], nx), _edges(points[:, 1], nz), _edges(points[:, 2], nt)
    idx = [
        np.clip(np.searchsorted(e, points[:, k], side="right") - 1, 0, len(e) - 2)
        for k, e in ((2, te), (1, ze), (0, xe))
    ]
    flat = np.ravel_multi_index(idx, shape)
    count = np.bincount(flat, minlength=nt * nz * nx).astype(np.float64)
    if reduce == "mean":
        total = np.bincount(flat, weights=values, minlength=nt * nz * nx)
        out = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    else:
        out = np.full(nt * nz * nx, -np.inf)
        np.maximum.at(out, flat, values)
        out[count == 0] = np.nan
    return GammaGrid(out.reshape(shape), xe, ze, te)


def curriculum(series: list[GammaSnapshot]) -> dict[str, list[float]]:
    """The automatic curriculum as numbers, one entry per snapshot: ``step``,
    ``enrichment`` (γ in the source region), ``residual_ratio`` (source
    region ÷ elsewhere), ``rank_correlation`` (γ with |r|), ``effective_share`` (the
    share of points γ keeps), ``gamma_max`` and ``gamma_p99`` (of γ/mean γ)."""
    keys = (
        "step",
        "enrichment",
        "residual_ratio",
        "rank_correlation",
        "effective_share",
        "gamma_max",
        "gamma_p99",
    )
    out: dict[str, list[float]] = {k: [] for k in keys}
    for s in series:
        out["step"].append(float(s.step))
        out["enrichment"].append(enrichment(s.gamma, source_region(s)))
        out["residual_ratio"].append(residual_ratio(s))
        out["rank_correlation"].append(rank_correlation(s.gamma, s.residual))
        out["effective_share"].append(effective_share(s.gamma))
        out["gamma_max"].append(float(s.gamma.max()))
        out["gamma_p99"].append(float(np.quantile(s.gamma, 0.99)))
    return out
