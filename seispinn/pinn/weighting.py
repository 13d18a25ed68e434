"""Per-point weights for PINN loss terms, keyed by stable point ids.

A loss term over collocation points is ``L = mean_i w_i r_i²``. The strategies
here choose ``w_i`` (METHOD.md §1):

- :class:`Uniform`                 ``w_i = 1``
- :class:`GradNormWeights`         ``w_i`` ∝ mean_j g_j / (g_i + ε), ``g_i = ‖∇θ r_i²‖``
                                   (Wang, Teng & Perdikaris 2021), EMA-smoothed, clipped
- :class:`SelfAdaptiveMask`        ``w_i = m(λ_i)``, λ trained by gradient *ascent*
                                   (SA-PINN, McClenny & Braga-Neto 2023)
- :class:`ResidualBasedAttention`  ``λ_i ← γ λ_i + η |r_i| / max_j |r_j|``, ``w_i ∝ λ_i²``
                                   (RBA, Anagnostopoulos et al. 2024), gradient-free

Every per-point quantity is indexed by a point id (a ``LongTensor`` carried with
the point), never by the point's position in a batch, so shuffling, mini-batching
and resampling keep weight i attached to point i. All state is tensors
(parameters and buffers), so ``torch.load(..., weights_only=True)`` restores it.

How a trainer uses a strategy, one step::

    sq = residual(model, points) ** 2                     # [B]
    loss = weighting.weighted_loss(sq, ids)               # mean(w * r²)
    loss.backward(); opt.step(); ascent_opt.step()        # ascent_opt may be None
    weighting.update(step, ids, sq.detach(), PointLoss(model, loss_fn, points))

Per-point gradient norms (for grad-norm) come from :func:`per_point_grad_norms`,
which uses a cheap activation-based formula when the loss allows it and an exact
``torch.func`` computation otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad, vmap

from seispinn.errors import ConfigError, TrainingError
from seispinn.pinn.derivatives import record_jet_linears

__all__ = [
    "Points",
    "PointLossFn",
    "PointLoss",
    "grad_norms_linear",
    "grad_norms_vmap",
    "grad_norms_loop",
    "per_point_grad_norms",
    "GRAD_NORM_METHODS",
    "MASKS",
    "weighted_mean",
    "enrichment",
    "SAOptions",
    "GradNormOptions",
    "RBAOptions",
    "PointWeighting",
    "Uniform",
    "GradNormWeights",
    "SelfAdaptiveMask",
    "ResidualBasedAttention",
    "STRATEGIES",
    "make_weighting",
]

#: A batch of points: one tensor ``[B, ...]`` or a tuple of them (e.g. ``(x, target)``),
#: every leaf with the batch on axis 0.
Points = Tensor | tuple[Tensor, ...]
#: ``loss_fn(params, points) -> [B]`` per-point losses ``r_i²``. ``params`` maps the
#: model's parameter names to tensors; evaluate the model with
#: ``torch.func.functional_call(model, params, inputs)`` so that the same function
#: serves the exact (``torch.func``) and the cheap gradient-norm paths.
PointLossFn = Callable[[dict[str, Tensor], Points], Tensor]


# --------------------------------------------------------------------------------------
# Per-point gradient norms
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PointLoss:
    """What grad-norm needs to re-evaluate per-point losses ``l_i = r_i²``.

    Attributes:
        model: the network whose trainable parameters θ the norms are taken over.
        loss_fn: ``(params, points) -> [B]`` per-point losses (see :data:`PointLossFn`).
        points: the batch the losses are evaluated on, batch on axis 0.
    """

    model: nn.Module
    loss_fn: PointLossFn
    points: Points

    def trainable(self) -> dict[str, Tensor]:
        """The model's trainable parameters by name (the θ of ``∇θ``)."""
        return {k: p for k, p in self.model.named_parameters() if p.requires_grad}

    def __call__(self) -> Tensor:
        """Per-point losses ``[B]`` at the model's current parameters."""
        return self.loss_fn(dict(self.model.named_parameters()), self.points)


@dataclass
class _LinearCall:
    """One application of a linear layer to a batch: inputs ``a`` ``[B, R, in]``
    (R rows per sample: 1 for a plain call; value, first and second derivative rows
    for a jet), the output tensors (``[B, out]`` or ``[B, r, out]``) whose gradients,
    stacked, give δ ``[B, R, out]``, and which rows carry the bias."""

    layer: nn.Linear
    a: Tensor
    outputs: list[Tensor]
    bias_rows: Tensor


def _record_calls(
    point_loss: PointLoss, linears: list[nn.Linear]
) -> tuple[Tensor, list[_LinearCall]]:
    calls: list[_LinearCall] = []

    def remember(module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        a = inputs[0]
        calls.append(_LinearCall(module, a[:, None, :], [output], torch.ones(1, dtype=torch.bool)))

    handles = [m.register_forward_hook(remember) for m in linears]
    try:
        with record_jet_linears() as jets:
            losses = point_loss()
    finally:
        for h in handles:
            h.remove()
    for layer, jin, jout in jets:
        rows = 1 + jin.first.shape[1] + jin.second.shape[1]
        mask = torch.zeros(rows, dtype=torch.bool)
        mask[0] = True
        a = torch.cat([jin.value[:, None, :], jin.first, jin.second], dim=1)
        calls.append(_LinearCall(layer, a, [jout.value, jout.first, jout.second], mask))
    return losses, calls


def grad_norms_linear(point_loss: PointLoss, *, check: bool = True) -> Tensor | None:
    r"""Per-point ``‖∇θ l_i‖`` from layer activations, or ``None`` if this path is invalid.

    For a linear layer ``z = W a + b`` acting on each sample separately, the
    gradient of sample i's loss is ``∇W l_i = Σ_r δ_ir a_irᵀ`` over the rows r the
    layer is applied to for that sample (one row for a plain call; the value and
    its first and second input derivatives when a residual is built on
    :class:`~seispinn.pinn.derivatives.Jet`\ s, where ``W`` multiplies every row)
    with ``δ_ir = ∂l_i/∂z_ir``, so ``‖∇W l_i‖² = Σ_rs (a_ir·a_is)(δ_ir·δ_is)``: a
    Gram matrix of activations times one of back-propagated signals, and
    ``∇b l_i = Σ_(value rows) δ_ir``. Since sample i's outputs only depend on
    sample i's inputs, ``δ_i`` is also ``∂(Σ_j l_j)/∂z_i``: one backward pass of
    the summed loss gives every ``δ_i``. Cost: one forward and one backward, plus
    ``B R² (in + out)`` for the Gram matrices, against B backward passes for the
    exact methods.

    The formula holds only if (a) every trainable parameter belongs to an
    ``nn.Linear`` applied to ``[B, in]`` inputs (plain calls or jets) covering the
    whole batch, (b) layers act on each sample separately, and (c) θ enters the
    loss only through those products (a residual taken with ``torch.autograd.grad``
    breaks it, as θ then also enters through the backward graph). (a) is checked
    by structure; (c) by ``check``: the per-sample gradients must add up to the
    batch gradient. A layer mixing samples without parameters (a batch-wise
    normalisation) passes both checks and gives wrong norms: do not use this path
    for such models.

    Args:
        point_loss: model, per-point loss function and batch.
        check: verify (c) with one extra gradient; disable only for speed on a
            model and loss already known to satisfy it.

    Returns:
        ``[B]`` gradient norms (detached), or ``None`` when the path does not apply.
    """
    model = point_loss.model
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    params = list(point_loss.trainable().values())
    covered = {id(p) for m in linears for p in m.parameters() if p.requires_grad}
    if not linears or covered != {id(p) for p in params}:
        return None
    losses, calls = _record_calls(point_loss, linears)
    n = losses.shape[0]
    if not calls or any(
        c.a.dim() != 3 or c.a.shape[0] != n or not all(z.requires_grad for z in c.outputs)
        for c in calls
    ):
        return None
    outputs = [z for c in calls for z in c.outputs]
    grads = torch.autograd.grad(
        losses.sum(), outputs + (params if check else []), allow_unused=True
    )
    # Gradients of the tensors the loss was built from (a view made afterwards would
    # not be in the graph), then [B, out] → [B, 1, out] rows.
    deltas = [
        (torch.zeros_like(z) if g is None else g).reshape(z.shape[0], -1, z.shape[-1])
        for z, g in zip(outputs, grads, strict=False)
    ]
    by_layer: dict[int, list[tuple[_LinearCall, Tensor]]] = {}
    k = 0
    for c in calls:
        d = torch.cat(deltas[k : k + len(c.outputs)], dim=1)
        k += len(c.outputs)
        by_layer.setdefault(id(c.layer), []).append((c, d))
    sq = torch.zeros(n, dtype=losses.dtype, device=losses.device)
    per_sample_sum: dict[int, Tensor] = {}
    for entries in by_layer.values():
        layer = entries[0][0].layer
        a = torch.cat([c.a.detach() for c, _ in entries], dim=1)  # [B, R, in]
        d = torch.cat([d for _, d in entries], dim=1)  # [B, R, out]
        bias_rows = torch.cat([c.bias_rows for c, _ in entries]).to(d.device)
        if layer.weight.requires_grad:
            gram_a = a @ a.transpose(1, 2) if a.shape[1] > 1 else a.pow(2).sum(2, keepdim=True)
            gram_d = d @ d.transpose(1, 2) if d.shape[1] > 1 else d.pow(2).sum(2, keepdim=True)
            sq = sq + (gram_a * gram_d).sum((1, 2))
            per_sample_sum[id(layer.weight)] = torch.einsum("bro,bri->oi", d, a)
        if layer.bias is not None and layer.bias.requires_grad:
            db = d[:, bias_rows].sum(1)
            sq = sq + db.pow(2).sum(1)
            per_sample_sum[id(layer.bias)] = db.sum(0)
    if check:
        for p, g in zip(params, grads[len(outputs) :], strict=True):
            total = torch.zeros_like(p) if g is None else g
            summed = per_sample_sum.get(id(p), torch.zeros_like(p))
            scale = total.abs().max().clamp_min(1e-30)
            if not torch.allclose(summed, total, rtol=1e-4, atol=1e-5 * float(scale)):
                return None
    return sq.clamp_min(0).sqrt().detach()


def _unsqueeze(points: Points) -> Points:
    if isinstance(points, Tensor):
        return points.unsqueeze(0)
    return tuple(t.unsqueeze(0) for t in points)


def grad_norms_vmap(point_loss: PointLoss, *, chunk_size: int | None = None) -> Tensor:
    """Exact per-point ``‖∇θ l_i‖`` with ``torch.func`` (``vmap`` of ``grad``).

    Works for any ``loss_fn`` written with ``torch.func``-compatible operations,
    including input derivatives taken with ``torch.func.grad``/``jacfwd``. It does
    not work when ``loss_fn`` calls ``torch.autograd.grad`` (use
    :func:`grad_norms_loop`). Memory grows with ``chunk_size`` × number of
    parameters; cost is roughly that of B backward passes.

    Returns:
        ``[B]`` gradient norms (detached).
    """
    params = {k: p.detach() for k, p in point_loss.trainable().items()}

    def one_point_loss(p: dict[str, Tensor], point: Points) -> Tensor:
        batch_of_one = _unsqueeze(point)
        return point_loss.loss_fn(p, batch_of_one).squeeze(0)

    per_point = vmap(grad(one_point_loss), in_dims=(None, 0), chunk_size=chunk_size)
    grads = per_point(params, point_loss.points)
    sq = sum(g.flatten(1).pow(2).sum(1) for g in grads.values())
    return torch.as_tensor(sq).sqrt().detach()


def grad_norms_loop(point_loss: PointLoss) -> Tensor:
    """Exact per-point ``‖∇θ l_i‖`` by one autograd backward per point.

    The slowest and most general method: any ``loss_fn`` that autograd can
    differentiate (including residuals built with ``torch.autograd.grad(...,
    create_graph=True)``). Use on a subset of points, every few steps.

    Returns:
        ``[B]`` gradient norms (detached).
    """
    params = list(point_loss.trainable().values())
    losses = point_loss()
    norms = []
    for i in range(losses.shape[0]):
        gs = torch.autograd.grad(losses[i], params, retain_graph=True, allow_unused=True)
        norms.append(sum(g.pow(2).sum() for g in gs if g is not None))
    return torch.stack([torch.as_tensor(v, dtype=losses.dtype) for v in norms]).sqrt().detach()


GRAD_NORM_METHODS = ("auto", "linear", "vmap", "loop")


def per_point_grad_norms(
    point_loss: PointLoss,
    method: str = "auto",
    chunk_size: int | None = None,
    *,
    check: bool = True,
) -> tuple[Tensor, str]:
    """Per-point gradient norms ``g_i = ‖∇θ l_i‖``, by the cheapest valid method.

    Args:
        point_loss: model, per-point loss function and batch of B points.
        method: ``'linear'`` (activation formula, raises if invalid), ``'vmap'``,
            ``'loop'``, or ``'auto'``: linear if it applies, else vmap, else
            (when ``loss_fn`` uses ``torch.autograd.grad``) loop.
        chunk_size: points per ``vmap`` chunk (None: all at once).
        check: let the linear path verify itself (see :func:`grad_norms_linear`);
            a caller that saw it pass on the same model and loss may skip it.

    Returns:
        ``([B] norms, method used)``.
    """
    if method not in GRAD_NORM_METHODS:
        raise ConfigError(f"unknown grad-norm method {method!r}; choose one of {GRAD_NORM_METHODS}")
    if method in ("auto", "linear"):
        norms = grad_norms_linear(point_loss, check=check)
        if norms is not None:
            return norms, "linear"
        if method == "linear":
            raise ConfigError(
                "grad-norm method 'linear' does not apply to this model/loss (parameters "
                "outside nn.Linear, a layer reused, or input derivatives in the loss); "
                "use 'vmap' or 'loop'"
            )
    if method == "loop":
        return grad_norms_loop(point_loss), "loop"
    try:
        return grad_norms_vmap(point_loss, chunk_size=chunk_size), "vmap"
    except RuntimeError:
        if method == "vmap":
            raise
        # torch.autograd.grad inside loss_fn cannot run under torch.func transforms.
        return grad_norms_loop(point_loss), "loop"


# --------------------------------------------------------------------------------------
# Plain functions on weights
# --------------------------------------------------------------------------------------


def weighted_mean(sq_residual: Tensor, weights: Tensor, denominator: int | None = None) -> Tensor:
    """``mean_i w_i r_i²``: ``sq_residual`` and ``weights`` are ``[B]``; returns a scalar.
    With ``denominator``, ``Σ_i w_i r_i² / denominator`` instead (a rank's share of a
    batch spread over processes; zero for an empty share)."""
    if sq_residual.shape != weights.shape:
        raise ConfigError(
            f"squared residuals {tuple(sq_residual.shape)} and weights "
            f"{tuple(weights.shape)} must have the same shape [B]"
        )
    weighted = weights.to(sq_residual.dtype) * sq_residual
    return weighted.mean() if denominator is None else weighted.sum() / denominator


def enrichment(weights: Tensor, in_region: Tensor) -> float:
    """METHOD §4 γ enrichment: share of Σw inside a region ÷ share of points there.

    Args:
        weights: ``[N]`` non-negative weights (or masks γ).
        in_region: ``[N]`` bool, True for points inside the region.

    Returns:
        1 = no preference, > 1 = weight concentrated in the region; NaN when the
        region is empty or the weights sum to zero.
    """
    weights = weights.detach().double()
    in_region = in_region.bool()
    total = weights.sum()
    n_in = int(in_region.sum())
    if n_in == 0 or total <= 0:
        return float("nan")
    return float(weights[in_region].sum() / total / (n_in / in_region.numel()))


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


# --------------------------------------------------------------------------------------
# Options
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SAOptions:
    """SA-PINN options (defaults chosen on the 1D race, see docs/weighting.md).

    Attributes:
        mask: ``'square'`` (λ², McClenny's code), ``'sigmoid'`` (the seed's) or ``'softplus'``.
        init: initial λ for every point. A bounded mask's room to grow depends on
            it: sigmoid from 0 (γ = 0.5) can at most double a weight.
        optimizer: ``'adam'`` (McClenny) or ``'sgd'`` (plain gradient ascent,
            ``λ ← λ + lr ∇λ L``, which keeps relative growth that Adam normalises away).
        lr: ascent learning rate. For ``'sgd'`` the step is ``lr · m'(λ_i) r_i² / B``
            (B = batch size), so scale it with the batch.
        normalise: divide the masks by their mean over all points (a constant for
            the descent step), so growing masks do not inflate the PDE term against
            the other terms and far-field points keep a weight near 1 on average.
    """

    mask: str = "square"
    init: float = 1.0
    optimizer: str = "adam"
    lr: float = 5e-3
    normalise: bool = False

    def __post_init__(self) -> None:
        if self.mask not in MASKS:
            raise ConfigError(f"unknown SA mask {self.mask!r}; choose one of {sorted(MASKS)}")
        if self.optimizer not in _ASCENT_OPTIMIZERS:
            choices = sorted(_ASCENT_OPTIMIZERS)
            raise ConfigError(f"unknown SA optimizer {self.optimizer!r}; choose one of {choices}")
        if not self.lr > 0:
            raise ConfigError(f"SA lr must be positive, got {self.lr}")
        if self.mask == "square" and self.init == 0:
            # d(λ²)/dλ = 0 at λ = 0: every mask would stay 0 and nothing would train.
            raise ConfigError("SA mask 'square' cannot start from init = 0 (a fixed point)")


@dataclass(frozen=True)
class GradNormOptions:
    """Per-point grad-norm options (METHOD §1).

    Attributes:
        eps: ε in ŵ_i = mean_j g_j / (g_i + ε), in the units of g. It is the
            only thing between a point whose gradient is numerical noise and an
            enormous weight: raising it tames over-correction.
        w_min, w_max: clip range of the target weights, after mean-normalisation.
        alpha: EMA factor, ``w ← α w + (1 − α) ŵ`` (α → 1: slower, smoother).
        every: refresh every K steps (``step % every == 0``).
        method: gradient-norm method, see :func:`per_point_grad_norms`.
        chunk_size: vmap chunk size for the exact method (None: all points).
    """

    eps: float = 1e-8
    w_min: float = 0.1
    w_max: float = 10.0
    alpha: float = 0.9
    every: int = 10
    method: str = "auto"
    chunk_size: int | None = None

    def __post_init__(self) -> None:
        if not (self.eps > 0 and 0 < self.w_min <= 1 <= self.w_max):
            raise ConfigError(
                f"grad-norm needs eps > 0 and 0 < w_min <= 1 <= w_max, got "
                f"eps={self.eps}, w_min={self.w_min}, w_max={self.w_max}"
            )
        if not 0 <= self.alpha < 1 or self.every < 1:
            raise ConfigError(
                f"grad-norm needs 0 <= alpha < 1 and every >= 1, got {self.alpha}, {self.every}"
            )
        if self.method not in GRAD_NORM_METHODS:
            raise ConfigError(
                f"unknown grad-norm method {self.method!r}; choose one of {GRAD_NORM_METHODS}"
            )


@dataclass(frozen=True)
class RBAOptions:
    """Residual-based attention options (Anagnostopoulos et al. 2024).

    Attributes:
        gamma: decay γ of ``λ ← γ λ + η |r| / max|r|``; λ saturates at η / (1 − γ).
        eta: step η.
        init: initial λ (the paper's 0; with ``normalise`` all-equal λ means uniform).
        power: weights are ``λ^power`` (2: the paper's loss ``(λ_i r_i)²``).
        normalise: divide weights by their mean over all points, so the loss keeps
            the scale of a uniform one (the optimiser's step size stays meaningful).
    """

    gamma: float = 0.999
    eta: float = 0.01
    init: float = 0.0
    power: float = 2.0
    normalise: bool = True

    def __post_init__(self) -> None:
        if not (0 <= self.gamma < 1 and self.eta > 0 and self.init >= 0 and self.power > 0):
            raise ConfigError(
                f"RBA needs 0 <= gamma < 1, eta > 0, init >= 0, power > 0, got "
                f"{self.gamma}, {self.eta}, {self.init}, {self.power}"
            )


# --------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------


def _check_ids(ids: Tensor, n_points: int) -> None:
    if ids.dtype != torch.long or ids.dim() != 1:
        raise ConfigError(f"point ids must be a 1-D LongTensor, got {ids.dtype} {tuple(ids.shape)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n_points):
        raise ConfigError(
            f"point ids must lie in [0, {n_points}), got [{int(ids.min())}, {int(ids.max())}]"
        )


class PointWeighting(nn.Module):
    """Base of the per-point weighting strategies: weights ``w_i`` keyed by point id.

    Subclasses implement :meth:`weights`; the hooks below default to no-ops.

    Args:
        n_points: size of the fixed point set; ids run over ``[0, n_points)``.
    """

    name: ClassVar[str] = "base"

    def __init__(self, n_points: int) -> None:
        super().__init__()
        if n_points < 1:
            raise ConfigError(f"n_points must be >= 1, got {n_points}")
        self.n_points = int(n_points)
        # Not state: a checkpoint restores weights, the trainer decides the stage.
        self.frozen = False

    def all_ids(self) -> Tensor:
        """``[n_points]`` ids of every point, on the strategy's device."""
        tensors = [*self.parameters(), *self.buffers()]
        device = tensors[0].device if tensors else torch.device("cpu")
        return torch.arange(self.n_points, device=device)

    def weights(self, ids: Tensor) -> Tensor:
        """``[B]`` weights of points ``ids`` (``[B]`` LongTensor): what multiplies r_i²."""
        raise NotImplementedError

    def weighted_loss(
        self, sq_residual: Tensor, ids: Tensor, denominator: int | None = None
    ) -> Tensor:
        """``mean_i w_i r_i²`` over a batch: ``sq_residual`` ``[B]``, ``ids`` ``[B]`` -> scalar
        (``Σ / denominator`` with one, see :func:`weighted_mean`)."""
        _check_ids(ids, self.n_points)
        return weighted_mean(sq_residual, self.weights(ids), denominator)

    def update(
        self, step: int, ids: Tensor, sq_residual: Tensor, point_loss: PointLoss | None = None
    ) -> None:
        """After-step hook (grad-norm refresh, RBA update); no-op by default.

        Args:
            step: 0-based optimiser step just taken.
            ids: ``[B]`` ids of the batch.
            sq_residual: ``[B]`` squared residuals r_i² of that batch (detached).
            point_loss: re-evaluable per-point losses; grad-norm needs it on refresh steps.
        """

    def ascent_parameters(self) -> list[nn.Parameter]:
        """Parameters trained by gradient *ascent* on the loss (SA's λ); empty otherwise."""
        return []

    def make_ascent_optimizer(self) -> torch.optim.Optimizer | None:
        """An optimiser that ascends :meth:`ascent_parameters` (``maximize=True``), or None."""
        return None

    def freeze(self) -> None:
        """Stop adapting the weights (e.g. during an L-BFGS stage)."""
        self.frozen = True

    def unfreeze(self) -> None:
        """Resume adapting the weights."""
        self.frozen = False

    def relative_weights(self, ids: Tensor | None = None) -> Tensor:
        """``[B]`` weights divided by their mean over ``ids`` (all points if None), detached."""
        ids = self.all_ids() if ids is None else ids
        w = self.weights(ids).detach()
        return w / w.mean().clamp_min(torch.finfo(w.dtype).tiny)

    def diagnostics(self, ids: Tensor | None = None) -> dict[str, float]:
        """Summary numbers over ``ids`` (all points if None) for logs.

        Keys: ``weight_mean`` (raw), ``relative_max``/``relative_min``/``relative_std``
        of w / mean(w); subclasses add their own.
        """
        ids = self.all_ids() if ids is None else ids
        w = self.weights(ids).detach().double()
        rel = w / w.mean().clamp_min(1e-300)
        return {
            "weight_mean": float(w.mean()),
            "relative_max": float(rel.max()),
            "relative_min": float(rel.min()),
            "relative_std": float(rel.std()) if rel.numel() > 1 else 0.0,
        }

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        try:
            return super().load_state_dict(state_dict, strict=strict, assign=assign)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1].strip()
            raise TrainingError(
                f"{self.name} weighting for {self.n_points} points cannot load this state: {first}"
            ) from exc


class Uniform(PointWeighting):
    """Every point weight 1: the plain PINN mean."""

    name = "uniform"

    def weights(self, ids: Tensor) -> Tensor:
        return torch.ones(ids.shape, device=ids.device)


class GradNormWeights(PointWeighting):
    """Per-point gradient-norm balancing (Wang, Teng & Perdikaris 2021, per point).

    On a refresh step, with ``g_i = ‖∇θ r_i²‖`` for the batch::

        ŵ_i = mean_j g_j / (g_i + ε)        (j over the batch)
        ŵ_i ← ŵ_i / mean_j ŵ_j              (mean-normalise)
        w_i ← α w_i + (1 − α) clip(ŵ_i, w_min, w_max)

    ``w`` starts at 1 and is a buffer indexed by point id; points outside the
    batch keep their weight. Statistics (mean g, mean ŵ) are the batch's, so
    mini-batched weights equal full-batch ones only in expectation.

    Over-correction: a point whose gradient is ~0 (residual already ~0, or
    numerical noise) gets ŵ → mean g / ε. :meth:`diagnostics` shows it:
    ``clipped_high_fraction``, ``target_max`` and ``small_grad_relative_weight``.
    """

    name = "gradnorm"

    def __init__(self, n_points: int, options: GradNormOptions | None = None) -> None:
        super().__init__(n_points)
        self.options = options or GradNormOptions()
        self.register_buffer("weight", torch.ones(n_points))
        # Last measured g_i and unclipped target ŵ_i; NaN = never measured.
        self.register_buffer("grad_norm", torch.full((n_points,), float("nan")))
        self.register_buffer("target", torch.full((n_points,), float("nan")))
        self.register_buffer("refreshes", torch.zeros((), dtype=torch.long))
        self.last_method: str | None = None

    def weights(self, ids: Tensor) -> Tensor:
        return self.weight[ids]

    def refresh(self, ids: Tensor, grad_norms: Tensor) -> None:
        """Apply one refresh from measured ``[B]`` gradient norms of points ``ids``."""
        _check_ids(ids, self.n_points)
        if grad_norms.shape != ids.shape:
            raise ConfigError(
                f"grad norms {tuple(grad_norms.shape)} do not match ids {tuple(ids.shape)}"
            )
        o = self.options
        g = grad_norms.detach().to(self.weight.dtype)
        target = g.mean() / (g + o.eps)
        target = target / target.mean()
        clipped = target.clamp(o.w_min, o.w_max)
        self.weight[ids] = o.alpha * self.weight[ids] + (1.0 - o.alpha) * clipped
        self.grad_norm[ids] = g
        self.target[ids] = target
        self.refreshes += 1

    def update(
        self, step: int, ids: Tensor, sq_residual: Tensor, point_loss: PointLoss | None = None
    ) -> None:
        if self.frozen or step % self.options.every != 0:
            return
        if point_loss is None:
            raise ConfigError("grad-norm weighting needs point_loss on refresh steps")
        # The linear path verifies itself once; the model and loss do not change after.
        norms, self.last_method = per_point_grad_norms(
            point_loss,
            self.options.method,
            self.options.chunk_size,
            check=self.last_method != "linear",
        )
        self.refresh(ids, norms)

    def diagnostics(self, ids: Tensor | None = None) -> dict[str, float]:
        """Base keys plus the over-correction signals (over measured points of ``ids``).

        ``refreshes``; ``clipped_high_fraction``/``clipped_low_fraction``: share of
        points whose last target hit ``w_max``/``w_min``; ``target_max``: largest
        unclipped target; ``grad_norm_min_over_mean``; ``small_grad_relative_weight``:
        mean w/mean(w) on the 10 % of points with the smallest g.
        """
        ids = self.all_ids() if ids is None else ids
        out = super().diagnostics(ids)
        out["refreshes"] = float(self.refreshes)
        g, target = self.grad_norm[ids].double(), self.target[ids].double()
        seen = ~torch.isnan(g)
        if not bool(seen.any()):
            return out
        rel = self.relative_weights(ids).double()[seen]
        g, target = g[seen], target[seen]
        o = self.options
        out["clipped_high_fraction"] = float((target >= o.w_max).double().mean())
        out["clipped_low_fraction"] = float((target <= o.w_min).double().mean())
        out["target_max"] = float(target.max())
        out["grad_norm_min_over_mean"] = float(g.min() / g.mean().clamp_min(1e-300))
        n_small = max(1, g.numel() // 10)
        smallest = torch.argsort(g)[:n_small]
        out["small_grad_relative_weight"] = float(rel[smallest].mean())
        return out


_ASCENT_OPTIMIZERS: dict[str, type[torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


class SelfAdaptiveMask(PointWeighting):
    """SA-PINN self-adaptive masks ``w_i = γ_i = m(λ_i)`` (McClenny & Braga-Neto 2023).

    ``λ`` is a ``[n_points]`` Parameter indexed by point id. θ descends and λ
    ascends the same loss ``mean_i m(λ_i) r_i²``: build λ's optimiser with
    :meth:`make_ascent_optimizer` and step both after one ``backward()``. Since
    ``∂L/∂λ_i = m'(λ_i) r_i² / B``, points with larger residuals climb faster.
    :meth:`freeze` stops λ (``requires_grad=False``) for an L-BFGS stage.
    Report ``γ / mean(γ)`` (:meth:`relative_weights`), not γ.
    """

    name = "sa"

    def __init__(self, n_points: int, options: SAOptions | None = None) -> None:
        super().__init__(n_points)
        self.options = options or SAOptions()
        self.lam = nn.Parameter(torch.full((n_points,), float(self.options.init)))
        self._mask = MASKS[self.options.mask]

    def weights(self, ids: Tensor) -> Tensor:
        w = self._mask(self.lam[ids])
        if self.options.normalise:
            # Detached: the ascent must see m'(λ_i) r_i², not a gradient through the mean.
            w = w / self._mask(self.lam.detach()).mean().clamp_min(1e-12)
        return w

    def ascent_parameters(self) -> list[nn.Parameter]:
        return [self.lam] if self.lam.requires_grad else []

    def make_ascent_optimizer(self) -> torch.optim.Optimizer | None:
        params = self.ascent_parameters()
        if not params:
            return None
        return _ASCENT_OPTIMIZERS[self.options.optimizer](params, lr=self.options.lr, maximize=True)

    def freeze(self) -> None:
        super().freeze()
        self.lam.requires_grad_(False)
        self.lam.grad = None  # a stale ascent gradient must not be applied later

    def unfreeze(self) -> None:
        super().unfreeze()
        self.lam.requires_grad_(True)

    def diagnostics(self, ids: Tensor | None = None) -> dict[str, float]:
        """Base keys plus ``lambda_min``/``lambda_mean``/``lambda_max``, and for the
        bounded sigmoid mask ``saturated_fraction`` (γ > 0.99: no room left to grow)."""
        ids = self.all_ids() if ids is None else ids
        out = super().diagnostics(ids)
        lam = self.lam.detach()[ids].double()
        out.update(
            lambda_min=float(lam.min()), lambda_mean=float(lam.mean()), lambda_max=float(lam.max())
        )
        if self.options.mask == "sigmoid":
            out["saturated_fraction"] = float((torch.sigmoid(lam) > 0.99).double().mean())
        return out


class ResidualBasedAttention(PointWeighting):
    """Residual-based attention (RBA, Anagnostopoulos et al. 2024), gradient-free.

    After each step, for the batch: ``λ_i ← γ λ_i + η |r_i| / max_j |r_j|``
    (max over the batch); weights ``w_i = λ_i^p``, divided by their mean over all
    points when ``normalise`` (an all-zero λ then means uniform weights). λ is a
    ``[n_points]`` buffer indexed by point id.
    """

    name = "rba"

    def __init__(self, n_points: int, options: RBAOptions | None = None) -> None:
        super().__init__(n_points)
        self.options = options or RBAOptions()
        self.register_buffer("lam", torch.full((n_points,), float(self.options.init)))

    def weights(self, ids: Tensor) -> Tensor:
        w = self.lam[ids].pow(self.options.power)
        if not self.options.normalise:
            return w
        scale = self.lam.pow(self.options.power).mean()
        if scale <= 0:
            return torch.ones_like(w)
        return w / scale

    def update(
        self, step: int, ids: Tensor, sq_residual: Tensor, point_loss: PointLoss | None = None
    ) -> None:
        if self.frozen:
            return
        _check_ids(ids, self.n_points)
        r = sq_residual.detach().to(self.lam.dtype).clamp_min(0).sqrt()
        peak = r.max()
        if peak <= 0:
            return
        o = self.options
        self.lam[ids] = o.gamma * self.lam[ids] + o.eta * r / peak

    def diagnostics(self, ids: Tensor | None = None) -> dict[str, float]:
        """Base keys plus ``lambda_mean``/``lambda_max``."""
        ids = self.all_ids() if ids is None else ids
        out = super().diagnostics(ids)
        lam = self.lam[ids].double()
        out.update(lambda_mean=float(lam.mean()), lambda_max=float(lam.max()))
        return out


#: Strategy name -> (class, options class or None).
STRATEGIES: dict[str, tuple[type[PointWeighting], type | None]] = {
    "uniform": (Uniform, None),
    "gradnorm": (GradNormWeights, GradNormOptions),
    "sa": (SelfAdaptiveMask, SAOptions),
    "rba": (ResidualBasedAttention, RBAOptions),
}


def make_weighting(name: str, n_points: int, options: object | None = None) -> PointWeighting:
    """Build a strategy by name: ``'uniform'``, ``'gradnorm'``, ``'sa'`` or ``'rba'``.

    Args:
        name: strategy name (see :data:`STRATEGIES`).
        n_points: size of the fixed point set (ids in ``[0, n_points)``).
        options: the strategy's options dataclass, or None for its defaults.
    """
    if name not in STRATEGIES:
        raise ConfigError(f"unknown weighting {name!r}; choose one of {sorted(STRATEGIES)}")
    cls, options_cls = STRATEGIES[name]
    if options_cls is None:
        if options is not None:
            raise ConfigError(f"weighting {name!r} takes no options, got {type(options).__name__}")
        return cls(n_points)
    if options is not None and not isinstance(options, options_cls):
        raise ConfigError(
            f"weighting {name!r} takes {options_cls.__name__}, got {type(options).__name__}"
        )
    return cls(n_points, options)
