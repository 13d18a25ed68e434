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

Each stage runs preconditioned L-BFGS on the velocity itself (m/s), clipped to
``[c_min, c_max]``: the gradient is multiplied by ``M = D·S·D``, with ``D`` the
inverse square root of the source-side wavefield energy in the start (the
pseudo-Hessian's diagonal, Shin et al. 2001: it undoes the gradient's decay with
depth and its spike at the sources) times the update mask (a frozen frame of
``edge_cells``, whose Deepwave gradient collects the absorbing layer's; a fixed
water layer; optional tapers around sources and receivers), and ``S`` a Gaussian
smoothing. A backtracking Armijo line search accepts only a misfit decrease, so
no band ends worse than it began; the first trial step of a band changes the
velocity by at most ``first_step`` m/s.

In Python::

    from seispinn.modelling.fwi import FWIOptions, fwi
    result = fwi(gathers, start, Source(40.0, 5.0, 0.24), options=FWIOptions())
    write_velocity("fwi.sgy", result.model)
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import deepwave
import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt
from torch import Tensor
from tqdm import tqdm

from seispinn.acquisition import Acquisition, Source
from seispinn.errors import ConfigError
from seispinn.gathers import ShotGathers
from seispinn.memory import RUNTIME_BYTES, MemoryEstimate, check_fits
from seispinn.modelling.illumination import wavefield_energy
from seispinn.modelling.simulate import ModellingOptions, modelling_device, propagate
from seispinn.models import VelocityModel

__all__ = [
    "FWIOptions",
    "FWIResult",
    "TraceMisfit",
    "acquisition_from_gathers",
    "lowpass",
    "lowpass_operator",
    "update_mask",
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
        c_min, c_max: velocity bounds (m/s); 0 takes 0.9 × the start's minimum
            and 1.1 × its maximum. Give the expected range where it is known.
        water_depth: cells shallower than this (m) keep the start's values (or
            ``water_velocity``): a known water layer is not inverted.
        water_velocity: velocity (m/s) put in the water layer; 0: the start's.
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
    c_min: float = 0.0
    c_max: float = 0.0
    water_depth: float = 0.0
    water_velocity: float = 0.0
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
        if any(f < 0 for f in self.frequencies):
            raise ValueError("frequencies: corners must be >= 0 Hz (0: full band)")
        if any(not 0 < f < 1 for f in self.band_fractions):
            raise ValueError("band_fractions must lie in (0, 1)")
        if self.iterations < 1 or self.filter_order < 1 or self.shots_per_batch < 1:
            raise ValueError("iterations, filter_order and shots_per_batch must be >= 1")
        nonneg = (
            "source_taper",
            "receiver_taper",
            "smoothing",
            "smoothness",
            "first_step",
            "stabilise",
            "water_depth",
            "water_velocity",
            "lr",
        )
        for name in nonneg:
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.edge_cells < 0:
            raise ValueError(f"edge_cells must be >= 0, got {self.edge_cells}")
        if self.c_max and self.c_min >= self.c_max:
            raise ValueError(f"need c_min < c_max (got {self.c_min}, {self.c_max})")

    def stages(self, peak: float) -> tuple[float, ...]:
        """The low-pass corners (Hz) of the stages for a source of ``peak`` Hz."""
        if self.frequencies:
            return tuple(self.frequencies)
        return tuple(round(f * peak, 3) for f in self.band_fractions) + (0.0,)


def acquisition_from_gathers(gathers: ShotGathers, source: Source) -> Acquisition:
    """The acquisition that recorded ``gathers`` with ``source`` (its Ricker's peak
    frequency and delay; the spread σ goes to the modelling). Padded receivers (NaN
    positions) are put on the shot's first receiver; callers mask them out with
    ``gathers.receiver_mask``."""
    rx, rz = gathers.receiver_x.copy(), gathers.receiver_z.copy()
    pad = ~gathers.receiver_mask
    rx[pad] = np.broadcast_to(rx[:, :1], rx.shape)[pad]
    rz[pad] = np.broadcast_to(rz[:, :1], rz.shape)[pad]
    return Acquisition(
        gathers.source_x,
        gathers.source_z,
        rx,
        rz,
        gathers.dt,
        gathers.nt,
        source.freq,
        source.delay,
    )


def lowpass(traces: np.ndarray, dt: float, corner: float, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth low-pass of ``traces`` ``[..., time]`` (dt in s, corner
    in Hz); ``corner`` 0 or at/above Nyquist returns the traces unchanged."""
    nyquist = 0.5 / dt
    if corner <= 0 or corner >= nyquist:
        return np.asarray(traces, dtype=np.float64)
    sos = butter(order, corner, btype="low", fs=1.0 / dt, output="sos")
    return np.ascontiguousarray(sosfiltfilt(sos, np.asarray(traces, np.float64), axis=-1))


def lowpass_operator(nt: int, dt: float, corner: float, order: int = 4) -> Tensor | None:
    """``[nt, nt]`` matrix F with ``lowpass(d) = d @ F`` for traces ``[..., nt]``
    (None for the full band): the filter as a differentiable linear map."""
    if corner <= 0 or corner >= 0.5 / dt:
        return None
    return torch.from_numpy(lowpass(np.eye(nt), dt, corner, order))


class TraceMisfit:
    """``J(c) = ½ Σ_used (d_syn(c) − d_obs)² / Σ_used d_obs²`` for one frequency band.

    Args:
        gathers: observed traces ``[shot, receiver, time]``.
        grid: the model grid (spacing, origin) the velocity lives on.
        source: the source the data were recorded with (σ, peak frequency, delay).
        use: ``[shot, receiver]`` bool, the receivers in the misfit (default: all real).
        corner: low-pass corner (Hz) applied to the observed traces and the wavelet.
        modelling: finite-difference settings (``source_sigma`` is set from the source).
    """

    def __init__(
        self,
        gathers: ShotGathers,
        grid: VelocityModel,
        source: Source,
        *,
        use: np.ndarray | None = None,
        corner: float = 0.0,
        modelling: ModellingOptions | None = None,
        order: int = 4,
        shots_per_batch: int = 8,
    ) -> None:
        self.grid = grid
        self.acq = acquisition_from_gathers(gathers, source)
        self.modelling = _modelling(modelling, source)
        use = gathers.receiver_mask if use is None else (use & gathers.receiver_mask)
        self.use = torch.from_numpy(np.asarray(use, dtype=bool))
        self.filter = lowpass_operator(gathers.nt, gathers.dt, corner, order)
        obs = lowpass(gathers.data, gathers.dt, corner, order)
        self.observed = torch.from_numpy(obs)
        self.norm = float((obs[np.asarray(use)] ** 2).sum()) or 1.0
        self.batches = [
            np.arange(s, min(s + shots_per_batch, gathers.n_shots))
            for s in range(0, gathers.n_shots, shots_per_batch)
        ]

    def synthetic(self, velocity: Tensor, shots: np.ndarray) -> Tensor:
        """Band-limited synthetic traces ``[shot, receiver, time]`` of ``shots``."""
        syn = propagate(self.grid, self.acq, self.modelling, shots, velocity=velocity)
        return syn if self.filter is None else syn @ self.filter.to(syn)

    def batch(self, velocity: Tensor, shots: np.ndarray) -> Tensor:
        """The misfit of ``shots`` alone (its share of :meth:`__call__`)."""
        syn = self.synthetic(velocity, shots)
        obs = self.observed[shots].to(syn)
        mask = self.use[shots].to(syn.device)
        return 0.5 * ((syn - obs)[mask] ** 2).sum() / self.norm

    def __call__(self, velocity: Tensor) -> Tensor:
        """The misfit (a scalar tensor, differentiable in ``velocity`` ``[nz, nx]`` m/s)."""
        return sum((self.batch(velocity, shots) for shots in self.batches), velocity.new_zeros(()))

    def backward(self, velocity: Tensor) -> float:
        """The misfit, back-propagated into ``velocity``'s graph one shot batch at a
        time: only one batch's wavefield history (Deepwave's storage for the
        gradient) is alive at once, so ``shots_per_batch`` bounds the memory."""
        leaf = velocity.detach().requires_grad_(True)
        total = 0.0
        for shots in self.batches:
            j = self.batch(leaf, shots)
            j.backward()
            total += float(j.detach())
        velocity.backward(leaf.grad)
        return total


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


def _bounds(start: VelocityModel, options: FWIOptions, fixed: np.ndarray) -> tuple[float, float]:
    free = start.values[~fixed] if (~fixed).any() else start.values
    lo = options.c_min or 0.9 * float(free.min())
    hi = options.c_max or 1.1 * float(free.max())
    if not (lo <= float(free.min()) and float(free.max()) <= hi):
        raise ConfigError(
            f"[fwi] c_min/c_max: the starting model ({free.min():.0f}-{free.max():.0f} m/s) "
            f"must lie inside the bounds ({lo:.0f}-{hi:.0f} m/s)"
        )
    return lo, hi


def update_mask(start: VelocityModel, gathers: ShotGathers, options: FWIOptions) -> np.ndarray:
    """``[nz, nx]`` multiplier in [0, 1] of the model update: zero on the edge frame
    and in the water layer, Gaussian-tapered around sources and receivers (see
    :class:`FWIOptions`)."""
    k = options.edge_cells
    mask = np.zeros(start.shape)
    mask[k : start.nz - k, k : start.nx - k] = 1.0
    mask[start.z < options.water_depth] = 0.0
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


def _gaussian_smoother(grid: VelocityModel, sigma: float) -> Callable[[Tensor], Tensor]:
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
) -> Callable[[Tensor], Tensor]:
    """The symmetric positive semi-definite map ``M g = D · S(D · g)`` applied to
    gradients ``[nz, nx]``: ``S`` the Gaussian smoothing, ``D = mask / √(E + εE₉₅)``
    with ``E`` the source-side wavefield energy in the start (the pseudo-Hessian's
    diagonal, Shin et al. 2001) and ``mask`` :func:`update_mask`. Dividing by the
    energy undoes the gradient's decay with depth and its spike at the sources;
    the square root on both sides keeps M symmetric, as L-BFGS needs."""
    mask = update_mask(start, gathers, options)
    scale = np.ones(start.shape)
    if options.precondition == "illumination":
        acq = acquisition_from_gathers(gathers, source)
        energy = wavefield_energy(start, acq, _modelling(modelling, source))
        ref = float(np.quantile(energy[mask > 0], 0.95)) if (mask > 0).any() else 1.0
        scale = 1.0 / np.sqrt(energy + options.stabilise * ref + 1e-30)
        scale /= float(np.quantile(scale[mask > 0], 0.5)) if (mask > 0).any() else 1.0
    d = torch.from_numpy(mask * scale)
    smooth = _gaussian_smoother(start, options.smoothing)
    return lambda g: d * smooth(d * g)


def _modelling(modelling: ModellingOptions | None, source: Source) -> ModellingOptions:
    """The modelling options with the source's spread (σ = 0: a point source)."""
    return dataclasses.replace(modelling or ModellingOptions(), source_sigma=source.sigma or None)


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
) -> FWIResult:
    """Invert ``gathers`` from ``start`` by multiscale FWI; see the module docstring.

    Args:
        gathers: observed traces ``[shot, receiver, time]``.
        start: starting velocity ``[nz, nx]`` (m/s); also the output grid.
        source: the source the data were recorded with, as for the PINN
            (``sigma = 0``: a point source).
        use: ``[shot, receiver]`` bool, receivers in the misfit (held-out ones False).
        true: the true model, only to report each stage's velocity error.
    """
    options = options or FWIOptions()
    device = modelling_device(modelling or ModellingOptions())
    estimate = fwi_memory(gathers, start, options, modelling)
    check_fits(estimate, device, "conventional FWI", show=progress)
    c0 = start.values.astype(np.float64).copy()
    water = np.broadcast_to((start.z < options.water_depth)[:, None], start.shape)
    if options.water_velocity:
        c0[water] = options.water_velocity
    lo, hi = _bounds(start, options, water)
    precond = preconditioner(start, gathers, source, options, modelling)
    penalty = _roughness(start, options.smoothness) if options.smoothness else None
    run = _Run(torch.from_numpy(c0), lo, hi, precond, time.perf_counter())
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

        def evaluate(c: Tensor, m: TraceMisfit = misfit) -> tuple[float, Tensor]:
            leaf = c.detach().clone().requires_grad_(True)
            j = m.backward(leaf)
            if penalty is not None:
                p = penalty(leaf)
                p.backward()
                j += float(p)
            return j, leaf.grad.detach()

        label = f"fwi {corner:g} Hz" if corner else "fwi full band"
        done = len(result.history)
        with tqdm(total=options.iterations, desc=label, disable=not progress) as bar:
            for record in _STAGES[options.optimizer](run, evaluate, options, first):
                result.history.append({"stage": stage, "corner": corner, **record})
                if record["accepted"]:
                    bar.set_postfix(misfit=f"{record['misfit']:.3g}")
                    bar.update(1)
        records = result.history[done:]
        accepted = [r for r in records if r["accepted"]]
        band = {
            "corner": corner,
            "misfit_start": records[0]["misfit"],
            "misfit_end": accepted[-1]["misfit"],
            "iterations": len(accepted) - 1,
            "evaluations": len(records),
            "seconds": records[-1]["seconds"] - (records[0]["seconds"] if done else 0.0),
        }
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
    updated = update_mask(start, gathers, options) > 0
    c, tol = run.c.numpy()[updated], 1e-4 * hi
    moved = np.abs(c - c0[updated]) > tol  # a start on a bound that never moved is no cap
    on = moved & ((c <= lo + tol) | (c >= hi - tol))
    result.at_bounds = float(on.mean()) if c.size else 0.0
    return result


@dataclass
class _Run:
    """The state carried across stages: the velocity (float64, m/s), its bounds,
    the preconditioner, the clock, and the first gradient for the report."""

    c: Tensor
    lo: float
    hi: float
    precond: Callable[[Tensor], Tensor]
    t0: float
    first_gradient: np.ndarray | None = None
    first_direction: np.ndarray | None = None

    def record(self, j: float, accepted: bool) -> dict[str, float]:
        return {"misfit": j, "seconds": time.perf_counter() - self.t0, "accepted": accepted}

    def clip(self, c: Tensor) -> Tensor:
        return c.clamp(self.lo, self.hi)

    def remember(self, g: Tensor, d: Tensor) -> None:
        if self.first_gradient is None:
            self.first_gradient = g.numpy().copy()
            self.first_direction = d.numpy().copy()


Evaluate = Callable[[Tensor], tuple[float, Tensor]]


def _lbfgs(
    run: _Run, evaluate: Evaluate, options: FWIOptions, first: float, memory: int = 5
) -> Iterator[dict[str, float]]:
    """Preconditioned L-BFGS (two-loop recursion with ``H₀ = γM``) and a backtracking
    Armijo line search on the bounded velocity: every accepted step lowers the
    misfit; the stage ends early when no step along the direction does.
    ``memory = 0`` is preconditioned steepest descent with the same line search."""
    j, g = evaluate(run.c)
    yield run.record(j, True)
    pairs: list[tuple[Tensor, Tensor, float]] = []
    gamma = None
    for _ in range(options.iterations):
        d = -_two_loop(g, pairs, run.precond, gamma)
        slope = float((g * d).sum())
        if slope >= 0:  # not a descent direction: drop the curvature pairs
            pairs.clear()
            d, gamma = -run.precond(g), None
            slope = float((g * d).sum())
        if slope >= 0 or not float(d.abs().max()) > 0:
            return
        run.remember(g, d)
        alpha = first / float(d.abs().max()) if gamma is None else 1.0
        for _try in range(6):
            c_new = run.clip(run.c + alpha * d)
            step = c_new - run.c
            j_new, g_new = evaluate(c_new)
            ok = j_new <= j + 1e-4 * float((g * step).sum())
            yield run.record(j_new, ok)
            if ok:
                break
            # The minimiser of the quadratic through J(0), J'(0) and J(α), kept in
            # [0.1α, 0.5α] as usual for backtracking.
            curv = j_new - j - alpha * slope
            a_q = -slope * alpha**2 / (2 * curv) if curv > 0 else 0.5 * alpha
            alpha = min(max(a_q, 0.1 * alpha), 0.5 * alpha)
        else:
            return
        s, y = step, g_new - g
        sy = float((s * y).sum())
        # Without curvature pairs (memory 0: steepest descent) gamma stays None and
        # every first trial is scaled to `first`.
        if memory and sy > 1e-12 * float((s * s).sum()) ** 0.5 * float((y * y).sum()) ** 0.5:
            pairs.append((s, y, 1.0 / sy))
            del pairs[:-memory]
            gamma = sy / float((y * run.precond(y)).sum())
        run.c, j, g = c_new, j_new, g_new


def _two_loop(
    g: Tensor, pairs: list[tuple[Tensor, Tensor, float]], precond: Callable, gamma: float | None
) -> Tensor:
    """``H g`` for the L-BFGS inverse-Hessian estimate with ``H₀ = γM`` (``M g``
    without pairs)."""
    q = g.clone()
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * float((s * q).sum())
        alphas.append(a)
        q -= a * y
    r = (gamma or 1.0) * precond(q)
    for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
        b = rho * float((y * r).sum())
        r += (a - b) * s
    return r


def _adam(
    run: _Run, evaluate: Evaluate, options: FWIOptions, first: float
) -> Iterator[dict[str, float]]:
    """Adam on the velocity (steps of about ``lr`` m/s), fed the preconditioned
    gradient; every step is taken, whatever the misfit does."""
    dc = torch.zeros_like(run.c, requires_grad=True)
    opt = torch.optim.Adam([dc], lr=options.lr)
    c_start = run.c.clone()
    for k in range(options.iterations + 1):
        c = run.clip(c_start + dc.detach())
        j, g = evaluate(c)
        yield run.record(j, True)
        run.c = c
        if k == options.iterations:
            return
        dc.grad = run.precond(g)
        run.remember(g, -dc.grad)
        opt.step()


OPTIMIZERS = ("lbfgs", "descent", "adam")
_STAGES = {"lbfgs": _lbfgs, "descent": functools.partial(_lbfgs, memory=0), "adam": _adam}
