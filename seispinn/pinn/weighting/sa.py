"""SA-PINN self-adaptive masks (McClenny & Braga-Neto 2023): ``w_i = m(λ_i)``,
λ trained by gradient *ascent* on the same loss θ descends."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seispinn.errors import ConfigError
from seispinn.pinn.weighting.base import PointWeighting

__all__ = ["MASKS", "SAOptions", "SelfAdaptiveMask"]


def _sigmoid(lam: Tensor) -> Tensor:
    return torch.sigmoid(lam)


def _square(lam: Tensor) -> Tensor:
    return lam * lam


def _softplus(lam: Tensor) -> Tensor:
    return F.softplus(lam)


#: SA-PINN masks ``γ = m(λ)``: sigmoid (the seed's, bounded by 1), square
#: (McClenny & Braga-Neto's code, unbounded) and softplus (unbounded, positive).
MASKS: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": _sigmoid,
    "square": _square,
    "softplus": _softplus,
}


_ASCENT_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


@dataclass(frozen=True)
class SAOptions:
    """SA-PINN options (defaults chosen on the 1D race, see docs/weighting.md).

    Attributes:
        mask: ``'square'`` (λ², McClenny's code), ``'sigmoid'`` (the seed's) or ``'softplus'``.
        init: initial λ for every point. A bounded mask's room to grow depends on
            it: sigmoid from 0 (γ = 0.5) can at most double a weight.
        optimizer: ``'adam'`` (McClenny) or ``'sgd'`` (plain gradient ascent,
            ``λ ← λ + lr ∇λ L``, which keeps relative growth that Adam normalises away).
        lr: ascent learning rate. For ``'sgd'`` the step is ``lr · m'(λ_i) r_i² / B``
            (B = batch size), so scale it with the batch.
        normalise: divide the masks by their mean over all points (a constant for
            the descent step), so growing masks do not inflate the PDE term against
            the other terms and far-field points keep a weight near 1 on average.
    """

    mask: str = "square"
    init: float = 1.0
    optimizer: str = "adam"
    lr: float = 5e-3
    normalise: bool = False

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise ConfigError(f"unknown SA mask {self.mask!r}; choose one of {sorted(MASKS)}")
        if self.optimizer not in _ASCENT_OPTIMIZERS:
            choices = sorted(_ASCENT_OPTIMIZERS)
            raise ConfigError(f"unknown SA optimizer {self.optimizer!r}; choose one of {choices}")
        if not self.lr > 0:
            raise ConfigError(f"SA lr must be positive, got {self.lr}")
        if self.mask == "square" and self.init == 0:
            # d(λ²)/dλ = 0 at λ = 0: every mask would stay 0 and nothing would train.
            raise ConfigError("SA mask 'square' cannot start from init = 0 (a fixed point)")


class SelfAdaptiveMask(PointWeighting):
    """SA-PINN self-adaptive masks ``w_i = γ_i = m(λ_i)`` (McClenny & Braga-Neto 2023).

    ``λ`` is a ``[n_points]`` Parameter indexed by point id. θ descends and λ
    ascends the same loss ``mean_i m(λ_i) r_i²``: build λ's optimiser with
    :meth:`make_ascent_optimizer` and step both after one ``backward()``. Since
    ``∂L/∂λ_i = m'(λ_i) r_i² / B``, points with larger residuals climb faster.
    :meth:`freeze` stops λ (``requires_grad=False``) for an L-BFGS stage.
    Report ``γ / mean(γ)`` (:meth:`relative_weights`), not γ.
    """

    name = "sa"

    def __init__(self, n_points: int, options: SAOptions | None = None) -> None:
        super().__init__(n_points)
        self.options = options or SAOptions()
        self.lam = nn.Parameter(torch.full((n_points,), float(self.options.init)))
        self._mask = MASKS[self.options.mask]

    def weights(self, ids: Tensor) -> Tensor:
        w = self._mask(self.lam[ids])
        if self.options.normalise:
            # Detached: the ascent must see m'(λ_i) r_i², not a gradient through the mean.
            w = w / self._mask(self.lam.detach()).mean().clamp_min(1e-12)
        return w

    def ascent_parameters(self) -> list[nn.Parameter]:
        return [self.lam] if self.lam.requires_grad else []

    def make_ascent_optimizer(self) -> torch.optim.Optimizer | None:
        params = self.ascent_parameters()
        if not params:
            return None
        return _ASCENT_OPTIMIZERS[self.options.optimizer](params, lr=self.options.lr, maximize=True)

    def freeze(self) -> None:
        super().freeze()
        self.lam.requires_grad_(False)
        self.lam.grad = None  # a stale ascent gradient must not be applied later

    def unfreeze(self) -> None:
        super().unfreeze()
        self.lam.requires_grad_(True)

    def diagnostics(self, ids: Tensor | None = None) -> dict[str, float]:
        """Base keys plus ``lambda_min``/``lambda_mean``/``lambda_max``, and for the
        bounded sigmoid mask ``saturated_fraction`` (γ > 0.99: no room left to grow)."""
        ids = self.all_ids() if ids is None else ids
        out = super().diagnostics(ids)
        lam = self.lam.detach()[ids].double()
        out.update(
            lambda_min=float(lam.min()), lambda_mean=float(lam.mean()), lambda_max=float(lam.max())
        )
        if self.options.mask == "sigmoid":
            out["saturated_fraction"] = float((torch.sigmoid(lam) > 0.99).double().mean())
        return out
