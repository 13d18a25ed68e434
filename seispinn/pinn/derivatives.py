"""First and pure second input derivatives of an MLP, propagated forward.

A PINN residual needs ``u``, ``∂u/∂x_k`` and ``∂²u/∂x_k²`` at every point. Nested
``torch.autograd.grad`` builds a graph per derivative and per order; instead we
carry, through each layer, the value ``h``, its directional derivatives ``J_k``
and pure second derivatives ``H_k`` along every input axis k (forward-mode
Taylor arithmetic). A linear layer acts on all ``1 + 2d`` rows with one matmul,
and an activation ``a = σ(h)`` maps them by the chain rule::

    J' = σ'(h) J          H' = σ'(h) H + σ''(h) J²

Gradients with respect to the parameters then flow by ordinary backprop.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seispinn.pinn.networks import MLP, FourierFeatures, Sine

__all__ = ["Jet", "mlp_jet"]


class Jet:
    """Value and pure derivatives up to order two of a function of ``d`` inputs.

    Attributes:
        value: ``[B, n]``.
        first: ``[B, d, n]``: ``∂/∂x_k``.
        second: ``[B, d, n]``: ``∂²/∂x_k²``.

    The three are kept as separate tensors: slicing one stacked tensor made the
    backward pass spend a quarter of its time zero-filling slice gradients.
    """

    def __init__(self, value: Tensor, first: Tensor, second: Tensor) -> None:
        self.value = value
        self.first = first
        self.second = second

    @classmethod
    def of_inputs(cls, x: Tensor, dims: int | None = None) -> Jet:
        """The jet of the identity at points ``x`` ``[B, d]``, along the first ``dims``
        inputs (all by default): the rest (a shot coordinate, say) are parameters."""
        b, d = x.shape
        k = d if dims is None else dims
        eye = torch.eye(d, dtype=x.dtype, device=x.device)[:k].expand(b, k, d)
        return cls(x, eye, torch.zeros(b, k, d, dtype=x.dtype, device=x.device))

    def linear(self, layer: nn.Linear) -> Jet:
        w = layer.weight.T
        # Only the value gets the bias: derivatives of a constant vanish.
        return Jet(torch.addmm(layer.bias, self.value, w), self.first @ w, self.second @ w)

    def elementwise(self, f0: Tensor, f1: Tensor, f2: Tensor) -> Jet:
        """Apply σ given ``σ(h)``, ``σ'(h)``, ``σ''(h)`` (each ``[B, n]``)."""
        d1, d2 = f1[:, None], f2[:, None]
        return Jet(f0, d1 * self.first, d1 * self.second + d2 * self.first.square())


def _tanh(jet: Jet) -> Jet:
    a = torch.tanh(jet.value)
    s = 1 - a * a
    return jet.elementwise(a, s, -2 * a * s)


def _sine(jet: Jet) -> Jet:
    s, c = torch.sin(jet.value), torch.cos(jet.value)
    return jet.elementwise(s, c, -s)


def _fourier(jet: Jet, layer: FourierFeatures) -> Jet:
    b = 2.0 * math.pi * layer.frequencies
    phase = Jet(jet.value @ b, jet.first @ b, jet.second @ b)
    s, c = torch.sin(phase.value), torch.cos(phase.value)
    sin_jet = phase.elementwise(s, c, -s)
    cos_jet = phase.elementwise(c, -s, -c)
    return Jet(
        torch.cat([sin_jet.value, cos_jet.value], dim=-1),
        torch.cat([sin_jet.first, cos_jet.first], dim=-1),
        torch.cat([sin_jet.second, cos_jet.second], dim=-1),
    )


def mlp_jet(mlp: MLP, x: Tensor, dims: int | None = None) -> Jet:
    """Value, first and pure second derivatives of ``mlp`` at points ``x`` ``[B, d]``.

    Supports :class:`MLP` built from ``nn.Linear``, ``nn.Tanh``, :class:`Sine` and
    :class:`FourierFeatures`; anything else raises ``TypeError``.

    Returns:
        A :class:`Jet` whose ``value`` is ``[B, out]`` and ``first``/``second``
        are ``[B, dims, out]`` (derivatives along the first ``dims`` inputs, all
        ``d`` by default).
    """
    jet = Jet.of_inputs(x, dims)
    for layer in mlp.layers:
        if isinstance(layer, nn.Linear):
            jet = jet.linear(layer)
        elif isinstance(layer, nn.Tanh):
            jet = _tanh(jet)
        elif isinstance(layer, Sine):
            jet = _sine(jet)
        elif isinstance(layer, FourierFeatures):
            jet = _fourier(jet, layer)
        else:
            raise TypeError(f"mlp_jet: no derivative rule for {type(layer).__name__}")
    return jet
