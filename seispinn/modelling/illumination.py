"""Which part of a model the data can see: source-side and receiver-side
wavefield energy computed with Deepwave.

``illumination = sqrt(E_s · E_r)``, with ``E_s`` the time-integrated squared
wavefield of all shots and ``E_r`` that of a point source at every receiver: the
diagonal of the Gauss–Newton Hessian up to the wavelet's spectrum, large where a
velocity change both gets energy and sends it to a receiver. Scores "over the
illuminated part" (docs/method.md, Measures) use the cells where it exceeds a fraction of its
95th percentile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from seispinn.acquisition import Acquisition
from seispinn.modelling.simulate import ModellingOptions, propagate
from seispinn.models import VelocityModel

if TYPE_CHECKING:
    import deepwave

__all__ = ["wavefield_energy", "illumination", "illuminated_mask"]


def wavefield_energy(
    model: VelocityModel, acq: Acquisition, options: ModellingOptions | None = None
) -> np.ndarray:
    """``[nz, nx]`` Σ over shots and time steps of u² (times dt) for ``acq``'s shots."""
    options = options or ModellingOptions()
    energy = torch.zeros(model.shape, dtype=torch.float64)

    def add(state: deepwave.CallbackState) -> None:
        u = state.get_wavefield("wavefield_0", view="inner", mode="read")
        energy.add_(u.detach().double().pow(2).sum(0).cpu())

    with torch.no_grad():
        propagate(model, acq, options, np.arange(acq.n_shots), callback=add)
    return (energy * acq.dt).numpy()


def illumination(
    model: VelocityModel, acq: Acquisition, options: ModellingOptions | None = None
) -> np.ndarray:
    """``[nz, nx]`` sqrt(E_s E_r): source-side energy of ``acq``'s shots times the
    energy of point sources at its (unique) receivers, same wavelet."""
    src = wavefield_energy(model, acq, options)
    rec = np.unique(np.stack([acq.receiver_x.ravel(), acq.receiver_z.ravel()], 1), axis=0)
    rec = rec[np.all(np.isfinite(rec), axis=1)]
    back = Acquisition(
        rec[:, 0], rec[:, 1], rec[:1, 0], rec[:1, 1], acq.dt, acq.nt, acq.freq, acq.delay
    )
    point = ModellingOptions(
        source_sigma=None,
        free_surface=(options or ModellingOptions()).free_surface,
        accuracy=(options or ModellingOptions()).accuracy,
        pml_width=(options or ModellingOptions()).pml_width,
        device=(options or ModellingOptions()).device,
    )
    return np.sqrt(src * wavefield_energy(model, back, point))


def illuminated_mask(values: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """``[nz, nx]`` bool: illumination ≥ ``fraction`` × its 95th percentile (the
    percentile, not the maximum, which sits on a source)."""
    ref = float(np.quantile(values, 0.95))
    return values >= fraction * ref if ref > 0 else np.zeros(values.shape, dtype=bool)
