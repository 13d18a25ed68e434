"""What every per-point weighting shares: weights keyed by point id.

:class:`PointWeighting` is the interface (weights of ids, the weighted loss, an
after-step hook, freezing, diagnostics);
:class:`Uniform` is the plain mean; :func:`weighted_mean` the weighted loss every
strategy uses (the reported measures live in :mod:`seispinn.diagnostics.measures`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from seispinn.errors import ConfigError, TrainingError
from seispinn.pinn.pointgrad import PointLoss

__all__ = ["weighted_mean", "PointWeighting", "Uniform"]


def weighted_mean(sq_residual: Tensor, weights: Tensor, denominator: int | None = None) -> Tensor:
    """``mean_i w_i r_i²``: ``sq_residual`` and ``weights`` are ``[B]``; returns a scalar.
    With ``denominator``, ``Σ_i w_i r_i² / denominator`` instead (a rank's share of a
    batch spread over processes; zero for an empty share)."""
    if sq_residual.shape != weights.shape:
        raise ConfigError(
            f"squared residuals {tuple(sq_residual.shape)} and weights "
            f"{tuple(weights.shape)} must have the same shape [B]"
        )
    weighted = weights.to(sq_residual.dtype) * sq_residual
    return weighted.mean() if denominator is None else weighted.sum() / denominator


def _check_ids(ids: Tensor, n_points: int) -> None:
    if ids.dtype != torch.long or ids.dim() != 1:
        raise ConfigError(f"point ids must be a 1-D LongTensor, got {ids.dtype} {tuple(ids.shape)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n_points):
        raise ConfigError(
            f"point ids must lie in [0, {n_points}), got [{int(ids.min())}, {int(ids.max())}]"
        )


def pool_mean(values: Tensor, ids: Tensor) -> Tensor:
    """The mean of ``values`` ``[N]`` over the points not in ``ids`` (all of them when
    ``ids`` covers every point): where a newly admitted point starts."""
    keep = torch.ones_like(values, dtype=torch.bool)
    keep[ids] = False
    return values[keep].mean() if keep.any() else values.mean()


class PointWeighting(nn.Module):
    """Base of the per-point weighting strategies: weights ``w_i`` keyed by point id.

    Subclasses implement :meth:`weights`; the hooks below default to no-ops.

    Args:
        n_points: size of the fixed point set; ids run over ``[0, n_points)``.
    """

    name: ClassVar[str] = "base"
    #: False for strategies whose update normalises over the batch (a rank sees
    #: only its share of it): they cannot train across processes.
    shardable: ClassVar[bool] = True
    #: True for strategies whose update re-evaluates per-point losses (a step then
    #: passes :class:`PointLoss` to :meth:`update`).
    needs_point_loss: ClassVar[bool] = False

    def __init__(self, n_points: int) -> None:
        super().__init__()
        if n_points < 1:
            raise ConfigError(f"n_points must be >= 1, got {n_points}")
        self.n_points = int(n_points)
        # Not state: a checkpoint restores weights, the trainer decides the stage.
        self.frozen = False

    def all_ids(self) -> Tensor:
        """``[n_points]`` ids of every point, on the strategy's device."""
        tensors = [*self.parameters(), *self.buffers()]
        device = tensors[0].device if tensors else torch.device("cpu")
        return torch.arange(self.n_points, device=device)

    def weights(self, ids: Tensor) -> Tensor:
        """``[B]`` weights of points ``ids`` (``[B]`` LongTensor): what multiplies r_i²."""
        raise NotImplementedError

    def weighted_loss(
        self, sq_residual: Tensor, ids: Tensor, denominator: int | None = None
    ) -> Tensor:
        """``mean_i w_i r_i²`` over a batch: ``sq_residual`` ``[B]``, ``ids`` ``[B]`` -> scalar
        (``Σ / denominator`` with one, see :func:`weighted_mean`)."""
        _check_ids(ids, self.n_points)
        return weighted_mean(sq_residual, self.weights(ids), denominator)

    def update(
        self,
        step: int,
        ids: Tensor,
        sq_residual: Tensor,
        point_loss: PointLoss | None = None,
        residual: Tensor | None = None,
    ) -> None:
        """After-step hook (grad-norm refresh, RBA update); no-op by default.

        Args:
            step: 0-based optimiser step just taken.
            ids: ``[B]`` ids of the batch.
            sq_residual: ``[B]`` squared residuals r_i² of that batch (detached).
            point_loss: re-evaluable per-point losses; grad-norm needs it on refresh steps.
            residual: ``[B]`` the signed residuals r_i (detached); the multipliers
                accumulate them.
        """

    def shifted(self, residual: Tensor, ids: Tensor) -> Tensor:
        """The residual ``[B]`` the loss squares at points ``ids`` ``[B]``: r itself for
        every strategy that only scales r²; ``r + b_i`` for one that holds an additive
        per-point multiplier (:class:`seispinn.pinn.weighting.multipliers.Multipliers`)."""
        return residual

    def set_lr_factor(self, factor: float) -> None:
        """Scale the strategy's own learning rates (a divergence retry); no-op by default."""

    def set_times(self, t: Tensor) -> None:
        """Each point's time as a fraction of the window, ``[n_points]`` in [0, 1] (the
        problem calls it whenever its points change); no-op unless a strategy groups
        its points by time."""

    def admit(self, ids: Tensor) -> None:
        """Points ``ids`` (``[m]``) were redrawn (a collocation resampling): what was
        learnt about the old points there must not carry over. A no-op for weights
        with no per-point memory; strategies with some restart those ids from the
        mean over the other points (:func:`pool_mean`)."""

    def freeze(self) -> None:
        """Stop adapting the weights (e.g. during an L-BFGS stage)."""
        self.frozen = True

    def unfreeze(self) -> None:
        """Resume adapting the weights."""
        self.frozen = False

    def gamma(self, ids: Tensor | None = None) -> Tensor:
        """γ ``[B]``: the weights of ``ids`` divided by their mean over ``ids`` (all
        points if None), detached. γ is what every report, snapshot and figure shows:
        1 everywhere is uniform weighting."""
        ids = self.all_ids() if ids is None else ids
        w = self.weights(ids).detach()
        return w / w.mean().clamp_min(torch.finfo(w.dtype).tiny)

    def diagnostics(self, ids: Tensor | None = None) -> dict[str, float]:
        """Summary numbers over ``ids`` (all points if None) for logs.

        Keys: ``weight_mean`` (raw), ``relative_max``/``relative_min``/``relative_std``
        of w / mean(w); subclasses add their own.
        """
        ids = self.all_ids() if ids is None else ids
        w = self.weights(ids).detach().double()
        rel = w / w.mean().clamp_min(1e-300)
        return {
            "weight_mean": float(w.mean()),
            "relative_max": float(rel.max()),
            "relative_min": float(rel.min()),
            "relative_std": float(rel.std()) if rel.numel() > 1 else 0.0,
        }

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1].strip()
            raise TrainingError(
                f"{self.name} weighting for {self.n_points} points cannot load this state: {first}"
            ) from exc


class Uniform(PointWeighting):
    """Every point weight 1: the plain PINN mean."""

    name = "uniform"

    def weights(self, ids: Tensor) -> Tensor:
        return torch.ones(ids.shape, device=ids.device)
