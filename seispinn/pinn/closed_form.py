"""The velocity from the network's reconstructed wavefield, in closed form (the model
step of wavefield-reconstruction inversion, docs/method.md "Extended wavefield").

A scattered-field network trained with the velocity fixed is a reconstruction: δu fits
the data and the wave equation together, and its PDE residual is its extended source.
With u = u0 + δu and the residual R = m·u_tt − ∇²u + s = m·δu_tt − ∇²δu + (m − m0)·u0_tt,
the squared slowness that best explains the network's wavefield moves by

    δm(x) = Σ_shots Σ_t u_tt · e / Σ_shots Σ_t u_tt²,    e = ∇²δu − m0·δu_tt,

the same update :mod:`seispinn.modelling.wri` takes from Deepwave's reconstruction.
Its length is set by a backtracking line search on the finite-difference data misfit
of the candidate model, which is what keeps each round's update a descent.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from seispinn.inputs import InversionInputs
from seispinn.modelling.misfit import TraceMisfit
from seispinn.modelling.wri import SlownessModel, line_search
from seispinn.models import VelocityModel
from seispinn.pinn.formulations import ScatteredField
from seispinn.pinn.problem import WaveProblem

__all__ = ["NetworkFields", "network_extension", "ClosedFormUpdate"]


@dataclass
class NetworkFields:
    """A scattered-field network's wavefield on the background's grid, each
    ``[time, shot, nz, nx]``: the total field's u_tt, the extended source e (the
    network's PDE residual, in squared-slowness form) and δu; ``dt`` their step (s)."""

    u_tt: Tensor
    e: Tensor
    du: Tensor
    dt: float


@torch.no_grad()
def network_extension(problem: WaveProblem, stride: int = 4, chunk: int = 65536) -> NetworkFields:
    """The network's total-field u_tt and extended source e, both ``[time, shot, nz, nx]``
    on the background's grid at every ``stride``-th of its samples, and their time step
    (s): the scattered formulation's background supplies u0_tt; the network, δu_tt and
    ∇²δu. The update is a sum over time of a band-limited product: a few samples per
    period of the highest frequency carry it."""
    formulation = problem.formulation
    if not isinstance(formulation, ScatteredField):
        raise TypeError("a closed-form velocity needs the scattered formulation's background")
    bg = formulation.background
    n_shots, nt_all, nz, nx = bg.u_tt.shape
    steps = range(0, nt_all, stride)
    nt, dt = len(steps), bg.dt * stride
    dev = bg.u_tt.device
    zz, xx = torch.meshgrid(
        bg.z0 + bg.dz * torch.arange(nz, device=dev, dtype=torch.float32),
        bg.x0 + bg.dx * torch.arange(nx, device=dev, dtype=torch.float32),
        indexing="ij",
    )
    cells = torch.stack([xx.reshape(-1), zz.reshape(-1)], 1)
    m0 = 1.0 / problem.velocity(cells[:, 0], cells[:, 1]).double() ** 2
    u_tt = torch.empty(nt, n_shots, nz * nx, dtype=torch.float64, device=dev)
    e, du = torch.empty_like(u_tt), torch.empty_like(u_tt)
    for j, k in enumerate(steps):
        t = torch.full((len(cells), 1), k * bg.dt, device=dev)
        pts = torch.cat([cells, t], 1)
        for s in range(n_shots):
            shot = torch.full((len(cells),), s, dtype=torch.long, device=dev)
            parts = []
            for p_, sh in zip(pts.split(chunk), shot.split(chunk), strict=True):
                with torch.enable_grad():  # the jets need autograd's machinery only here
                    der = problem.wavefield.derivatives(p_, sh)
                parts.append(torch.stack([der.u, der.u_tt, der.laplacian]).detach().double())
            d, d_tt, d_lap = torch.cat(parts, 1)
            u_tt[j, s] = bg.u_tt[s, k].reshape(-1).double() + d_tt
            e[j, s] = d_lap - m0 * d_tt
            du[j, s] = d
    shape = (nt, n_shots, nz, nx)
    return NetworkFields(
        u_tt.reshape(shape).cpu(), e.reshape(shape).cpu(), du.reshape(shape).cpu(), float(dt)
    )


@dataclass
class ClosedFormUpdate:
    """The round-to-round velocity of a closed-form inversion: after each round's
    reconstruction, the closed-form direction from the network's wavefield, its length
    from a line search on the data misfit (the first trial moves the velocity by at
    most ``first_change``, later ones start at twice the last accepted length), each
    cell's change held to ``max_change``, bounded and masked as FWI's.

    Args:
        inputs: the inversion's inputs (data, start, source, the known water and range).
        use: ``[shot, receiver]`` bool, the receivers in the misfit.
        smoothing: Gaussian σ (m) of the update's numerator and denominator.
        stabilise: the denominator's damping, × its 95th percentile.
    """

    inputs: InversionInputs
    use: np.ndarray
    smoothing: float = 40.0
    stabilise: float = 0.05
    first_change: float = 0.02
    max_change: float = 0.1
    stride: int = 4
    edge_cells: int = 2
    history: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        i = self.inputs
        self.model = SlownessModel.around(
            i.start, i.gathers, i.prior, self.edge_cells, self.smoothing
        )
        self.misfit = TraceMisfit(i.gathers, i.start, i.source, use=self.use)
        self.current = self._misfit(self.model.m)[0]
        self.scale: float | None = None

    def _misfit(self, m: np.ndarray) -> tuple[float, None]:
        c = torch.from_numpy(1.0 / np.sqrt(m))
        with torch.no_grad():
            return float(self.misfit(c)), None

    def __call__(self, problem: WaveProblem) -> VelocityModel:
        """The next round's start velocity ``[nz, nx]`` (m/s) after ``problem``'s round."""
        f = network_extension(problem, self.stride)
        direction = self.model.direction(f.u_tt, f.e, f.dt, self.stabilise)
        if self.scale is None:
            self.scale = self.model.first_scale(direction, self.first_change)
        found = line_search(
            self.model, direction, self._misfit, self.current, self.scale, self.max_change
        )
        record = {"misfit_before": self.current, "accepted": found is not None}
        if found is not None:
            self.model.m, self.scale, self.current, _ = found
            record.update(misfit=self.current, step=self.scale)
            self.scale *= 2.0
        self.history.append(record)
        return dataclasses.replace(self.inputs.start, values=self.model.velocity.astype(np.float32))
