"""Collocation sets over (x, z, t) with stable point ids.

A set is drawn once; every per-point quantity (SA's λ, grad-norm weights) is
indexed by the ids drawn here, so mini-batches, shuffles and shards keep each
weight attached to its point. A resampled pool (:func:`resampled`) redraws a share
of the points in place: id ``i`` keeps its shot and kind (near-source or not),
gets fresh coordinates, and the weighting restarts it (``PointWeighting.admit``);
:class:`CollocationPool` holds a set that is redrawn so during training.

Besides the PDE points: points at t = 0 for a soft initial condition
(:func:`initial_points`) and points on the box's sides for the absorbing edges
(:func:`edge_points`). :class:`CollocationOptions` is the ``[collocation]`` section.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from seispinn.errors import ConfigError

__all__ = [
    "CollocationOptions",
    "CollocationPool",
    "Box",
    "CollocationSet",
    "sample_collocation",
    "sample_shot_collocation",
    "batch_ids",
    "redrawn_ids",
    "resampled",
    "sample_wavefronts",
    "draw_shot_points",
    "initial_points",
    "edge_points",
]


@dataclass(frozen=True)
class CollocationOptions:
    """PDE points (shared equally by the shots), their near-source share and radius
    (m), the PDE batch, the data batch (trace samples per step), and for a soft
    initial condition its points and weight.

    ``resample_every`` > 0 makes the set a pool: every that many steps a share
    ``resample_fraction`` of its points is redrawn the same way (Rasht-Behesht et
    al. 2022 redraw theirs every few hundred steps), so over a run the PDE is
    enforced on many more points than the pool holds; the redrawn points' weights
    restart from the pool's mean. 0: a fixed set.

    ``wavefront_fraction`` > 0 (a formulation with a background wavefield): that
    share of each shot's uniform points is drawn instead where the background's
    waves are (each time sample an equal share, cells ∝ |u0_tt|: a scattered
    field's source is (c²/c0² − 1)·u0_tt, so δu is made there).
    """

    n_points: int = 8000
    near_source_fraction: float = 0.17
    near_source_radius: float = 50.0
    batch_size: int = 1024
    data_batch: int = 1024
    n_ic: int = 4000
    ic_weight: float = 10.0
    resample_every: int = 0
    resample_fraction: float = 0.25
    wavefront_fraction: float = 0.0

    def __post_init__(self) -> None:
        if min(self.n_points, self.batch_size, self.data_batch, self.n_ic) < 1:
            raise ValueError("n_points, n_ic, batch_size and data_batch must be >= 1")
        if not 0 <= self.wavefront_fraction <= 1:
            raise ValueError(
                f"wavefront_fraction must lie in [0, 1], got {self.wavefront_fraction}"
            )
        if self.resample_every < 0 or not 0 < self.resample_fraction <= 1:
            raise ValueError(
                "resample_every must be >= 0 and resample_fraction in (0, 1], got "
                f"{self.resample_every}, {self.resample_fraction}"
            )


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
    with uniform times; without them the source region is too thinly sampled for the
    network to learn the source term.
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


class Wavefronts(Protocol):
    """Where each shot's waves are (a formulation with a background wavefield)."""

    def wavefront_energy(self, shot: int) -> Tensor | None: ...

    def wavefront_grid(self) -> tuple[float, float, float, float, float]: ...


def draw_shot_points(
    box: Box,
    options: CollocationOptions,
    sources: list[tuple[float, float]],
    seed: int,
    along: Wavefronts | None = None,
) -> CollocationSet:
    """The collocation set ``options`` describe: an equal share per shot of
    ``sources`` (:func:`sample_shot_collocation`), and ``wavefront_fraction`` of each
    shot's uniform points redrawn along ``along``'s wavefield (:func:`sample_wavefronts`)."""
    drawn = sample_shot_collocation(
        box,
        options.n_points,
        sources=sources,
        near_source_fraction=options.near_source_fraction,
        near_source_radius=options.near_source_radius,
        seed=seed,
    )
    if not options.wavefront_fraction or along is None or along.wavefront_energy(0) is None:
        return drawn
    assert drawn.shot is not None
    points = drawn.points.clone()
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 11)
    grid = along.wavefront_grid()
    for k in range(len(sources)):
        uniform = ((drawn.shot == k) & ~drawn.near_source).nonzero()[:, 0]
        slots = uniform[: round(options.wavefront_fraction * len(uniform))]
        energy = along.wavefront_energy(k)
        assert energy is not None
        points[slots] = sample_wavefronts(energy.cpu(), grid, box, len(slots), gen)
    return CollocationSet(points, drawn.ids, drawn.near_source, drawn.shot)


class CollocationPool:
    """A collocation set redrawn in part every ``every`` steps (0: fixed): at
    resampling event k (step k·every) the ids of :func:`redrawn_ids` get the
    coordinates of a fresh ``draw`` — a pure function of the step, so a resumed run
    rebuilds the pool it left.

    Args:
        draw: ``seed -> CollocationSet``, the same slot layout for every seed.
        seed: the first draw's seed (and the redraws').
        every, fraction: see :class:`CollocationOptions` (``resample_*``).
        device: where the points live.
    """

    def __init__(
        self,
        draw: Callable[[int], CollocationSet],
        seed: int,
        every: int,
        fraction: float,
        device: torch.device,
    ) -> None:
        self.draw, self.seed, self.every, self.fraction = draw, seed, every, fraction
        self.device = device
        self.points = draw(seed).to(device)
        self.event = 0  # resampling events applied to self.points

    def advance(self, step: int) -> tuple[bool, Tensor | None]:
        """Bring the pool to ``step``'s event. Returns whether the points changed, and
        the ids ``[m]`` redrawn when ``step`` *is* an event (their weights restart; a
        resumed run's checkpoint holds the weights of the events before it)."""
        event = step // self.every if self.every else 0
        if event == self.event:
            return False, None
        # Forward from the current event, or replayed from the first pool (a
        # divergence retry went back to an earlier checkpoint).
        forward = event > self.event
        first = self.event + 1 if forward else 1
        pool = self.points if forward else self.draw(self.seed).to(self.device)
        admitted = None
        for k in range(first, event + 1):
            pool, ids = resampled(pool, self.draw, k, self.fraction, self.seed)
            if step == k * self.every:
                admitted = ids
        self.points, self.event = pool, event
        return True, admitted


def initial_points(box: Box, n: int, n_shots: int, seed: int) -> tuple[Tensor, Tensor]:
    """Soft initial-condition points ``[n, 3]`` at t = 0, uniform over the box, and
    their shots ``[n]`` (the shots in turn)."""
    gen = torch.Generator().manual_seed(seed + 1)
    u = torch.rand(n, 3, generator=gen)
    lo = torch.tensor([box.x_min, box.z_min, 0.0])
    hi = torch.tensor([box.x_max, box.z_max, 0.0])
    return lo + (hi - lo) * u, torch.arange(n) % n_shots


def edge_points(
    box: Box, n: int, n_shots: int, seed: int, step: int
) -> tuple[Tensor, Tensor, Tensor]:
    """``n`` points ``[n, 3]`` on the box's four sides (by length; times uniform in
    ``[0, t_max]``), their shots ``[n]`` and outward unit normals ``[n, 2]``, drawn
    from ``step``'s seed."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step + 7)
    u = torch.rand(n, 3, generator=gen, dtype=torch.float64)
    w, h = box.x_max - box.x_min, box.z_max - box.z_min
    # The perimeter unrolled clockwise (top, right, bottom, left): each side's start
    # on it, its first corner, its direction and its outward normal.
    f64 = torch.float64
    begin = torch.tensor([0.0, w, w + h, 2 * w + h], dtype=f64)
    corner = torch.tensor(
        [
            [box.x_min, box.z_min],
            [box.x_max, box.z_min],
            [box.x_max, box.z_max],
            [box.x_min, box.z_max],
        ],
        dtype=f64,
    )
    direction = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=f64)
    normal = torch.tensor([[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    pos = u[:, 0] * 2 * (w + h)
    side = torch.bucketize(pos, begin[1:], right=True)
    xz = corner[side] + (pos - begin[side])[:, None] * direction[side]
    pts = torch.cat([xz, u[:, 1:2] * box.t_max], 1).float()
    shot = (u[:, 2] * n_shots).long().clamp(max=n_shots - 1)
    return pts, shot, normal[side]
