"""The least-squares trace misfit every finite-difference inversion minimises, and
the zero-phase low-pass filters of multiscale frequency continuation.

``J(c) = ½ Σ_used (d_syn(c) − d_obs)² / Σ_used d_obs²`` over the receivers not held
out, one frequency band at a time: the observed and the synthetic traces go through
the same Butterworth low-pass (Bunks et al. 1995), applied as one linear operator on
the time axis so that both see the same edge effects and the true model's misfit is
exactly zero in every band.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from scipy.signal import butter, sosfiltfilt
from torch import Tensor

from seispinn.acquisition import Source
from seispinn.gathers import ShotGathers
from seispinn.modelling.simulate import ModellingOptions, acquisition_from_gathers, propagate
from seispinn.models import VelocityModel

__all__ = ["lowpass", "lowpass_operator", "TraceMisfit", "source_modelling"]


def check_bands(frequencies: tuple[float, ...], band_fractions: tuple[float, ...]) -> None:
    """Refuse band settings shared by FWI and WRI that cannot define a low-pass band."""
    if any(f < 0 for f in frequencies):
        raise ValueError("frequencies: corners must be >= 0 Hz (0: full band)")
    if any(not 0 < f < 1 for f in band_fractions):
        raise ValueError("band_fractions must lie in (0, 1)")


def band_corners(
    frequencies: tuple[float, ...], band_fractions: tuple[float, ...], peak: float
) -> tuple[float, ...]:
    """The low-pass corners (Hz, 0 the full band) of a multiscale inversion for a
    source of ``peak`` Hz: ``frequencies`` as given, or ``band_fractions`` of the
    peak followed by the full band."""
    if frequencies:
        return tuple(frequencies)
    return tuple(round(f * peak, 3) for f in band_fractions) + (0.0,)


def source_modelling(modelling: ModellingOptions | None, source: Source) -> ModellingOptions:
    """The modelling options with the source's spread (σ = 0: a point source)."""
    return dataclasses.replace(modelling or ModellingOptions(), source_sigma=source.sigma or None)


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
        self.modelling = source_modelling(modelling, source)
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
