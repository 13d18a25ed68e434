"""Per-point gradient norms ``g_i = ‖∇θ l_i‖`` of a per-point loss ``l_i = r_i²``.

Not a weighting strategy: what grad-norm weighting (and any diagnostic that asks
how hard each point pulls on the parameters) measures. :func:`per_point_grad_norms`
picks the cheapest valid method: an activation formula when every parameter sits
in an ``nn.Linear`` (:func:`grad_norms_linear`, also through forward-mode jets),
else exact ``torch.func`` (:func:`grad_norms_vmap`), else one backward per point
(:func:`grad_norms_loop`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.func import grad, vmap

from seispinn.errors import ConfigError
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
]

#: A batch of points: one tensor ``[B, ...]`` or a tuple of them (e.g. ``(x, target)``),
#: every leaf with the batch on axis 0.
Points = Tensor | tuple[Tensor, ...]
#: ``loss_fn(params, points) -> [B]`` per-point losses ``r_i²``. ``params`` maps the
#: model's parameter names to tensors; evaluate the model with
#: ``torch.func.functional_call(model, params, inputs)`` so that the same function
#: serves the exact (``torch.func``) and the cheap gradient-norm paths.
PointLossFn = Callable[[dict[str, Tensor], Points], Tensor]


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
        with record_jet_linears(point_loss.model) as jets:
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
