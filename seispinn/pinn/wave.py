"""The 2D acoustic wave-equation PINN: scaling, wavefield network, source, residual.

Physics (docs/method.md, Deepwave's sign convention)::

    ∇²u − u_tt / c² = s      ⇔      r = u_tt − c² (∇²u − s) = 0
    s(x, z, t) = f(t) · g_σ(x − x_s, z − z_s)

Points are ``[N, 3]`` tensors of ``(x, z, t)`` in metres and seconds. The
network sees scaled coordinates ``x̂ = (x − x_c)/L_x``, ``ẑ = (z − z_c)/L_z``,
``t̂ = t / T`` and predicts ``û = u / U``; the residual is reported in units of
``U / T²`` so that it is O(1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from seispinn.acquisition import Source
from seispinn.pinn.derivatives import mlp_jet
from seispinn.pinn.networks import MLP

__all__ = [
    "NetworkOptions",
    "Scales",
    "WavefieldNet",
    "wave_residual",
    "WaveDerivatives",
    "MultiShotWavefield",
    "gaussian_source_density",
    "scattered_residual",
]


@dataclass(frozen=True)
class NetworkOptions:
    """The wavefield network (the ``[network]`` section; see :class:`WavefieldNet`).

    Attributes:
        width, depth, activation, fourier_features, fourier_scale: the MLP.
        exact_ic: ``u = t̂²·N`` so that ``u = u_t = 0`` at ``t = 0`` exactly; without
            it a soft initial-condition term is added.
        shots: ``'shared'`` (one network, the source's x as a 4th input) or
            ``'per_shot'`` (one network per shot).
    """

    width: int = 64
    depth: int = 3
    activation: str = "tanh"
    fourier_features: int | None = None
    fourier_scale: float = 1.0
    exact_ic: bool = True
    shots: str = "shared"

    def __post_init__(self) -> None:
        if self.shots not in ("shared", "per_shot"):
            raise ValueError(f"shots must be 'shared' or 'per_shot', got {self.shots!r}")
        if self.width < 1 or self.depth < 1:
            raise ValueError(f"width and depth must be >= 1, got {self.width}, {self.depth}")


@dataclass(frozen=True)
class Scales:
    """Affine maps between physical and network units.

    Attributes:
        xc, zc: centre of the collocation box (m).
        lx, lz: half-widths of the box (m), mapped to 1.
        t_max: time window T (s), mapped to 1.
        u_scale: wavefield amplitude U (units of u).
    """

    xc: float
    zc: float
    lx: float
    lz: float
    t_max: float
    u_scale: float

    def to_unit(self, points: Tensor) -> Tensor:
        """``[N, 3]`` physical ``(x, z, t)`` -> ``[N, 3]`` scaled ``(x̂, ẑ, t̂)``; a 4th
        column (a source's x, m) is scaled like x."""
        k = points.shape[1]
        centre = points.new_tensor([self.xc, self.zc, 0.0, self.xc][:k])
        size = points.new_tensor([self.lx, self.lz, self.t_max, self.lx][:k])
        return (points - centre) / size


@dataclass
class WaveDerivatives:
    """Physical-unit u and its derivatives at a batch of points (each ``[N]``), and
    when asked for, the gradient (u_x, u_z, u_t) ``[N, 3]``."""

    u: Tensor
    u_tt: Tensor
    laplacian: Tensor
    gradient: Tensor | None = None


class WavefieldNet(nn.Module):
    """u(x, z, t) = U · τ(t̂) · N(x̂, ẑ, t̂), or U · N with a soft initial condition.

    With ``exact_ic`` the factor ``τ(t̂) = t̂²`` makes ``u = u_t = 0`` at ``t = 0``
    by construction; that closes the residual's null space ``h(x,z)·(a + b t)``
    (``∇²h = 0``) that a soft initial condition lets in (docs/method.md).

    Args:
        scales: physical <-> network units.
        width, depth, activation, fourier_features, fourier_scale: see :class:`MLP`.
        exact_ic: impose the initial condition through the network's form.
        shot_input: take ``[N, 4]`` points whose 4th column is the source's x (m),
            one network for every shot of a line; derivatives stay in (x, z, t).
        zero_start: the last layer starts at zero, so u ≡ 0 at step 0 (a
            scattered field, whose step 0 is the background's prediction).
    """

    def __init__(
        self,
        scales: Scales,
        *,
        width: int = 64,
        depth: int = 4,
        activation: str = "tanh",
        fourier_features: int | None = None,
        fourier_scale: float = 1.0,
        exact_ic: bool = True,
        shot_input: bool = False,
        zero_start: bool = False,
    ) -> None:
        super().__init__()
        self.scales = scales
        self.exact_ic = exact_ic
        n_in = 4 if shot_input else 3
        self.net = MLP(n_in, 1, width, depth, activation, fourier_features, fourier_scale)
        if zero_start:
            self.net.zero_output()

    def forward(self, points: Tensor) -> Tensor:
        """u ``[N]`` at physical points ``[N, 3]`` (``[N, 4]`` with ``shot_input``)."""
        x = self.scales.to_unit(points)
        n = self.net(x)[:, 0]
        if self.exact_ic:
            n = x[:, 2] ** 2 * n
        return self.scales.u_scale * n

    def derivatives(self, points: Tensor, with_gradient: bool = False) -> WaveDerivatives:
        """u, u_tt and ∇²u (and with ``with_gradient`` u_x, u_z, u_t) at physical
        points ``[N, 3]``, in physical units."""
        s = self.scales
        x = s.to_unit(points)
        # Two second-derivative rows, the scaled Laplacian and N_tt, not three.
        mix = x.new_tensor([[1 / s.lx**2, 1 / s.lz**2, 0.0], [0.0, 0.0, 1.0]])
        jet = mlp_jet(self.net, x, dims=3, mix=mix)
        n = jet.value[:, 0]
        n_t = jet.first[:, 2, 0]
        n_lap, n_tt = jet.second[:, :, 0].unbind(1)
        if self.exact_ic:
            t = x[:, 2]
            # (t² N)'' = 2N + 4t N' + t² N''; spatial derivatives just carry t².
            u_tt_hat = 2 * n + 4 * t * n_t + t * t * n_tt
            lap_hat = t * t * n_lap
            u_hat = t * t * n
        else:
            u_tt_hat, lap_hat, u_hat = n_tt, n_lap, n
        gradient = None
        if with_gradient:
            n_x, n_z = jet.first[:, 0, 0], jet.first[:, 1, 0]
            if self.exact_ic:
                t = x[:, 2]
                n_x, n_z, n_t = t * t * n_x, t * t * n_z, 2 * t * n + t * t * n_t
            gradient = s.u_scale * torch.stack([n_x / s.lx, n_z / s.lz, n_t / s.t_max], 1)
        return WaveDerivatives(
            u=s.u_scale * u_hat,
            u_tt=s.u_scale * u_tt_hat / s.t_max**2,
            laplacian=s.u_scale * lap_hat,
            gradient=gradient,
        )

    def value_and_time_derivative(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """u and u_t ``[N]`` (physical units) from one pass, for a soft initial condition."""
        x = self.scales.to_unit(points)
        jet = mlp_jet(self.net, x, dims=3)
        n, n_t = jet.value[:, 0], jet.first[:, 2, 0]
        if self.exact_ic:
            t = x[:, 2]
            n, n_t = t * t * n, 2 * t * n + t * t * n_t
        return self.scales.u_scale * n, self.scales.u_scale * n_t / self.scales.t_max

    def gradient(self, points: Tensor) -> Tensor:
        """(u_x, u_z, u_t) ``[N, 3]`` at physical points ``[N, 3]`` (u/m, u/m, u/s)."""
        s = self.scales
        x = s.to_unit(points)
        jet = mlp_jet(self.net, x, dims=3)
        n_x, n_z, n_t = jet.first[:, :, 0].unbind(1)
        if self.exact_ic:
            # (t² N)' = t² N' in x and z, 2t N + t² N' in t.
            t = x[:, 2]
            n_x, n_z, n_t = t * t * n_x, t * t * n_z, 2 * t * jet.value[:, 0] + t * t * n_t
        return s.u_scale * torch.stack([n_x / s.lx, n_z / s.lz, n_t / s.t_max], 1)


class MultiShotWavefield(nn.Module):
    """Wavefields of several shots: ``u(x, z, t; shot)``.

    ``'shared'``: one :class:`WavefieldNet` with the source's x as a 4th input
    (parameters and cost independent of the number of shots; shots of a line
    differ by a shift the network can share). ``'per_shot'``: one network per
    shot (no sharing; cost and parameters grow with the shot count).

    Args:
        scales: physical <-> network units.
        source_x: ``[shot]`` source x positions (m).
        mode: ``'shared'`` or ``'per_shot'``.
        **net: :class:`WavefieldNet` options (width, depth, activation, ...).
    """

    def __init__(
        self, scales: Scales, source_x: list[float], mode: str = "shared", **net: object
    ) -> None:
        super().__init__()
        if mode not in ("shared", "per_shot"):
            raise ValueError(f"wavefield mode must be 'shared' or 'per_shot', got {mode!r}")
        self.mode = mode
        self.scales = scales
        self.register_buffer("source_x", torch.tensor(source_x, dtype=torch.float32))
        if mode == "shared":
            self.nets = nn.ModuleList([WavefieldNet(scales, shot_input=True, **net)])  # type: ignore[arg-type]
        else:
            self.nets = nn.ModuleList(
                [WavefieldNet(scales, **net) for _ in source_x]  # type: ignore[arg-type]
            )

    def _shared_input(self, points: Tensor, shot: Tensor) -> Tensor:
        return torch.cat([points, self.source_x[shot][:, None]], dim=1)

    def forward(self, points: Tensor, shot: Tensor) -> Tensor:
        """u ``[N]`` at physical points ``[N, 3]`` of shots ``shot`` ``[N]`` (long)."""
        if self.mode == "shared":
            return self.nets[0](self._shared_input(points, shot))
        if len(self.nets) == 1:  # one shot: every point is its own, nothing to scatter
            return self.nets[0](points)
        out = points.new_zeros(points.shape[0])
        for k, net in enumerate(self.nets):
            idx = (shot == k).nonzero()[:, 0]
            if idx.numel():
                out = out.index_put((idx,), net(points[idx]))
        return out

    def derivatives(
        self, points: Tensor, shot: Tensor, with_gradient: bool = False
    ) -> WaveDerivatives:
        """u, u_tt, ∇²u ``[N]`` (and with ``with_gradient`` the gradient ``[N, 3]``) at
        points ``[N, 3]`` of shots ``shot`` ``[N]``."""
        if self.mode == "shared":
            return self.nets[0].derivatives(self._shared_input(points, shot), with_gradient)
        if len(self.nets) == 1:
            return self.nets[0].derivatives(points, with_gradient)
        n = points.shape[0]
        parts = [points.new_zeros(n) for _ in range(3)]
        grad = points.new_zeros(n, 3) if with_gradient else None
        for k, net in enumerate(self.nets):
            idx = (shot == k).nonzero()[:, 0]
            if idx.numel():
                d = net.derivatives(points[idx], with_gradient)
                for j, v in enumerate((d.u, d.u_tt, d.laplacian)):
                    parts[j] = parts[j].index_put((idx,), v)
                if grad is not None:
                    grad = grad.index_put((idx,), d.gradient)
        return WaveDerivatives(*parts, gradient=grad)

    def value_and_time_derivative(self, points: Tensor, shot: Tensor) -> tuple[Tensor, Tensor]:
        """u and u_t ``[N]`` at points ``[N, 3]`` of shots ``shot`` ``[N]`` (a soft
        initial condition)."""
        if self.mode == "shared":
            return self.nets[0].value_and_time_derivative(self._shared_input(points, shot))
        if len(self.nets) == 1:
            return self.nets[0].value_and_time_derivative(points)
        u, u_t = points.new_zeros(points.shape[0]), points.new_zeros(points.shape[0])
        for k, net in enumerate(self.nets):
            idx = (shot == k).nonzero()[:, 0]
            if idx.numel():
                a, b = net.value_and_time_derivative(points[idx])
                u, u_t = u.index_put((idx,), a), u_t.index_put((idx,), b)
        return u, u_t

    def gradient(self, points: Tensor, shot: Tensor) -> Tensor:
        """(u_x, u_z, u_t) ``[N, 3]`` at points ``[N, 3]`` of shots ``shot`` ``[N]``."""
        if self.mode == "shared":
            return self.nets[0].gradient(self._shared_input(points, shot))
        if len(self.nets) == 1:
            return self.nets[0].gradient(points)
        out = points.new_zeros(points.shape[0], 3)
        for k, net in enumerate(self.nets):
            idx = (shot == k).nonzero()[:, 0]
            if idx.numel():
                out = out.index_put((idx,), net.gradient(points[idx]))
        return out


def gaussian_source_density(points: Tensor, xs: Tensor, zs: Tensor, source: Source) -> Tensor:
    """s(x, z, t) ``[N]`` at physical points ``[N, 3]`` of ``source`` fired at ``xs``,
    ``zs`` ``[N]`` (m): its wavelet times a unit-mass Gaussian of width σ, for
    points of several shots in one batch (1/m² per unit of the wavelet)."""
    r2 = (points[:, 0] - xs) ** 2 + (points[:, 1] - zs) ** 2
    sigma = source.sigma
    g = torch.exp(-0.5 * r2 / sigma**2) / (2 * math.pi * sigma**2)
    return source.wavelet(points[:, 2]) * g


def wave_residual(u_tt: Tensor, laplacian: Tensor, c: Tensor, s: Tensor) -> Tensor:
    """r = u_tt − c² (∇²u − s): zero where u solves ∇²u − u_tt/c² = s. All ``[N]``."""
    return u_tt - c**2 * (laplacian - s)


def scattered_residual(
    du_tt: Tensor, du_laplacian: Tensor, c: Tensor, c0: Tensor, u0_tt: Tensor
) -> Tensor:
    """r = δu_tt − c² ∇²δu − (c²/c0² − 1) · u0_tt: the residual of u = u0 + δu, with
    u0 the wavefield in c0 (``u0_tt = c0²(∇²u0 − s)``), free of the source. All ``[N]``."""
    return du_tt - c**2 * du_laplacian - ((c / c0) ** 2 - 1) * u0_tt
