"""Physics-informed networks: small MLPs and per-point loss weighting.

- :mod:`seispinn.pinn.networks`: :class:`MLP` (Xavier init, optional Fourier features).
- :mod:`seispinn.pinn.derivatives`: input derivatives propagated forward (jets).
- :mod:`seispinn.pinn.pointgrad`: per-point gradient norms ``‖∇θ r_i²‖``.
- :mod:`seispinn.pinn.weighting`: per-point weights keyed by point id —
  :class:`Uniform`, :class:`GradNormWeights`, :class:`SelfAdaptiveMask` (SA-PINN),
  :class:`ResidualBasedAttention` — behind :class:`PointWeighting`, listed in
  :data:`STRATEGIES`, built by :func:`make_weighting` or
  :meth:`WeightingOptions.build`.
"""

from seispinn.pinn.networks import MLP, FourierFeatures
from seispinn.pinn.pointgrad import (
    PointLoss,
    grad_norms_linear,
    grad_norms_loop,
    grad_norms_vmap,
    per_point_grad_norms,
)
from seispinn.pinn.weighting import (
    MASKS,
    STRATEGIES,
    GradNormOptions,
    GradNormWeights,
    PointWeighting,
    RBAOptions,
    ResidualBasedAttention,
    SAOptions,
    SelfAdaptiveMask,
    Uniform,
    WeightingOptions,
    causal_weights,
    make_weighting,
    weighted_mean,
)

__all__ = [
    "MLP",
    "FourierFeatures",
    "MASKS",
    "STRATEGIES",
    "GradNormOptions",
    "GradNormWeights",
    "PointLoss",
    "PointWeighting",
    "RBAOptions",
    "ResidualBasedAttention",
    "SAOptions",
    "SelfAdaptiveMask",
    "Uniform",
    "WeightingOptions",
    "causal_weights",
    "grad_norms_linear",
    "grad_norms_loop",
    "grad_norms_vmap",
    "make_weighting",
    "per_point_grad_norms",
    "weighted_mean",
]
