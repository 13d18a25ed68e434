"""Residual-based attention (RBA, Anagnostopoulos et al. 2024), gradient-free:
``λ_i ← β λ_i + η |r_i| / max_j |r_j|`` (β the decay), ``w_i ∝ λ_i^p``."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seispinn.errors import ConfigError
from seispinn.pinn.pointgrad import PointLoss
from seispinn.pinn.weighting.base import PointWeighting, _check_ids, pool_mean

__all__ = ["RBAOptions", "ResidualBasedAttention"]


@dataclass(frozen=True)
class RBAOptions:
    """Residual-based attention options (Anagnostopoulos et al. 2024).

    Attributes:
        decay: β of ``λ ← β λ + η |r| / max|r|``; λ saturates at η / (1 − β).
        eta: step η.
        init: initial λ (the paper's 0; with ``normalise`` all-equal λ means uniform).
        power: weights are ``λ^power`` (2: the paper's loss ``(λ_i r_i)²``).
        normalise: divide weights by their mean over all points, so the loss keeps
            the scale of a uniform one (the optimiser's step size stays meaningful).
    """

    decay: float = 0.999
    eta: float = 0.01
    init: float = 0.0
    power: float = 2.0
    normalise: bool = True

    def __post_init__(self) -> None:
        if not (0 <= self.decay < 1 and self.eta > 0 and self.init >= 0 and self.power > 0):
            raise ConfigError(
                f"RBA needs 0 <= decay < 1, eta > 0, init >= 0, power > 0, got "
                f"{self.decay}, {self.eta}, {self.init}, {self.power}"
            )


class ResidualBasedAttention(PointWeighting):
    """Residual-based attention (RBA, Anagnostopoulos et al. 2024), gradient-free.

    After each step, for the batch: ``λ_i ← β λ_i + η |r_i| / max_j |r_j|``
    (max over the batch); weights ``w_i = λ_i^p``, divided by their mean over all
    points when ``normalise`` (an all-zero λ then means uniform weights). λ is a
    ``[n_points]`` buffer indexed by point id.
    """

    name = "rba"
    shardable = False

    def __init__(self, n_points: int, options: RBAOptions | None = None) -> None:
        super().__init__(n_points)
        self.options = options or RBAOptions()
        self.register_buffer("lam", torch.full((n_points,), float(self.options.init)))

    def weights(self, ids: Tensor) -> Tensor:
        w = self.lam[ids].pow(self.options.power)
        if not self.options.normalise:
            return w
        scale = self.lam.pow(self.options.power).mean()
        if scale <= 0:
            return torch.ones_like(w)
        return w / scale

    def update(
        self,
        step: int,
        ids: Tensor,
        sq_residual: Tensor,
        point_loss: PointLoss | None = None,
        residual: Tensor | None = None,
    ) -> None:
        if self.frozen:
            return
        _check_ids(ids, self.n_points)
        r = sq_residual.detach().to(self.lam.dtype).clamp_min(0).sqrt()
        peak = r.max()
        if peak <= 0:
            return
        o = self.options
        self.lam[ids] = o.decay * self.lam[ids] + o.eta * r / peak

    def admit(self, ids: Tensor) -> None:
        _check_ids(ids, self.n_points)
        self.lam[ids] = pool_mean(self.lam, ids)

    def diagnostics(self, ids: Tensor | None = None) -> dict[str, float]:
        """Base keys plus ``lambda_mean``/``lambda_max``."""
        ids = self.all_ids() if ids is None else ids
        out = super().diagnostics(ids)
        lam = self.lam[ids].double()
        out.update(lambda_mean=float(lam.mean()), lambda_max=float(lam.max()))
        return out
