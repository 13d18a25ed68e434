"""Velocity fields c(x, z) of the wave PINN: a fixed model on its grid
(:class:`GridVelocity`) and velocity networks for inversion, bounded for any weights.

All are callable as ``velocity(x, z) -> c``, so the wave residual does not care
which one it gets. The networks come in two forms:

- around a starting model: ``c = c₀(x, z) · (1 + p · tanh N(x̂, ẑ))``, inside
  ``[(1 − p) c₀, (1 + p) c₀]``;
- between bounds: ``c = c_min + (c_max − c_min) · sigmoid N(x̂, ẑ)``.

The network's last layer starts at zero, so training starts exactly at c₀
(or at the middle of the bounds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from seispinn.errors import ConfigError
from seispinn.models import VelocityModel
from seispinn.pinn.networks import MLP
from seispinn.pinn.wave import Scales

__all__ = ["GridVelocity", "VelocityNetOptions", "VelocityNet"]


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


@dataclass(frozen=True)
class VelocityNetOptions:
    """Velocity network options.

    Attributes:
        mode: ``'perturbation'`` (around the starting model) or ``'bounds'``.
        max_perturbation: p, the largest relative change from c₀ (perturbation mode).
        c_min, c_max: bounds in m/s (bounds mode; also a sanity check of c₀).
        width, depth, activation: of the MLP on ``(x̂, ẑ)``.
        fourier_features, fourier_scale: random Fourier features of ``(x̂, ẑ)``,
            which let a small network represent sharp, layered models.
    """

    mode: str = "perturbation"
    max_perturbation: float = 0.3
    c_min: float = 1000.0
    c_max: float = 6000.0
    width: int = 64
    depth: int = 3
    activation: str = "tanh"
    fourier_features: int | None = None
    fourier_scale: float = 2.0

    def __post_init__(self) -> None:
        if self.mode not in ("perturbation", "bounds"):
            raise ConfigError(
                f"velocity mode must be 'perturbation' or 'bounds', got {self.mode!r}"
            )
        if not 0 < self.max_perturbation < 1:
            raise ConfigError(f"max_perturbation must lie in (0, 1), got {self.max_perturbation}")
        if not 0 < self.c_min < self.c_max:
            raise ConfigError(f"need 0 < c_min < c_max, got {self.c_min}, {self.c_max}")


class VelocityNet(nn.Module):
    """c(x, z) in m/s, bounded for any weights (see the module docstring).

    Args:
        scales: the wavefield's scales (only the spatial ones are used).
        start: the starting model c₀ (required in perturbation mode).
        options: see :class:`VelocityNetOptions`.
    """

    def __init__(
        self,
        scales: Scales,
        start: VelocityModel | None = None,
        options: VelocityNetOptions | None = None,
    ) -> None:
        super().__init__()
        self.options = o = options or VelocityNetOptions()
        self.scales = scales
        if o.mode == "perturbation" and start is None:
            raise ConfigError("a perturbation velocity network needs a starting model")
        self.start = GridVelocity(start) if start is not None else None
        self.net = MLP(2, 1, o.width, o.depth, o.activation, o.fourier_features, o.fourier_scale)
        last = [m for m in self.net.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """c ``[N]`` (m/s) at ``x``, ``z`` ``[N]`` (m)."""
        s = self.scales
        xy = torch.stack([(x - s.xc) / s.lx, (z - s.zc) / s.lz], dim=1)
        n = self.net(xy)[:, 0]
        o = self.options
        if o.mode == "bounds":
            return o.c_min + (o.c_max - o.c_min) * torch.sigmoid(n)
        assert self.start is not None
        return self.start(x, z) * (1 + o.max_perturbation * torch.tanh(n))

    @torch.no_grad()
    def to_model(self, like: VelocityModel) -> VelocityModel:
        """The network on ``like``'s grid, as a :class:`VelocityModel` ``[nz, nx]``."""
        zz, xx = np.meshgrid(like.z, like.x, indexing="ij")
        dev = next(self.parameters()).device
        x = torch.tensor(xx.ravel(), dtype=torch.float32, device=dev)
        z = torch.tensor(zz.ravel(), dtype=torch.float32, device=dev)
        c = torch.cat([self(a, b) for a, b in zip(x.split(65536), z.split(65536), strict=True)])
        values = c.cpu().numpy().reshape(like.shape).astype(np.float32)
        return VelocityModel(values, like.dx, like.dz, x0=like.x0, z0=like.z0)
