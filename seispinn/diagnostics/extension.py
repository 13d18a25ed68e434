"""Where a reconstructed wavefield's extension lives: the share of its energy at each
depth, before the background's first arrival, and beside the box's edges. Applied to
a PINN's scattered field and residual and to the finite-difference reconstruction's,
they show whether surface data reach depth (docs/inversion.md, "From surface data
alone"). Arrays are ``[time, shot, nz, nx]``; numpy only."""

from __future__ import annotations

import numpy as np

__all__ = ["depth_share", "first_arrival", "early_share", "edge_share"]


def depth_share(field: np.ndarray) -> np.ndarray:
    """``[nz]``: each depth row's share of Σ field² over times, shots and x."""
    energy = np.square(np.asarray(field, np.float64)).sum(axis=(0, 1, 3))
    total = energy.sum()
    return energy / total if total > 0 else energy


def first_arrival(u0: np.ndarray, dt: float, threshold: float = 1e-2) -> np.ndarray:
    """``[shot, nz, nx]``: the first time (s) each cell's |u0| exceeds ``threshold`` ×
    the shot's largest |u0| (the record's end where it never does)."""
    a = np.abs(np.asarray(u0))
    peak = a.max(axis=(0, 2, 3), keepdims=True)
    above = a > threshold * np.maximum(peak, 1e-300)
    first = np.where(above.any(0), above.argmax(0), a.shape[0] - 1)
    return first * dt


def early_share(du: np.ndarray, tau: np.ndarray, dt: float, margin: float = 0.0) -> float:
    """The share of Σ δu² at times before each cell's ``tau`` ``[shot, nz, nx]`` (s)
    minus ``margin`` (s): a scattered field there precedes the wave that makes it."""
    t = np.arange(du.shape[0])[:, None, None, None] * dt
    energy = np.square(np.asarray(du, np.float64))
    total = energy.sum()
    return float(energy[t < (tau[None] - margin)].sum() / total) if total > 0 else 0.0


def edge_share(du: np.ndarray, cells: int = 3) -> float:
    """The share of Σ δu² within ``cells`` of the box's left, right and bottom sides
    (the top holds the receivers)."""
    energy = np.square(np.asarray(du, np.float64)).sum(axis=(0, 1))
    near = np.zeros(energy.shape, dtype=bool)
    near[:, :cells] = near[:, -cells:] = near[-cells:, :] = True
    total = energy.sum()
    return float(energy[near].sum() / total) if total > 0 else 0.0
