"""The 2D acoustic wave-equation PINN: scaling, wavefield network, source, residual.

Physics (METHOD.md §3, Deepwave's sign convention)::

    ∇²u − u_tt / c² = s      ⇔      r = u_tt − c² (∇²u − s) = 0
    s(x, z, t) = f(t) · g_σ(x − x_s, z − z_s)

Points are ``[N, 3]`` tensors of ``(x, z, t)`` in metres and seconds. The
network sees scaled coordinates ``x̂ = (x − x_c)/L_x``, ``ẑ = (z − z_c)/L_z``,
``t̂ = t / T`` and predicts ``û = u / U``; the residual is reported in units of
``U / T²`` so that it is O(1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from seispinn.models import VelocityModel
from seispinn.pinn.derivatives import mlp_jet
from seispinn.pinn.networks import MLP

__all__ = [
    "Scales",
    "WaveSource",
    "WavefieldNet",
    "GridVelocity",
    "wave_residual",
    "WaveDerivatives",
]


@dataclass(frozen=True)
class Scales:
    """Affine maps between physical and network units.

    Attributes:
        xc, zc: centre of the collocation box (m).
        lx, lz: half-widths of the box (m), mapped to 1.
        t_max: time window T (s), mapped to 1.
        u_scale: wavefield amplitude U (units of u).
    """

    xc: float
    zc: float
    lx: float
    lz: float
    t_max: float
    u_scale: float

    def to_unit(self, points: Tensor) -> Tensor:
        """``[N, 3]`` physical ``(x, z, t)`` -> ``[N, 3]`` scaled ``(x̂, ẑ, t̂)``."""
        centre = points.new_tensor([self.xc, self.zc, 0.0])
        size = points.new_tensor([self.lx, self.lz, self.t_max])
        return (points - centre) / size


@dataclass(frozen=True)
class WaveSource:
    """A Ricker source spread as a unit-mass Gaussian (same as the Deepwave modelling).

    Attributes:
        x, z: position (m). sigma: Gaussian width (m). freq: peak frequency (Hz).
        delay: time of the wavelet's peak (s).
    """

    x: float
    z: float
    sigma: float
    freq: float
    delay: float

    def wavelet(self, t: Tensor) -> Tensor:
        """f(t) ``[N]`` for times ``t`` ``[N]`` (s)."""
        a = (math.pi * self.freq * (t - self.delay)) ** 2
        return (1 - 2 * a) * torch.exp(-a)

    def density(self, points: Tensor) -> Tensor:
        """s(x, z, t) ``[N]`` at physical points ``[N, 3]`` (1/m² per unit of f)."""
        r2 = (points[:, 0] - self.x) ** 2 + (points[:, 1] - self.z) ** 2
        g = torch.exp(-0.5 * r2 / self.sigma**2) / (2 * math.pi * self.sigma**2)
        return self.wavelet(points[:, 2]) * g

    def active_until(self) -> float:
        """End (s) of the wavelet's active window: |f| < 1e-3 after ``delay + 1.2/freq``."""
        return self.delay + 1.2 / self.freq


@dataclass
class WaveDerivatives:
    """Physical-unit u and its derivatives at a batch of points (each ``[N]``)."""

    u: Tensor
    u_tt: Tensor
    laplacian: Tensor


class WavefieldNet(nn.Module):
    """u(x, z, t) = U · τ(t̂) · N(x̂, ẑ, t̂), or U · N with a soft initial condition.

    With ``exact_ic`` the factor ``τ(t̂) = t̂²`` makes ``u = u_t = 0`` at ``t = 0``
    by construction; that closes the residual's null space ``h(x,z)·(a + b t)``
    (``∇²h = 0``) that a soft initial condition lets in (notes: 0.23 vs 0.71 error).

    Args:
        scales: physical <-> network units.
        width, depth, activation, fourier_features, fourier_scale: see :class:`MLP`.
        exact_ic: impose the initial condition through the network's form.
    """

    def __init__(
        self,
        scales: Scales,
        *,
        width: int = 64,
        depth: int = 4,
        activation: str = "tanh",
        fourier_features: int | None = None,
        fourier_scale: float = 1.0,
        exact_ic: bool = True,
    ) -> None:
        super().__init__()
        self.scales = scales
        self.exact_ic = exact_ic
        self.net = MLP(3, 1, width, depth, activation, fourier_features, fourier_scale)

    def forward(self, points: Tensor) -> Tensor:
        """u ``[N]`` at physical points ``[N, 3]``."""
        x = self.scales.to_unit(points)
        n = self.net(x)[:, 0]
        if self.exact_ic:
            n = x[:, 2] ** 2 * n
        return self.scales.u_scale * n

    def derivatives(self, points: Tensor) -> WaveDerivatives:
        """u, u_tt and ∇²u at physical points ``[N, 3]``, in physical units."""
        s = self.scales
        x = s.to_unit(points)
        jet = mlp_jet(self.net, x)
        n = jet.value[:, 0]
        n_x, n_z, n_t = jet.first[:, :, 0].unbind(1)
        n_xx, n_zz, n_tt = jet.second[:, :, 0].unbind(1)
        if self.exact_ic:
            t = x[:, 2]
            # (t² N)'' = 2N + 4t N' + t² N''; spatial derivatives just carry t².
            u_tt_hat = 2 * n + 4 * t * n_t + t * t * n_tt
            lap_hat = t * t * (n_xx / s.lx**2 + n_zz / s.lz**2)
            u_hat = t * t * n
        else:
            u_tt_hat, lap_hat, u_hat = n_tt, n_xx / s.lx**2 + n_zz / s.lz**2, n
        return WaveDerivatives(
            u=s.u_scale * u_hat,
            u_tt=s.u_scale * u_tt_hat / s.t_max**2,
            laplacian=s.u_scale * lap_hat,
        )

    def value_and_time_derivative(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """u and u_t ``[N]`` (physical units) from one pass, for a soft initial condition."""
        x = self.scales.to_unit(points)
        jet = mlp_jet(self.net, x)
        n, n_t = jet.value[:, 0], jet.first[:, 2, 0]
        if self.exact_ic:
            t = x[:, 2]
            n, n_t = t * t * n, 2 * t * n + t * t * n_t
        return self.scales.u_scale * n, self.scales.u_scale * n_t / self.scales.t_max


class GridVelocity(nn.Module):
    """c(x, z) from a :class:`VelocityModel`, bilinearly interpolated (m/s), fixed."""

    def __init__(self, model: VelocityModel) -> None:
        super().__init__()
        self.register_buffer("values", torch.from_numpy(model.values.astype(np.float32)))
        self.x0, self.z0, self.dx, self.dz = model.x0, model.z0, model.dx, model.dz

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """c ``[N]`` at ``x``, ``z`` ``[N]`` (m); outside the grid, the edge value."""
        nz, nx = self.values.shape
        fx = ((x - self.x0) / self.dx).clamp(0, nx - 1)
        fz = ((z - self.z0) / self.dz).clamp(0, nz - 1)
        ix = fx.floor().long().clamp(max=nx - 2) if nx > 1 else fx.long()
        iz = fz.floor().long().clamp(max=nz - 2) if nz > 1 else fz.long()
        wx, wz = fx - ix, fz - iz
        v = self.values
        ix1, iz1 = (ix + 1).clamp(max=nx - 1), (iz + 1).clamp(max=nz - 1)
        top = v[iz, ix] * (1 - wx) + v[iz, ix1] * wx
        bottom = v[iz1, ix] * (1 - wx) + v[iz1, ix1] * wx
        return top * (1 - wz) + bottom * wz


def wave_residual(u_tt: Tensor, laplacian: Tensor, c: Tensor, s: Tensor) -> Tensor:
    """r = u_tt − c² (∇²u − s): zero where u solves ∇²u − u_tt/c² = s. All ``[N]``."""
    return u_tt - c**2 * (laplacian - s)
