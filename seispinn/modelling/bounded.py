"""Bounded, preconditioned minimisers of a misfit over a velocity model: L-BFGS with a
backtracking Armijo line search that accepts only a misfit decrease, its memoryless
variant (preconditioned steepest descent), and Adam. Each is a generator of one record
per misfit evaluation, so a caller can show progress and keep the history.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["BoundedRun", "Evaluate", "OPTIMIZERS", "minimise"]


@dataclass
class BoundedRun:
    """The state carried across stages: the velocity (float64, m/s), its bounds,
    the preconditioner, the clock, and the first gradient for the report."""

    c: Tensor
    lo: Tensor | float
    hi: Tensor | float
    precond: Callable[[Tensor], Tensor]
    t0: float
    first_gradient: np.ndarray | None = None
    first_direction: np.ndarray | None = None

    def record(self, j: float, accepted: bool) -> dict[str, float]:
        return {"misfit": j, "seconds": time.perf_counter() - self.t0, "accepted": accepted}

    def clip(self, c: Tensor) -> Tensor:
        return c.clamp(min=self.lo, max=self.hi)

    def remember(self, g: Tensor, d: Tensor) -> None:
        if self.first_gradient is None:
            self.first_gradient = g.numpy().copy()
            self.first_direction = d.numpy().copy()


Evaluate = Callable[[Tensor], tuple[float, Tensor]]


def _lbfgs(
    run: BoundedRun, evaluate: Evaluate, options: Any, first: float, memory: int = 5
) -> Iterator[dict[str, float]]:
    """Preconditioned L-BFGS (two-loop recursion with ``H₀ = γM``) and a backtracking
    Armijo line search on the bounded velocity: every accepted step lowers the
    misfit; the stage ends early when no step along the direction does.
    ``memory = 0`` is preconditioned steepest descent with the same line search."""
    j, g = evaluate(run.c)
    yield run.record(j, True)
    pairs: list[tuple[Tensor, Tensor, float]] = []
    gamma = None
    for _ in range(options.iterations):
        d = -_two_loop(g, pairs, run.precond, gamma)
        slope = float((g * d).sum())
        if slope >= 0:  # not a descent direction: drop the curvature pairs
            pairs.clear()
            d, gamma = -run.precond(g), None
            slope = float((g * d).sum())
        if slope >= 0 or not float(d.abs().max()) > 0:
            return
        run.remember(g, d)
        alpha = first / float(d.abs().max()) if gamma is None else 1.0
        for _try in range(6):
            c_new = run.clip(run.c + alpha * d)
            step = c_new - run.c
            j_new, g_new = evaluate(c_new)
            ok = j_new <= j + 1e-4 * float((g * step).sum())
            yield run.record(j_new, ok)
            if ok:
                break
            # The minimiser of the quadratic through J(0), J'(0) and J(α), kept in
            # [0.1α, 0.5α] as usual for backtracking.
            curv = j_new - j - alpha * slope
            a_q = -slope * alpha**2 / (2 * curv) if curv > 0 else 0.5 * alpha
            alpha = min(max(a_q, 0.1 * alpha), 0.5 * alpha)
        else:
            return
        s, y = step, g_new - g
        sy = float((s * y).sum())
        # Without curvature pairs (memory 0: steepest descent) gamma stays None and
        # every first trial is scaled to `first`.
        if memory and sy > 1e-12 * float((s * s).sum()) ** 0.5 * float((y * y).sum()) ** 0.5:
            pairs.append((s, y, 1.0 / sy))
            del pairs[:-memory]
            gamma = sy / float((y * run.precond(y)).sum())
        run.c, j, g = c_new, j_new, g_new


def _two_loop(
    g: Tensor, pairs: list[tuple[Tensor, Tensor, float]], precond: Callable, gamma: float | None
) -> Tensor:
    """``H g`` for the L-BFGS inverse-Hessian estimate with ``H₀ = γM`` (``M g``
    without pairs)."""
    q = g.clone()
    alphas = []
    for s, y, rho in reversed(pairs):
        a = rho * float((s * q).sum())
        alphas.append(a)
        q -= a * y
    r = (gamma or 1.0) * precond(q)
    for (s, y, rho), a in zip(pairs, reversed(alphas), strict=True):
        b = rho * float((y * r).sum())
        r += (a - b) * s
    return r


def _adam(
    run: BoundedRun, evaluate: Evaluate, options: Any, first: float
) -> Iterator[dict[str, float]]:
    """Adam on the velocity (steps of about ``lr`` m/s), fed the preconditioned
    gradient; every step is taken, whatever the misfit does."""
    dc = torch.zeros_like(run.c, requires_grad=True)
    opt = torch.optim.Adam([dc], lr=options.lr)
    c_start = run.c.clone()
    for k in range(options.iterations + 1):
        c = run.clip(c_start + dc.detach())
        j, g = evaluate(c)
        yield run.record(j, True)
        run.c = c
        if k == options.iterations:
            return
        dc.grad = run.precond(g)
        run.remember(g, -dc.grad)
        opt.step()


OPTIMIZERS = ("lbfgs", "descent", "adam")
_STAGES = {"lbfgs": _lbfgs, "descent": functools.partial(_lbfgs, memory=0), "adam": _adam}


def minimise(
    name: str, run: BoundedRun, evaluate: Evaluate, options: Any, first: float
) -> Iterator[dict[str, float]]:
    """Minimiser ``name`` (one of :data:`OPTIMIZERS`) from ``run``'s velocity: one
    record per evaluation. ``options`` gives ``iterations`` (and Adam's ``lr``, m/s);
    ``first`` bounds the first trial step's largest velocity change (m/s)."""
    return _STAGES[name](run, evaluate, options, first)
