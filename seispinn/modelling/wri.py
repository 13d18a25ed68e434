"""Wavefield-reconstruction inversion (WRI) with Deepwave, in the data-space form of
the extended source (docs/method.md, "Extended wavefield").

For the current squared slowness m, the wavefield is reconstructed from the data and
the wave equation together: u = u0 + δu, u0 the wavefield of the source in m, and
δu the wavefield of an *extended source* e that the wave equation is allowed to miss
by. With F the map from e (a source density on every cell at every time) to the
receivers' band-limited traces, the reconstruction minimises
``‖F e − r‖² + λ‖e‖²`` with r = d − P u0 the data residual, so

    e = Fᵀ y,    (F Fᵀ + λ I) y = r

solved by conjugate gradients in data space (one Deepwave forward and one adjoint
per iteration; Fᵀ is the adjoint of Deepwave's own discrete operator, through
autograd). e is the deblurred data residual propagated backwards in time through the
whole model: it lies along the wave paths down to the scatterers, which is how
surface data reach depth. The model then follows the reconstructed wavefield in
closed form, cell by cell: the δm minimising the wave equation's residual of u is

    δm(x) = Σ_shots Σ_t u_tt · e / Σ_shots Σ_t u_tt²

(with Deepwave's convention m·u_tt − ∇²u = −s), smoothed, masked (edge frame, the
known water) and bounded. λ is a fraction ``penalty`` of F Fᵀ's largest eigenvalue,
estimated per band, so no value is tuned to a record; with ``multipliers`` the data
the extension fits accumulate the reconstruction's data residual after every update
(the augmented Lagrangian of IR-WRI, Aghamiry, Gholami & Operto 2019), so the
wavefield fits the data more closely as the model improves while λ stays fixed.
Bands run from low to high frequency as in :mod:`seispinn.modelling.fwi`.

In Python::

    from seispinn.modelling.wri import WRIOptions, wri
    result = wri(gathers, start, Source(40.0, 5.0, 0.24), options=WRIOptions(),
                 prior=ModelPrior(water_depth=45.0, water_velocity=1500.0))
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from seispinn.acquisition import Source
from seispinn.errors import ConfigError, ModelError
from seispinn.gathers import ShotGathers
from seispinn.memory import RUNTIME_BYTES, MemoryEstimate, check_fits
from seispinn.modelling.fwi import FWIOptions, FWIResult, at_bounds, smoother, update_mask
from seispinn.modelling.misfit import (
    band_corners,
    check_bands,
    lowpass,
    lowpass_operator,
    source_modelling,
)
from seispinn.modelling.simulate import (
    ModellingOptions,
    acquisition_from_gathers,
    modelling_device,
    receiver_cells,
    run_scalar,
    second_time_derivative,
    source_terms,
)
from seispinn.models import ModelPrior, VelocityModel

__all__ = [
    "WRIOptions",
    "ExtendedModelling",
    "SlownessModel",
    "conjugate_gradients",
    "largest_eigenvalue",
    "line_search",
    "wri",
    "wri_memory",
]


@dataclass(frozen=True)
class WRIOptions:
    """Wavefield-reconstruction inversion settings (the ``[wri]`` section).

    Attributes:
        frequencies, band_fractions, filter_order: the bands, as for FWI
            (:class:`seispinn.modelling.fwi.FWIOptions`).
        iterations: model updates per band.
        cg_iterations: conjugate-gradient iterations of each reconstruction.
        penalty: λ as a fraction of the largest eigenvalue of F Fᵀ (per band): small
            lets the extension fit the data closely, large makes each update a
            preconditioned FWI gradient step.
        multipliers: accumulate the reconstruction's data residual (augmented
            Lagrangian), so the data are fitted ever closer at a fixed λ. Off by
            default: with the step found by a line search on the data misfit the
            accumulated data pull the direction off descent and the bands end early
            (docs/fwi.md).
        first_change: the largest relative velocity change of a band's first trial
            step (the closed form's own length is far too short); later trials start
            at twice the last accepted step and halve until the misfit falls.
        max_change: the largest relative velocity change of one update.
        smoothing: Gaussian σ (m) of the update's numerator and denominator.
        stabilise: damping of the denominator, as a fraction of its 95th percentile.
        edge_cells: width of the frame of cells kept at the start's values.
        shots_per_batch: shots propagated together.
    """

    frequencies: tuple[float, ...] = ()
    band_fractions: tuple[float, ...] = (0.5, 0.75)
    filter_order: int = 4
    iterations: int = 10
    cg_iterations: int = 8
    penalty: float = 0.1
    multipliers: bool = False
    first_change: float = 0.02
    max_change: float = 0.1
    smoothing: float = 40.0
    stabilise: float = 0.05
    edge_cells: int = 2
    shots_per_batch: int = 8

    def __post_init__(self) -> None:
        check_bands(self.frequencies, self.band_fractions)
        if min(self.iterations, self.cg_iterations, self.filter_order, self.shots_per_batch) < 1:
            raise ValueError(
                "iterations, cg_iterations, filter_order and shots_per_batch must be >= 1"
            )
        if not (self.penalty > 0 and self.first_change > 0 and self.max_change > 0):
            raise ValueError("penalty, first_change and max_change must be > 0")
        if self.smoothing < 0 or self.stabilise < 0 or self.edge_cells < 0:
            raise ValueError("smoothing, stabilise and edge_cells must be >= 0")

    def stages(self, peak: float) -> tuple[float, ...]:
        """The low-pass corners (Hz) of the bands for a source of ``peak`` Hz."""
        return band_corners(self.frequencies, self.band_fractions, peak)


class ExtendedModelling:
    """The linear maps of one reconstruction: velocity ``c`` ``[nz, nx]`` (m/s) on
    ``grid``, the observed acquisition, one band.

    Every extended source lives on the grid: ``[shot, cell, time]`` with the cells in
    row-major order (z, then x), as Deepwave takes source amplitudes. Traces are
    ``[shot, receiver, time]``, low-passed by the band's filter and zero at receivers
    not in ``use``.
    """

    def __init__(
        self,
        grid: VelocityModel,
        velocity: np.ndarray,
        gathers: ShotGathers,
        source: Source,
        use: np.ndarray,
        corner: float,
        modelling: ModellingOptions | None = None,
        order: int = 4,
    ) -> None:
        self.grid, self.source = grid, source
        self.acq = acquisition_from_gathers(gathers, source)
        self.options = source_modelling(modelling, source)
        self.device = modelling_device(self.options)
        self.v = torch.as_tensor(velocity, dtype=torch.float64)
        self.shots = np.arange(gathers.n_shots)
        self.receivers = receiver_cells(grid, self.acq, self.shots)
        zz, xx = np.meshgrid(np.arange(grid.nz), np.arange(grid.nx), indexing="ij")
        cells = torch.from_numpy(np.stack([zz.ravel(), xx.ravel()], 1).astype(np.float64))
        self.cells = cells[None].expand(gathers.n_shots, -1, -1).contiguous()
        self.mask = torch.from_numpy((use & gathers.receiver_mask)[..., None].astype(np.float64))
        self.filter = lowpass_operator(gathers.nt, gathers.dt, corner, order)
        self.nt = gathers.nt

    def _run(
        self, amplitudes: Tensor, locations: Tensor, frames: list[Tensor] | None = None
    ) -> Tensor:
        """Band-limited, masked traces of sources ``amplitudes`` at ``locations``;
        with ``frames``, the wavefield of every time step is appended to it."""

        def grab(state) -> None:  # Deepwave's callback: the field at step n, time n·dt
            field = state.get_wavefield("wavefield_0", view="inner", mode="read")
            frames.append(field.detach().to("cpu", copy=True))

        traces = run_scalar(
            self.grid,
            self.v,
            self.acq.dt,
            self.acq.freq,
            amplitudes,
            locations,
            self.receivers,
            self.options,
            callback=grab if frames is not None else None,
            point_sources=self.options.source_sigma is None,
        ).to(torch.float64)
        if self.filter is not None:
            traces = traces @ self.filter.to(traces)
        return traces * self.mask.to(traces.device)

    def forward(self, e: Tensor) -> Tensor:
        """F e: traces of extended sources ``e`` ``[shot, cell, time]``."""
        with torch.no_grad():
            return self._run(e, self.cells).cpu()

    def adjoint(self, y: Tensor) -> Tensor:
        """Fᵀ y ``[shot, cell, time]`` of traces ``y``: Deepwave's discrete adjoint."""
        zero = torch.zeros(len(self.shots), self.cells.shape[1], self.nt, dtype=torch.float64)
        zero.requires_grad_(True)
        traces = self._run(zero, self.cells)
        (grad,) = torch.autograd.grad(traces, zero, grad_outputs=y.to(traces))
        return grad.detach().cpu()

    def gram(self, y: Tensor) -> Tensor:
        """F Fᵀ y: traces ``[shot, receiver, time]`` back-propagated and re-recorded."""
        return self.forward(self.adjoint(y))

    def reconstruct(self, residual: Tensor, penalty: float, iterations: int) -> Tensor:
        """The extended source e = Fᵀ y with (F Fᵀ + λ I) y = ``residual``."""
        y = conjugate_gradients(lambda p: self.gram(p) + penalty * p, residual, iterations)
        return self.adjoint(y)

    def background(self) -> tuple[Tensor, Tensor]:
        """The source's own traces ``[shot, receiver, time]`` and wavefield u0
        ``[time, shot, nz, nx]`` in this velocity."""
        amp, loc = source_terms(self.grid, self.acq, self.options, self.shots)
        frames: list[Tensor] = []
        with torch.no_grad():
            traces = self._run(amp, loc, frames).cpu()
        return traces, torch.stack(frames[: self.nt])

    def extended(self, e: Tensor) -> tuple[Tensor, Tensor]:
        """F e and the extension's wavefield δu ``[time, shot, nz, nx]``."""
        frames: list[Tensor] = []
        with torch.no_grad():
            traces = self._run(e, self.cells, frames).cpu()
        return traces, torch.stack(frames[: self.nt])


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-shot inner products ``[shot, 1, 1]`` of ``[shot, ...]`` tensors."""
    return (a * b).flatten(1).sum(1).view(-1, *([1] * (a.dim() - 1)))


def conjugate_gradients(apply: Callable[[Tensor], Tensor], rhs: Tensor, iterations: int) -> Tensor:
    """``x`` ``[shot, ...]`` with ``apply(x) ≈ rhs`` for a symmetric positive-definite
    map that acts on each shot separately (a CG per shot, run together)."""
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rr = _dot(r, r)
    for _ in range(iterations):
        ap = apply(p)
        alpha = rr / _dot(p, ap).clamp_min(1e-300)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = _dot(r, r)
        p = r + (rr_new / rr.clamp_min(1e-300)) * p
        rr = rr_new
    return x


def largest_eigenvalue(apply: Callable[[Tensor], Tensor], start: Tensor, n: int = 4) -> float:
    """The largest eigenvalue of a symmetric positive map, by ``n`` power iterations."""
    norm = float(start.norm())
    v = start / norm if norm > 0 else start
    value = 0.0
    for _ in range(n):
        w = apply(v)
        value = float((v * w).sum())
        norm = float(w.norm())
        if norm == 0:
            return 0.0
        v = w / norm
    return value


def wri_memory(gathers: ShotGathers, start: VelocityModel) -> MemoryEstimate:
    """Estimated peak memory of :func:`wri`: the extended source and its gradient
    (``[shot, cell, time]``, float64, three copies), the two wavefields kept over the
    record (u0 and δu, float32) and the traces."""
    n = gathers.n_shots * gathers.nt * start.nz * start.nx
    return MemoryEstimate(
        {
            "extended sources": 3 * 8 * n,
            "wavefields": 2 * 4 * n + 8 * n,
            "traces": gathers.data.size * 8 * 6,
            "torch runtime": RUNTIME_BYTES,
        },
        knobs=("the model size, the record length or the number of shots",),
    )


@dataclass
class SlownessModel:
    """A squared-slowness model (s²/m²) ``[nz, nx]`` under update, and what every update
    respects: per-cell velocity bounds (m/s; a start outside the range keeps its
    value), the update mask (edge frame, water) and the smoothing of the closed form.
    """

    m: np.ndarray
    floor: np.ndarray
    ceiling: np.ndarray
    mask: np.ndarray
    smooth: Callable[[Tensor], Tensor]

    @classmethod
    def around(
        cls,
        start: VelocityModel,
        gathers: ShotGathers,
        prior: ModelPrior,
        edge_cells: int,
        smoothing: float,
    ) -> SlownessModel:
        """The model at ``start`` (its water set), bounded by ``prior``'s range."""
        c0 = prior.applied(start).values.astype(np.float64)
        try:
            lo, hi = prior.bounds(start)
        except ModelError as exc:
            raise ConfigError(f"[data] {exc}") from None
        mask = update_mask(start, gathers, FWIOptions(edge_cells=edge_cells), prior.water_depth)
        return cls(
            1.0 / c0**2, np.minimum(c0, lo), np.maximum(c0, hi), mask, smoother(start, smoothing)
        )

    @property
    def velocity(self) -> np.ndarray:
        return 1.0 / np.sqrt(self.m)

    def direction(self, u_tt: Tensor, e: Tensor, dt: float, stabilise: float) -> np.ndarray:
        """The closed-form squared-slowness update ``[nz, nx]``: Σ u_tt·e / Σ u_tt² over
        shots and times, of a reconstructed wavefield's ``u_tt`` and its extended
        source ``e`` (both ``[time, shot, nz, nx]``, sampled every ``dt`` s), the
        numerator and denominator smoothed, the denominator damped by ``stabilise`` ×
        its 95th percentile, masked."""
        num = self.smooth((u_tt * e).sum((0, 1)) * dt)
        den = self.smooth((u_tt * u_tt).sum((0, 1)) * dt)
        free = self.mask > 0
        ref = float(np.quantile(den.numpy()[free], 0.95)) if free.any() else 1.0
        return (num / (den + stabilise * ref + 1e-300)).numpy() * self.mask

    def stepped(self, direction: np.ndarray, scale: float, max_change: float) -> np.ndarray:
        """The squared slowness after ``scale`` × ``direction``, each cell's velocity
        change held to ``max_change`` and the velocity to its bounds."""
        limit = 2 * max_change * self.m  # |δc/c| ≈ |δm / 2m|
        m = self.m + np.clip(scale * direction, -limit, limit)
        c = np.clip(1.0 / np.sqrt(np.maximum(m, 1e-30)), self.floor, self.ceiling)
        return 1.0 / c**2

    def first_scale(self, direction: np.ndarray, change: float) -> float:
        """The scale of ``direction`` whose largest relative velocity change is ``change``."""
        largest = float(np.abs(direction / (2 * self.m)).max())
        return change / largest if largest > 0 else 1.0


def line_search(
    model: SlownessModel,
    direction: np.ndarray,
    misfit: Callable[[np.ndarray], tuple[float, Any]],
    current: float,
    scale: float,
    max_change: float,
    trials: int = 10,
) -> tuple[np.ndarray, float, float, Any] | None:
    """Backtracking along ``direction`` from ``scale``: the first squared slowness whose
    ``misfit(m) -> (value, anything)`` is below ``current``, with its scale, value and
    the rest ``misfit`` returned; None when no trial of ``trials`` halvings lowers it."""
    for _ in range(trials):
        m = model.stepped(direction, scale, max_change)
        value, rest = misfit(m)
        if value < current:
            return m, scale, value, rest
        scale *= 0.5
    return None


def wri(
    gathers: ShotGathers,
    start: VelocityModel,
    source: Source,
    *,
    options: WRIOptions | None = None,
    use: np.ndarray | None = None,
    modelling: ModellingOptions | None = None,
    true: VelocityModel | None = None,
    progress: bool = True,
    prior: ModelPrior | None = None,
) -> FWIResult:
    """Invert ``gathers`` from ``start`` by wavefield-reconstruction inversion (module
    docstring); the arguments are :func:`seispinn.modelling.fwi.fwi`'s. The history
    has one record per update: the band, the model's data misfit before it
    (``misfit``, as FWI's), the reconstruction's (``reconstruction``) and λ."""
    options, prior = options or WRIOptions(), prior or ModelPrior()
    device = modelling_device(modelling or ModellingOptions())
    check_fits(wri_memory(gathers, start), device, "wavefield-reconstruction inversion")
    use = gathers.receiver_mask if use is None else (use & gathers.receiver_mask)
    state = SlownessModel.around(start, gathers, prior, options.edge_cells, options.smoothing)
    c0, t0 = state.velocity, time.perf_counter()
    result = FWIResult(start)
    for stage, corner in enumerate(options.stages(source.freq)):
        band = _Band(state, gathers, start, source, use, corner, options, modelling)
        band = _run_band(band, result, stage, t0)
        if true is not None:
            band["error"] = float(
                np.linalg.norm(state.velocity - true.values) / np.linalg.norm(true.values)
            )
        result.bands.append(band)
        if progress:
            a, b = band["misfit_start"], band["misfit_end"]
            tqdm.write(f"wri {corner:g} Hz: misfit {a:.3g} -> {b:.3g}")
    result.model = dataclasses.replace(
        start, values=state.velocity.astype(np.float32), source="wri"
    )
    result.seconds = time.perf_counter() - t0
    lo, hi = prior.bounds(start)
    result.bounds = (lo, hi)
    updated = state.mask > 0
    result.at_bounds = at_bounds(state.velocity[updated], c0[updated], lo, hi)
    return result


class _Band:
    """One band's reconstructions and updates: the band-limited observed traces,
    the data the extension fits (the multipliers), λ, and the current modelling."""

    def __init__(
        self,
        state: SlownessModel,
        gathers: ShotGathers,
        start: VelocityModel,
        source: Source,
        use: np.ndarray,
        corner: float,
        options: WRIOptions,
        modelling: ModellingOptions | None,
    ) -> None:
        self.state, self.gathers, self.start, self.source = state, gathers, start, source
        self.use, self.corner, self.options, self.modelling = use, corner, options, modelling
        observed = lowpass(gathers.data, gathers.dt, corner, options.filter_order)
        self.observed = torch.from_numpy(observed * use[..., None])
        self.norm = float((self.observed**2).sum()) or 1.0
        self.target = self.observed.clone()
        self.penalty: float | None = None

    def model(self, m: np.ndarray) -> tuple[ExtendedModelling, Tensor, Tensor, float]:
        """The modelling in squared slowness ``m``, its traces, wavefield and misfit."""
        ops = ExtendedModelling(
            self.start,
            1.0 / np.sqrt(m),
            self.gathers,
            self.source,
            self.use,
            self.corner,
            self.modelling,
            self.options.filter_order,
        )
        d0, u0 = ops.background()
        return ops, d0, u0, self.misfit(d0)

    def misfit(self, traces: Tensor) -> float:
        return 0.5 * float(((self.observed - traces) ** 2).sum()) / self.norm

    def reconstruct(self, ops: ExtendedModelling, d0: Tensor, u0: Tensor):
        """The extended source, the reconstructed wavefield u0 + δu and its misfit;
        with multipliers, the data the next reconstruction fits move by its residual."""
        residual = self.target - d0
        if self.penalty is None:
            self.penalty = self.options.penalty * largest_eigenvalue(ops.gram, residual)
        e = ops.reconstruct(residual, self.penalty, self.options.cg_iterations)
        fitted, du = ops.extended(e)
        predicted = d0 + fitted
        if self.options.multipliers:
            self.target = self.target + (self.observed - predicted)
        return e, u0.double() + du.double(), self.misfit(predicted)


def _run_band(band: _Band, result: FWIResult, stage: int, t0: float) -> dict[str, float]:
    """``options.iterations`` reconstructions and updates in one band. Each update
    moves along the closed-form direction by a step found by backtracking on the
    band's data misfit (the first trial twice the last accepted step): the closed
    form's own length, a pseudo-Hessian's, is far too short where the extension is
    spread along the wave paths. The band ends early when no step lowers the misfit."""
    state, options, dt, began = band.state, band.options, band.gathers.dt, time.perf_counter()
    ops, d0, u0, misfit = band.model(state.m)
    first, scale, done = misfit, None, 0
    for _ in range(options.iterations):
        e, u, reconstruction = band.reconstruct(ops, d0, u0)
        u_tt = torch.from_numpy(second_time_derivative(u.numpy(), dt))
        e = e.permute(2, 0, 1).reshape(u.shape)  # [shot, cell, time] -> [time, shot, nz, nx]
        direction = state.direction(u_tt, e, dt, options.stabilise)
        if result.first_direction is None:
            result.first_direction = -direction  # the velocity moves against δm
        if scale is None:
            scale = state.first_scale(direction, options.first_change)
        found = line_search(
            state, direction, lambda m: _modelled(band, m), misfit, scale, options.max_change
        )
        if found is None:
            break
        state.m, scale, misfit, (ops, d0, u0) = found
        done += 1
        result.history.append(
            {
                "stage": stage,
                "corner": band.corner,
                "misfit": misfit,
                "reconstruction": reconstruction,
                "penalty": band.penalty,
                "step": scale,
                "seconds": time.perf_counter() - t0,
                "accepted": True,
            }
        )
        scale *= 2.0
    return {
        "corner": band.corner,
        "misfit_start": first,
        "misfit_end": misfit,
        "iterations": done,
        "evaluations": len(result.history),
        "seconds": time.perf_counter() - began,
    }


def _modelled(band: _Band, m: np.ndarray) -> tuple[float, tuple]:
    """The misfit of squared slowness ``m`` and the modelling, traces and wavefield
    it was found with (reused by the next reconstruction)."""
    ops, d0, u0, misfit = band.model(m)
    return misfit, (ops, d0, u0)
