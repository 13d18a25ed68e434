"""Analytic solutions of the 2D acoustic wave equation, for verification.

With Deepwave's convention ``∇²u − u_tt/c² = s`` and a point source
``s = f(t) δ(x − x_s)``, the field is ``u = −(f ∗ G)`` with the 2D Green's
function ``G(r, t) = H(t − r/c) / (2π √(t² − r²/c²))``.
"""

from __future__ import annotations

import numpy as np

from seispinn.acquisition import ricker_fn

__all__ = ["ricker_fn", "point_source_trace", "gaussian_source_trace", "peak_amplitude"]


def point_source_trace(
    r: float, c: float, t: np.ndarray, freq: float, delay: float, n_quad: int = 2000
) -> np.ndarray:
    """``u(r, t) = −(f ∗ G)(r, t)`` for a Ricker point source, at times ``t`` (s).

    The substitution ``τ = (r/c) cosh σ`` removes the Green's function's
    inverse-square-root singularity at the wavefront, leaving the smooth
    integral ``−1/(2π) ∫₀^{acosh(ct/r)} f(t − (r/c) cosh σ) dσ``, evaluated by
    the trapezoidal rule with ``n_quad`` nodes per time.

    Args:
        r: source–receiver distance in metres (> 0).
        c: velocity in m/s.
        t: ``[nt]`` times in seconds.

    Returns:
        ``[nt]`` wavefield values.
    """
    t = np.asarray(t, dtype=np.float64)
    t_arr = r / c
    s_max = np.arccosh(np.maximum(t / t_arr, 1.0))  # 0 before the first arrival
    u = np.linspace(0.0, 1.0, n_quad)
    s = s_max[:, None] * u[None, :]
    f = ricker_fn(t[:, None] - t_arr * np.cosh(s), freq, delay)
    return -np.trapezoid(f, u, axis=1) * s_max / (2 * np.pi)


def gaussian_source_trace(
    x_r: float,
    z_r: float,
    c: float,
    t: np.ndarray,
    freq: float,
    delay: float,
    sigma: float,
    n_r: int = 241,
    n_theta: int = 64,
    n_table: int = 48,
) -> np.ndarray:
    """Field at ``(x_r, z_r)`` (m, source at the origin) of ``s = f(t) g_σ(x)``.

    ``u = Σ_i g_σ(x_i) w_i · u_point(|x_r − x_i|)``: the point-source solution
    integrated over the unit-mass Gaussian in polar coordinates around the
    source (``n_r`` radii up to 5σ, ``n_theta`` angles), with the point traces
    interpolated from a table of ``n_table`` distances.
    """
    t = np.asarray(t, dtype=np.float64)
    rho = np.linspace(0.0, 5 * sigma, n_r)
    theta = np.linspace(0.0, 2 * np.pi, n_theta, endpoint=False)
    rr, th = np.meshgrid(rho, theta, indexing="ij")
    w = np.exp(-0.5 * rr**2 / sigma**2) / (2 * np.pi * sigma**2) * rr
    w *= (rho[1] - rho[0]) * (2 * np.pi / n_theta)
    w[0] *= 0.5
    w[-1] *= 0.5
    # The point solution is log-singular at r = 0 but integrable; a floor keeps the
    # table finite when the receiver sits inside the Gaussian.
    dist = np.maximum(np.hypot(x_r - rr * np.cos(th), z_r - rr * np.sin(th)).ravel(), 1e-3 * sigma)
    table_r = np.linspace(dist.min(), dist.max(), n_table)
    table = np.stack([point_source_trace(r, c, t, freq, delay) for r in table_r])
    idx = np.interp(dist, table_r, np.arange(len(table_r)))
    lo = np.clip(np.floor(idx).astype(int), 0, len(table_r) - 2)
    frac = (idx - lo)[:, None]
    traces = (1 - frac) * table[lo] + frac * table[lo + 1]
    return (w.ravel()[:, None] * traces).sum(axis=0)


def peak_amplitude(
    sigma: float, freq: float, delay: float, c: float, t_max: float, samples: int = 200
) -> float:
    """The peak |u| one σ from a Gaussian-spread Ricker source (σ in m, freq in Hz,
    delay and t_max in s) in a homogeneous medium of velocity ``c`` (m/s), over
    ``samples`` times in [0, t_max]: the amplitude scale U of a wave PINN, known
    without running a simulation."""
    t = np.linspace(0.0, t_max, samples)
    return float(np.abs(gaussian_source_trace(sigma, 0.0, c, t, freq, delay, sigma)).max())
