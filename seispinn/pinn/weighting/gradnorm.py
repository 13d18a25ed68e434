"""Per-point gradient-norm balancing (Wang, Teng & Perdikaris 2021, per point):
``w_i`` ∝ mean_j g_j / (g_i + ε), ``g_i = ‖∇θ r_i²‖``, EMA-smoothed and clipped.

The norms themselves come from :mod:`seispinn.pinn.pointgrad`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from seispinn.errors import ConfigError
from seispinn.pinn.pointgrad import GRAD_NORM_METHODS, PointLoss, per_point_grad_norms
from seispinn.pinn.weighting.base import PointWeighting, _check_ids, pool_mean

__all__ = ["GradNormOptions", "GradNormWeights"]


@dataclass(frozen=True)
class GradNormOptions:
    """Per-point grad-norm options (docs/method.md, Per-point weighting).

    Attributes:
        eps: ε in ŵ_i = mean_j g_j / (g_i + ε), in the units of g. It is the
            only thing between a point whose gradient is numerical noise and an
            enormous weight: raising it tames over-correction.
        w_min, w_max: clip range of the target weights, after mean-normalisation.
        alpha: EMA factor, ``w ← α w + (1 − α) ŵ`` (α → 1: slower, smoother).
        every: refresh every K steps (``step % every == 0``).
        method: gradient-norm method, see :func:`per_point_grad_norms`.
        chunk_size: vmap chunk size for the exact method (None: all points).
    """

    eps: float = 1e-8
    w_min: float = 0.1
    w_max: float = 10.0
    alpha: float = 0.9
    every: int = 10
    method: str = "auto"
    chunk_size: int | None = None

    def __post_init__(self) -> None:
        if not (self.eps > 0 and 0 < self.w_min <= 1 <= self.w_max):
            raise ConfigError(
                f"grad-norm needs eps > 0 and 0 < w_min <= 1 <= w_max, got "
                f"eps={self.eps}, w_min={self.w_min}, w_max={self.w_max}"
            )
        if not 0 <= self.alpha < 1 or self.every < 1:
            raise ConfigError(
                f"grad-norm needs 0 <= alpha < 1 and every >= 1, got {self.alpha}, {self.every}"
            )
        if self.method not in GRAD_NORM_METHODS:
            raise ConfigError(
                f"unknown grad-norm method {self.method!r}; choose one of {GRAD_NORM_METHODS}"
            )


class GradNormWeights(PointWeighting):
    """Per-point gradient-norm balancing (Wang, Teng & Perdikaris 2021, per point).

    On a refresh step, with ``g_i = ‖∇θ r_i²‖`` for the batch::

        ŵ_i = mean_j g_j / (g_i + ε)        (j over the batch)
        ŵ_i ← ŵ_i / mean_j ŵ_j              (mean-normalise)
        w_i ← α w_i + (1 − α) clip(ŵ_i, w_min, w_max)

    ``w`` starts at 1 and is a buffer indexed by point id; points outside the
    batch keep their weight. Statistics (mean g, mean ŵ) are the batch's, so
    mini-batched weights equal full-batch ones only in expectation.

    Over-correction: a point whose gradient is ~0 (residual already ~0, or
    numerical noise) gets ŵ → mean g / ε. :meth:`diagnostics` shows it:
    ``clipped_high_fraction``, ``target_max`` and ``small_grad_gamma``.
    """

    name = "gradnorm"
    shardable = False
    needs_point_loss = True

    def __init__(self, n_points: int, options: GradNormOptions | None = None) -> None:
        super().__init__(n_points)
        self.options = options or GradNormOptions()
        self.register_buffer("weight", torch.ones(n_points))
        # Last measured g_i and unclipped target ŵ_i; NaN = never measured.
        self.register_buffer("grad_norm", torch.full((n_points,), float("nan")))
        self.register_buffer("target", torch.full((n_points,), float("nan")))
        self.register_buffer("refreshes", torch.zeros((), dtype=torch.long))
        self.last_method: str | None = None

    def weights(self, ids: Tensor) -> Tensor:
        return self.weight[ids]

    def refresh(self, ids: Tensor, grad_norms: Tensor) -> None:
        """Apply one refresh from measured ``[B]`` gradient norms of points ``ids``."""
        _check_ids(ids, self.n_points)
        if grad_norms.shape != ids.shape:
            raise ConfigError(
                f"grad norms {tuple(grad_norms.shape)} do not match ids {tuple(ids.shape)}"
            )
        o = self.options
        g = grad_norms.detach().to(self.weight.dtype)
        target = g.mean() / (g + o.eps)
        target = target / target.mean()
        clipped = target.clamp(o.w_min, o.w_max)
        self.weight[ids] = o.alpha * self.weight[ids] + (1.0 - o.alpha) * clipped
        self.grad_norm[ids] = g
        self.target[ids] = target
        self.refreshes += 1

    def admit(self, ids: Tensor) -> None:
        _check_ids(ids, self.n_points)
        self.weight[ids] = pool_mean(self.weight, ids)
        self.grad_norm[ids] = float("nan")
        self.target[ids] = float("nan")

    def update(
        self,
        step: int,
        ids: Tensor,
        sq_residual: Tensor,
        point_loss: PointLoss | None = None,
        residual: Tensor | None = None,
    ) -> None:
        if self.frozen or step % self.options.every != 0:
            return
        if point_loss is None:
            raise ConfigError("grad-norm weighting needs point_loss on refresh steps")
        # The linear path verifies itself once; the model and loss do not change after.
        norms, self.last_method = per_point_grad_norms(
            point_loss,
            self.options.method,
            self.options.chunk_size,
            check=self.last_method != "linear",
        )
        self.refresh(ids, norms)

    def diagnostics(self, ids: Tensor | None = None) -> dict[str, float]:
        """Base keys plus the over-correction signals (over measured points of ``ids``).

        ``refreshes``; ``clipped_high_fraction``/``clipped_low_fraction``: share of
        points whose last target hit ``w_max``/``w_min``; ``target_max``: largest
        unclipped target; ``grad_norm_min_over_mean``; ``small_grad_gamma``:
        mean w/mean(w) on the 10 % of points with the smallest g.
        """
        ids = self.all_ids() if ids is None else ids
        out = super().diagnostics(ids)
        out["refreshes"] = float(self.refreshes)
        g, target = self.grad_norm[ids].double(), self.target[ids].double()
        seen = ~torch.isnan(g)
        if not bool(seen.any()):
            return out
        rel = self.gamma(ids).double()[seen]
        g, target = g[seen], target[seen]
        o = self.options
        out["clipped_high_fraction"] = float((target >= o.w_max).double().mean())
        out["clipped_low_fraction"] = float((target <= o.w_min).double().mean())
        out["target_max"] = float(target.max())
        out["grad_norm_min_over_mean"] = float(g.min() / g.mean().clamp_min(1e-300))
        n_small = max(1, g.numel() // 10)
        smallest = torch.argsort(g)[:n_small]
        out["small_grad_gamma"] = float(rel[smallest].mean())
        return out
