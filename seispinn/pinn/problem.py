"""The wave-equation PINN problem: one class for the forward PINN and the inversion.

Terms at a step (METHOD.md §3), as :class:`seispinn.pinn.training.StepLosses`:

- ``pde``: the residual ``r = u_tt − c²(∇²u − s)`` on a batch of collocation
  points, in units of ``U/T²`` (O(1)), per-point weighted (uniform, grad-norm,
  SA, RBA; optionally causal in time);
- ``ic`` (only without the exact initial condition): ``u = u_t = 0`` at ``t = 0``;
- ``data`` (only with observed traces): the mean squared misfit at the receivers
  over the observed traces' mean square (1 means "predicts zero").
- ``edge`` (absorbing edges): the one-way condition on the box's sides;
- ``velocity_tv``, ``velocity_mean`` (a grid velocity with constraints): see
  :class:`seispinn.pinn.velocity.VelocityNetOptions`.

The forward PINN is this problem with one shot, a fixed :class:`GridVelocity` and
no data; the inversion is this problem with a :class:`VelocityNet` and data. The
problem takes PINN-level option sections and its inputs, never an experiment's
whole configuration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from seispinn.acquisition import Source
from seispinn.diagnostics.gamma import GammaSnapshot
from seispinn.errors import ConfigError
from seispinn.memory import MemoryEstimate, point_parts, step_parts
from seispinn.modelling.analytic import peak_amplitude
from seispinn.pinn.background import Background
from seispinn.pinn.collocation import (
    Box,
    CollocationSet,
    batch_ids,
    resampled,
    sample_shot_collocation,
    sample_wavefronts,
)
from seispinn.pinn.distributed import shard
from seispinn.pinn.pointgrad import PointLoss
from seispinn.pinn.training import StepLosses
from seispinn.pinn.wave import (
    MultiShotWavefield,
    Scales,
    gaussian_source_density,
    scattered_residual,
    wave_residual,
)
from seispinn.pinn.weighting import PointWeighting, WeightingOptions, causal_weights

__all__ = [
    "NetworkOptions",
    "CollocationOptions",
    "PhysicsOptions",
    "Shots",
    "TraceSamples",
    "box_scales",
    "WaveProblem",
    "MEMORY_KNOBS",
]

MEMORY_KNOBS = ("[collocation] batch_size", "data_batch", "n_points", "[network] width/depth")
RESIDUAL_FORMS = ("velocity", "slowness", "symmetric")
FORMULATIONS = ("total", "scattered")
EDGES = ("open", "absorbing")


@dataclass(frozen=True)
class NetworkOptions:
    """The wavefield network (see :class:`seispinn.pinn.wave.WavefieldNet`).

    Attributes:
        width, depth, activation, fourier_features, fourier_scale: the MLP.
        exact_ic: ``u = t̂²·N`` so that ``u = u_t = 0`` at ``t = 0`` exactly; without
            it a soft initial-condition term is added.
        shots: ``'shared'`` (one network, the source's x as a 4th input) or
            ``'per_shot'`` (one network per shot).
    """

    width: int = 128
    depth: int = 4
    activation: str = "tanh"
    fourier_features: int | None = None
    fourier_scale: float = 1.0
    exact_ic: bool = True
    shots: str = "shared"

    def __post_init__(self) -> None:
        if self.shots not in ("shared", "per_shot"):
            raise ValueError(f"shots must be 'shared' or 'per_shot', got {self.shots!r}")
        if self.width < 1 or self.depth < 1:
            raise ValueError(f"width and depth must be >= 1, got {self.width}, {self.depth}")


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

    ``wavefront_fraction`` > 0 (scattered formulation): that share of each shot's
    uniform points is drawn instead where its background wavefield is (each time
    sample an equal share, cells ∝ |u0_tt|: the scattered field's source is
    (c²/c0² − 1)·u0_tt, so δu is made there). A problem without a background
    (the total formulation) draws them uniformly.
    """

    n_points: int = 36000
    near_source_fraction: float = 0.17
    near_source_radius: float = 70.0
    batch_size: int = 4096
    data_batch: int = 4096
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
class PhysicsOptions:
    """How the PDE is posed.

    Attributes:
        residual: ``'velocity'``: r = u_tt − c²(∇²u − s); ``'slowness'``: the same
            divided by (c/c₀)², c₀ the reference velocity at the sources, so the
            source term no longer scales with c and cannot pull the velocity network
            to shrink the residual where the source acts; ``'symmetric'``: divided by
            c/c₀. Errors in the network's u_tt bias a least-squares c upward in the
            slowness form, errors in ∇²u bias it downward in the velocity form; the
            symmetric form sits between. With a fixed velocity the forms differ only
            in how points are weighted.
        formulation: ``'total'``: the network is the whole wavefield u;
            ``'scattered'``: it is δu = u − u0, u0 the finite-difference wavefield of
            every shot in the starting model (see :mod:`seispinn.pinn.background`),
            and the data term fits d_obs − u0 at the receivers.
        edges: ``'open'`` (no condition on the box's sides: waves may enter) or
            ``'absorbing'``: the first-order one-way condition u_t + c ∂u/∂n = 0
            (n the outward normal) on all four sides, so no energy enters the box
            (Clayton–Engquist; Deepwave's default absorbing boundary on all sides).
        edge_weight: the edge term's weight (its residual is in units of U/T).
        edge_points: edge points drawn afresh at every step (all four sides, by
            length; times uniform in the record).
        background_stride: the background is kept at every k-th sample of the
            finite-difference record (scattered formulation).
        rounds: outer rounds of an inversion: each round starts from the previous
            round's velocity, with the background recomputed in it (scattered) and
            fresh networks; ``[training]`` steps and frozen_until are per round. Like
            Gauss–Newton iterations: the scattered field of one round is nearly
            linear in its velocity change.
    """

    residual: str = "velocity"
    formulation: str = "total"
    edges: str = "open"
    edge_weight: float = 1.0
    edge_points: int = 1024
    background_stride: int = 1
    rounds: int = 1

    def __post_init__(self) -> None:
        if self.residual not in RESIDUAL_FORMS:
            raise ValueError(f"residual must be one of {RESIDUAL_FORMS}, got {self.residual!r}")
        if self.formulation not in FORMULATIONS:
            raise ValueError(f"formulation must be one of {FORMULATIONS}, got {self.formulation!r}")
        if self.edges not in EDGES:
            raise ValueError(f"edges must be one of {EDGES}, got {self.edges!r}")
        if self.edge_weight < 0 or self.edge_points < 1 or self.background_stride < 1:
            raise ValueError("edge_weight >= 0, edge_points >= 1, background_stride >= 1")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")


def scale_gradient(x: Tensor, factor: Tensor) -> Tensor:
    """``x`` unchanged, with the gradient that flows back through it multiplied by
    ``factor`` (broadcast against ``x``)."""
    return x.detach() + factor * (x - x.detach())


POINT_SOURCE_REFUSED = (
    "[source] sigma = 0 (a point source) is for finite differences only: "
    "the PINN's source term needs a width sigma > 0 (m)"
)


@dataclass(frozen=True)
class Shots:
    """Source positions ``[shot]`` (m) and the :class:`Source` every shot fires
    (its frequency and delay resolved)."""

    x: tuple[float, ...]
    z: tuple[float, ...]
    source: Source

    def __post_init__(self) -> None:
        if len(self.x) != len(self.z) or not self.x:
            raise ConfigError(f"need one z per source x, got {len(self.x)} x and {len(self.z)} z")
        if not self.source.freq > 0:
            raise ConfigError("the source's peak frequency must be resolved (freq > 0)")
        if not self.source.sigma > 0:
            raise ConfigError(POINT_SOURCE_REFUSED)

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class TraceSamples:
    """Observed trace samples as points: ``points`` ``[M, 3]`` (x, z, t in m, s),
    ``shot`` ``[M]`` (long) and ``values`` ``[M]``."""

    points: Tensor
    shot: Tensor
    values: Tensor

    def to(self, device: torch.device) -> TraceSamples:
        return TraceSamples(self.points.to(device), self.shot.to(device), self.values.to(device))


def box_scales(box: Box, shots: Shots, c_ref: float, amplitude_samples: int = 200) -> Scales:
    """Network units for ``box``: coordinates to [−1, 1], time to [0, 1], and the
    wavefield by the peak amplitude one σ from the source in a homogeneous
    ``c_ref`` (m/s), sampled at ``amplitude_samples`` times in [0, T]."""
    s = shots.source
    return Scales(
        xc=(box.x_min + box.x_max) / 2,
        zc=(box.z_min + box.z_max) / 2,
        lx=(box.x_max - box.x_min) / 2,
        lz=(box.z_max - box.z_min) / 2,
        t_max=box.t_max,
        u_scale=peak_amplitude(s.sigma, s.freq, s.delay, c_ref, box.t_max, amplitude_samples),
    )


class WaveProblem:
    """Loss terms of a wave-equation PINN at a step (implements ``training.Problem``).

    Args:
        box: the collocation box (m, s).
        shots: the sources.
        make_velocity: ``scales -> velocity``, the velocity ``c(x, z) -> [N]`` (m/s):
            a fixed :class:`GridVelocity` or a trainable :class:`VelocityNet` (built
            from the problem's scales; trained when it has parameters).
        network, collocation, weighting, physics: the option sections.
        seed: initialisation, collocation and batches.
        device: where tensors live.
        c_ref: reference velocity (m/s) for the amplitude scale and the residual forms.
        amplitude_samples: see :func:`box_scales`.
        data: observed trace samples (None: no data term).
        sampler: ``seed -> CollocationSet``, how the collocation points are drawn
            (None: per shot from ``collocation``, :func:`sample_shot_collocation`);
            a resampled pool's redrawn points come from it too.
        source_radius: radius (m) of the source region of METHOD §4 (γ diagnostics).
        receivers: ``[M, 2]`` receiver positions (m) for the γ snapshots.
        background: u0_tt and c0 of the scattered formulation (required by it).
        data_reference: the mean square the data misfit is divided by (default: of
            ``data.values``); a scattered run passes the observed traces', so its
            step-0 data term is the starting model's relative misfit.
        amplitude_ratio: the network's amplitude U relative to the source's (a
            scattered field is a fraction of the total).
    """

    def __init__(
        self,
        *,
        box: Box,
        shots: Shots,
        make_velocity: Callable[[Scales], nn.Module],
        network: NetworkOptions,
        collocation: CollocationOptions,
        weighting: WeightingOptions,
        physics: PhysicsOptions,
        seed: int,
        device: torch.device,
        c_ref: float,
        amplitude_samples: int = 200,
        data: TraceSamples | None = None,
        sampler: Callable[[int], CollocationSet] | None = None,
        source_radius: float | None = None,
        receivers: np.ndarray | None = None,
        background: Background | None = None,
        data_reference: float | None = None,
        amplitude_ratio: float = 1.0,
    ) -> None:
        if physics.formulation == "scattered" and background is None:
            raise ConfigError("the scattered formulation needs a background wavefield")
        self.box, self.shots, self.device, self.seed = box, shots, device, seed
        self.network, self.collocation = network, collocation
        self.weighting_options, self.physics = weighting, physics
        self.c_ref = float(c_ref)
        scales = box_scales(box, shots, c_ref, amplitude_samples)
        self.scales = dataclasses.replace(scales, u_scale=scales.u_scale * amplitude_ratio)
        torch.manual_seed(seed)
        n = network
        self.wavefield = MultiShotWavefield(
            self.scales,
            list(shots.x),
            n.shots,
            width=n.width,
            depth=n.depth,
            activation=n.activation,
            fourier_features=n.fourier_features,
            fourier_scale=n.fourier_scale,
            exact_ic=n.exact_ic,
            zero_start=physics.formulation == "scattered",
        ).to(device)
        # After the wavefield: a velocity network's initialisation follows it in the
        # seeded stream.
        self.velocity: nn.Module = make_velocity(self.scales).to(device)
        self.background = background.to(device) if background is not None else None
        self._draw = sampler if sampler is not None else self._draw_per_shot
        self.points: CollocationSet = self._draw(seed).to(device)
        self._pool_event = 0  # resampling events applied to self.points
        self.source_x = torch.tensor(shots.x, dtype=torch.float32, device=device)
        self.source_z = torch.tensor(shots.z, dtype=torch.float32, device=device)
        self.weighting: PointWeighting = weighting.build(len(self.points)).to(device)
        self._share_times()
        self.ic_points, self.ic_shot = self._ic_points() if not n.exact_ic else (None, None)
        self.data = data.to(device) if data is not None else None
        self.data_ms = 1.0
        if data_reference is not None:
            self.data_ms = float(data_reference) or 1.0
        elif data is not None:
            obs = data.values.cpu().numpy().astype(np.float64)
            self.data_ms = float(np.mean(obs**2)) or 1.0
        self.source_radius = (
            float(source_radius)
            if source_radius is not None
            else max(collocation.near_source_radius, 2 * shots.source.sigma)
        )
        self.receivers = np.zeros((0, 2)) if receivers is None else np.asarray(receivers)
        self._point_residual = _PointResidual(self)

    def _draw_per_shot(self, seed: int) -> CollocationSet:
        """The collocation set the options describe, an equal share per shot (and
        ``wavefront_fraction`` of each shot's uniform points along its wavefield)."""
        c = self.collocation
        drawn = sample_shot_collocation(
            self.box,
            c.n_points,
            sources=list(zip(self.shots.x, self.shots.z, strict=True)),
            near_source_fraction=c.near_source_fraction,
            near_source_radius=c.near_source_radius,
            seed=seed,
        )
        if not c.wavefront_fraction or self.background is None:
            return drawn
        bg, points = self.background, drawn.points.clone()
        gen = torch.Generator().manual_seed(seed * 1_000_003 + 11)
        grid = (bg.x0, bg.z0, bg.dx, bg.dz, bg.dt)
        for k in range(len(self.shots)):
            uniform = ((drawn.shot == k) & ~drawn.near_source).nonzero()[:, 0]
            slots = uniform[: round(c.wavefront_fraction * len(uniform))]
            energy = bg.u_tt[k].cpu()
            points[slots] = sample_wavefronts(energy, grid, self.box, len(slots), gen)
        return CollocationSet(points, drawn.ids, drawn.near_source, drawn.shot)

    def _advance_pool(self, step: int) -> None:
        """Bring the pool to ``step``'s resampling event; a step that *is* an event
        restarts the redrawn points' weights (a resumed run's checkpoint already
        holds the weights of the events before it)."""
        c = self.collocation
        every = c.resample_every
        event = step // every if every else 0
        if event == self._pool_event:
            return
        # Forward from the current event, or replayed from the first pool (a
        # divergence retry went back to an earlier checkpoint).
        first = self._pool_event + 1 if event > self._pool_event else 1
        pool = self.points if event > self._pool_event else self._draw(self.seed).to(self.device)
        for k in range(first, event + 1):
            pool, ids = resampled(pool, self._draw, k, c.resample_fraction, self.seed)
            if step == k * every:
                self.weighting.admit(ids.to(self.device))
        self.points, self._pool_event = pool, event
        self._share_times()

    def _share_times(self) -> None:
        """Tell the weighting each point's time as a fraction of the window."""
        self.weighting.set_times(self.points.points[:, 2] / self.scales.t_max)

    def _ic_points(self) -> tuple[Tensor, Tensor]:
        """Soft-IC points ``[n_ic, 3]`` at t = 0, uniform over the box, shots in turn."""
        gen = torch.Generator().manual_seed(self.seed + 1)
        u = torch.rand(self.collocation.n_ic, 3, generator=gen)
        b = self.box
        lo = torch.tensor([b.x_min, b.z_min, 0.0])
        hi = torch.tensor([b.x_max, b.z_max, 0.0])
        shot = torch.arange(self.collocation.n_ic) % len(self.shots)
        return (lo + (hi - lo) * u).to(self.device), shot.to(self.device)

    def trainable(self) -> dict[str, nn.Module]:
        """The wavefield, and the velocity when it has parameters (an inversion)."""
        out: dict[str, nn.Module] = {"wavefield": self.wavefield}
        if any(True for _ in self.velocity.parameters()):
            out["velocity"] = self.velocity
        return out

    # ------------------------------------------------------------------ the terms

    def residual(
        self, points: Tensor, shot: Tensor, velocity_gradient: Tensor | None = None
    ) -> Tensor:
        """PDE residual ``[N]`` at physical points ``[N, 3]`` of shots ``[N]`` (U/T²).

        ``velocity_gradient`` ``[N]``: factors on the gradient that reaches the
        velocity through each point (the residual's value is unchanged)."""
        s = self.shots.source
        der = self.wavefield.derivatives(points, shot)
        c = self.velocity(points[:, 0], points[:, 1])
        if velocity_gradient is not None:
            c = scale_gradient(c, velocity_gradient)
        if self.background is not None and self.physics.formulation == "scattered":
            bg = self.background
            r = scattered_residual(
                der.u_tt, der.laplacian, c, bg.c0(points), bg.u0_tt(points, shot)
            )
        else:
            dens = gaussian_source_density(points, self.source_x[shot], self.source_z[shot], s)
            r = wave_residual(der.u_tt, der.laplacian, c, dens)
        if self.physics.residual == "slowness":
            r = r * (self.c_ref / c) ** 2
        elif self.physics.residual == "symmetric":
            r = r * (self.c_ref / c)
        return r * (self.scales.t_max**2 / self.scales.u_scale)

    def data_misfit(self, ids: Tensor, denominator: int | None = None) -> Tensor:
        """Mean squared trace misfit over data samples ``ids``, over the observed
        mean square (dimensionless); with ``denominator``, the sum over ``ids`` ÷ it
        (a rank's share of a global batch)."""
        assert self.data is not None
        d = self.data
        u = self.wavefield(d.points[ids], d.shot[ids])
        sq = (u - d.values[ids]) ** 2
        return (sq.mean() if denominator is None else sq.sum() / denominator) / self.data_ms

    def edge_points(self, step: int) -> tuple[Tensor, Tensor, Tensor]:
        """Points ``[E, 3]`` on the box's four sides (by length, times uniform), their
        shots ``[E]`` and outward normals ``[E, 2]``, drawn from ``step``'s seed."""
        b, n = self.box, self.physics.edge_points
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + step + 7)
        u = torch.rand(n, 3, generator=gen, dtype=torch.float64)
        w, h = b.x_max - b.x_min, b.z_max - b.z_min
        # The perimeter unrolled clockwise (top, right, bottom, left): each side's
        # start on it, its first corner, its direction and its outward normal.
        f64 = torch.float64
        begin = torch.tensor([0.0, w, w + h, 2 * w + h], dtype=f64)
        corner = torch.tensor(
            [[b.x_min, b.z_min], [b.x_max, b.z_min], [b.x_max, b.z_max], [b.x_min, b.z_max]],
            dtype=f64,
        )
        direction = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]], dtype=f64)
        normal = torch.tensor([[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
        pos = u[:, 0] * 2 * (w + h)
        side = torch.bucketize(pos, begin[1:], right=True)
        xz = corner[side] + (pos - begin[side])[:, None] * direction[side]
        pts = torch.cat([xz, u[:, 1:2] * b.t_max], 1).float().to(self.device)
        shot = (u[:, 2] * len(self.shots)).long().clamp(max=len(self.shots) - 1)
        return pts, shot.to(self.device), normal[side].to(self.device)

    def edge_residual(self, points: Tensor, shot: Tensor, normal: Tensor) -> Tensor:
        """The one-way condition u_t + c ∂u/∂n ``[E]`` at edge points ``[E, 3]`` of shots
        ``[E]`` with outward normals ``[E, 2]``, in units of U/T (δu when scattered)."""
        grad = self.wavefield.gradient(points, shot)
        c = self.velocity(points[:, 0], points[:, 1])
        r = grad[:, 2] + c * (grad[:, :2] * normal).sum(1)
        return r * (self.scales.t_max / self.scales.u_scale)

    def edge_misfit(self, step: int) -> Tensor:
        """Mean squared :meth:`edge_residual` on :meth:`edge_points` of ``step``."""
        return self.edge_residual(*self.edge_points(step)).square().mean()

    def ic_misfit(self) -> Tensor:
        """Soft initial condition: mean u² + mean u_t² at t = 0 in network units."""
        assert self.ic_points is not None and self.ic_shot is not None
        u0, ut0 = self.wavefield.value_and_time_derivative(self.ic_points, self.ic_shot)
        u0 = u0 / self.scales.u_scale
        ut0 = ut0 * self.scales.t_max / self.scales.u_scale
        return (u0**2).mean() + (ut0**2).mean()

    def _owner(self, ids: Tensor, shot: Tensor) -> Tensor:
        """Owner keys of items ``ids``: the shot when there are at least as many shots
        as ranks (shots are independent, so each rank takes whole shots), else the id."""
        return shot[ids] if len(self.shots) >= shard().world else ids

    def losses(self, step: int) -> StepLosses:
        self._advance_pool(step)
        c, seed, w = self.collocation, self.seed, self.weighting_options
        assert self.points.shot is not None
        sh = shard()
        batch = batch_ids(step, len(self.points), c.batch_size, seed).to(self.device)
        ids = batch[sh.owns(self._owner(batch, self.points.shot))]  # this rank's share
        pts, shot = self.points.points[ids], self.points.shot[ids]
        unmask = None
        if not w.mask_velocity and "velocity" in self.trainable():
            unmask = 1.0 / self.weighting.weights(ids).clamp_min(torch.finfo(torch.float32).tiny)
        sq = self.residual(pts, shot, unmask) ** 2
        causal = causal_weights(sq, pts[:, 2], self.scales.t_max, w.causal_bins, w.causal_eps)
        terms = {"pde": self.weighting.weighted_loss(sq * causal, ids, len(batch))}
        if self.ic_points is not None:
            # Every rank evaluates the whole IC term: its share is 1/K of it.
            terms["ic"] = c.ic_weight * self.ic_misfit() / sh.world
        if self.physics.edges == "absorbing":
            terms["edge"] = self.physics.edge_weight * self.edge_misfit(step) / sh.world
        penalties = getattr(self.velocity, "penalties", None)
        if penalties is not None:
            # Whole-model terms: every rank has all of them, so each adds its share.
            terms.update({k: v / sh.world for k, v in penalties().items()})
        if self.data is not None:
            dbatch = batch_ids(step, len(self.data.values), c.data_batch, seed + 1)
            dbatch = dbatch.to(self.device)
            dids = dbatch[sh.owns(self._owner(dbatch, self.data.shot))]
            terms["data"] = self.data_misfit(dids, len(dbatch))
        point_loss = None
        if w.name == "gradnorm":
            packed = torch.cat([pts, shot[:, None].float()], dim=1)
            point_loss = PointLoss(self._point_residual, self._packed_loss, packed)
        return StepLosses(terms, ids, sq.detach(), point_loss)

    def _packed_loss(self, params: dict[str, Tensor], packed: Tensor) -> Tensor:
        # functional_call swaps the parameters inside the networks residual() uses.
        return torch.func.functional_call(self._point_residual, params, (packed,))

    # ------------------------------------------------------------ diagnostics

    @torch.no_grad()  # the jets carry the input derivatives forward: no graph needed
    def all_residuals(self, chunk: int = 8192) -> Tensor:
        """PDE residual ``[N]`` over the whole collocation set (detached)."""
        assert self.points.shot is not None
        pts, shot = self.points.points.split(chunk), self.points.shot.split(chunk)
        return torch.cat([self.residual(p, s) for p, s in zip(pts, shot, strict=True)])

    def gamma_snapshot(self, step: int) -> GammaSnapshot:
        """γ and |r| over all collocation points now (see :class:`GammaSnapshot`)."""
        p = self.points
        assert p.shot is not None
        return GammaSnapshot(
            step=step,
            points=p.points.detach().cpu().numpy(),
            ids=p.ids.cpu().numpy(),
            shot=p.shot.cpu().numpy(),
            gamma=self.weighting.relative_weights().detach().cpu().numpy(),
            residual=self.all_residuals().abs().cpu().numpy(),
            sources=np.stack([self.shots.x, self.shots.z], 1).astype(np.float64),
            receivers=self.receivers.reshape(-1, 2),
            source_radius=self.source_radius,
            active_until=self.shots.source.active_until(),
        )

    def memory_estimate(self) -> MemoryEstimate:
        """Estimated peak memory of a training step (see :mod:`seispinn.memory`):
        the batches' autograd bytes measured on probe batches, the rest by size."""
        c, p = self.collocation, self.points
        assert p.shot is not None
        data = None
        if self.data is not None:
            data = lambda n: self.data_misfit(torch.arange(n, device=self.device))  # noqa: E731
        parts = step_parts(
            list(self.trainable().values()),
            lambda n: self.residual(p.points[:n], p.shot[:n]).square().sum(),
            min(c.batch_size, len(p)),
            gradnorm=self.weighting_options.name == "gradnorm",
            data=data,
            data_batch=c.data_batch,
            world=shard().world,
        )
        samples = len(self.data.values) if self.data is not None else 0
        parts.update(point_parts(len(p), self.weighting_options.name, samples))
        return MemoryEstimate(parts, knobs=MEMORY_KNOBS)


class _PointResidual(nn.Module):
    """r² ``[N]`` of packed points ``[N, 4]`` (x, z, t, shot) as a module whose
    parameters are the problem's trainable networks' (grad-norm's per-point
    gradients)."""

    def __init__(self, problem: WaveProblem) -> None:
        super().__init__()
        self.wavefield = problem.wavefield
        self.velocity = problem.velocity
        self._problem = [problem]  # a list: not a submodule

    def forward(self, packed: Tensor) -> Tensor:
        return self._problem[0].residual(packed[:, :3], packed[:, 3].long()) ** 2
