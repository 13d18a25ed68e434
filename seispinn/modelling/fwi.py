"""Conventional full-waveform inversion with Deepwave: the baseline a geophysicist
would otherwise run, on the same data and starting model as the PINN.

The misfit is the least-squares trace misfit at the receivers that are not held out::

    J(c) = ½ Σ (d_syn(c) − d_obs)² / Σ d_obs²

minimised with multiscale frequency continuation (Bunks et al. 1995): stage k
low-passes the observed and the synthetic traces with the same zero-phase
Butterworth filter of corner ``stages[k]`` (by default half and three quarters of
the source's peak frequency, then the full band), applied as one linear operator
on the time axis so that both see the same edge effects and the true model's
misfit is exactly zero in every band.

Each stage runs preconditioned L-BFGS on the velocity itself (m/s), clipped to the
velocity range of a :class:`seispinn.models.ModelPrior`: the gradient is multiplied
by ``M = D·S·D``, with ``D`` the
inverse square root of the source-side wavefield energy in the start (the
pseudo-Hessian's diagonal, Shin et al. 2001: it undoes the gradient's decay with
depth and its spike at the sources) times the update mask (a frozen frame of
``edge_cells``, whose Deepwave gradient collects the absorbing layer's; the known
water layer; optional tapers around sources and receivers), and ``S`` a Gaussian
smoothing. A backtracking Armijo line search accepts only a misfit decrease, so
no band ends worse than it began; the first trial step of a band changes the
velocity by at most ``first_step`` m/s.

In Python::

    from seispinn.modelling.fwi import FWIOptions, fwi
    from seispinn.models import ModelPrior
    result = fwi(gathers, start, Source(40.0, 5.0, 0.24), options=FWIOptions(),
                 prior=ModelPrior(water_depth=45.0, water_velocity=1500.0))
    write_velocity("fwi.sgy", result.model)
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import deepwave
import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from seispinn.acquisition import Source
from seispinn.errors import ConfigError, ModelError
from seispinn.gathers import ShotGathers
from seispinn.memory import RUNTIME_BYTES, MemoryEstimate, check_fits
from seispinn.modelling.bounded import OPTIMIZERS, BoundedRun, minimise
from seispinn.modelling.illumination import wavefield_energy
from seispinn.modelling.misfit import TraceMisfit, band_corners, check_bands, source_modelling
from seispinn.modelling.simulate import (
    ModellingOptions,
    acquisition_from_gathers,
    modelling_device,
)
from seispinn.models import ModelPrior, VelocityModel

__all__ = [
    "FWIOptions",
    "FWIResult",
    "update_mask",
    "preconditioner",
    "smoother",
    "fwi",
    "fwi_memory",
]


@dataclass(frozen=True)
class FWIOptions:
    """Conventional FWI settings.

    Attributes:
        frequencies: low-pass corner (Hz) of each stage, in order; 0 = the full
            band; empty: ``band_fractions`` of the source's peak frequency.
        band_fractions: the automatic stages' corners as fractions of the peak
            frequency (the last stage is always the full band).
        iterations: optimiser iterations per stage.
        optimizer: ``'lbfgs'`` (preconditioned L-BFGS with a backtracking line
            search that accepts only a misfit decrease), ``'descent'`` (the same
            without curvature pairs: preconditioned steepest descent) or ``'adam'``.
        lr: Adam's step (m/s) per iteration.
        first_step: the first trial step's largest velocity change (m/s) in each
            stage; 0: 2 % of the start's median velocity.
        precondition: ``'illumination'`` divides the gradient by the source-side
            wavefield energy (the pseudo-Hessian's diagonal), ``'none'``.
        stabilise: damping of that division, as a fraction of the energy's 95th
            percentile over the free cells.
        filter_order: Butterworth order (applied forward and backward).
        edge_cells: width of the frame of cells kept at the start's values.
        source_taper, receiver_taper: radii (m) of Gaussian tapers,
            ``1 − exp(−r²/2R²)``, on the update around each source and receiver,
            where the traces' sensitivity is singular (0: none).
        smoothing: Gaussian σ (m) applied to the update direction, so the model
            changes by smooth fields the data constrain (0: none).
        smoothness: weight of ``½ Σ |∇(c − c₀)|² · h² / Σ c₀²``, a penalty on
            rough updates added to the misfit (0: none).
        shots_per_batch: shots propagated together.
    """

    frequencies: tuple[float, ...] = ()
    band_fractions: tuple[float, ...] = (0.5, 0.75)
    iterations: int = 15
    optimizer: str = "lbfgs"
    lr: float = 20.0
    first_step: float = 0.0
    precondition: str = "illumination"
    stabilise: float = 0.05
    filter_order: int = 4
    edge_cells: int = 2
    source_taper: float = 0.0
    receiver_taper: float = 0.0
    smoothing: float = 40.0
    smoothness: float = 0.0
    shots_per_batch: int = 8

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.precondition not in ("illumination", "none"):
            raise ValueError(
                f"precondition must be 'illumination' or 'none', got {self.precondition!r}"
            )
        check_bands(self.frequencies, self.band_fractions)
        if self.iterations < 1 or self.filter_order < 1 or self.shots_per_batch < 1:
            raise ValueError("iterations, filter_order and shots_per_batch must be >= 1")
        nonneg = (
            "source_taper",
            "receiver_taper",
            "smoothing",
            "smoothness",
            "first_step",
            "stabilise",
            "lr",
        )
        for name in nonneg:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.edge_cells < 0:
            raise ValueError(f"edge_cells must be >= 0, got {self.edge_cells}")

    def stages(self, peak: float) -> tuple[float, ...]:
        """The low-pass corners (Hz) of the stages for a source of ``peak`` Hz."""
        return band_corners(self.frequencies, self.band_fractions, peak)


@dataclass
class FWIResult:
    """The inverted model ``[nz, nx]`` (m/s) on the start's grid; one history record
    per misfit evaluation (``stage``, ``corner``, ``misfit``, ``seconds``,
    ``accepted``); one record per stage in ``bands`` (``corner``, misfit at its
    start and end, iterations, evaluations, seconds, ``error``: the velocity's
    relative L2 error at the stage's end when the truth was given); the first
    stage's first gradient ``[nz, nx]`` (misfit per m/s) and its preconditioned
    direction; the wall time (s); the velocity bounds (m/s) and the share of the
    cells it updates (outside the water, the edge frame and the tapers' zeros) that
    moved and ended on one of them (a large share says the bounds, not the data,
    shaped the model)."""

    model: VelocityModel
    history: list[dict[str, float]] = field(default_factory=list)
    bands: list[dict[str, float]] = field(default_factory=list)
    first_gradient: np.ndarray | None = None
    first_direction: np.ndarray | None = None
    seconds: float = 0.0
    bounds: tuple[float, float] = (0.0, float("inf"))
    at_bounds: float = 0.0


def update_mask(
    start: VelocityModel, gathers: ShotGathers, options: FWIOptions, water_depth: float = 0.0
) -> np.ndarray:
    """``[nz, nx]`` multiplier in [0, 1] of the model update: zero on the edge frame
    and in the water layer (above ``water_depth``, m), Gaussian-tapered around sources
    and receivers (see :class:`FWIOptions`)."""
    k = options.edge_cells
    mask = np.zeros(start.shape)
    mask[k : start.nz - k, k : start.nx - k] = 1.0
    mask[start.z < water_depth] = 0.0
    zz, xx = np.meshgrid(start.z, start.x, indexing="ij")
    real = gathers.receiver_mask
    receivers = set(
        zip(gathers.receiver_x[real].tolist(), gathers.receiver_z[real].tolist(), strict=True)
    )
    for radius, points in (
        (
            options.source_taper,
            zip(gathers.source_x.tolist(), gathers.source_z.tolist(), strict=True),
        ),
        (options.receiver_taper, receivers),
    ):
        if radius > 0:
            for x0, z0 in points:
                mask *= 1.0 - np.exp(-((xx - x0) ** 2 + (zz - z0) ** 2) / (2 * radius**2))
    return mask


def smoother(grid: VelocityModel, sigma: float) -> Callable[[Tensor], Tensor]:
    """A linear map ``[nz, nx] → [nz, nx]``: separable Gaussian smoothing of σ metres
    (zero padding, so symmetric), or the identity for σ = 0."""
    if sigma <= 0:
        return lambda q: q
    kernels = []
    for h in (grid.dz, grid.dx):
        half = max(1, int(np.ceil(3 * sigma / h)))
        r = np.arange(-half, half + 1) * h
        k = np.exp(-0.5 * (r / sigma) ** 2)
        kernels.append(torch.tensor(k / k.sum(), dtype=torch.float64))
    kz, kx = kernels

    def smooth(q: Tensor) -> Tensor:
        out = torch.nn.functional.conv2d(
            q[None, None], kz.to(q)[None, None, :, None], padding="same"
        )
        out = torch.nn.functional.conv2d(out, kx.to(q)[None, None, None, :], padding="same")
        return out[0, 0]

    return smooth


def preconditioner(
    start: VelocityModel,
    gathers: ShotGathers,
    source: Source,
    options: FWIOptions,
    modelling: ModellingOptions | None = None,
    water_depth: float = 0.0,
) -> Callable[[Tensor], Tensor]:
    """The symmetric positive semi-definite map ``M g = D · S(D · g)`` applied to
    gradients ``[nz, nx]``: ``S`` the Gaussian smoothing, ``D = mask / √(E + εE₉₅)``
    with ``E`` the source-side wavefield energy in the start (the pseudo-Hessian's
    diagonal, Shin et al. 2001) and ``mask`` :func:`update_mask`. Dividing by the
    energy undoes the gradient's decay with depth and its spike at the sources;
    the square root on both sides keeps M symmetric, as L-BFGS needs."""
    mask = update_mask(start, gathers, options, water_depth)
    scale = np.ones(start.shape)
    if options.precondition == "illumination":
        acq = acquisition_from_gathers(gathers, source)
        energy = wavefield_energy(start, acq, source_modelling(modelling, source))
        ref = float(np.quantile(energy[mask > 0], 0.95)) if (mask > 0).any() else 1.0
        scale = 1.0 / np.sqrt(energy + options.stabilise * ref + 1e-30)
        scale /= float(np.quantile(scale[mask > 0], 0.5)) if (mask > 0).any() else 1.0
    d = torch.from_numpy(mask * scale)
    smooth = smoother(start, options.smoothing)
    return lambda g: d * smooth(d * g)


def _roughness(start: VelocityModel, weight: float) -> Callable[[Tensor], Tensor]:
    """``½ w Σ |∇δc|² h² / Σ c₀²`` of the update ``δc``, in the misfit's units."""
    c0 = torch.from_numpy(start.values.astype(np.float64))
    norm = float((c0**2).sum())

    def penalty(c: Tensor) -> Tensor:
        dc = c - c0
        gz, gx = dc[1:] - dc[:-1], dc[:, 1:] - dc[:, :-1]
        return 0.5 * weight * ((gz**2).sum() + (gx**2).sum()) / norm

    return penalty


#: deepwave.estimate_memory is a lower bound by its own account. Measured here (CPU,
#: the shipped survey: 61 x 201 cells, 751 samples, accuracy 8, 40-cell PML), one
#: batch's peak is 2.0x (2 shots) to 2.24x (5 shots) its figure.
_DEEPWAVE_HEADROOM = 2.5


def fwi_memory(
    gathers: ShotGathers,
    start: VelocityModel,
    options: FWIOptions | None = None,
    modelling: ModellingOptions | None = None,
) -> MemoryEstimate:
    """Estimated peak memory of :func:`fwi`: Deepwave's own estimate of one batch of
    ``shots_per_batch`` shots with a velocity gradient (wavefield history, gradient
    scratch, wavefields) with headroom, plus the traces and the filter matrix."""
    options, modelling = options or FWIOptions(), modelling or ModellingOptions()
    device = modelling_device(modelling)
    shots = min(options.shots_per_batch, gathers.n_shots)
    dw = deepwave.estimate_memory(
        "scalar",
        start.values.shape,
        gathers.nt,
        shots,
        accuracy=modelling.accuracy,
        pml_width=modelling.pml_width,
        models_requiring_grad=["v"],
        device=str(device),
    )
    traces = gathers.data.size * 8 * 4  # observed, filtered, synthetic, residual (float64)
    return MemoryEstimate(
        {
            "propagation (Deepwave)": _DEEPWAVE_HEADROOM * dw["total_bytes_lower_bound"],
            "traces": traces,
            "low-pass matrix": gathers.nt**2 * 4,
            "torch runtime": RUNTIME_BYTES,
        },
        knobs=("[fwi] shots_per_batch", "the model size or the record length"),
    )


def fwi(
    gathers: ShotGathers,
    start: VelocityModel,
    source: Source,
    *,
    options: FWIOptions | None = None,
    use: np.ndarray | None = None,
    modelling: ModellingOptions | None = None,
    true: VelocityModel | None = None,
    progress: bool = True,
    prior: ModelPrior | None = None,
) -> FWIResult:
    """Invert ``gathers`` from ``start`` by multiscale FWI; see the module docstring.

    Args:
        gathers: observed traces ``[shot, receiver, time]``.
        start: starting velocity ``[nz, nx]`` (m/s); also the output grid.
        source: the source the data were recorded with, as for the PINN
            (``sigma = 0``: a point source).
        use: ``[shot, receiver]`` bool, receivers in the misfit (held-out ones False).
        true: the true model, only to report each stage's velocity error.
        prior: the known water layer (never updated) and the velocity range the
            model is clipped to (default: none, and the start's range ± 10 %).
    """
    options, prior = options or FWIOptions(), prior or ModelPrior()
    device = modelling_device(modelling or ModellingOptions())
    estimate = fwi_memory(gathers, start, options, modelling)
    check_fits(estimate, device, "conventional FWI", show=progress)
    c0 = prior.applied(start).values.astype(np.float64)
    try:
        lo, hi = prior.bounds(start)
    except ModelError as exc:
        raise ConfigError(f"[data] {exc}") from None
    precond = preconditioner(start, gathers, source, options, modelling, prior.water_depth)
    penalty = _roughness(start, options.smoothness) if options.smoothness else None
    # The range bounds the update: a start outside it (the water) stays where it is.
    floor, ceiling = torch.from_numpy(np.minimum(c0, lo)), torch.from_numpy(np.maximum(c0, hi))
    run = BoundedRun(torch.from_numpy(c0), floor, ceiling, precond, time.perf_counter())
    result = FWIResult(start)
    first = options.first_step or 0.02 * float(np.median(c0))
    for stage, corner in enumerate(options.stages(source.freq)):
        misfit = TraceMisfit(
            gathers,
            start,
            source,
            use=use,
            corner=corner,
            modelling=modelling,
            order=options.filter_order,
            shots_per_batch=options.shots_per_batch,
        )
        band = _band(
            run, _evaluator(misfit, penalty), options, first, stage, corner, result, progress
        )
        if true is not None:
            band["error"] = float(
                np.linalg.norm(run.c.numpy() - true.values) / np.linalg.norm(true.values)
            )
        result.bands.append(band)
        if result.first_gradient is None:
            result.first_gradient = run.first_gradient
            result.first_direction = run.first_direction
    result.model = dataclasses.replace(start, values=run.c.numpy().astype(np.float32), source="fwi")
    result.seconds = time.perf_counter() - run.t0
    result.bounds = (lo, hi)
    updated = update_mask(start, gathers, options, prior.water_depth) > 0
    result.at_bounds = at_bounds(run.c.numpy()[updated], c0[updated], lo, hi)
    return result


def at_bounds(c: np.ndarray, c0: np.ndarray, lo: float, hi: float) -> float:
    """The share of cells ``c`` (m/s) that moved from ``c0`` and ended on a bound (a
    start on a bound that never moved is no cap)."""
    tol = 1e-4 * hi
    moved = np.abs(c - c0) > tol
    on = moved & ((c <= lo + tol) | (c >= hi - tol))
    return float(on.mean()) if c.size else 0.0


def _evaluator(
    misfit: TraceMisfit, penalty: Callable[[Tensor], Tensor] | None
) -> Callable[[Tensor], tuple[float, Tensor]]:
    """``c -> (J, ∇J)``: the band's misfit (and the roughness penalty) and its gradient."""

    def evaluate(c: Tensor) -> tuple[float, Tensor]:
        leaf = c.detach().clone().requires_grad_(True)
        j = misfit.backward(leaf)
        if penalty is not None:
            p = penalty(leaf)
            p.backward()
            j += float(p)
        return j, leaf.grad.detach()

    return evaluate


def _band(
    run: BoundedRun,
    evaluate: Callable[[Tensor], tuple[float, Tensor]],
    options: FWIOptions,
    first: float,
    stage: int,
    corner: float,
    result: FWIResult,
    progress: bool,
) -> dict[str, float]:
    """Minimise one band's misfit from ``run``'s velocity; its records go to
    ``result.history``; returns the band's summary."""
    label = f"fwi {corner:g} Hz" if corner else "fwi full band"
    done = len(result.history)
    with tqdm(total=options.iterations, desc=label, disable=not progress) as bar:
        for record in minimise(options.optimizer, run, evaluate, options, first):
            result.history.append({"stage": stage, "corner": corner, **record})
            if record["accepted"]:
                bar.set_postfix(misfit=f"{record['misfit']:.3g}")
                bar.update(1)
    records = result.history[done:]
    accepted = [r for r in records if r["accepted"]]
    return {
        "corner": corner,
        "misfit_start": records[0]["misfit"],
        "misfit_end": accepted[-1]["misfit"],
        "iterations": len(accepted) - 1,
        "evaluations": len(records),
        "seconds": records[-1]["seconds"] - (records[0]["seconds"] if done else 0.0),
    }
