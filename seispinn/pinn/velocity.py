"""Velocity fields c(x, z) of the wave PINN: a fixed model on its grid
(:class:`GridVelocity`) and velocity networks for inversion, bounded for any weights.

All are callable as ``velocity(x, z) -> c``, so the wave residual does not care
which one it gets. The networks come in two forms:

- around a starting model: ``c = c₀(x, z) · (1 + p · tanh N(x̂, ẑ))``, inside
  ``[(1 − p) c₀, (1 + p) c₀]``;
- between bounds: ``c = c_min + (c_max − c_min) · sigmoid N(x̂, ẑ)``.

Around a starting model the velocity is also clipped to the inversion's velocity
range (:class:`seispinn.models.ModelPrior`), the same range the finite-difference
baselines keep, and held at c₀ in a known water layer. The network's last layer
starts at zero, so training starts exactly at c₀ (or at the middle of the bounds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
#: How the velocity moves: with the wavefield, by Adam on the same loss (``joint``), or
#: once per round in closed form from the round's reconstructed wavefield.
VELOCITY_UPDATES = ("joint", "closed_form")


@dataclass(frozen=True)
class ClosedFormOptions:
    """The closed-form velocity update between rounds (``[velocity.closed_form]``;
    :mod:`seispinn.pinn.closed_form`).

    Attributes:
        first_change: the largest relative velocity change of the first trial step;
            later rounds start at twice the last accepted change (in velocity).
        max_change: the largest relative velocity change of one update, per cell.
        smoothing: Gaussian σ (m) of the update's numerator and denominator. Wider
            than FD-WRI's 40 m: the network's PDE residual carries the noise of its
            fit everywhere, which a wider window averages out (docs/surface.md).
        stabilise: the denominator's damping, × its 95th percentile.
        stride: the update sums over every k-th sample of the background.
    """

    first_change: float = 0.02
    max_change: float = 0.1
    smoothing: float = 80.0
    stabilise: float = 0.05
    stride: int = 4

    def __post_init__(self) -> None:
        if not (self.first_change > 0 and self.max_change > 0 and self.stride >= 1):
            raise ConfigError("first_change and max_change must be > 0 and stride >= 1")
        if self.smoothing < 0 or self.stabilise < 0:
            raise ConfigError("smoothing and stabilise must be >= 0")


@dataclass(frozen=True)
class VelocityNetOptions:
    """Velocity network options.

    Attributes:
        mode: ``'grid'`` (a perturbation of the starting model as values on a
            coarse grid, bilinear between its nodes), ``'perturbation'`` (the same
            as an MLP) or ``'bounds'`` (an MLP between the velocity range's ends).
        grid_spacing: the coarse grid's node spacing (m) in ``'grid'`` mode: its
            resolution, and so its smoothness.
        max_perturbation: p, the largest relative change from c₀ (perturbation mode).
        width, depth, activation: of the MLP on ``(x̂, ẑ)``.
        fourier_features, fourier_scale: random Fourier features of ``(x̂, ẑ)``,
            which let a small network represent sharp, layered models.
        smoothness: weight of a total-variation term on the grid's relative change
            δ = c/c₀ − 1 below the water: the mean |δ| difference between
            neighbouring nodes (grid mode; 0: none, the spacing is the only
            regulariser).
        mean_shift: weight of (mean δ over the nodes below the water)²: no free
            constant shift of the whole model (grid mode; 0: none).
        update: ``'joint'`` (Adam moves the velocity with the wavefield, on the same
            loss) or ``'closed_form'`` (the velocity is fixed in a round, whose network
            reconstructs the wavefield; between rounds it moves in closed form,
            ``closed_form``'s options).
    """

    mode: str = "grid"
    max_perturbation: float = 0.3
    width: int = 24
    depth: int = 2
    activation: str = "tanh"
    fourier_features: int | None = None
    fourier_scale: float = 2.0
    grid_spacing: float = 40.0
    smoothness: float = 0.0
    mean_shift: float = 0.0
    update: str = field(
        default="joint", metadata={"choices": VELOCITY_UPDATES, "what": "velocity update"}
    )
    closed_form: ClosedFormOptions = field(default_factory=ClosedFormOptions)

    def __post_init__(self) -> None:
        if self.smoothness < 0 or self.mean_shift < 0:
            raise ConfigError("smoothness and mean_shift are weights: they must be >= 0")
        if (self.smoothness or self.mean_shift) and self.mode != "grid":
            raise ConfigError("smoothness and mean_shift act on the grid: they need mode = 'grid'")
        if self.mode not in VELOCITY_MODES:
            raise ConfigError(f"velocity mode must be one of {VELOCITY_MODES}, got {self.mode!r}")
        if not self.grid_spacing > 0:
            raise ConfigError(f"grid_spacing must be positive (m), got {self.grid_spacing}")
        if not 0 < self.max_perturbation < 1:
            raise ConfigError(f"max_perturbation must lie in (0, 1), got {self.max_perturbation}")


class VelocityNet(nn.Module):
    """c(x, z) in m/s, bounded for any weights (see the module docstring).

    Args:
        scales: the wavefield's scales (only the spatial ones are used).
        start: the starting model c₀ ``[nz, nx]`` (m/s), its water layer's velocity
            already in place (required unless ``mode`` is ``'bounds'``).
        options: see :class:`VelocityNetOptions`.
        bounds: the velocity range ``(lo, hi)`` (m/s) the model stays in (required
            in ``'bounds'`` mode; None: no clipping around a start).
        water_depth: above this depth (m) the velocity is c₀, never updated.
    """

    def __init__(
        self,
        scales: Scales,
        start: VelocityModel | None = None,
        options: VelocityNetOptions | None = None,
        *,
        bounds: tuple[float, float] | None = None,
        water_depth: float = 0.0,
    ) -> None:
        super().__init__()
        self.options = o = options or VelocityNetOptions()
        self.scales = scales
        self.bounds, self.water_depth = bounds, float(water_depth)
        if o.mode != "bounds" and start is None:
            raise ConfigError(f"a {o.mode!r} velocity needs a starting model")
        if o.mode == "bounds" and bounds is None:
            raise ConfigError("a 'bounds' velocity needs the velocity range (c_min, c_max)")
        if bounds is not None and not 0 < bounds[0] < bounds[1]:
            raise ConfigError(f"need 0 < c_min < c_max, got {bounds[0]}, {bounds[1]}")
        self.start = GridVelocity(start) if start is not None else None
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
            assert self.bounds is not None
            lo, hi = self.bounds
            return lo + (hi - lo) * torch.sigmoid(n)
        assert self.start is not None
        dc = o.max_perturbation * torch.tanh(n)
        if self.water_depth > 0:
            dc = torch.where(z < self.water_depth, torch.zeros_like(dc), dc)
        c0 = self.start(x, z)
        c = c0 * (1 + dc)
        if self.bounds is None:
            return c
        # The range bounds the update: a start outside it (the water, a cell beside
        # it) stays where it is or moves towards the range.
        lo, hi = self.bounds
        return torch.minimum(torch.maximum(c, c0.clamp(max=lo)), c0.clamp(min=hi))

    def penalties(self) -> dict[str, Tensor]:
        """The constraint terms that are switched on, weighted: ``velocity_tv`` and
        ``velocity_mean`` (see :class:`VelocityNetOptions`); empty otherwise."""
        o = self.options
        if o.mode != "grid" or not (o.smoothness or o.mean_shift):
            return {}
        z0, dz = self.grid[1], self.grid[3]
        node_z = z0 + dz * torch.arange(self.nodes.shape[0], device=self.nodes.device)
        below = self.nodes[node_z >= self.water_depth] if self.water_depth > 0 else self.nodes
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
