"""PINN problems: what the training loop asks of a problem, and the wave-equation one.

:class:`Problem` is the interface :func:`seispinn.pinn.training.train` trains: the
trainable modules, the per-point weighting of its PDE term, and the loss terms of a
step as :class:`StepLosses`. :class:`WaveProblem` is the wave-equation PINN of the
forward runs and the inversions. Its terms at a step:

- ``pde``: the formulation's residual (:mod:`seispinn.pinn.formulations`) on a batch
  of collocation points, in units of ``U/T²`` (O(1)), in the ``[physics] residual``
  form, per-point weighted (uniform, grad-norm, SA, RBA; optionally causal in time);
- ``ic`` (only without the exact initial condition): ``u = u_t = 0`` at ``t = 0``;
- ``data`` (only with observed traces): the mean squared misfit at the receivers
  over the observed traces' mean square (1 means "predicts zero");
- ``edge`` (absorbing edges): the one-way condition on the box's sides;
- ``velocity_tv``, ``velocity_mean`` (a grid velocity with constraints): see
  :class:`seispinn.pinn.velocity.VelocityNetOptions`.

The forward PINN is this problem with one shot, a fixed :class:`GridVelocity`, the
total field and no data; the inversion is this problem with a :class:`VelocityNet`
and data. The problem takes PINN-level option sections and its inputs, never an
experiment's whole configuration.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch import Tensor, nn

from seispinn.acquisition import Source
from seispinn.errors import ConfigError
from seispinn.modelling.analytic import peak_amplitude
from seispinn.pinn.collocation import (
    Box,
    CollocationOptions,
    CollocationPool,
    CollocationSet,
    batch_ids,
    draw_shot_points,
    edge_points,
    initial_points,
)
from seispinn.pinn.distributed import shard
from seispinn.pinn.formulations import Formulation, PhysicsOptions
from seispinn.pinn.gate import CausalGate, GatedWavefield
from seispinn.pinn.pointgrad import PointLoss
from seispinn.pinn.wave import MultiShotWavefield, NetworkOptions, Scales
from seispinn.pinn.weighting import PointWeighting, WeightingOptions, causal_weights

__all__ = [
    "StepLosses",
    "Problem",
    "Shots",
    "TraceSamples",
    "box_scales",
    "form_factor",
    "WaveProblem",
    "POINT_SOURCE_REFUSED",
]


@dataclass
class StepLosses:
    """The loss terms of one step.

    Attributes:
        terms: scalar loss per term name; ``"pde"`` is the per-point-weighted one.
        pde_ids: ``[B]`` ids of the PDE points of this step.
        pde_sq: ``[B]`` squared PDE residuals (detached).
        point_loss: how to re-evaluate per-point PDE losses (grad-norm refreshes).
        pde_residual: ``[B]`` the signed PDE residuals (detached; the multipliers'
            update).
    """

    terms: dict[str, Tensor]
    pde_ids: Tensor
    pde_sq: Tensor
    point_loss: PointLoss | None = None
    pde_residual: Tensor | None = None


class Problem(Protocol):
    """What :func:`seispinn.pinn.training.train` needs from a PINN problem."""

    weighting: PointWeighting

    def trainable(self) -> dict[str, nn.Module]:
        """Modules whose parameters descend (e.g. ``{"wavefield": net}``)."""
        ...

    def losses(self, step: int) -> StepLosses:
        """Loss terms at optimiser step ``step`` (batches chosen from ``step``)."""
        ...


def scale_gradient(x: Tensor, factor: Tensor) -> Tensor:
    """``x`` unchanged, with the gradient that flows back through it multiplied by
    ``factor`` (broadcast against ``x``)."""
    return x.detach() + factor * (x - x.detach())


def form_factor(form: str, c: Tensor, c_ref: float) -> Tensor | float:
    """What the residual ``u_tt − c²(∇²u − s)`` is multiplied by in ``form``
    (:class:`PhysicsOptions` ``residual``): 1, ``(c_ref/c)²`` or ``c_ref/c``."""
    if form == "slowness":
        return (c_ref / c) ** 2
    if form == "symmetric":
        return c_ref / c
    return 1.0


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

    @property
    def positions(self) -> list[tuple[float, float]]:
        return list(zip(self.x, self.z, strict=True))


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
    """Loss terms of a wave-equation PINN at a step (implements :class:`Problem`).

    Args:
        box: the collocation box (m, s).
        shots: the sources.
        make_velocity: ``scales -> velocity``, the velocity ``c(x, z) -> [N]`` (m/s):
            a fixed :class:`GridVelocity` or a trainable :class:`VelocityNet` (built
            from the problem's scales; trained when it has parameters).
        formulation: what the network represents and the residual it obeys.
        network, collocation, weighting, physics: the option sections.
        seed: initialisation, collocation and batches.
        device: where tensors live.
        c_ref: reference velocity (m/s) for the amplitude scale and the residual forms.
        amplitude_samples: see :func:`box_scales`.
        data: observed trace samples (None: no data term).
        sampler: ``seed -> CollocationSet``, how the collocation points are drawn
            (None: per shot from ``collocation``, :func:`draw_shot_points`); a
            resampled pool's redrawn points come from it too.
        source_radius: radius (m) of the source region (γ diagnostics).
        receivers: ``[M, 2]`` receiver positions (m) for the γ snapshots.
        data_reference: the mean square the data misfit is divided by (default: of
            ``data.values``); an inversion passes the observed traces', so a
            scattered field's step-0 data term is the start's relative misfit.
        amplitude_ratio: the network's amplitude U relative to the source's (a
            scattered field is a fraction of the total).
        gate: a causal gate the network's output is multiplied by
            (:class:`seispinn.pinn.gate.CausalGate`); None: none.
        seed_field: wavefield samples (points, shots, values) the network also fits for
            its first ``seed_steps`` steps (term ``seed``, over their mean square):
            a finite-difference reconstruction to start from.
    """

    def __init__(
        self,
        *,
        box: Box,
        shots: Shots,
        make_velocity: Callable[[Scales], nn.Module],
        formulation: Formulation,
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
        data_reference: float | None = None,
        amplitude_ratio: float = 1.0,
        seed_field: TraceSamples | None = None,
        seed_steps: int = 0,
        gate: CausalGate | None = None,
    ) -> None:
        self.box, self.shots, self.device, self.seed = box, shots, device, seed
        self.network, self.collocation = network, collocation
        self.weighting_options, self.physics = weighting, physics
        self.c_ref = float(c_ref)
        scales = box_scales(box, shots, c_ref, amplitude_samples)
        self.scales = dataclasses.replace(scales, u_scale=scales.u_scale * amplitude_ratio)
        torch.manual_seed(seed)
        n = network
        self.wavefield: nn.Module = MultiShotWavefield(
            self.scales,
            list(shots.x),
            n.shots,
            width=n.width,
            depth=n.depth,
            activation=n.activation,
            fourier_features=n.fourier_features,
            fourier_scale=n.fourier_scale,
            exact_ic=n.exact_ic,
            zero_start=formulation.zero_start,
        ).to(device)
        if gate is not None:
            self.wavefield = GatedWavefield(self.wavefield, gate).to(device)
        # After the wavefield: a velocity network's initialisation follows it in the
        # seeded stream.
        self.velocity: nn.Module = make_velocity(self.scales).to(device)
        self.formulation = formulation.to(device)
        draw = sampler if sampler is not None else self._draw_per_shot
        self.pool = CollocationPool(
            draw, seed, collocation.resample_every, collocation.resample_fraction, device
        )
        self.weighting: PointWeighting = weighting.build(len(self.points)).to(device)
        self._share_times()
        self.ic_points, self.ic_shot = None, None
        if not n.exact_ic:
            pts, shot = initial_points(box, collocation.n_ic, len(shots), seed)
            self.ic_points, self.ic_shot = pts.to(device), shot.to(device)
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
        self.seed_field = seed_field.to(device) if seed_field is not None else None
        self.seed_steps = seed_steps
        if self.seed_field is not None:
            self.seed_ms = float(self.seed_field.values.double().square().mean()) or 1.0
        self._point_residual = _PointResidual(self)

    @property
    def points(self) -> CollocationSet:
        """The collocation set of the current step (its ids are stable)."""
        return self.pool.points

    def _draw_per_shot(self, seed: int) -> CollocationSet:
        return draw_shot_points(
            self.box, self.collocation, self.shots.positions, seed, self.formulation
        )

    def _share_times(self) -> None:
        """Tell the weighting each point's time as a fraction of the window."""
        self.weighting.set_times(self.points.points[:, 2] / self.scales.t_max)

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
        der = self.wavefield.derivatives(points, shot)
        c = self.velocity(points[:, 0], points[:, 1])
        if velocity_gradient is not None:
            c = scale_gradient(c, velocity_gradient)
        r = self.formulation.residual(der, c, points, shot)
        r = r * form_factor(self.physics.residual, c, self.c_ref)
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
        """Points ``[E, 3]`` on the box's four sides, their shots ``[E]`` and outward
        normals ``[E, 2]`` at ``step`` (:func:`seispinn.pinn.collocation.edge_points`)."""
        pts, shot, normal = edge_points(
            self.box, self.physics.edge_points, len(self.shots), self.seed, step
        )
        return pts.to(self.device), shot.to(self.device), normal.to(self.device)

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

    def _advance_pool(self, step: int) -> None:
        changed, admitted = self.pool.advance(step)
        if admitted is not None:
            self.weighting.admit(admitted.to(self.device))
        if changed:
            self._share_times()

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
        r = self.residual(pts, shot, unmask)
        sq = r**2
        shifted = self.weighting.shifted(r, ids)
        fit = sq if shifted is r else shifted**2  # only multipliers shift r
        causal = causal_weights(fit, pts[:, 2], self.scales.t_max, w.causal_bins, w.causal_eps)
        terms = {"pde": self.weighting.weighted_loss(fit * causal, ids, len(batch))}
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
        f = self.seed_field
        if f is not None and step < self.seed_steps:
            sb = batch_ids(step, len(f.values), c.data_batch, seed + 2).to(self.device)
            sb = sb[sh.owns(self._owner(sb, f.shot))]
            misfit = (self.wavefield(f.points[sb], f.shot[sb]) - f.values[sb]).square().sum()
            terms["seed"] = misfit / c.data_batch / self.seed_ms
        point_loss = None
        if self.weighting.needs_point_loss:
            packed = torch.cat([pts, shot[:, None].float()], dim=1)
            point_loss = PointLoss(self._point_residual, self._packed_loss, packed)
        return StepLosses(terms, ids, sq.detach(), point_loss, r.detach())

    def _packed_loss(self, params: dict[str, Tensor], packed: Tensor) -> Tensor:
        # functional_call swaps the parameters inside the networks residual() uses.
        return torch.func.functional_call(self._point_residual, params, (packed,))

    @torch.no_grad()  # the jets carry the input derivatives forward: no graph needed
    def all_residuals(self, chunk: int = 8192) -> Tensor:
        """PDE residual ``[N]`` over the whole collocation set (detached)."""
        assert self.points.shot is not None
        pts, shot = self.points.points.split(chunk), self.points.shot.split(chunk)
        return torch.cat([self.residual(p, s) for p, s in zip(pts, shot, strict=True)])


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
