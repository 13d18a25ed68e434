"""The causal ansatz of a scattered field: δu ≡ 0 before the background's first
arrival could reach a point.

A scattered wave at x arrives after the direct wave has reached the scatterer and
travelled on to x, so never before the direct wave's own first arrival at x. The
network's δu is multiplied by a smooth gate G = σ((t − τ(x))/w), τ(x) = t_on + r/c_max,
r the distance from the shot's source, c_max the fastest velocity allowed, t_on the
wavelet's onset (its amplitude there is 2·10⁻⁵ of the peak) and w a quarter period:
G is below 0.02 a period before any wave can be at x, 0.5 where the direct wave starts,
and above 0.99 at its peak. So no scattered energy precedes the wave that makes it,
and none enters from the box's edges ahead of the waves.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seispinn.acquisition import Source
from seispinn.pinn.wave import MultiShotWavefield, WaveDerivatives

__all__ = ["CausalGate", "GatedWavefield"]

#: Softens the distance at the source (m): τ stays smooth through it.
_CORE = 10.0


class CausalGate(nn.Module):
    """G(x, z, t; shot) and its derivatives (module docstring).

    Args:
        source_x, source_z: ``[shot]`` source positions (m).
        source: the wavelet (its onset ``delay − 1.2/freq`` and width ``0.25/freq``).
        c_max: the fastest velocity the model may take (m/s).
    """

    def __init__(
        self, source_x: list[float], source_z: list[float], source: Source, c_max: float
    ) -> None:
        super().__init__()
        self.register_buffer("sx", torch.tensor(source_x, dtype=torch.float32))
        self.register_buffer("sz", torch.tensor(source_z, dtype=torch.float32))
        self.width = 0.25 / source.freq
        self.onset = source.delay - 1.2 / source.freq
        self.c_max = float(c_max)

    def _parts(self, points: Tensor, shot: Tensor):
        dx, dz = points[:, 0] - self.sx[shot], points[:, 1] - self.sz[shot]
        r = torch.sqrt(dx * dx + dz * dz + _CORE**2)
        tau = self.onset + r / self.c_max
        a = (points[:, 2] - tau) / self.width
        g = torch.sigmoid(a)
        g1 = g * (1 - g)  # σ'
        return dx, dz, r, g, g1

    def value(self, points: Tensor, shot: Tensor) -> Tensor:
        """G ``[N]`` at points ``[N, 3]`` of shots ``[N]``."""
        return self._parts(points, shot)[3]

    def derivatives(self, points: Tensor, shot: Tensor) -> tuple[Tensor, ...]:
        """G, G_t, G_tt, ∇G ``[N, 2]`` and ∇²G at points ``[N, 3]`` of shots ``[N]``."""
        dx, dz, r, g, g1 = self._parts(points, shot)
        g2 = g1 * (1 - 2 * g)  # σ''
        w, c = self.width, self.c_max
        grad_tau = torch.stack([dx, dz], 1) / (r * c)[:, None]
        rho2 = dx * dx + dz * dz
        lap_tau = (rho2 + 2 * _CORE**2) / (r**3 * c)
        grad = -(g1 / w)[:, None] * grad_tau
        lap = g2 * grad_tau.square().sum(1) / w**2 - g1 * lap_tau / w
        return g, g1 / w, g2 / w**2, grad, lap


class GatedWavefield(nn.Module):
    """A :class:`MultiShotWavefield` ``M`` times a :class:`CausalGate` ``G``: u = G·M,
    with the same interface (values, derivatives, gradients) by the product rule."""

    def __init__(self, inner: MultiShotWavefield, gate: CausalGate) -> None:
        super().__init__()
        self.inner, self.gate = inner, gate

    def forward(self, points: Tensor, shot: Tensor) -> Tensor:
        return self.gate.value(points, shot) * self.inner(points, shot)

    def derivatives(
        self, points: Tensor, shot: Tensor, with_gradient: bool = False
    ) -> WaveDerivatives:
        d = self.inner.derivatives(points, shot, with_gradient=True)
        assert d.gradient is not None
        g, g_t, g_tt, g_grad, g_lap = self.gate.derivatives(points, shot)
        m_grad, m_t = d.gradient[:, :2], d.gradient[:, 2]
        u_tt = g_tt * d.u + 2 * g_t * m_t + g * d.u_tt
        lap = g_lap * d.u + 2 * (g_grad * m_grad).sum(1) + g * d.laplacian
        gradient = None
        if with_gradient:
            gradient = torch.cat(
                [g[:, None] * m_grad + g_grad * d.u[:, None], (g * m_t + g_t * d.u)[:, None]], 1
            )
        return WaveDerivatives(g * d.u, u_tt, lap, gradient)

    def gradient(self, points: Tensor, shot: Tensor) -> Tensor:
        """(u_x, u_z, u_t) ``[N, 3]`` of the gated field."""
        d = self.derivatives(points, shot, with_gradient=True)
        assert d.gradient is not None
        return d.gradient

    def value_and_time_derivative(self, points: Tensor, shot: Tensor) -> tuple[Tensor, Tensor]:
        g = self.gate.derivatives(points, shot)
        u, u_t = self.inner.value_and_time_derivative(points, shot)
        return g[0] * u, g[0] * u_t + g[1] * u
