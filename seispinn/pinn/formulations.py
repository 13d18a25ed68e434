"""What the wavefield network represents, and so which residual it is trained on.

A formulation is one class behind a small interface (:class:`Formulation`): the PDE
residual at a batch of points from the network's derivatives and the velocity, what
the network's output starts at, the traces its fixed part already predicts (the data
term fits the rest), where its wavefield is (for drawing points along it), and the
memory it holds. :data:`FORMULATIONS` lists them by the name a config gives
(``[physics] formulation``); a new formulation is a new class there.

- :class:`TotalField`: the network is the whole wavefield u, with the source in the
  residual ``r = u_tt − c²(∇²u − s)``.
- :class:`ScatteredField`: the network is δu = u − u0, u0 the finite-difference
  wavefield of every shot in the starting model c0, and
  ``r = δu_tt − c²∇²δu − (c²/c0² − 1)·u0_tt`` carries no source (docs/method.md).

:class:`PhysicsOptions` is the ``[physics]`` section: the formulation, the residual's
form, the box's edges and the number of outer rounds of an inversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from seispinn.acquisition import Source
from seispinn.errors import ConfigError
from seispinn.gathers import ShotGathers
from seispinn.models import VelocityModel
from seispinn.pinn.background import Background, background_wavefield
from seispinn.pinn.wave import (
    WaveDerivatives,
    gaussian_source_density,
    scattered_residual,
    wave_residual,
)

if TYPE_CHECKING:
    from seispinn.pinn.problem import WaveProblem

__all__ = [
    "PhysicsOptions",
    "Formulation",
    "TotalField",
    "ScatteredField",
    "FORMULATIONS",
    "RESIDUAL_FORMS",
    "EDGES",
    "implied_velocity",
]

RESIDUAL_FORMS = ("velocity", "slowness", "symmetric")
EDGES = ("open", "absorbing")


class Formulation(nn.Module):
    """The interface every formulation implements (buffers only: no parameters).

    Attributes:
        name: the config's name for it (``[physics] formulation``).
        zero_start: the network's output starts at zero (its last layer zeroed).
        has_wavefronts: it knows where the waves are (:meth:`wavefront_energy`), so
            collocation points can be drawn along them.
        fixed_traces: ``[shot, receiver, time]`` traces of the part of the wavefield
            the network does not learn, at the observed receivers (None: nothing
            is fixed); the data term fits the observed traces minus these.
    """

    name: ClassVar[str] = "base"
    zero_start: ClassVar[bool] = False
    has_wavefronts: ClassVar[bool] = False
    fixed_traces: np.ndarray | None = None

    def residual(self, der: WaveDerivatives, c: Tensor, points: Tensor, shot: Tensor) -> Tensor:
        """The PDE residual ``[N]`` (units of u / s²) at physical points ``[N, 3]`` of
        shots ``[N]``, from the network's derivatives and the velocity ``c`` ``[N]``."""
        raise NotImplementedError

    def wavefront_energy(self, shot: int) -> Tensor | None:
        """``[time, nz, nx]`` where shot ``shot``'s waves are (points are drawn along
        it, :func:`seispinn.pinn.collocation.draw_shot_points`), or None."""
        return None

    def wavefront_grid(self) -> tuple[float, float, float, float, float]:
        """``(x0, z0, dx, dz, dt)`` (m, s) of :meth:`wavefront_energy`'s samples."""
        raise NotImplementedError

    @classmethod
    def for_inversion(
        cls,
        start: VelocityModel,
        gathers: ShotGathers,
        source: Source,
        t_max: float,
        physics: PhysicsOptions,
    ) -> Formulation:
        """The formulation of an inversion from ``start`` ``[nz, nx]`` (m/s) of the
        observed ``gathers`` fired with ``source``, over ``[0, t_max]`` (s)."""
        raise NotImplementedError

    @classmethod
    def sizing(cls, start: VelocityModel, gathers: ShotGathers, source: Source) -> Formulation:
        """A stand-in with the same per-point cost, made without any simulation: the
        memory of a step is measured on it before the run starts."""
        raise NotImplementedError

    @classmethod
    def stored_bytes(
        cls, n_shots: int, n_times: int, start: VelocityModel, physics: PhysicsOptions
    ) -> dict[str, float]:
        """Bytes it holds whatever the batch, by part (see :mod:`seispinn.memory`)."""
        return {}


class TotalField(Formulation):
    """The network is the whole wavefield: ``r = u_tt − c²(∇²u − s)``, s the source
    term of each point's shot (:func:`gaussian_source_density`).

    Args:
        source_x, source_z: ``[shot]`` source positions (m).
        source: the wavelet and spread every shot fires.
    """

    name = "total"

    def __init__(self, source_x: list[float], source_z: list[float], source: Source) -> None:
        super().__init__()
        self.source = source
        self.register_buffer("source_x", torch.tensor(source_x, dtype=torch.float32))
        self.register_buffer("source_z", torch.tensor(source_z, dtype=torch.float32))

    def source_density(self, points: Tensor, shot: Tensor) -> Tensor:
        """s ``[N]`` at points ``[N, 3]`` of shots ``[N]``."""
        return gaussian_source_density(
            points, self.source_x[shot], self.source_z[shot], self.source
        )

    def residual(self, der: WaveDerivatives, c: Tensor, points: Tensor, shot: Tensor) -> Tensor:
        return wave_residual(der.u_tt, der.laplacian, c, self.source_density(points, shot))

    @classmethod
    def for_inversion(cls, start, gathers, source, t_max, physics) -> TotalField:
        return cls(gathers.source_x.tolist(), gathers.source_z.tolist(), source)

    @classmethod
    def sizing(cls, start, gathers, source) -> TotalField:
        return cls(gathers.source_x.tolist(), gathers.source_z.tolist(), source)


class ScatteredField(Formulation):
    """The network is δu = u − u0 on a finite-difference background u0:
    ``r = δu_tt − c²∇²δu − (c²/c0² − 1)·u0_tt``. At c = c0, δu = 0 solves it, so
    step 0 is the starting model's prediction exactly.

    Args:
        background: u0_tt of every shot and c0 (:class:`Background`).
        fixed_traces: u0 at the observed receivers ``[shot, receiver, time]``.
    """

    name = "scattered"
    zero_start = True
    has_wavefronts = True

    def __init__(self, background: Background, fixed_traces: np.ndarray | None = None) -> None:
        super().__init__()
        self.background = background
        self.fixed_traces = fixed_traces

    def residual(self, der: WaveDerivatives, c: Tensor, points: Tensor, shot: Tensor) -> Tensor:
        bg = self.background
        return scattered_residual(der.u_tt, der.laplacian, c, bg.c0(points), bg.u0_tt(points, shot))

    def wavefront_energy(self, shot: int) -> Tensor:
        return self.background.u_tt[shot]

    def wavefront_grid(self) -> tuple[float, float, float, float, float]:
        bg = self.background
        return bg.x0, bg.z0, bg.dx, bg.dz, bg.dt

    @classmethod
    def for_inversion(cls, start, gathers, source, t_max, physics) -> ScatteredField:
        background, d0 = background_wavefield(
            start, gathers, source, t_max, physics.background_stride
        )
        return cls(background, d0)

    @classmethod
    def sizing(cls, start, gathers, source) -> ScatteredField:
        # Two time samples of zeros: the interpolation per point costs what a full
        # background's does.
        zeros = np.zeros((gathers.n_shots, 2, start.nz, start.nx), dtype=np.float32)
        return cls(Background(start, zeros, gathers.dt))

    @classmethod
    def stored_bytes(cls, n_shots, n_times, start, physics) -> dict[str, float]:
        # u0_tt of every shot on the grid (float32), built from snapshots of that size.
        frames = n_shots * n_times * start.nz * start.nx * 4
        return {"background": frames * (1 + 1 / physics.background_stride)}


#: Formulation name -> class: the one list (configs, ``seispinn compare --formulations``).
FORMULATIONS: dict[str, type[Formulation]] = {cls.name: cls for cls in (TotalField, ScatteredField)}


@dataclass(frozen=True)
class PhysicsOptions:
    """How the PDE is posed (the ``[physics]`` section).

    Attributes:
        residual: ``'slowness'``: r divided by (c/c₀)², c₀ the reference velocity at
            the sources — the squared-slowness form m·u_tt − ∇²u, linear in m, whose
            source term does not scale with c; ``'velocity'``: r = u_tt − c²(∇²u − s);
            ``'symmetric'``: divided by c/c₀. Errors in the network's u_tt bias a
            least-squares c upward in the slowness form, errors in ∇²u bias it
            downward in the velocity form; with a fixed velocity the forms differ
            only in how points are weighted.
        formulation: a name in :data:`FORMULATIONS` (``'scattered'``, ``'total'``).
        edges: ``'absorbing'``: the first-order one-way condition u_t + c ∂u/∂n = 0
            (n the outward normal) on all four sides, so no energy enters the box
            (Clayton–Engquist); ``'open'``: no condition (waves may enter).
        edge_weight: the edge term's weight (its residual is in units of U/T).
        edge_points: edge points drawn afresh at every step (all four sides, by
            length; times uniform in the record).
        background_stride: a background is kept at every k-th sample of the
            finite-difference record.
        causal: the scattered field is held at zero before the direct wave could
            reach each point (:mod:`seispinn.pinn.gate`): no scattered energy before
            the wave that makes it.
        seed_steps: for this many steps at the start of each round the scattered
            field also fits the finite-difference reconstruction of the round's
            velocity (:mod:`seispinn.pinn.seeding`; ``[wri]`` penalty and CG
            iterations); 0: no seeding.
        rounds: outer rounds of an inversion: each starts from the previous round's
            velocity, with the formulation rebuilt in it (a scattered field's
            background recomputed) and fresh networks; ``[training]`` steps and
            frozen_until are per round. Like Gauss–Newton iterations: the scattered
            field of one round is nearly linear in its velocity change.
    """

    residual: str = "slowness"
    formulation: str = field(
        default="scattered", metadata={"choices": FORMULATIONS, "what": "formulation"}
    )
    edges: str = "absorbing"
    edge_weight: float = 1.0
    edge_points: int = 256
    background_stride: int = 1
    causal: bool = False
    seed_steps: int = 0
    rounds: int = 4

    def __post_init__(self) -> None:
        if self.residual not in RESIDUAL_FORMS:
            raise ValueError(f"residual must be one of {RESIDUAL_FORMS}, got {self.residual!r}")
        if self.formulation not in FORMULATIONS:
            raise ValueError(
                f"formulation must be one of {tuple(FORMULATIONS)}, got {self.formulation!r}"
            )
        if self.edges not in EDGES:
            raise ValueError(f"edges must be one of {EDGES}, got {self.edges!r}")
        if self.edge_weight < 0 or self.edge_points < 1 or self.background_stride < 1:
            raise ValueError("edge_weight >= 0, edge_points >= 1, background_stride >= 1")
        if self.seed_steps < 0:
            raise ValueError(f"seed_steps must be >= 0, got {self.seed_steps}")
        if self.rounds < 1:
            raise ValueError(f"rounds must be >= 1, got {self.rounds}")

    @property
    def formulation_class(self) -> type[Formulation]:
        return FORMULATIONS[self.formulation]


def check_formulation(name: str, where: str) -> type[Formulation]:
    """The class of formulation ``name``, or one line naming ``where`` it came from."""
    if name not in FORMULATIONS:
        raise ConfigError(f"{where}: unknown {name!r} (known: {', '.join(FORMULATIONS)})")
    return FORMULATIONS[name]


@torch.no_grad()
def implied_velocity(problem: WaveProblem, mask: Tensor | None = None) -> dict[str, float]:
    """The constant velocity (m/s) a total-field wavefield implies over the collocation
    points in ``mask`` ``[N]`` (all by default), by least squares in each residual
    form, with L = ∇²u − s: ``c² = Σ u_tt L / Σ L²`` (velocity form) and
    ``c² = Σ u_tt² / Σ u_tt L`` (slowness form). On a region of known velocity, a gap
    between the two, or to the truth, measures how far the wavefield is from letting
    the velocity move without bias."""
    formulation = problem.formulation
    if not isinstance(formulation, TotalField):
        raise ConfigError("implied_velocity needs the total-field formulation (u itself)")
    pts = problem.points.points
    assert problem.points.shot is not None
    shot = problem.points.shot
    if mask is not None:
        pts, shot = pts[mask], shot[mask]
    utt, lap = [], []
    for p_, s_ in zip(pts.split(8192), shot.split(8192), strict=True):
        with torch.enable_grad():
            der = problem.wavefield.derivatives(p_, s_)
        utt.append(der.u_tt.detach().double())
        lap.append((der.laplacian.detach() - formulation.source_density(p_, s_)).double())
    u, ell = torch.cat(utt), torch.cat(lap)
    cross = float((u * ell).sum())
    return {
        "velocity_form": float(np.sqrt(max(cross / float((ell * ell).sum()), 0.0))),
        "slowness_form": float(np.sqrt(max(float((u * u).sum()) / cross, 0.0)))
        if cross > 0
        else float("nan"),
    }
