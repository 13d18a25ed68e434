"""Finite-difference forward modelling with Deepwave's scalar propagator.

The PDE is Deepwave's constant-density acoustic equation, with its sign and
source convention (docs/method.md)::

    ∇²u − u_tt / c² = s(x, z, t)

A Deepwave source cell of amplitude ``a(t)`` acts as a source density ``s = a``
on that cell, so a point source of strength ``f(t)`` (``s = f δ(x − x_s)``) is
injected as ``f / (Δx Δz)`` and a Gaussian-spread source ``s = f(t) g_σ(x − x_s)``
as ``a_i = f(t) g_σ(x_i)`` on the cells within 5σ. Either way the records do not
depend on the grid spacing, and a PINN using the same ``s`` sees the same physics.

Our arrays are ``[nz, nx]``; Deepwave's first model dimension is our z, so
locations are passed as ``(z / dz, x / dx)`` cell coordinates. Off-grid receiver
and point-source positions are interpolated by Deepwave (Hicks), never snapped.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from seispinn.acquisition import Acquisition, Source
from seispinn.errors import ModelError
from seispinn.gathers import ShotGathers
from seispinn.models import VelocityModel

if TYPE_CHECKING:
    import deepwave

__all__ = [
    "ModellingOptions",
    "modelling_device",
    "simulate",
    "acquisition_from_gathers",
    "predicted_gathers",
    "propagate",
    "run_scalar",
    "source_terms",
    "second_time_derivative",
    "receiver_cells",
    "wavefield_snapshots",
    "gaussian_source_weights",
    "Snapshots",
]


@dataclass(frozen=True)
class ModellingOptions:
    """Finite-difference settings.

    Attributes:
        source_sigma: width σ (m) of the Gaussian-spread source; ``None`` for a point source.
        free_surface: reflecting top boundary instead of an absorbing one. Deepwave
            puts the u = 0 plane one cell above the top row, at ``z0 − dz``.
        accuracy: spatial finite-difference order (2, 4, 6 or 8).
        pml_width: absorbing layer width in cells.
        device: torch device string; ``None`` picks CUDA when available.
        interpolation_halfwidth: half-width in cells of the Kaiser-windowed sinc
            (Hicks) that places off-node point sources and receivers. Deepwave's
            default 4 loses 0.7 % of an off-node receiver's amplitude (relative
            error 7e-3 against the analytic trace, 1.3e-2 with the source off-node
            too); 8 is as accurate as on-node points (docs/modelling.md).
    """

    source_sigma: float | None = None
    free_surface: bool = False
    accuracy: int = 8
    pml_width: int = 40
    device: str | None = None
    interpolation_halfwidth: int = 8

    def __post_init__(self) -> None:
        if self.accuracy not in (2, 4, 6, 8):
            raise ModelError(f"accuracy must be 2, 4, 6 or 8, got {self.accuracy}")
        if self.pml_width < 0:
            raise ModelError(f"pml_width must be >= 0 cells, got {self.pml_width}")
        if not 1 <= self.interpolation_halfwidth <= 10:
            raise ModelError(
                f"interpolation_halfwidth must be 1-10 cells, got {self.interpolation_halfwidth}"
            )
        if self.source_sigma is not None and not self.source_sigma > 0:
            raise ModelError(f"source_sigma must be positive (m), got {self.source_sigma}")


@dataclass(frozen=True)
class Snapshots:
    """Wavefield snapshots of one shot.

    Attributes:
        values: ``[time, nz, nx]`` wavefield u on the model grid.
        times: ``[time]`` snapshot times in seconds (multiples of the acquisition dt).
    """

    values: np.ndarray
    times: np.ndarray


def gaussian_source_weights(
    model: VelocityModel, x_s: float, z_s: float, sigma: float
) -> tuple[np.ndarray, np.ndarray]:
    """Cells and weights of a unit-mass Gaussian g_σ centred at ``(x_s, z_s)`` (m).

    Returns:
        ``(cells [n, 2] float (iz, ix), weights [n] in 1/m²)`` for the cells
        within 5σ; ``Σ weights · Δx Δz ≈ 1`` when the Gaussian is inside the model.
    """
    if sigma <= 0:
        raise ModelError(f"source_sigma must be positive, got {sigma} m")
    x, z = model.x, model.z
    ix = np.nonzero(np.abs(x - x_s) <= 5 * sigma)[0]
    iz = np.nonzero(np.abs(z - z_s) <= 5 * sigma)[0]
    if ix.size == 0 or iz.size == 0:
        raise ModelError(f"Gaussian source at x={x_s} m, z={z_s} m lies outside the model")
    zz, xx = np.meshgrid(iz, ix, indexing="ij")
    r2 = (x[xx] - x_s) ** 2 + (z[zz] - z_s) ** 2
    g = np.exp(-0.5 * r2 / sigma**2) / (2 * np.pi * sigma**2)
    keep = r2 <= (5 * sigma) ** 2
    cells = np.stack([zz[keep], xx[keep]], axis=-1).astype(np.float64)
    return cells, g[keep]


def modelling_device(options: ModellingOptions) -> torch.device:
    """The torch device Deepwave runs on: ``options.device``, else CUDA when available."""
    if options.device is not None:
        if options.device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(
                f"device {options.device!r} asked for, but no CUDA device is available"
            )
        return torch.device(options.device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# Within this many cells of a node, Deepwave takes a point as on the node.
_ON_NODE = 1e-5


def source_terms(
    model: VelocityModel,
    acq: Acquisition,
    options: ModellingOptions,
    shots: np.ndarray,
    wavelet: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Source amplitudes ``[shot, n_src, nt]`` and locations ``[shot, n_src, 2]``."""
    f = acq.wavelet() if wavelet is None else np.asarray(wavelet, dtype=np.float64)
    if options.source_sigma is None:
        loc = np.stack(
            [
                (acq.source_z[shots] - model.z0) / model.dz,
                (acq.source_x[shots] - model.x0) / model.dx,
            ],
            axis=-1,
        )[:, None, :]
        amp = np.tile(f / (model.dx * model.dz), (len(shots), 1, 1))
        return torch.from_numpy(amp), torch.from_numpy(loc)
    per_shot = [
        gaussian_source_weights(model, acq.source_x[s], acq.source_z[s], options.source_sigma)
        for s in shots
    ]
    n_src = max(len(w) for _, w in per_shot)
    amp = np.zeros((len(shots), n_src, acq.nt))
    loc = np.zeros((len(shots), n_src, 2))
    for k, (cells, w) in enumerate(per_shot):
        # A Gaussian clipped by the model's edge has fewer cells than the others;
        # Deepwave wants unique cells per shot, so pad with unused zero-amplitude cells.
        loc[k] = _padded_cells(cells, n_src, model.shape)
        amp[k, : len(w)] = w[:, None] * f[None, :]
    return torch.from_numpy(amp), torch.from_numpy(loc)


def _padded_cells(cells: np.ndarray, n: int, shape: tuple[int, int]) -> np.ndarray:
    """``cells`` ``[m, 2]`` followed by ``n − m`` distinct grid cells not among them."""
    if len(cells) == n:
        return cells
    used = {(int(a), int(b)) for a, b in cells}
    extra: list[tuple[int, int]] = []
    for flat in range(shape[0] * shape[1]):
        cell = divmod(flat, shape[1])
        if cell not in used:
            extra.append(cell)
            if len(extra) == n - len(cells):
                break
    return np.concatenate([cells, np.asarray(extra, dtype=np.float64)])


def receiver_cells(model: VelocityModel, acq: Acquisition, shots: np.ndarray) -> torch.Tensor:
    """Receiver positions of ``shots`` as grid coordinates ``[shot, receiver, 2]`` (z, x)."""
    loc = np.stack(
        [
            (acq.receiver_z[shots] - model.z0) / model.dz,
            (acq.receiver_x[shots] - model.x0) / model.dx,
        ],
        axis=-1,
    )
    return torch.from_numpy(loc)


def fitting_halfwidth(
    locations: list[torch.Tensor], shape: tuple[int, int], options: ModellingOptions
) -> int:
    """The largest interpolation half-width up to ``options.interpolation_halfwidth``
    whose windows around every off-node point (``[..., 2]`` grid coordinates, z then
    x) stay inside a model of ``shape`` (Deepwave refuses a window that reaches past
    an absorbing edge; a free surface folds it back). At least 1."""
    halfwidth = options.interpolation_halfwidth
    for dim, size in enumerate(shape):
        c = torch.cat([loc[..., dim].reshape(-1) for loc in locations]).double()
        cell = c[(c - c.round()).abs() >= _ON_NODE].floor()
        if cell.numel() == 0:
            continue
        if not (dim == 0 and options.free_surface):
            halfwidth = min(halfwidth, int(cell.min()) + 1)
        halfwidth = min(halfwidth, size - 1 - int(cell.max()))
    return max(halfwidth, 1)


def _propagate(
    model: VelocityModel,
    acq: Acquisition,
    options: ModellingOptions,
    shots: np.ndarray,
    callback: deepwave.Callback | None = None,
    nt: int | None = None,
) -> torch.Tensor:
    with torch.no_grad():
        return propagate(model, acq, options, shots, callback=callback, nt=nt)


def propagate(
    model: VelocityModel,
    acq: Acquisition,
    options: ModellingOptions,
    shots: np.ndarray,
    *,
    velocity: torch.Tensor | None = None,
    wavelet: np.ndarray | None = None,
    callback: deepwave.Callback | None = None,
    nt: int | None = None,
) -> torch.Tensor:
    """Receiver traces ``[shot, receiver, time]`` of ``shots`` (differentiable).

    Args:
        model: the grid (spacing, origin) and, unless ``velocity`` is given, the
            velocity ``[nz, nx]`` (m/s).
        velocity: a ``[nz, nx]`` tensor (m/s) used instead of ``model.values``;
            gradients flow to it (conventional FWI).
        wavelet: ``[nt]`` source signature replacing the acquisition's Ricker (a
            band-limited one in multiscale FWI).
        callback, nt: Deepwave forward callback (every step) and a shorter record.
    """
    acq.check_inside(model)
    amp, src_loc = source_terms(model, acq, options, shots, wavelet)
    rec_loc = receiver_cells(model, acq, shots)
    amp = amp[..., :nt] if nt else amp
    v = torch.from_numpy(model.values) if velocity is None else velocity
    return run_scalar(
        model,
        v,
        acq.dt,
        acq.freq,
        amp,
        src_loc,
        rec_loc,
        options,
        callback=callback,
        point_sources=options.source_sigma is None,
    )


def run_scalar(
    grid: VelocityModel,
    velocity: torch.Tensor,
    dt: float,
    freq: float,
    amplitudes: torch.Tensor,
    source_locations: torch.Tensor,
    receiver_locations: torch.Tensor,
    options: ModellingOptions,
    *,
    callback: deepwave.Callback | None = None,
    point_sources: bool = False,
) -> torch.Tensor:
    """Deepwave's scalar propagator on ``grid`` with ``velocity`` ``[nz, nx]`` (m/s),
    sources of ``amplitudes`` ``[shot, source, time]`` (a source density, see the module
    docstring) at ``source_locations`` ``[shot, source, 2]`` and receivers at
    ``receiver_locations`` ``[shot, receiver, 2]`` (grid coordinates, z then x; off-node
    receivers, and off-node sources when ``point_sources``, are placed by Hicks
    interpolation); returns the traces ``[shot, receiver, time]`` (differentiable in
    the velocity and the amplitudes). ``freq`` (Hz) tunes the absorbing layer."""
    # Imported here: loading Deepwave's kernels costs a second, and code that only
    # reads cached references (a PINN study on a machine without it) never needs it.
    import deepwave

    dev = modelling_device(options)
    points = [receiver_locations] + ([source_locations] if point_sources else [])
    halfwidth = fitting_halfwidth(points, grid.shape, options)
    v = velocity.to(dev)
    dtype = v.dtype if v.dtype == torch.float64 else torch.float32
    # Deepwave orders faces as [dim0 begin, dim0 end, dim1 begin, dim1 end]; dim0 is z.
    boundary = ["free" if options.free_surface else "pml"] + ["pml"] * 3
    pml = [0 if options.free_surface else options.pml_width] + [options.pml_width] * 3
    with warnings.catch_warnings():
        # Deepwave's notes on how 0.0.27 placed off-grid points: we never relied on that.
        warnings.simplefilter("ignore", deepwave.MigrationWarning)
        out = deepwave.scalar(
            v.to(dtype),
            [grid.dz, grid.dx],
            dt,
            source_amplitudes=amplitudes.to(dtype).to(dev),
            source_locations=source_locations.to(dev),
            receiver_locations=receiver_locations.to(dev),
            accuracy=options.accuracy,
            pml_width=pml,
            boundary=boundary,
            pml_freq=freq,
            forward_callback=callback,
            callback_frequency=1,
            location_interpolation_halfwidth=halfwidth,
        )
    return out[-1]


def simulate(
    model: VelocityModel,
    acquisition: Acquisition,
    options: ModellingOptions | None = None,
    *,
    shots_per_batch: int = 8,
) -> ShotGathers:
    """Synthetic shot gathers of ``acquisition`` over ``model``.

    Args:
        model: velocity ``[nz, nx]`` in m/s.
        acquisition: sources, receivers, wavelet, dt (s) and nt.
        options: finite-difference settings (absorbing boundaries by default).
        shots_per_batch: shots propagated together (memory vs speed).

    Returns:
        Gathers with data ``[shot, receiver, time]`` sampled at ``acquisition.dt``.
    """
    options = options or ModellingOptions()
    parts = []
    for start in range(0, acquisition.n_shots, shots_per_batch):
        shots = np.arange(start, min(start + shots_per_batch, acquisition.n_shots))
        parts.append(_propagate(model, acquisition, options, shots).cpu().numpy())
    return ShotGathers(
        data=np.concatenate(parts, axis=0),
        source_x=acquisition.source_x,
        source_z=acquisition.source_z,
        receiver_x=acquisition.receiver_x,
        receiver_z=acquisition.receiver_z,
        dt=acquisition.dt,
    )


def wavefield_snapshots(
    model: VelocityModel,
    acquisition: Acquisition,
    times: np.ndarray | list[float],
    options: ModellingOptions | None = None,
    *,
    shot: int = 0,
) -> Snapshots:
    """Wavefield u(x, z, t_k) of one shot on the model grid at the given times.

    Times (s) are rounded to the nearest multiple of ``acquisition.dt``; they
    must lie in ``[0, (nt − 1)·dt]``.

    Returns:
        :class:`Snapshots` with values ``[time, nz, nx]``.
    """
    options = options or ModellingOptions()
    steps = np.rint(np.asarray(times, dtype=float) / acquisition.dt).astype(int)
    if np.any(steps < 0) or np.any(steps >= acquisition.nt):
        raise ModelError(
            f"snapshot times must lie in [0, {(acquisition.nt - 1) * acquisition.dt}] s"
        )
    wanted: dict[int, list[int]] = {}
    for k, s in enumerate(steps):
        wanted.setdefault(int(s), []).append(k)
    frames = np.zeros((len(steps), model.nz, model.nx), dtype=np.float32)

    def grab(state: deepwave.CallbackState) -> None:
        ks = wanted.get(state.step)
        if ks:
            field = state.get_wavefield("wavefield_0", view="inner", mode="read")
            frames[ks] = field[0].detach().cpu().numpy()

    # Deepwave's callback at step n holds the field at time n·dt, so propagating
    # one step past the last snapshot is enough.
    _propagate(model, acquisition, options, np.array([shot]), grab, nt=int(steps.max()) + 1)
    return Snapshots(values=frames, times=steps * acquisition.dt)


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


def predicted_gathers(
    model: VelocityModel, gathers: ShotGathers, source: Source, device: str | None = None
) -> ShotGathers:
    """Deepwave traces ``[shot, receiver, time]`` of ``model`` at every receiver of
    ``gathers``, fired with ``source`` (σ its spread; zero at padded receivers)."""
    acq = acquisition_from_gathers(gathers, source)
    sim = simulate(model, acq, ModellingOptions(source_sigma=source.sigma, device=device))
    data = np.where(gathers.receiver_mask[..., None], sim.data, 0.0)
    return dataclasses.replace(gathers, data=data)


def second_time_derivative(u: np.ndarray, dt: float) -> np.ndarray:
    """u_tt ``[time, ...]`` of samples ``u`` ``[time, ...]`` spaced ``dt`` (s): the
    centred second difference, one-sided (second order) at both ends."""
    if u.shape[0] < 4:
        raise ModelError(f"need at least 4 time samples for u_tt, got {u.shape[0]}")
    out = np.empty_like(u)
    out[1:-1] = (u[2:] - 2 * u[1:-1] + u[:-2]) / dt**2
    out[0] = (2 * u[0] - 5 * u[1] + 4 * u[2] - u[3]) / dt**2
    out[-1] = (2 * u[-1] - 5 * u[-2] + 4 * u[-3] - u[-4]) / dt**2
    return out
