"""Acquisition geometry and source wavelets.

Positions in metres (x horizontal, z depth positive down), time in seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TypeVar

import numpy as np
import torch

from seispinn.errors import ModelError
from seispinn.models import VelocityModel

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

__all__ = ["ricker", "ricker_fn", "Source", "Acquisition", "surface_line", "with_well_receivers"]


def ricker_fn(t: ArrayT, freq: float, delay: float) -> ArrayT:
    """Ricker wavelet (peak frequency ``freq`` Hz, peak at ``delay`` s) at times ``t`` (s),
    a numpy array or a torch tensor (the PINN's source term uses the same formula as
    the finite-difference modelling)."""
    if isinstance(t, torch.Tensor):
        a = (math.pi * freq * (t - delay)) ** 2
        return (1 - 2 * a) * torch.exp(-a)
    a = (np.pi * freq * (np.asarray(t) - delay)) ** 2
    return (1 - 2 * a) * np.exp(-a)


def ricker(freq: float, dt: float, nt: int, delay: float | None = None) -> np.ndarray:
    """Ricker wavelet ``[nt]`` of peak frequency ``freq`` (Hz), peak at ``delay`` (s).

    The default delay ``1.5 / freq`` makes the wavelet start at ~0 (|f(0)| < 1e-3·max),
    so a zero initial condition holds.
    """
    delay = 1.5 / freq if delay is None else delay
    return ricker_fn(np.arange(nt) * dt, freq, delay)


@dataclass(frozen=True)
class Source:
    """The source every shot fires, in the finite-difference modelling and in the
    PINN's source term alike: a Ricker wavelet of peak frequency ``freq`` (Hz)
    peaking at ``delay`` (s), spread as a unit-mass Gaussian of width ``sigma`` (m)
    (``ModellingOptions.source_sigma`` in Deepwave runs; ``sigma = 0`` is a point
    source, for finite differences only: the PINN's source term needs a width).

    In a config, ``freq = 0`` means "the survey's frequency" and ``delay = 0``
    "1.5 / freq" (the wavelet then starts at ~0): :meth:`resolved` fills them in.
    """

    sigma: float = 20.0
    freq: float = 0.0
    delay: float = 0.0

    def __post_init__(self) -> None:
        if not self.sigma >= 0:
            raise ValueError(f"sigma must be >= 0 m (0: a point source), got {self.sigma}")
        if not (self.freq >= 0 and self.delay >= 0):
            raise ValueError(f"freq and delay must be >= 0, got {self.freq} and {self.delay}")

    def resolved(self, freq: float | None = None) -> Source:
        """This source with ``freq`` (when it has none) and the default delay set."""
        f = self.freq or freq
        if not f:
            raise ModelError("the source needs a peak frequency (freq > 0)")
        return Source(self.sigma, f, self.delay or 1.5 / f)

    def wavelet(self, t: ArrayT) -> ArrayT:
        """f(t) at times ``t`` (s): a numpy array or a tensor."""
        return ricker_fn(t, self.freq, self.delay)

    def active_until(self) -> float:
        """End (s) of the wavelet's active window: |f| < 1e-3 after ``delay + 1.2/freq``."""
        return self.delay + 1.2 / self.freq


# eq=False: the generated == would compare arrays elementwise and fail.
@dataclass(frozen=True, eq=False)
class Acquisition:
    """Sources, receivers and the source signature.

    Attributes:
        source_x, source_z: ``[shot]`` source positions (m).
        receiver_x, receiver_z: ``[shot, receiver]`` receiver positions (m).
        dt: time step of the wavelet and the records (s).
        nt: number of time samples.
        freq: Ricker peak frequency (Hz).
        delay: time of the wavelet's peak (s).
    """

    source_x: np.ndarray
    source_z: np.ndarray
    receiver_x: np.ndarray
    receiver_z: np.ndarray
    dt: float
    nt: int
    freq: float
    delay: float

    def __post_init__(self) -> None:
        for name in ("source_x", "source_z", "receiver_x", "receiver_z"):
            object.__setattr__(self, name, np.atleast_1d(np.asarray(getattr(self, name), float)))
        ns = self.source_x.shape[0]
        if self.source_z.shape != (ns,):
            raise ModelError("source_x and source_z must both be [shot]")
        if self.receiver_x.ndim == 1:
            object.__setattr__(self, "receiver_x", np.tile(self.receiver_x, (ns, 1)))
            object.__setattr__(self, "receiver_z", np.tile(self.receiver_z, (ns, 1)))
        if self.receiver_x.shape != self.receiver_z.shape or self.receiver_x.shape[0] != ns:
            raise ModelError("receiver_x and receiver_z must both be [shot, receiver]")
        if not (self.dt > 0 and self.nt > 0 and self.freq > 0):
            raise ModelError(
                f"need dt > 0, nt > 0, freq > 0 (got {self.dt}, {self.nt}, {self.freq})"
            )

    @property
    def n_shots(self) -> int:
        return self.source_x.shape[0]

    @property
    def n_receivers(self) -> int:
        return self.receiver_x.shape[1]

    @property
    def times(self) -> np.ndarray:
        """``[nt]`` sample times (s)."""
        return self.dt * np.arange(self.nt)

    def wavelet(self) -> np.ndarray:
        """``[nt]`` Ricker source signature f(t)."""
        return ricker(self.freq, self.dt, self.nt, self.delay)

    def check_inside(self, model: VelocityModel) -> None:
        """Raise :class:`ModelError` if a source or receiver lies outside ``model``."""
        x_min, x_max, z_max, z_min = model.extent
        for what, xs, zs in (
            ("source", self.source_x, self.source_z),
            ("receiver", self.receiver_x, self.receiver_z),
        ):
            bad = (
                (xs < x_min - 1e-6)
                | (xs > x_max + 1e-6)
                | (zs < z_min - 1e-6)
                | (zs > z_max + 1e-6)
            )
            if np.any(bad):
                i = np.argwhere(bad)[0]
                raise ModelError(
                    f"{what} {tuple(int(k) for k in i)} at x={float(xs[tuple(i)])} m, "
                    f"z={float(zs[tuple(i)])} m lies outside the model "
                    f"(x {x_min}..{x_max} m, z {z_min}..{z_max} m)"
                )


def surface_line(
    model: VelocityModel,
    *,
    n_shots: int,
    n_receivers: int,
    freq: float,
    dt: float,
    duration: float,
    source_depth: float | None = None,
    receiver_depth: float | None = None,
    margin: float | None = None,
    delay: float | None = None,
) -> Acquisition:
    """A line of ``n_shots`` sources and ``n_receivers`` fixed receivers near the surface.

    Sources and receivers are evenly spaced across the model, ``margin`` metres
    (default two cells) in from each side; depths default to two cells below
    the top. ``duration`` (s) sets ``nt = round(duration / dt) + 1``.
    """
    margin = 2 * model.dx if margin is None else margin
    sd = model.z0 + 2 * model.dz if source_depth is None else source_depth
    rd = model.z0 + 2 * model.dz if receiver_depth is None else receiver_depth
    x_min, x_max = model.x0 + margin, model.x0 + model.dx * (model.nx - 1) - margin
    sx = np.linspace(x_min, x_max, n_shots) if n_shots > 1 else np.array([(x_min + x_max) / 2])
    rx = np.linspace(x_min, x_max, n_receivers)
    acq = Acquisition(
        source_x=sx,
        source_z=np.full(n_shots, sd),
        receiver_x=np.tile(rx, (n_shots, 1)),
        receiver_z=np.full((n_shots, n_receivers), rd),
        dt=dt,
        nt=int(round(duration / dt)) + 1,
        freq=freq,
        delay=1.5 / freq if delay is None else delay,
    )
    acq.check_inside(model)
    return acq


def with_well_receivers(
    acq: Acquisition, model: VelocityModel, well_x: list[float], n_per_well: int
) -> Acquisition:
    """``acq`` plus ``n_per_well`` receivers in each vertical well at ``well_x`` (m),
    evenly from the surface receivers' depth to two cells above the model's bottom
    (a VSP-style array that records waves transmitted through the model)."""
    if not well_x or n_per_well < 1:
        return acq
    top = float(np.nanmin(acq.receiver_z))
    bottom = model.z0 + model.dz * (model.nz - 1) - 2 * model.dz
    wz = np.linspace(top, bottom, n_per_well + 1)[1:]  # the top one is a surface receiver
    rx = np.concatenate([np.full(n_per_well, x, dtype=float) for x in well_x])
    rz = np.tile(wz, len(well_x))
    ns = acq.n_shots
    out = replace(
        acq,
        receiver_x=np.concatenate([acq.receiver_x, np.tile(rx, (ns, 1))], axis=1),
        receiver_z=np.concatenate([acq.receiver_z, np.tile(rz, (ns, 1))], axis=1),
    )
    out.check_inside(model)
    return out
