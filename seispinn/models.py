"""Velocity models on a regular grid and generators of synthetic ones.

Convention everywhere: ``values`` is ``[nz, nx]`` in m/s (row = depth),
spacings ``dz``, ``dx`` and the origin ``(z0, x0)`` in metres.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from seispinn.errors import ModelError

__all__ = [
    "VelocityModel",
    "ModelPrior",
    "homogeneous",
    "layered",
    "gaussian_anomaly",
    "elliptic_anomaly",
    "marmousi_style",
]


# eq=False: the generated == would compare arrays elementwise and fail.
@dataclass(frozen=True, eq=False)
class VelocityModel:
    """A velocity model on a regular grid.

    Attributes:
        values: ``[nz, nx]`` float32 velocities in m/s.
        dx: horizontal spacing in metres (> 0).
        dz: vertical spacing in metres (> 0).
        x0: x of column 0 in metres.
        z0: z of row 0 in metres (depth, positive down).
    """

    values: np.ndarray
    dx: float
    dz: float
    x0: float = 0.0
    z0: float = 0.0
    source: str = field(default="<memory>", compare=False)

    def __post_init__(self) -> None:
        v = np.ascontiguousarray(self.values, dtype=np.float32)
        object.__setattr__(self, "values", v)
        where = f"{self.source}: " if self.source else ""
        if v.ndim != 2 or v.shape[0] < 1 or v.shape[1] < 1:
            raise ModelError(f"{where}velocity must be a 2D [nz, nx] array, got shape {v.shape}")
        for name in ("dx", "dz"):
            h = getattr(self, name)
            if not np.isfinite(h) or h <= 0:
                raise ModelError(f"{where}grid spacing {name} must be positive, got {h}")
        if not np.all(np.isfinite(v)):
            n = int(np.count_nonzero(~np.isfinite(v)))
            raise ModelError(f"{where}velocity has {n} NaN or infinite values")
        if np.any(v <= 0):
            raise ModelError(f"{where}velocity must be positive, minimum is {float(v.min())} m/s")

    @property
    def shape(self) -> tuple[int, int]:
        """``(nz, nx)``."""
        return self.values.shape  # type: ignore[return-value]

    @property
    def nz(self) -> int:
        return self.values.shape[0]

    @property
    def nx(self) -> int:
        return self.values.shape[1]

    @property
    def x(self) -> np.ndarray:
        """``[nx]`` x coordinates of the columns in metres."""
        return self.x0 + self.dx * np.arange(self.nx)

    @property
    def z(self) -> np.ndarray:
        """``[nz]`` depths of the rows in metres."""
        return self.z0 + self.dz * np.arange(self.nz)

    @property
    def extent(self) -> tuple[float, float, float, float]:
        """``(x_min, x_max, z_max, z_min)`` in metres, ready for ``imshow(extent=...)``."""
        return (
            self.x0,
            self.x0 + self.dx * (self.nx - 1),
            self.z0 + self.dz * (self.nz - 1),
            self.z0,
        )

    def crop(
        self, x_range: tuple[float, float] | None = None, z_range: tuple[float, float] | None = None
    ) -> VelocityModel:
        """The sub-model whose nodes lie in ``x_range`` × ``z_range`` (metres, inclusive)."""
        ix = _index_range(self.x, x_range, "x")
        iz = _index_range(self.z, z_range, "z")
        return VelocityModel(
            self.values[iz, ix].copy(),
            self.dx,
            self.dz,
            x0=float(self.x[ix][0]),
            z0=float(self.z[iz][0]),
            source=self.source,
        )

    def resample(self, dx: float, dz: float | None = None) -> VelocityModel:
        """The model linearly interpolated onto a grid of spacing ``dx``, ``dz`` (metres)
        covering the same extent (the last node is kept inside the old extent)."""
        dz = dx if dz is None else dz
        if dx <= 0 or dz <= 0:
            raise ModelError(f"resample spacing must be positive, got dx={dx}, dz={dz}")
        width = self.dx * (self.nx - 1)
        depth = self.dz * (self.nz - 1)
        nx = int(np.floor(width / dx + 1e-9)) + 1
        nz = int(np.floor(depth / dz + 1e-9)) + 1
        zi = np.arange(nz) * dz / self.dz
        xi = np.arange(nx) * dx / self.dx
        zz, xx = np.meshgrid(zi, xi, indexing="ij")
        out = ndimage.map_coordinates(self.values, [zz, xx], order=1, mode="nearest")
        return VelocityModel(out, dx, dz, self.x0, self.z0, source=self.source)

    def smoothed(self, sigma_m: float) -> VelocityModel:
        """A Gaussian-smoothed copy (σ in metres), the usual FWI starting model.

        Smoothing is done on slowness, which preserves travel times better than
        smoothing velocity.
        """
        if sigma_m < 0:
            raise ModelError(f"smoothing sigma must be non-negative, got {sigma_m}")
        slow = ndimage.gaussian_filter(
            1.0 / self.values, sigma=(sigma_m / self.dz, sigma_m / self.dx), mode="nearest"
        )
        return VelocityModel(1.0 / slow, self.dx, self.dz, self.x0, self.z0, source=self.source)

    def at(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Bilinear velocity at arbitrary points (metres); outside the grid the edge value."""
        fx = (np.asarray(x, dtype=np.float64) - self.x0) / self.dx
        fz = (np.asarray(z, dtype=np.float64) - self.z0) / self.dz
        return ndimage.map_coordinates(self.values, [fz, fx], order=1, mode="nearest")


@dataclass(frozen=True)
class ModelPrior:
    """What is known of the velocity before any inversion, read by every method alike
    (the PINN and the finite-difference baselines): a water layer of known velocity
    at the top, and the range the velocity lies in.

    Attributes:
        water_depth: cells shallower than this (m) keep the start's values (or
            ``water_velocity``) and are never updated; 0: no known layer.
        water_velocity: velocity (m/s) put in that layer; 0 keeps the start's values
            (a smoothed start smears the water into the sediments below it).
        c_min, c_max: the velocity range (m/s) every method's model stays in; 0 takes
            0.9 × the start's minimum and 1.1 × its maximum below the water. Give
            the expected range where it is known: the default caps an anomaly
            stronger than ±10 % of a homogeneous start.
    """

    water_depth: float = 0.0
    water_velocity: float = 0.0
    c_min: float = 0.0
    c_max: float = 0.0

    def __post_init__(self) -> None:
        for name in ("water_depth", "water_velocity", "c_min", "c_max"):
            if not getattr(self, name) >= 0:
                raise ModelError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.c_max and self.c_min >= self.c_max:
            raise ModelError(f"need c_min < c_max, got {self.c_min}, {self.c_max} m/s")

    def water(self, model: VelocityModel) -> np.ndarray:
        """``[nz, nx]`` bool: the cells of ``model``'s grid in the water layer."""
        return np.broadcast_to((model.z < self.water_depth)[:, None], model.shape)

    def applied(self, model: VelocityModel) -> VelocityModel:
        """``model`` with ``water_velocity`` in the water layer (unchanged without one)."""
        if not (self.water_depth > 0 and self.water_velocity > 0):
            return model
        values = model.values.copy()
        values[self.water(model)] = self.water_velocity
        return dataclasses.replace(model, values=values)

    def bounds(self, start: VelocityModel) -> tuple[float, float]:
        """The velocity range ``(lo, hi)`` (m/s) for an inversion from ``start``; the
        start below the water must lie inside it. The range bounds what an inversion
        changes: a cell whose start lies outside it (the water) is not moved into it."""
        water = self.water(start)
        free = start.values[~water] if (~water).any() else start.values
        lo = self.c_min or 0.9 * float(free.min())
        hi = self.c_max or 1.1 * float(free.max())
        if not (lo <= float(free.min()) and float(free.max()) <= hi):
            raise ModelError(
                f"c_min/c_max: the starting model ({free.min():.0f}-{free.max():.0f} m/s) "
                f"must lie inside the bounds ({lo:.0f}-{hi:.0f} m/s)"
            )
        return lo, hi


def _index_range(axis: np.ndarray, rng: tuple[float, float] | None, name: str) -> slice:
    if rng is None:
        return slice(0, len(axis))
    lo, hi = rng
    tol = 1e-6 * max(1.0, abs(axis[-1]))
    idx = np.nonzero((axis >= lo - tol) & (axis <= hi + tol))[0]
    if idx.size == 0:
        raise ModelError(
            f"crop range {name}={rng} m lies outside the model ({axis[0]}..{axis[-1]} m)"
        )
    return slice(int(idx[0]), int(idx[-1]) + 1)


def _grid(nx: int, nz: int, dx: float, dz: float) -> tuple[np.ndarray, np.ndarray]:
    """``[nz, nx]`` arrays of x and z in metres."""
    return np.meshgrid(np.arange(nz) * dz, np.arange(nx) * dx, indexing="ij")[::-1]


def homogeneous(
    nx: int, nz: int, dx: float, velocity: float, dz: float | None = None
) -> VelocityModel:
    """A constant-velocity model ``[nz, nx]`` (m/s)."""
    dz = dx if dz is None else dz
    return VelocityModel(np.full((nz, nx), velocity, dtype=np.float32), dx, dz)


def layered(
    nx: int,
    nz: int,
    dx: float,
    interfaces: list[float],
    velocities: list[float],
    dz: float | None = None,
) -> VelocityModel:
    """Flat layers: ``velocities[k]`` between ``interfaces[k-1]`` and ``interfaces[k]``
    (depths in metres, increasing); ``len(velocities) == len(interfaces) + 1``."""
    dz = dx if dz is None else dz
    if len(velocities) != len(interfaces) + 1:
        raise ModelError("layered: need one more velocity than interfaces")
    if any(b <= a for a, b in zip(interfaces, interfaces[1:], strict=False)):
        raise ModelError(f"layered: interface depths must increase, got {interfaces}")
    z = np.arange(nz) * dz
    layer = np.searchsorted(np.asarray(interfaces, dtype=float), z, side="right")
    col = np.asarray(velocities, dtype=np.float32)[layer]
    return VelocityModel(np.repeat(col[:, None], nx, axis=1), dx, dz)


def gaussian_anomaly(
    nx: int,
    nz: int,
    dx: float,
    background: float,
    amplitude: float,
    centre: tuple[float, float],
    radius: float,
    dz: float | None = None,
) -> VelocityModel:
    """A Gaussian velocity perturbation ``amplitude`` (m/s) of standard deviation
    ``radius`` (m) centred at ``centre = (x, z)`` (m) in a constant background."""
    dz = dx if dz is None else dz
    x, z = _grid(nx, nz, dx, dz)
    r2 = (x - centre[0]) ** 2 + (z - centre[1]) ** 2
    v = background + amplitude * np.exp(-0.5 * r2 / radius**2)
    return VelocityModel(v, dx, dz)


def elliptic_anomaly(
    nx: int,
    nz: int,
    dx: float,
    background: float,
    inside: float,
    centre: tuple[float, float],
    semi_axes: tuple[float, float],
    dz: float | None = None,
) -> VelocityModel:
    """A constant-velocity ellipse ``inside`` (m/s) with semi-axes ``(ax, az)`` (m)
    centred at ``centre = (x, z)`` (m) in a constant background."""
    dz = dx if dz is None else dz
    x, z = _grid(nx, nz, dx, dz)
    inside_mask = ((x - centre[0]) / semi_axes[0]) ** 2 + ((z - centre[1]) / semi_axes[1]) ** 2 <= 1
    v = np.where(inside_mask, inside, background)
    return VelocityModel(v, dx, dz)


def marmousi_style(
    nx: int,
    nz: int,
    dx: float,
    *,
    seed: int = 0,
    dz: float | None = None,
    water_depth: float | None = None,
    v_water: float = 1500.0,
    v_top: float = 1700.0,
    v_bottom: float = 4200.0,
    n_layers: int = 14,
    n_faults: int = 3,
) -> VelocityModel:
    """A seeded Marmousi-like model ``[nz, nx]`` in m/s (roughly 1500–4700).

    Structure: a water layer on top; curved, dipping sedimentary layers whose
    velocity rises with depth (with a random jitter per layer); ``n_faults``
    normal faults that drop the hanging wall; an anticline in the deeper part
    capped by a high-velocity body (salt-like, ~4500–4700 m/s).
    """
    dz = dx if dz is None else dz
    rng = np.random.default_rng(seed)
    width, depth = dx * (nx - 1), dz * (nz - 1)
    x, z = _grid(nx, nz, dx, dz)
    water = water_depth if water_depth is not None else 0.08 * depth

    # Depth of the sediment column below the sea floor, bent by a regional dip,
    # long-wavelength folding and an anticline; then displaced by the faults.
    dip = np.tan(np.deg2rad(rng.uniform(8, 18))) * rng.choice([-1, 1])
    fold_k = 2 * np.pi / (width * rng.uniform(0.6, 1.2))
    fold_phase = rng.uniform(0, 2 * np.pi)
    ax_c = rng.uniform(0.35, 0.65) * width
    ax_w = rng.uniform(0.12, 0.2) * width
    ax_h = rng.uniform(0.12, 0.2) * depth
    warp = (
        dip * (x - width / 2)
        + 0.08 * depth * np.sin(fold_k * x + fold_phase)
        + ax_h * np.exp(-0.5 * ((x - ax_c) / ax_w) ** 2) * (z / depth)
    )
    zeta = z - water + warp  # "stratigraphic depth": constant along a layer
    for _ in range(n_faults):
        xf = rng.uniform(0.15, 0.85) * width
        slope = np.tan(np.deg2rad(rng.uniform(55, 70))) * rng.choice([-1, 1])
        throw = rng.uniform(0.03, 0.08) * depth
        hanging = (x - xf) * slope > (z - water)  # one side of the fault plane
        zeta = zeta - throw * hanging * (z > water)

    # Spread the layer boundaries over the stratigraphic depths actually present,
    # so every layer shows up whatever the folding did.
    sediments = zeta[z >= water]
    lo, hi = float(sediments.min()), float(sediments.max())
    edges = lo + np.sort(rng.uniform(0.03, 0.97, n_layers - 1)) * (hi - lo)
    layer_id = np.searchsorted(edges, zeta)
    ramp = np.linspace(v_top, v_bottom, n_layers)
    jitter = rng.uniform(-0.1, 0.1, n_layers) * ramp
    v = (ramp + jitter)[np.clip(layer_id, 0, n_layers - 1)]
    # Velocity also increases smoothly within a layer (compaction).
    v = v + 0.1 * np.clip(zeta - lo, 0, None)

    # High-velocity body on the anticline's crest.
    bz = water + 0.55 * depth - ax_h * 0.5
    body = ((x - ax_c) / (0.6 * ax_w)) ** 2 + ((z - bz) / (0.12 * depth)) ** 2 <= 1
    v = np.where(body, rng.uniform(4500, 4700), v)

    v = np.where(z < water, v_water, np.clip(v, v_top * 0.95, 4700.0))
    return VelocityModel(v.astype(np.float32), dx, dz)
