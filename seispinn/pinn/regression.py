"""A network fitted to values at points with per-point weighting: the smallest
problem :func:`seispinn.pinn.training.train` runs (the 1D race, docs/race.md)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from seispinn.pinn.pointgrad import PointLoss
from seispinn.pinn.problem import StepLosses
from seispinn.pinn.weighting import PointWeighting

__all__ = ["RegressionProblem"]


class RegressionProblem:
    """Fitting a network to values at points, as a :class:`seispinn.pinn.training.Problem`:
    full-batch weighted least squares ``mean_i w_i (u(x_i) − y_i)²`` over every
    training point (the 1D race of the weighting strategies, docs/race.md).

    Args:
        model: maps ``[N, 1]`` to ``[N, 1]``; trained in place by :func:`train`.
        x: ``[N]`` training inputs.
        y: ``[N]`` targets.
        weighting: per-point weights over the ``N`` points, point id = row.
    """

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, weighting: PointWeighting) -> None:
        self.model = model
        self.x, self.y = x[:, None], y
        self.ids = torch.arange(len(y))
        self.weighting = weighting
        self.point_loss = PointLoss(model, _squared_residual(model), (self.x, y))

    def trainable(self) -> dict[str, nn.Module]:
        return {"network": self.model}

    def residual(self) -> Tensor:
        """``[N]`` residuals ``u(x_i) − y_i`` at the training points."""
        return self.model(self.x).squeeze(-1) - self.y

    def losses(self, step: int) -> StepLosses:
        r = self.residual()
        # "pde" is the trainer's name for the per-point-weighted term; here it is the fit.
        sq = r**2
        shifted = self.weighting.shifted(r, self.ids)
        fit = sq if shifted is r else shifted**2  # only multipliers shift r
        terms = {"pde": self.weighting.weighted_loss(fit, self.ids)}
        return StepLosses(terms, self.ids, sq.detach(), self.point_loss, r.detach())


def _squared_residual(model: nn.Module) -> Callable[[dict[str, Tensor], Any], Tensor]:
    """``(params, (x [B, 1], y [B])) -> [B]`` squared residuals, for grad-norm."""

    def loss_fn(params: dict[str, Tensor], points: Any) -> Tensor:
        x, y = points
        return (functional_call(model, params, (x,)).squeeze(-1) - y) ** 2

    return loss_fn
