"""Conventional full-waveform inversion with Deepwave: the baseline a geophysicist
would otherwise run, on the same data and starting model as the PINN.

The velocity is bounded through ``c = c_min + (c_max − c_min)·sigmoid(p)`` and ``p``
is optimised (L-BFGS with a strong-Wolfe line search, or Adam) on the least-squares
trace misfit at the receivers that are not held out::

    J(c) = ½ Σ (d_syn(c) − d_obs)² / Σ d_obs²

with multiscale frequency continuation (Bunks et al. 1995): stage k low-passes the
observed and the synthetic traces with the same zero-phase Butterworth filter of
corner ``frequencies[k]``, applied as one linear operator on the time axis so that
both see the same edge effects and the true model's misfit is exactly zero in
every band. Low frequencies first keep the misfit from locking onto the wrong
cycle. The update is zero on the model's outermost ``edge_cells``: Deepwave
extends the edge cells into the absorbing layer, so their gradient gathers the
whole layer's and dwarfs the interior's.

In Python::

    from seispinn.modelling.fwi import FWIOptions, fwi
    result = fwi(gathers, start, Source(40.0, 5.0, 0.24), options=FWIOptions())
    write_velocity("fwi.sgy", result.model)
"""

from __future__ import annotations

import dataclasses
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
        frequencies: low-pass corner (Hz) of each stage, in order; 0 = the full band.
        iterations: optimiser iterations per stage (L-BFGS: line-search
            evaluations may add up to a quarter more propagations).
        optimizer: ``'lbfgs'`` or ``'adam'``.
        lr: Adam's learning rate in the sigmoid parameter (≈ a fraction of the
            bound interval per step); L-BFGS takes unit steps with its line search.
        c_min, c_max: velocity bounds (m/s); 0 takes 0.8 × the start's minimum and
            1.25 × its maximum.
        filter_order: Butterworth order (applied forward and backward).
        edge_cells: width of the frame of cells kept at the start's values.
        source_taper, receiver_taper: radii (m) of Gaussian tapers,
            ``1 − exp(−r²/2R²)``, on the update around each source and receiver,
            where the traces' sensitivity is singular (0: none).
        smoothing: Gaussian σ (m) of the update: the model changes by a smoothed
            field, ``c = bound(p₀ + mask · G_σ * q)``, so L-BFGS cannot put
            sub-wavelength spikes where the data barely constrain them (0: none).
        shots_per_batch: shots propagated together.
    """

    frequencies: tuple[float, ...] = (3.0, 4.5, 0.0)
    iterations: int = 15
    optimizer: str = "lbfgs"
    lr: float = 0.05
    c_min: float = 0.0
    c_max: float = 0.0
    filter_order: int = 4
    edge_cells: int = 2
    source_taper: float = 0.0
    receiver_taper: float = 0.0
    smoothing: float = 40.0
    shots_per_batch: int = 8

    def __post_init__(self) -> None:
        if self.optimizer not in ("lbfgs", "adam"):
            raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {self.optimizer!r}")
        if not self.frequencies or any(f < 0 for f in self.frequencies):
            raise ValueError("frequencies: give one or more corners >= 0 Hz (0: full band)")
        if self.iterations < 1 or self.filter_order < 1 or self.shots_per_batch < 1:
            raise ValueError("iterations, filter_order and shots_per_batch must be >= 1")
        if min(self.source_taper, self.receiver_taper, self.smoothing) < 0:
            raise ValueError("source_taper, receiver_taper and smoothing must be >= 0 m")
        if self.edge_cells < 0:
            raise ValueError(f"edge_cells must be >= 0, got {self.edge_cells}")
        if self.c_max and self.c_min >= self.c_max:
            raise ValueError(f"need c_min < c_max (got {self.c_min}, {self.c_max})")


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
        self.modelling = dataclasses.replace(
            modelling or ModellingOptions(), source_sigma=source.sigma
        )
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
    """The inverted model ``[nz, nx]`` (m/s) on the start's grid, one history record
    per misfit evaluation (``stage``, ``corner``, ``misfit``, ``seconds``), and the
    wall time (s)."""

    model: VelocityModel
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def _bounds(start: VelocityModel, options: FWIOptions) -> tuple[float, float]:
    lo = options.c_min or 0.8 * float(start.values.min())
    hi = options.c_max or 1.25 * float(start.values.max())
    if not (lo < float(start.values.min()) and float(start.values.max()) < hi):
        raise ConfigError(
            f"FWI: the starting model ({start.values.min():.0f}-{start.values.max():.0f} m/s) "
            f"must lie strictly inside the bounds ({lo:.0f}-{hi:.0f} m/s)"
        )
    return lo, hi


def update_mask(start: VelocityModel, gathers: ShotGathers, options: FWIOptions) -> np.ndarray:
    """``[nz, nx]`` multiplier in [0, 1] of the model update: zero on the edge frame,
    Gaussian-tapered around sources and receivers (see :class:`FWIOptions`)."""
    k = options.edge_cells
    mask = np.zeros(start.shape)
    mask[k : start.nz - k, k : start.nx - k] = 1.0
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
    (zero padding), or the identity for σ = 0."""
    if sigma <= 0:
        return lambda q: q
    kernels = []
    for h in (grid.dz, grid.dx):
        half = max(1, int(np.ceil(3 * sigma / h)))
        r = np.arange(-half, half + 1) * h
        k = np.exp(-0.5 * (r / sigma) ** 2)
        kernels.append(torch.tensor(k / k.sum(), dtype=torch.float32))
    kz, kx = kernels

    def smooth(q: Tensor) -> Tensor:
        out = torch.nn.functional.conv2d(
            q[None, None], kz.to(q)[None, None, :, None], padding="same"
        )
        out = torch.nn.functional.conv2d(out, kx.to(q)[None, None, None, :], padding="same")
        return out[0, 0]

    return smooth


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
    progress: bool = True,
) -> FWIResult:
    """Invert ``gathers`` from ``start`` by multiscale FWI; see the module docstring.

    Args:
        gathers: observed traces ``[shot, receiver, time]``.
        start: starting velocity ``[nz, nx]`` (m/s); also the output grid.
        source: the source the data were recorded with, as for the PINN.
        use: ``[shot, receiver]`` bool, receivers in the misfit (held-out ones False).
    """
    options = options or FWIOptions()
    device = modelling_device(modelling or ModellingOptions())
    estimate = fwi_memory(gathers, start, options, modelling)
    check_fits(estimate, device, "conventional FWI", show=progress)
    lo, hi = _bounds(start, options)
    frac = (torch.from_numpy(start.values).double() - lo) / (hi - lo)
    p0 = torch.logit(frac).float()
    free = torch.from_numpy(update_mask(start, gathers, options)).float()
    p = torch.zeros_like(p0, requires_grad=True)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()

    smooth = _gaussian_smoother(start, options.smoothing)

    def velocity() -> Tensor:
        return lo + (hi - lo) * torch.sigmoid(p0 + free * smooth(p))

    for stage, corner in enumerate(options.frequencies):
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
        label = f"fwi {corner:g} Hz" if corner else "fwi full band"
        with tqdm(total=options.iterations, desc=label, disable=not progress) as bar:
            for j in _optimise(lambda m=misfit: m.backward(velocity()), p, options):
                history.append(
                    {
                        "stage": stage,
                        "corner": corner,
                        "misfit": j,
                        "seconds": time.perf_counter() - t0,
                    }
                )
                bar.set_postfix(misfit=f"{j:.3g}")
                bar.update(1)
    values = velocity().detach().cpu().numpy()
    model = dataclasses.replace(start, values=values, source="fwi")
    return FWIResult(model, history, time.perf_counter() - t0)


def _optimise(objective: Callable[[], float], p: Tensor, options: FWIOptions) -> Iterator[float]:
    """Run one stage on ``p``, yielding the misfit of every evaluation; ``objective``
    returns the misfit after back-propagating it into ``p``'s gradient."""
    values: list[float] = []
    if options.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam([p], lr=options.lr)
    else:
        opt = torch.optim.LBFGS(
            [p],
            lr=1.0,
            max_iter=options.iterations,
            max_eval=int(1.25 * options.iterations) + 1,
            history_size=10,
            tolerance_grad=1e-12,
            tolerance_change=1e-12,
            line_search_fn="strong_wolfe",
        )

    def closure() -> Tensor:
        opt.zero_grad()
        j = objective()
        values.append(j)
        return torch.tensor(j)

    # L-BFGS runs all its iterations inside one step; Adam takes one per step.
    for _ in range(1 if options.optimizer == "lbfgs" else options.iterations):
        opt.step(closure)
        yield from values
        values.clear()
