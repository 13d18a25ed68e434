"""Collocation sets over (x, z, t) with stable point ids.

A set is drawn once; every per-point quantity (SA's λ, grad-norm weights) is
indexed by the ids drawn here, so mini-batches, shuffles and shards keep each
weight attached to its point. A resampled pool (:func:`resampled`) redraws a share
of the points in place: id ``i`` keeps its shot and kind (near-source or not),
gets fresh coordinates, and the weighting restarts it (``PointWeighting.admit``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from seispinn.errors import ConfigError

__all__ = [
    "Box",
    "CollocationSet",
    "sample_collocation",
    "sample_shot_collocation",
    "batch_ids",
    "redrawn_ids",
    "resampled",
    "sample_wavefronts",
]


@dataclass(frozen=True)
class Box:
    """A space-time box: x and z ranges (m), times ``[0, t_max]`` (s)."""

    x_min: float
    x_max: float
    z_min: float
    z_max: float
    t_max: float

    def __post_init__(self) -> None:
        if not (self.x_max > self.x_min and self.z_max > self.z_min and self.t_max > 0):
            raise ConfigError(f"empty space-time box {self}")

    def grown(self, margin: float) -> Box:
        """The box enlarged by ``margin`` metres on every spatial side."""
        return Box(
            self.x_min - margin,
            self.x_max + margin,
            self.z_min - margin,
            self.z_max + margin,
            self.t_max,
        )

    def contains(self, points: Tensor) -> Tensor:
        """``[N]`` bool: points ``[N, 3]`` inside the spatial box."""
        x, z = points[:, 0], points[:, 1]
        return (x >= self.x_min) & (x <= self.x_max) & (z >= self.z_min) & (z <= self.z_max)


@dataclass(frozen=True)
class CollocationSet:
    """Points ``[N, 3]`` of ``(x, z, t)`` (m, s) with ids ``[N]`` (``ids[i] == i``).

    Attributes:
        points: the coordinates.
        ids: stable integer ids, a LongTensor.
        near_source: ``[N]`` bool, True for the points drawn around a source.
        shot: ``[N]`` long, the shot each point belongs to (all 0 for one source).
    """

    points: Tensor
    ids: Tensor
    near_source: Tensor
    shot: Tensor | None = None

    def __post_init__(self) -> None:
        if self.shot is None:
            object.__setattr__(
                self, "shot", torch.zeros(len(self.ids), dtype=torch.long, device=self.ids.device)
            )

    def __len__(self) -> int:
        return self.points.shape[0]

    def to(self, device: torch.device | str) -> CollocationSet:
        assert self.shot is not None
        return CollocationSet(
            self.points.to(device),
            self.ids.to(device),
            self.near_source.to(device),
            self.shot.to(device),
        )


def sample_collocation(
    box: Box,
    n_points: int,
    *,
    sources: list[tuple[float, float]],
    near_source_fraction: float = 0.2,
    near_source_radius: float = 50.0,
    seed: int = 0,
) -> CollocationSet:
    """Uniform points in ``box`` plus a share drawn around the sources.

    ``near_source_fraction`` of the points are Gaussian-distributed (standard
    deviation ``near_source_radius`` m) around the sources, clipped to the box,
    with uniform times: the trials found ≥ 15 % there mattered.
    """
    if n_points < 1 or not 0 <= near_source_fraction < 1:
        raise ConfigError(
            f"need n_points >= 1 and 0 <= near_source_fraction < 1, got "
            f"{n_points}, {near_source_fraction}"
        )
    gen = torch.Generator().manual_seed(seed)
    n_near = int(round(near_source_fraction * n_points)) if sources else 0
    n_uniform = n_points - n_near
    lo = torch.tensor([box.x_min, box.z_min, 0.0], dtype=torch.float64)
    hi = torch.tensor([box.x_max, box.z_max, box.t_max], dtype=torch.float64)
    uniform = lo + (hi - lo) * torch.rand(n_uniform, 3, generator=gen, dtype=torch.float64)
    near = torch.empty(n_near, 3, dtype=torch.float64)
    if n_near:
        which = torch.randint(len(sources), (n_near,), generator=gen)
        centres = torch.tensor(sources, dtype=torch.float64)[which]
        offsets = torch.randn(n_near, 2, generator=gen, dtype=torch.float64)
        near[:, :2] = centres + near_source_radius * offsets
        near[:, 2] = box.t_max * torch.rand(n_near, generator=gen, dtype=torch.float64)
        near = torch.minimum(torch.maximum(near, lo), hi)
    points = torch.cat([uniform, near]).float()
    flags = torch.cat(
        [torch.zeros(n_uniform, dtype=torch.bool), torch.ones(n_near, dtype=torch.bool)]
    )
    return CollocationSet(points, torch.arange(n_points), flags)


def sample_shot_collocation(
    box: Box,
    n_points: int,
    *,
    sources: list[tuple[float, float]],
    near_source_fraction: float = 0.2,
    near_source_radius: float = 50.0,
    seed: int = 0,
) -> CollocationSet:
    """:func:`sample_collocation` for each shot in turn (an equal share of the
    ``n_points`` each, near-source points around that shot's source), with
    ``shot`` set and ids ``0..N−1`` over the whole set."""
    if not sources:
        raise ConfigError("sample_shot_collocation needs at least one source")
    shares = [n_points // len(sources) + (k < n_points % len(sources)) for k in range(len(sources))]
    parts = [
        sample_collocation(
            box,
            n,
            sources=[src],
            near_source_fraction=near_source_fraction,
            near_source_radius=near_source_radius,
            seed=seed * 7919 + k,
        )
        for k, (src, n) in enumerate(zip(sources, shares, strict=True))
    ]
    shot = torch.cat([torch.full((len(p),), k, dtype=torch.long) for k, p in enumerate(parts)])
    return CollocationSet(
        torch.cat([p.points for p in parts]),
        torch.arange(n_points),
        torch.cat([p.near_source for p in parts]),
        shot,
    )


def batch_ids(step: int, n_points: int, batch_size: int, seed: int = 0) -> Tensor:
    """Ids ``[b]`` of the mini-batch used at optimiser step ``step``.

    Each epoch is a fresh permutation drawn from ``(seed, epoch)``, so the batch
    of any step is a pure function of its arguments: a resumed run sees exactly
    the batches an uninterrupted one would.
    """
    batch_size = min(batch_size, n_points)
    per_epoch = -(-n_points // batch_size)
    epoch, k = divmod(step, per_epoch)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    order = torch.randperm(n_points, generator=gen)
    return order[k * batch_size : (k + 1) * batch_size]


def redrawn_ids(n_points: int, fraction: float, event: int, seed: int = 0) -> Tensor:
    """Ids ``[m]`` (sorted, m = round(fraction·n_points), at least 1) redrawn at
    resampling ``event`` (1, 2, ...): a pure function of its arguments, so a resumed
    run rebuilds the pool it left."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 7_919 * event + 3)
    m = min(n_points, max(1, round(fraction * n_points)))
    return torch.randperm(n_points, generator=gen)[:m].sort().values


def resampled(
    pool: CollocationSet,
    draw: Callable[[int], CollocationSet],
    event: int,
    fraction: float,
    seed: int,
) -> tuple[CollocationSet, Tensor]:
    """``pool`` after resampling ``event``: the points of :func:`redrawn_ids` replaced
    by those of a fresh draw ``draw(event_seed)`` with the same ids (the same slot
    layout: shot and near-source flag per id), and those ids ``[m]``."""
    ids = redrawn_ids(len(pool), fraction, event, seed)
    fresh = draw(seed * 1_000_003 + event)
    if len(fresh) != len(pool) or not torch.equal(fresh.shot.cpu(), pool.shot.cpu()):
        raise ConfigError("a resampling draw must lay its points out like the pool")
    points = pool.points.clone()
    points[ids.to(points.device)] = fresh.points[ids].to(points.device)
    return CollocationSet(points, pool.ids, pool.near_source, pool.shot), ids


def sample_wavefronts(
    energy: Tensor,
    grid: tuple[float, float, float, float, float],
    box: Box,
    n: int,
    gen: torch.Generator,
) -> Tensor:
    """``n`` points ``[n, 3]`` (x, z, t) drawn where a wavefield is: each time sample
    of ``energy`` ``[time, nz, nx]`` (e.g. |u0_tt| of one shot) gets an equal share,
    within it a cell is drawn with probability ∝ its value (uniform where a time
    sample is all zero), then a uniform position in that cell, clipped to ``box``.

    ``grid`` is ``(x0, z0, dx, dz, dt)`` (m, s) of ``energy``'s samples."""
    x0, z0, dx, dz, dt = grid
    nt, nz, nx = energy.shape
    e = energy.double().abs().reshape(nt, -1)
    total = e.sum(1, keepdim=True)
    e = torch.where(total > 0, e / total.clamp_min(1e-300), torch.full_like(e, 1.0 / e.shape[1]))
    # One cumulative distribution over every (t, cell): searchsorted has no size limit.
    cdf = (e.reshape(-1) / nt).cumsum(0)
    u = torch.rand(n, generator=gen, dtype=torch.float64) * float(cdf[-1])
    flat = torch.searchsorted(cdf, u).clamp(max=cdf.numel() - 1)
    it, rest = flat // (nz * nx), flat % (nz * nx)
    iz, ix = rest // nx, rest % nx
    jitter = torch.rand(n, 3, generator=gen, dtype=torch.float64) - 0.5
    pts = torch.stack(
        [x0 + (ix + jitter[:, 0]) * dx, z0 + (iz + jitter[:, 1]) * dz, (it + jitter[:, 2]) * dt], 1
    )
    lo = torch.tensor([box.x_min, box.z_min, 0.0], dtype=torch.float64)
    hi = torch.tensor([box.x_max, box.z_max, box.t_max], dtype=torch.float64)
    return torch.minimum(torch.maximum(pts, lo), hi).float()
