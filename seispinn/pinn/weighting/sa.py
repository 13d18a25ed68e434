"""SA-PINN self-adaptive masks (McClenny & Braga-Neto 2023): ``w_i = m(λ_i)``,
λ trained by gradient *ascent* on the same loss θ descends.

The ascent is done here, after each step, from the batch's squared residuals
(``∂L/∂λ_i = m'(λ_i) r_i² / B``), not by a torch optimiser over all of λ, so
that only the points of the batch move (an optimiser's momentum would keep
moving every λ) and so that the step can be made unit-free (docs/method.md, Per-point weighting):

- ``'bounded'`` (the default ascent; η = 0.01 unless given, the wave inversion's
  recipe takes 1e-3): ``λ_i ← λ_i + η m'(λ_i) q_i``,
  ``q_i = r_i² / (r_i² + R)`` in [0, 1), R a running mean of the batch's mean r².
  A larger residual climbs faster; scaling every residual by k leaves the
  trajectory unchanged; the batch size does not enter; and a point's step per
  visit is at most ``η m'(λ_i)`` however large its residual, so a point source
  whose residual is thousands of times the mean cannot run away.
- ``'scaled'``: ``λ_i ← λ_i + η m'(λ_i) r_i² / R``: the same without the bound
  (the step grows with r² / R without limit).
- ``'sgd'``: plain ascent on the loss, ``λ_i ← λ_i + η m'(λ_i) r_i² / B`` (the
  step carries the residual's units).
- ``'adam'``: Adam on ∂L/∂λ (McClenny's code), lazily: a point's moments and step
  count advance only when it is in the batch. Adam divides each λ's step by the
  RMS of its own gradient, so every λ climbs by about η per step whatever its
  residual: the mask stops following the residual (rank correlation of γ with
  |r| −0.01 on the demo, against +0.8 with plain ascent).

After any ascent, ``max_relative`` (default 20) holds a point's mask at most that
many times the mean mask, so that over a long run the mask cannot put nearly all
the weight on a few hundred points (docs/weighting.md, "The cap on the mask").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from seispinn.errors import ConfigError
from seispinn.pinn.distributed import all_reduce_, shard
from seispinn.pinn.pointgrad import PointLoss
from seispinn.pinn.weighting.base import PointWeighting, _check_ids, pool_mean, weighted_mean

__all__ = ["MASKS", "ASCENTS", "SAOptions", "SelfAdaptiveMask"]


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


def _sigmoid_slope(lam: Tensor) -> Tensor:
    s = torch.sigmoid(lam)
    return s * (1 - s)


def _inverse_sigmoid(gamma: Tensor, lam: Tensor) -> Tensor:
    return torch.logit(gamma.clamp(1e-12, 1 - 1e-12))


def _inverse_square(gamma: Tensor, lam: Tensor) -> Tensor:
    return torch.copysign(gamma.sqrt(), lam)  # λ² has two branches: stay on λ's


def _inverse_softplus(gamma: Tensor, lam: Tensor) -> Tensor:
    return gamma + torch.log(-torch.expm1(-gamma.clamp_min(1e-12)))


#: λ with ``m(λ) = γ`` on the branch of the current λ, for each mask (``max_relative``).
_INVERSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "sigmoid": _inverse_sigmoid,
    "square": _inverse_square,
    "softplus": _inverse_softplus,
}

#: m'(λ) of each mask, for the ascent step.
_SLOPES: dict[str, Callable[[Tensor], Tensor]] = {
    "sigmoid": _sigmoid_slope,
    "square": lambda lam: 2 * lam,
    "softplus": torch.sigmoid,
}

#: The ascents of λ and their default learning rates.
ASCENTS: dict[str, float] = {"bounded": 1e-2, "scaled": 1e-3, "sgd": 1e-3, "adam": 5e-3}

_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8
#: Memory of the running mean of r² in the bounded and scaled ascents (steps ≈ 1 / (1 − β)).
_SCALE_BETA = 0.99


@dataclass(frozen=True)
class SAOptions:
    """SA-PINN options (see the module docstring and docs/weighting.md).

    Attributes:
        mask: ``'square'`` (λ², McClenny's code), ``'sigmoid'`` (the seed's) or
            ``'softplus'``.
        init: initial λ for every point. A bounded mask's room to grow depends on
            it: sigmoid from 0 (γ = 0.5) can at most double a weight.
        optimizer: the ascent: ``'bounded'`` (unit-free, the step per visit bounded:
            the default), ``'scaled'`` (unit-free plain ascent), ``'sgd'`` (plain
            ascent on the loss) or ``'adam'`` (McClenny's).
        lr: the ascent's learning rate; None takes :data:`ASCENTS`' default for
            the chosen ascent (their units differ).
        normalise: divide the masks by their mean over all points (a constant for
            the descent step), so a growing mask does not re-weight the PDE term
            against the data and initial-condition terms.
        time_slices: with ``normalise``, divide each mask by the mean over the
            points of its own time slice (this many equal slices of the window; 1:
            over all points), so the mask moves weight between the points of one
            time and never from early times to late ones. A mask that follows the
            residual otherwise starves the first times, whose field the later ones
            propagate (forward PINN: relative weight 0.2–0.4 in the first seventh of
            the window, first snapshot's error ×4–6). Points without a time (the 1D
            race) form one slice.
        balance: keep the weighted term's value equal to the unweighted one on
            every batch (``w_i = γ_i Σ r² / Σ γ r²``, a constant for the descent),
            so the mask moves the PDE term's gradient between points without
            changing the term's size against the data and initial-condition terms
            (a mask that follows the residual otherwise inflates it: on the demo,
            mean-normalised masks let the PDE term swamp the data, data misfit
            0.88 at 3,000 steps).
        max_relative: the most a point may weigh against the mean mask (of its
            time slice): after each ascent, λ of a point whose mask would exceed
            ``max_relative × mean γ`` is set to that limit (None, ``"none"`` in a
            config: no cap).
            The mask keeps following the residual below the cap, but cannot switch
            the PDE off on all but a few points, which the uncapped bounded ascent
            does over long runs; a tighter cap no longer balances a source region
            (docs/weighting.md, "The cap on the mask").
    """

    mask: str = "square"
    init: float = 1.0
    optimizer: str = "bounded"
    lr: float | None = None
    normalise: bool = True
    time_slices: int = 1
    balance: bool = False
    max_relative: float | None = 20.0

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise ConfigError(f"unknown SA mask {self.mask!r}; choose one of {sorted(MASKS)}")
        if self.optimizer not in ASCENTS:
            choices = sorted(ASCENTS)
            raise ConfigError(f"unknown SA optimizer {self.optimizer!r}; choose one of {choices}")
        if self.time_slices < 1:
            raise ConfigError(f"SA time_slices must be >= 1, got {self.time_slices}")
        if self.time_slices > 1 and not self.normalise:
            raise ConfigError("SA time_slices > 1 normalises per slice: it needs normalise = true")
        if self.max_relative is not None and not self.max_relative > 1:
            raise ConfigError(f"SA max_relative must be > 1, got {self.max_relative}")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"SA lr must be positive, got {self.lr}")
        if self.mask == "square" and self.init == 0:
            # d(λ²)/dλ = 0 at λ = 0: every mask would stay 0 and nothing would train.
            raise ConfigError("SA mask 'square' cannot start from init = 0 (a fixed point)")

    @property
    def rate(self) -> float:
        """The learning rate in force (``lr`` or the ascent's default)."""
        return ASCENTS[self.optimizer] if self.lr is None else self.lr


class SelfAdaptiveMask(PointWeighting):
    """SA-PINN self-adaptive masks ``w_i = γ_i = m(λ_i)`` (McClenny & Braga-Neto 2023).

    ``λ`` is a ``[n_points]`` buffer indexed by point id. θ descends the loss
    ``mean_i m(λ_i) r_i²`` and :meth:`update` ascends λ of the batch's points
    (see the module docstring for the ascents). :meth:`freeze` stops λ (e.g. for
    an L-BFGS stage). Report ``γ / mean(γ)`` (:meth:`gamma`), not γ.
    """

    name = "sa"

    def __init__(self, n_points: int, options: SAOptions | None = None) -> None:
        super().__init__(n_points)
        self.options = options or SAOptions()
        self._mask = MASKS[self.options.mask]
        self._slope = _SLOPES[self.options.mask]
        self.register_buffer("lam", torch.full((n_points,), float(self.options.init)))
        # Each point's time slice and the slices' sizes (set_times): derived from the
        # points, not state.
        self.register_buffer("slice", torch.zeros(n_points, dtype=torch.long), persistent=False)
        counts = torch.zeros(self.options.time_slices)
        counts[0] = n_points  # every point in the first slice until set_times
        self.register_buffer("slice_counts", counts, persistent=False)
        # Running mean of the batch mean r² (bounded, scaled); 0 = not yet seen.
        self.register_buffer("r2_scale", torch.zeros((), dtype=torch.float64))
        if self.options.optimizer == "adam":
            self.register_buffer("adam_m", torch.zeros(n_points))
            self.register_buffer("adam_v", torch.zeros(n_points))
            self.register_buffer("adam_steps", torch.zeros(n_points))
        self.lr_factor = 1.0  # not state: the trainer sets it (divergence retries)

    def weights(self, ids: Tensor) -> Tensor:
        w = self._mask(self.lam[ids])
        if self.options.normalise:
            w = w / self._slice_means()[self.slice[ids]]
        return w

    def _slice_means(self) -> Tensor:
        """``[time_slices]`` mean mask over each time slice's points (a constant for
        the descent step); one slice, the plain mean."""
        gamma = self._mask(self.lam).detach()
        k = self.options.time_slices
        if k == 1:
            return gamma.mean().clamp_min(1e-12).reshape(1)
        sums = torch.zeros(k, dtype=gamma.dtype, device=gamma.device).index_add_(
            0, self.slice, gamma
        )
        return (sums / self.slice_counts.clamp_min(1)).clamp_min(1e-12)

    def set_times(self, t: Tensor) -> None:
        """Each point's time as a fraction of the window ``[n_points]``: its slice."""
        if t.shape != (self.n_points,):
            raise ConfigError(f"set_times needs [{self.n_points}] times, got {tuple(t.shape)}")
        k = self.options.time_slices
        self.slice = (t.to(self.lam.device) * k).long().clamp(0, k - 1)
        self.slice_counts = torch.bincount(self.slice, minlength=k).to(self.lam.dtype)

    def weighted_loss(
        self, sq_residual: Tensor, ids: Tensor, denominator: int | None = None
    ) -> Tensor:
        _check_ids(ids, self.n_points)
        w = self.weights(ids)
        if self.options.balance:
            sq = sq_residual.detach()
            sums = torch.stack([sq.sum(), (w * sq).sum()]).double()
            all_reduce_([sums])  # the global batch's sums
            w = w * float(sums[0] / sums[1].clamp_min(1e-300))
        return weighted_mean(sq_residual, w, denominator)

    def set_lr_factor(self, factor: float) -> None:
        self.lr_factor = float(factor)

    def update(
        self,
        step: int,
        ids: Tensor,
        sq_residual: Tensor,
        point_loss: PointLoss | None = None,
        residual: Tensor | None = None,
    ) -> None:
        """One ascent step of the batch's λ from its squared residuals ``[B]``."""
        if self.frozen:
            return
        _check_ids(ids, self.n_points)
        ids_b, sq_b, size = self._global_batch(ids, sq_residual.detach().to(self.lam.dtype))
        o = self.options
        # The mean mask of each batch point's slice before this ascent, computed once:
        # the gradient ascents' normaliser and the cap's base.
        means = None
        if o.max_relative is not None or (o.normalise and o.optimizer in ("sgd", "adam")):
            means = self._slice_means()[self.slice[ids_b]]
        lam = self._ascend(ids_b, sq_b, size, means)
        if lam is None:
            return
        if o.max_relative is not None:
            assert means is not None
            lam = self._capped(lam, means)
        self.lam[ids_b] = lam

    def _capped(self, lam: Tensor, means: Tensor) -> Tensor:
        """``lam`` ``[B]`` lowered where ``m(λ)`` would exceed ``max_relative`` times
        ``means`` ``[B]``, the mean mask of each point's time slice."""
        limit = float(self.options.max_relative) * means
        over = self._mask(lam) > limit
        return torch.where(over, _INVERSES[self.options.mask](limit, lam), lam)

    def _ascend(
        self, ids_b: Tensor, sq_b: Tensor, size: int, means: Tensor | None
    ) -> Tensor | None:
        """The batch's new λ ``[B]`` from its r² ``[B]`` (None: no step); ``means``
        ``[B]``: the slice means the normalised gradient ascents divide by."""
        lam = self.lam[ids_b]
        slope = self._slope(lam)
        o, rate = self.options, self.options.rate * self.lr_factor
        if o.optimizer in ("scaled", "bounded"):
            mean = float(sq_b.double().mean())
            if not mean > 0:  # an exact solution so far (a scattered field's step 0)
                return None
            beta = _SCALE_BETA if float(self.r2_scale) > 0 else 0.0
            self.r2_scale.mul_(beta).add_((1 - beta) * mean)
            scale = max(float(self.r2_scale), 1e-300)
            relative = sq_b / scale if o.optimizer == "scaled" else sq_b / (sq_b + scale)
            return lam + rate * slope * relative
        grad = slope * sq_b / size
        if o.normalise:  # the descent's weights were divided by their slice's mean γ
            assert means is not None
            grad = grad / means
        if o.optimizer == "sgd":
            return lam + rate * grad
        b1, b2 = _ADAM_BETAS
        m = self.adam_m[ids_b].mul_(b1).add_((1 - b1) * grad)
        v = self.adam_v[ids_b].mul_(b2).add_((1 - b2) * grad * grad)
        n = self.adam_steps[ids_b] + 1
        self.adam_m[ids_b], self.adam_v[ids_b], self.adam_steps[ids_b] = m, v, n
        m_hat = m / (1 - b1**n)
        v_hat = v / (1 - b2**n)
        return lam + rate * m_hat / (v_hat.sqrt() + _ADAM_EPS)

    def _global_batch(self, ids: Tensor, sq: Tensor) -> tuple[Tensor, Tensor, int]:
        """The batch's distinct ids, their r² and the batch size, over all ranks:
        across processes every rank holds its share, so the shares are summed per
        point id and every rank takes the same step."""
        if shard().world == 1:  # a batch's ids are distinct (batch_ids)
            return ids, sq, len(ids)
        sq_all = torch.zeros_like(self.lam).index_put_((ids,), sq, accumulate=True)
        seen = torch.zeros_like(self.lam).index_put_((ids,), torch.ones_like(sq), accumulate=True)
        all_reduce_([sq_all, seen])
        batch = seen > 0
        return batch.nonzero()[:, 0], sq_all[batch] / seen[batch], int(seen.sum())

    def admit(self, ids: Tensor) -> None:
        """Points ``ids`` enter the collocation pool (a resampling): they start
        from the pool's mean λ, with fresh ascent state."""
        _check_ids(ids, self.n_points)
        self.lam[ids] = pool_mean(self.lam, ids)
        if self.options.optimizer == "adam":
            self.adam_m[ids], self.adam_v[ids], self.adam_steps[ids] = 0.0, 0.0, 0.0

    def diagnostics(self, ids: Tensor | None = None) -> dict[str, float]:
        """Base keys plus ``lambda_min``/``lambda_mean``/``lambda_max``,
        ``capped_fraction`` (share of points held at ``max_relative``) and for the
        bounded sigmoid mask ``saturated_fraction`` (γ > 0.99: no room left to grow)."""
        ids = self.all_ids() if ids is None else ids
        out = super().diagnostics(ids)
        lam = self.lam[ids].double()
        out.update(
            lambda_min=float(lam.min()), lambda_mean=float(lam.mean()), lambda_max=float(lam.max())
        )
        if self.options.max_relative is not None:
            # share of the points held at the cap (the mask would put more there);
            # within 1 %, since the mean has grown since a point was last held
            limit = self.options.max_relative * self._slice_means()[self.slice[ids]]
            at_cap = self._mask(self.lam[ids]) >= limit * 0.99
            out["capped_fraction"] = float(at_cap.double().mean())
        if self.options.mask == "sigmoid":
            out["saturated_fraction"] = float((torch.sigmoid(lam) > 0.99).double().mean())
        return out
