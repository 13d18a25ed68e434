"""Seeding the scattered field with the finite-difference reconstruction: the network
first fits δu of :mod:`seispinn.modelling.wri` (the data-space extended source's
wavefield in the round's velocity), then is released to the data and the wave
equation. From surface data, gradient descent alone finds a δu that fits the
receivers with a residual near them; the reconstruction's δu reaches down along the
wave paths instead (docs/inversion.md, "From surface data alone")."""

from __future__ import annotations

import numpy as np
import torch

from seispinn.inputs import InversionInputs
from seispinn.modelling.wri import ExtendedModelling, WRIOptions, largest_eigenvalue
from seispinn.models import VelocityModel
from seispinn.pinn.problem import TraceSamples

__all__ = ["reconstructed_samples"]


def reconstructed_samples(
    start: VelocityModel,
    inputs: InversionInputs,
    use: np.ndarray,
    t_max: float,
    options: WRIOptions,
    stride: int = 2,
) -> TraceSamples:
    """δu of the full-band reconstruction in ``start`` ``[nz, nx]`` (m/s; its water
    already set), at every grid cell and every ``stride``-th sample up to ``t_max``
    (s), as points ``[M, 3]`` (x, z, t), shots ``[M]`` and values ``[M]``."""
    g = inputs.gathers
    ops = ExtendedModelling(start, start.values.astype(np.float64), g, inputs.source, use, 0.0)
    d0, _ = ops.background()
    observed = torch.from_numpy(g.data.astype(np.float64) * use[..., None])
    residual = observed - d0
    penalty = options.penalty * largest_eigenvalue(ops.gram, residual)
    e = ops.reconstruct(residual, penalty, options.cg_iterations)
    _, du = ops.extended(e)  # [time, shot, nz, nx]
    steps = np.arange(0, min(du.shape[0], int(np.floor(t_max / g.dt + 1e-9)) + 1), stride)
    zz, xx = np.meshgrid(start.z, start.x, indexing="ij")
    points, shots, values = [], [], []
    for s in range(g.n_shots):
        for k in steps:
            points.append(np.stack([xx.ravel(), zz.ravel(), np.full(xx.size, k * g.dt)], 1))
            shots.append(np.full(xx.size, s))
            values.append(du[k, s].reshape(-1).numpy())
    return TraceSamples(
        torch.tensor(np.concatenate(points), dtype=torch.float32),
        torch.tensor(np.concatenate(shots), dtype=torch.long),
        torch.tensor(np.concatenate(values), dtype=torch.float32),
    )
