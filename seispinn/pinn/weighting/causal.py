"""Causal weighting (Wang, Sankaran & Perdikaris 2024): late times train only once
earlier ones are fitted. A multiplier on top of any per-point strategy."""

from __future__ import annotations

import torch
from torch import Tensor

from seispinn.pinn.distributed import all_reduce_

__all__ = ["causal_weights"]


def causal_weights(sq: Tensor, t: Tensor, t_max: float, bins: int, eps: float) -> Tensor:
    """Causal multipliers ``[N]`` (detached): ``exp(−ε Σ_{k<i} L_k)`` for a point in
    time bin i, L_k the mean of ``sq`` over the batch's points in bin k; all ones
    when ``eps`` is 0. ``t`` in seconds, ``[N]``."""
    if eps == 0:
        return torch.ones_like(sq)
    k = (t / t_max * bins).long().clamp(0, bins - 1)
    sums = torch.zeros(bins, dtype=sq.dtype, device=sq.device).index_add_(0, k, sq.detach())
    counts = torch.zeros_like(sums).index_add_(0, k, torch.ones_like(sq))
    all_reduce_([sums, counts])  # the bins' means over the global batch
    mean = sums / counts.clamp_min(1)
    before = torch.cumsum(mean, 0) - mean
    return torch.exp(-eps * before)[k]
