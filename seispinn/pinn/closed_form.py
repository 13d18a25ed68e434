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
from seispinn.pinn.velocity import ClosedFormOptions

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
    most ``first_change``, later ones start at twice the last accepted change), each
    cell's change held to ``max_change``, bounded and masked as FWI's.

    Args:
        inputs: the inversion's inputs (data, start, source, the known water and range).
        use: ``[shot, receiver]`` bool, the receivers in the misfit.
        options: smoothing, damping and step lengths (``[velocity.closed_form]``).
        edge_cells: width of the frame of cells kept at the start's values.
    """

    inputs: InversionInputs
    use: np.ndarray
    options: ClosedFormOptions = field(default_factory=ClosedFormOptions)
    edge_cells: int = 2
    history: list[dict[str, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        i = self.inputs
        self.model = SlownessModel.around(
            i.start, i.gathers, i.prior, self.edge_cells, self.options.smoothing
        )
        self.misfit = TraceMisfit(i.gathers, i.start, i.source, use=self.use)
        self.current = self._misfit(self.model.m)[0]
        self.change: float | None = None  # the last accepted update's largest |δc/c|

    def _follow(self, problem: WaveProblem) -> None:
        """Start from the velocity the round held (a resumed run skips the updates of
        the rounds it finished, so the round's start is the one to trust)."""
        held = problem.velocity.values.double().cpu().numpy()  # a GridVelocity's [nz, nx]
        if not np.allclose(held, self.model.velocity, rtol=1e-6):
            self.model.m = 1.0 / held**2
            self.current = self._misfit(self.model.m)[0]

    def _misfit(self, m: np.ndarray) -> tuple[float, None]:
        c = torch.from_numpy(1.0 / np.sqrt(m))
        with torch.no_grad():
            return float(self.misfit(c)), None

    def __call__(self, problem: WaveProblem) -> VelocityModel:
        """The next round's start velocity ``[nz, nx]`` (m/s) after ``problem``'s round.

        The trial length is set in velocity, not in units of the direction: a
        network's extended source changes its size from round to round as its fit
        does, so the first trial moves the largest cell by twice the last accepted
        change (``first_change`` the first time), at most ``max_change``."""
        self._follow(problem)
        o = self.options
        f = network_extension(problem, o.stride)
        direction = self.model.direction(f.u_tt, f.e, f.dt, o.stabilise)
        change = o.first_change if self.change is None else 2.0 * self.change
        change = min(change, o.max_change)
        scale = self.model.first_scale(direction, change)
        found = line_search(self.model, direction, self._misfit, self.current, scale, o.max_change)
        record = {"misfit_before": self.current, "accepted": found is not None}
        if found is not None:
            self.model.m, accepted, self.current, _ = found
            self.change = change * accepted / scale
            record.update(misfit=self.current, change=self.change)
        self.history.append(record)
        return dataclasses.replace(self.inputs.start, values=self.model.velocity.astype(np.float32))
