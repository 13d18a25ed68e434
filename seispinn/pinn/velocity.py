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

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from seispinn.errors import ConfigError
from seispinn.models import VelocityModel
from seispinn.pinn.networks import MLP
from seispinn.pinn.wave import Scales

__all__ = [
    "GridVelocity",
    "VelocityNetOptions",
    "VelocityNet",
    "bilinear",
    "grid_cell",
    "with_water",
]


class GridVelocity(nn.Module):
    """c(x, z) from a :class:`VelocityModel`, bilinearly interpolated (m/s), fixed."""

    def __init__(self, model: VelocityModel) -> None:
        super().__init__()
        self.register_buffer("values", torch.from_numpy(model.values.astype(np.float32)))
        self.x0, self.z0, self.dx, self.dz = model.x0, model.z0, model.dx, model.dz

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """c ``[N]`` at ``x``, ``z`` ``[N]`` (m); outside the grid, the edge value."""
        return bilinear(self.values, self.x0, self.z0, self.dx, self.dz, x, z)


def bilinear(
    values: Tensor, x0: float, z0: float, dx: float, dz: float, x: Tensor, z: Tensor
) -> Tensor:
    """``values`` ``[nz, nx]`` on the grid (x0 + i·dx, z0 + j·dz) at ``x``, ``z`` ``[N]``
    (m), bilinearly; outside the grid, the edge value. Differentiable in ``values``."""
    nz, nx = values.shape
    ix, wx = grid_cell((x - x0) / dx, nx)
    iz, wz = grid_cell((z - z0) / dz, nz)
    ix1, iz1 = (ix + 1).clamp(max=nx - 1), (iz + 1).clamp(max=nz - 1)
    top = values[iz, ix] * (1 - wx) + values[iz, ix1] * wx
    bottom = values[iz1, ix] * (1 - wx) + values[iz1, ix1] * wx
    return top * (1 - wz) + bottom * wz


def grid_cell(f: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """For fractional grid indices ``f`` ``[N]`` on ``n`` nodes, clamped to the grid:
    the lower node of each one's cell (≤ n − 2) and the upper node's weight."""
    f = f.clamp(0, n - 1)
    i = f.floor().long().clamp(max=max(n - 2, 0))
    return i, f - i


VELOCITY_MODES = ("perturbation", "grid", "bounds")


@dataclass(frozen=True)
class VelocityNetOptions:
    """Velocity network options.

    Attributes:
        mode: ``'perturbation'`` (an MLP around the starting model), ``'grid'`` (the
            same perturbation as values on a coarse grid, bilinear between its
            nodes) or ``'bounds'`` (an MLP between c_min and c_max).
        grid_spacing: the coarse grid's node spacing (m) in ``'grid'`` mode: its
            resolution, and so its smoothness.
        max_perturbation: p, the largest relative change from c₀ (perturbation mode).
        c_min, c_max: bounds in m/s (bounds mode; also a sanity check of c₀).
        width, depth, activation: of the MLP on ``(x̂, ẑ)``.
        fourier_features, fourier_scale: random Fourier features of ``(x̂, ẑ)``,
            which let a small network represent sharp, layered models.
        water_depth: above this depth (m) the velocity is c₀ (perturbation mode):
            a known water layer is not inverted.
        water_velocity: c₀ above ``water_depth`` (m/s); 0 keeps the start's values
            (a smoothed start smears the water into the sediments below it).
        smoothness: weight of a total-variation term on the grid's relative change
            δ = c/c₀ − 1 below the water: the mean |δ| difference between
            neighbouring nodes (grid mode; 0: none, the spacing is the only
            regulariser).
        mean_shift: weight of (mean δ over the nodes below the water)²: no free
            constant shift of the whole model (grid mode; 0: none).
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
    water_depth: float = 0.0
    water_velocity: float = 0.0
    grid_spacing: float = 40.0
    smoothness: float = 0.0
    mean_shift: float = 0.0

    def __post_init__(self) -> None:
        if self.smoothness < 0 or self.mean_shift < 0:
            raise ConfigError("smoothness and mean_shift are weights: they must be >= 0")
        if (self.smoothness or self.mean_shift) and self.mode != "grid":
            raise ConfigError("smoothness and mean_shift act on the grid: they need mode = 'grid'")
        if self.water_depth < 0 or self.water_velocity < 0:
            raise ConfigError("water_depth (m) and water_velocity (m/s) must be >= 0")
        if self.mode not in VELOCITY_MODES:
            raise ConfigError(f"velocity mode must be one of {VELOCITY_MODES}, got {self.mode!r}")
        if not self.grid_spacing > 0:
            raise ConfigError(f"grid_spacing must be positive (m), got {self.grid_spacing}")
        if not 0 < self.max_perturbation < 1:
            raise ConfigError(f"max_perturbation must lie in (0, 1), got {self.max_perturbation}")
        if not 0 < self.c_min < self.c_max:
            raise ConfigError(f"need 0 < c_min < c_max, got {self.c_min}, {self.c_max}")


def with_water(start: VelocityModel, options: VelocityNetOptions) -> VelocityModel:
    """``start`` ``[nz, nx]`` with ``options.water_velocity`` (m/s) in the rows above
    ``options.water_depth`` (m); unchanged without both."""
    if not (options.water_depth > 0 and options.water_velocity > 0):
        return start
    values = start.values.copy()
    values[start.z < options.water_depth] = options.water_velocity
    return dataclasses.replace(start, values=values)


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
        if o.mode != "bounds" and start is None:
            raise ConfigError(f"a {o.mode!r} velocity needs a starting model")
        self.start = GridVelocity(with_water(start, o)) if start is not None else None
        if o.mode == "grid":
            assert start is not None
            # Nodes at most grid_spacing apart, spanning the start's grid exactly.
            x_len, z_len = (start.nx - 1) * start.dx, (start.nz - 1) * start.dz
            nxc = max(2, int(np.ceil(x_len / o.grid_spacing - 1e-9)) + 1)
            nzc = max(2, int(np.ceil(z_len / o.grid_spacing - 1e-9)) + 1)
            self.grid = (start.x0, start.z0, x_len / (nxc - 1), z_len / (nzc - 1))
            self.nodes = nn.Parameter(torch.zeros(nzc, nxc))
            return
        self.net = MLP(
            2, 1, o.width, o.depth, o.activation, o.fourier_features, o.fourier_scale
        ).zero_output()

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """c ``[N]`` (m/s) at ``x``, ``z`` ``[N]`` (m)."""
        o = self.options
        if o.mode == "grid":
            n = bilinear(self.nodes, *self.grid, x, z)
        else:
            s = self.scales
            n = self.net(torch.stack([(x - s.xc) / s.lx, (z - s.zc) / s.lz], dim=1))[:, 0]
        if o.mode == "bounds":
            return o.c_min + (o.c_max - o.c_min) * torch.sigmoid(n)
        assert self.start is not None
        dc = o.max_perturbation * torch.tanh(n)
        if o.water_depth > 0:
            dc = torch.where(z < o.water_depth, torch.zeros_like(dc), dc)
        return self.start(x, z) * (1 + dc)

    def penalties(self) -> dict[str, Tensor]:
        """The constraint terms that are switched on, weighted: ``velocity_tv`` and
        ``velocity_mean`` (see :class:`VelocityNetOptions`); empty otherwise."""
        o = self.options
        if o.mode != "grid" or not (o.smoothness or o.mean_shift):
            return {}
        z0, dz = self.grid[1], self.grid[3]
        node_z = z0 + dz * torch.arange(self.nodes.shape[0], device=self.nodes.device)
        below = self.nodes[node_z >= o.water_depth] if o.water_depth > 0 else self.nodes
        delta = o.max_perturbation * torch.tanh(below)
        out = {}
        if o.smoothness:
            steps = torch.cat([delta.diff(dim=0).reshape(-1), delta.diff(dim=1).reshape(-1)])
            out["velocity_tv"] = o.smoothness * steps.abs().mean()
        if o.mean_shift:
            out["velocity_mean"] = o.mean_shift * delta.mean().square()
        return out

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
