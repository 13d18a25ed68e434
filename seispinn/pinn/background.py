"""The background of the scattered-field formulation: u0_tt of every shot in the
starting model c0, on the model grid, interpolated to collocation points.

With u0 the finite-difference wavefield of a shot in c0 (``u0_tt = c0²(∇²u0 − s)``)
and ``u = u0 + δu``, the residual ``r = u_tt − c²(∇²u − s)`` becomes
(docs/method.md, Scattered field)::

    r = δu_tt − c² ∇²δu − (c²/c0² − 1) · u0_tt

with no source term: the network learns δu alone. Only ``u0_tt`` and ``c0`` are
needed at the points; both live here, as grids, computed once per round by
:func:`background_wavefield` with the finite-difference solver, so a training step
only interpolates.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from seispinn.acquisition import Source
from seispinn.errors import ConfigError
from seispinn.gathers import ShotGathers
from seispinn.modelling.simulate import (
    ModellingOptions,
    acquisition_from_gathers,
    predicted_gathers,
    second_time_derivative,
    wavefield_snapshots,
)
from seispinn.models import VelocityModel
from seispinn.pinn.velocity import GridVelocity, grid_cell

__all__ = ["Background", "background_wavefield", "second_time_derivative"]


class Background(nn.Module):
    """u0_tt ``[shot, time, nz, nx]`` on ``model``'s grid at times ``k·dt`` (s), and
    the background velocity c0 of that grid.

    Args:
        model: the background velocity c0 ``[nz, nx]`` (m/s); its grid is u0's grid.
        u_tt: ``[shot, time, nz, nx]`` second time derivative of u0 (units of u / s²).
        dt: the time step of ``u_tt``'s samples (s), the first at t = 0.
    """

    def __init__(self, model: VelocityModel, u_tt: np.ndarray, dt: float) -> None:
        super().__init__()
        if u_tt.ndim != 4 or u_tt.shape[2:] != model.shape:
            raise ConfigError(
                f"background u_tt must be [shot, time, {model.nz}, {model.nx}], got {u_tt.shape}"
            )
        if u_tt.shape[1] < 2 or not dt > 0:
            raise ConfigError("the background needs at least two time samples and dt > 0")
        self.register_buffer("u_tt", torch.from_numpy(np.ascontiguousarray(u_tt, np.float32)))
        self.velocity = GridVelocity(model)
        self.x0, self.z0, self.dx, self.dz, self.dt = model.x0, model.z0, model.dx, model.dz, dt

    def c0(self, points: Tensor) -> Tensor:
        """c0 ``[N]`` (m/s) at physical points ``[N, 3]``."""
        return self.velocity(points[:, 0], points[:, 1])

    def u0_tt(self, points: Tensor, shot: Tensor) -> Tensor:
        """u0_tt ``[N]`` at physical points ``[N, 3]`` of shots ``[N]``: trilinear in
        (t, z, x); outside the grid or the record, the nearest sample."""
        _, nt, nz, nx = self.u_tt.shape
        it, wt = grid_cell(points[:, 2] / self.dt, nt)
        iz, wz = grid_cell((points[:, 1] - self.z0) / self.dz, nz)
        ix, wx = grid_cell((points[:, 0] - self.x0) / self.dx, nx)
        v = self.u_tt
        out = points.new_zeros(points.shape[0])
        for a, wa in ((it, 1 - wt), (it + 1, wt)):
            for b, wb in ((iz, 1 - wz), (iz + 1, wz)):
                for c, wc in ((ix, 1 - wx), (ix + 1, wx)):
                    out = out + wa * wb * wc * v[shot, a, b, c]
        return out


def background_wavefield(
    start: VelocityModel, gathers: ShotGathers, source: Source, t_max: float, stride: int = 1
) -> tuple[Background, np.ndarray]:
    """The background of every shot of ``gathers`` in ``start`` (Deepwave, ``source``):
    u0_tt on the model grid at every ``stride``-th sample up to ``t_max`` (s), and the
    start's traces d0 ``[shot, receiver, time]`` at the observed receivers."""
    acq = acquisition_from_gathers(gathers, source)
    options = ModellingOptions(source_sigma=source.sigma)
    n = min(int(np.ceil(t_max / gathers.dt - 1e-9)) + 1, gathers.nt)
    times = np.arange(n) * gathers.dt
    u_tt = np.stack(
        [
            second_time_derivative(
                wavefield_snapshots(start, acq, times, options, shot=k).values, gathers.dt
            )
            for k in range(gathers.n_shots)
        ]
    )
    d0 = predicted_gathers(start, gathers, source).data
    return Background(start, u_tt[:, ::stride], gathers.dt * stride), d0
