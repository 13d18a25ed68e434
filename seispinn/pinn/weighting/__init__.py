"""Per-point weights for PINN loss terms, keyed by stable point ids.

A loss term over collocation points is ``L = mean_i w_i r_i²``. The strategies
choose ``w_i`` (docs/method.md, Per-point weighting), one module each:

- :class:`Uniform` (:mod:`.base`)                  ``w_i = 1``
- :class:`GradNormWeights` (:mod:`.gradnorm`)      ``w_i`` ∝ mean_j g_j / (g_i + ε),
  ``g_i = ‖∇θ r_i²‖`` (Wang, Teng & Perdikaris 2021), EMA-smoothed, clipped
- :class:`SelfAdaptiveMask` (:mod:`.sa`)           ``w_i = m(λ_i)``, λ trained by
  gradient *ascent* (SA-PINN, McClenny & Braga-Neto 2023)
- :class:`ResidualBasedAttention` (:mod:`.rba`)    ``λ_i ← γ λ_i + η |r_i| / max_j |r_j|``,
  ``w_i ∝ λ_i²`` (RBA, Anagnostopoulos et al. 2024), gradient-free
- :class:`Multipliers` (:mod:`.multipliers`)       ``w_i = 1``, the term squares
  ``r_i + b_i`` and ``b_i ← b_i + ρ r_i`` (IR-WRI's augmented Lagrangian, per point)

and :func:`causal_weights` (:mod:`.causal`) multiplies any of them by a causal
factor in time. :data:`STRATEGIES` is the one list of strategies; every place that
needs their names, classes or options reads it. :class:`WeightingOptions` holds a
PDE term's choice and every strategy's options, as one nested config section.

Every per-point quantity is indexed by a point id (a ``LongTensor`` carried with
the point), never by the point's position in a batch, so shuffling, mini-batching
and resampling keep weight i attached to point i. All state is tensors
(parameters and buffers), so ``torch.load(..., weights_only=True)`` restores it.

How a trainer uses a strategy, one step::

    sq = residual(model, points) ** 2                     # [B]
    r = residual(model, points)                           # [B]
    loss = weighting.weighted_loss(weighting.shifted(r, ids) ** 2, ids)  # mean(w (r + b)²)
    loss.backward(); opt.step()
    weighting.update(step, ids, r.detach() ** 2, PointLoss(model, loss_fn, points),
                     residual=r.detach())                  # SA ascends, b accumulates

Per-point gradient norms (for grad-norm) live in :mod:`seispinn.pinn.pointgrad`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

from seispinn.errors import ConfigError
from seispinn.pinn.weighting.base import PointWeighting, Uniform, weighted_mean
from seispinn.pinn.weighting.causal import causal_weights
from seispinn.pinn.weighting.gradnorm import GradNormOptions, GradNormWeights
from seispinn.pinn.weighting.multipliers import MultiplierOptions, Multipliers
from seispinn.pinn.weighting.rba import RBAOptions, ResidualBasedAttention
from seispinn.pinn.weighting.sa import MASKS, SAOptions, SelfAdaptiveMask

__all__ = [
    "MASKS",
    "weighted_mean",
    "causal_weights",
    "SAOptions",
    "GradNormOptions",
    "RBAOptions",
    "MultiplierOptions",
    "PointWeighting",
    "Uniform",
    "GradNormWeights",
    "SelfAdaptiveMask",
    "ResidualBasedAttention",
    "Multipliers",
    "Strategy",
    "STRATEGIES",
    "make_weighting",
    "strategy_options",
    "WeightingOptions",
]


class Strategy(NamedTuple):
    """One registry entry.

    Attributes:
        weighting: the :class:`PointWeighting` subclass.
        options: its options dataclass, or None when it takes none.
        field: the attribute of a holder of every strategy's options
            (:class:`WeightingOptions`, the 1D race's config) that holds this
            strategy's options; None when it takes none.
    """

    weighting: type[PointWeighting]
    options: type | None
    field: str | None


#: Strategy name -> :class:`Strategy` ``(class, options class or None, options field)``.
#: The one list of strategies: names for CLIs and configs, classes for
#: :func:`make_weighting`, options for :class:`WeightingOptions`.
STRATEGIES: dict[str, Strategy] = {
    "uniform": Strategy(Uniform, None, None),
    "gradnorm": Strategy(GradNormWeights, GradNormOptions, "gradnorm"),
    "sa": Strategy(SelfAdaptiveMask, SAOptions, "sa"),
    "rba": Strategy(ResidualBasedAttention, RBAOptions, "rba"),
    "multipliers": Strategy(Multipliers, MultiplierOptions, "multipliers"),
}


def _check_name(name: str) -> Strategy:
    if name not in STRATEGIES:
        raise ConfigError(f"unknown strategy {name!r} (choose one of {', '.join(STRATEGIES)})")
    return STRATEGIES[name]


def make_weighting(name: str, n_points: int, options: object | None = None) -> PointWeighting:
    """Build a strategy by name: ``'uniform'``, ``'gradnorm'``, ``'sa'``, ``'rba'`` or
    ``'multipliers'``.

    Args:
        name: strategy name (see :data:`STRATEGIES`).
        n_points: size of the fixed point set (ids in ``[0, n_points)``).
        options: the strategy's options dataclass, or None for its defaults.
    """
    cls, options_cls, _ = _check_name(name)
    if options_cls is None:
        if options is not None:
            raise ConfigError(f"weighting {name!r} takes no options, got {type(options).__name__}")
        return cls(n_points)
    if options is not None and not isinstance(options, options_cls):
        raise ConfigError(
            f"weighting {name!r} takes {options_cls.__name__}, got {type(options).__name__}"
        )
    return cls(n_points, options)  # type: ignore[call-arg]


def strategy_options(holder: object, name: str) -> object | None:
    """Strategy ``name``'s options as held by ``holder`` (an object with one attribute
    per strategy's options, named as in :data:`STRATEGIES`); None for uniform."""
    attribute = _check_name(name).field
    return None if attribute is None else getattr(holder, attribute)


@dataclass(frozen=True)
class WeightingOptions:
    """Per-point weighting of a wave PINN's PDE term (see docs/weighting.md): which
    strategy, its options, and optional causal weighting on top. In a TOML config the
    section is ``[weighting]`` with nested tables ``[weighting.sa]``,
    ``[weighting.gradnorm]``, ``[weighting.rba]``, ``[weighting.multipliers]``; a
    strategy's table matters only
    when it is the one chosen.

    The defaults are the inversion's measured recipe: SA with the bounded ascent at
    1e-3 (a tenth of the ascent's own default, which piles the mask onto the
    worst-fitted points of a scattered field) and grad-norm refreshed every 50 steps.
    That rate is the bounded ascent's: a config that picks another ascent in
    ``[weighting.sa]`` keeps it unless it gives its own ``lr``. The 1D race takes
    each strategy's own defaults; the forward PINN's recipe is
    SA with Adam ascent (:data:`seispinn.experiments.forward.FORWARD_RECIPE`).

    Attributes:
        name: the strategy, one of :data:`STRATEGIES` (``uniform``, ``gradnorm``,
            ``sa``, ``rba``, ``multipliers``).
        causal_eps: ε of causal weighting (Wang, Sankaran & Perdikaris 2024), 0 for
            none. With ε > 0 the window is cut into ``causal_bins`` time bins and the
            points in bin i are multiplied by ``exp(−ε Σ_{k<i} L_k)``, L_k the batch's
            mean squared residual in bin k, so late times train only once earlier
            ones are fitted (see :func:`causal_weights`).
        causal_bins: number of time bins of causal weighting (>= 1).
        sa: self-adaptive masks' options (:class:`SAOptions`).
        gradnorm: grad-norm weighting's options (:class:`GradNormOptions`).
        rba: residual-based attention's options (:class:`RBAOptions`).
        multipliers: the PDE multipliers' options (:class:`MultiplierOptions`).
        mask_velocity: when false, the velocity's gradient from the PDE term is the
            unweighted one (``mean_i r_i ∂r_i/∂c``): the per-point weights shape only
            the wavefield's fit. A mask that concentrates on the largest residuals
            makes the velocity a weighted least-squares fit dominated by the points
            the wavefield fits worst (docs/inversion.md).
    """

    name: str = field(default="sa", metadata={"choices": STRATEGIES, "what": "strategy"})
    causal_eps: float = 0.0
    causal_bins: int = 16
    sa: SAOptions = field(default_factory=lambda: SAOptions(lr=1e-3))
    gradnorm: GradNormOptions = field(default_factory=lambda: GradNormOptions(every=50))
    rba: RBAOptions = field(default_factory=RBAOptions)
    multipliers: MultiplierOptions = field(default_factory=MultiplierOptions)
    mask_velocity: bool = True

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not (math.isfinite(self.causal_eps) and self.causal_eps >= 0) or self.causal_bins < 1:
            raise ConfigError(
                f"causal_eps must be finite and >= 0 and causal_bins >= 1, got "
                f"{self.causal_eps}, {self.causal_bins}"
            )

    def options(self) -> object | None:
        """The chosen strategy's options (None for ``uniform``)."""
        return strategy_options(self, self.name)

    def build(self, n_points: int) -> PointWeighting:
        """The chosen strategy for a set of ``n_points`` points (ids in ``[0, n_points)``)."""
        return make_weighting(self.name, n_points, self.options())
