"""Small fully connected networks for PINNs.

An :class:`MLP` maps ``[..., in_dim]`` to ``[..., out_dim]``; every trainable
parameter lives in an ``nn.Linear`` and every other layer acts on each sample
separately. That structure is what lets :func:`seispinn.pinn.weighting.per_point_grad_norms`
take its cheap path (per-sample gradient norms from layer activations).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seispinn.errors import ConfigError

__all__ = ["MLP", "FourierFeatures", "Sine", "ACTIVATIONS"]


class Sine(nn.Module):
    """``sin(x)`` as a layer (SIREN-style activation without the ω0 scaling)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(x)


# Name -> layer factory. A dict rather than if/elif so that the error message
# can list what exists and a new activation is one line.
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "sin": Sine,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "softplus": nn.Softplus,
    "relu": nn.ReLU,
}


class FourierFeatures(nn.Module):
    """Random Fourier features ``[sin(2π x B), cos(2π x B)]`` (Tancik et al. 2020).

    ``B`` is ``[in_dim, n_features]`` drawn once from N(0, scale²) with torch's
    global generator (seed it first) and kept as a buffer, so it is saved with the
    model but never trained.

    Args:
        in_dim: number of input coordinates.
        n_features: number of frequencies; the output has ``2 * n_features`` columns.
        scale: standard deviation of the frequencies, in cycles per input unit.
    """

    def __init__(self, in_dim: int, n_features: int, scale: float = 1.0) -> None:
        super().__init__()
        if n_features < 1 or scale <= 0:
            raise ConfigError(
                f"Fourier features need n_features >= 1 and scale > 0, got {n_features}, {scale}"
            )
        self.register_buffer("frequencies", torch.randn(in_dim, n_features) * scale)
        self.out_dim = 2 * n_features

    def forward(self, x: Tensor) -> Tensor:
        """``x``: ``[..., in_dim]`` -> ``[..., 2 * n_features]``."""
        phase = 2.0 * math.pi * x @ self.frequencies
        return torch.cat([torch.sin(phase), torch.cos(phase)], dim=-1)


class MLP(nn.Module):
    """A fully connected network with Xavier-normal weights and zero biases.

    Args:
        in_dim: input coordinates per point.
        out_dim: outputs per point.
        width: neurons per hidden layer.
        depth: number of hidden layers (>= 1).
        activation: one of :data:`ACTIVATIONS` (``'tanh'``, ``'sin'``, ...).
        fourier_features: if given, the number of random Fourier frequencies put in
            front of the first layer (see :class:`FourierFeatures`).
        fourier_scale: standard deviation of those frequencies.

    ``forward`` maps ``[..., in_dim]`` to ``[..., out_dim]``.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        width: int = 32,
        depth: int = 2,
        activation: str = "tanh",
        fourier_features: int | None = None,
        fourier_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if in_dim < 1 or out_dim < 1 or width < 1 or depth < 1:
            raise ConfigError(
                "MLP needs in_dim, out_dim, width, depth >= 1, got "
                f"{in_dim}, {out_dim}, {width}, {depth}"
            )
        if activation not in ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {activation!r}; choose one of {sorted(ACTIVATIONS)}"
            )
        layers: list[nn.Module] = []
        features = in_dim
        if fourier_features is not None:
            encoding = FourierFeatures(in_dim, fourier_features, fourier_scale)
            layers.append(encoding)
            features = encoding.out_dim
        for _ in range(depth):
            layers += [nn.Linear(features, width), ACTIVATIONS[activation]()]
            features = width
        layers.append(nn.Linear(features, out_dim))
        self.layers = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-normal weights, zero biases (Glorot & Bengio 2010), the PINN default."""
        for module in self.layers:
            if isinstance(module, nn.Linear):
                nn.init.xavier_normal_(module.weight)
                nn.init.zeros_(module.bias)

    def zero_output(self) -> MLP:
        """Zero the last layer, so the network starts at exactly 0 (a perturbation or
        a scattered field that must start from its background). Returns ``self``."""
        last = [m for m in self.layers if isinstance(m, nn.Linear)][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        return self

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
