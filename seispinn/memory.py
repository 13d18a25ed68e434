"""Peak-memory estimates of a training run, made before it starts.

A PINN step's memory is dominated by what autograd keeps for the backward pass:
every layer's activations and their input derivatives for each point of the
batch. That grows linearly with the batch, so it is measured once on two small
probe batches of the real problem (the saved tensors' bytes, through
``torch.autograd.graph.saved_tensors_hooks``) and extrapolated; parameters,
optimiser state, collocation points, per-point weights and data are counted
from their sizes. :func:`check_fits` compares the total with what the device
has free and refuses a run that cannot fit, naming the settings that decide it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seispinn.errors import ResourceError
from seispinn.pinn.distributed import shard

__all__ = [
    "MemoryEstimate",
    "saved_bytes",
    "bytes_per_item",
    "module_state_bytes",
    "available_bytes",
    "check_fits",
    "gib",
    "step_parts",
    "point_parts",
    "problem_memory",
    "PINN_KNOBS",
    "BACKWARD_FACTOR",
    "RUNTIME_BYTES",
]

#: Backward's transient buffers (gradients of the saved activations, one layer at a
#: time) on top of the saved tensors, and the allocator's slack: the step's peak
#: resident memory grows by 2.2-2.4x the saved bytes per point on CPU (forward PINN,
#: 32x3 and 64x4 networks, 1,000-32,000-point batches; tests/test_memory.py pins it).
BACKWARD_FACTOR = 2.3
#: A grad-norm refresh back-propagates per-point signals beside the step's graph:
#: 3.75x the saved bytes per point measured on CPU, 1.65x the plain step's.
GRADNORM_FACTOR = 1.65
#: What torch itself allocates in a process's first training steps (thread pools,
#: allocator caches, kernels): 58-140 MiB measured on CPU.
RUNTIME_BYTES = 128 * 2**20
#: Share of the free memory a run may plan to use.
USABLE_FRACTION = 0.9
#: The settings that size a PINN run's memory, named when it does not fit.
PINN_KNOBS = ("[collocation] batch_size", "data_batch", "n_points", "[network] width/depth")


def gib(n_bytes: float) -> str:
    """``"1.23 GiB"`` / ``"45.6 MiB"``."""
    return f"{n_bytes / 2**30:.2f} GiB" if n_bytes >= 2**30 else f"{n_bytes / 2**20:.1f} MiB"


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak bytes of a run, by part.

    Attributes:
        parts: bytes per named part (e.g. ``"pde batch"``, ``"parameters + Adam"``).
        knobs: the config settings that scale the largest parts, for messages.
    """

    parts: dict[str, float]
    knobs: tuple[str, ...] = field(default=())

    @property
    def total(self) -> float:
        return float(sum(self.parts.values()))

    def describe(self) -> str:
        """One line: total and the parts, largest first."""
        parts = sorted(self.parts.items(), key=lambda kv: -kv[1])
        inner = ", ".join(f"{k} {gib(v)}" for k, v in parts if v >= 2**20)
        return f"{gib(self.total)}" + (f" ({inner})" if inner else "")


def _storage_key(t: Tensor) -> tuple[str, int]:
    return (str(t.device), t.untyped_storage().data_ptr())


def saved_bytes(fn: Callable[[], Tensor], exclude: list[Tensor] | None = None) -> int:
    """Bytes of the distinct storages autograd saves while ``fn()`` runs, plus its
    output; tensors sharing a storage with ``exclude`` (the parameters) not counted."""
    skip = {_storage_key(t) for t in exclude or []}
    seen: dict[tuple[str, int], int] = {}

    def pack(t: Tensor) -> Tensor:
        key = _storage_key(t)
        if key not in skip:
            seen[key] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    seen[_storage_key(out)] = out.untyped_storage().nbytes()
    return sum(seen.values())


def bytes_per_item(
    fn: Callable[[int], Tensor], exclude: list[Tensor] | None = None, n: int = 64
) -> float:
    """Autograd bytes per batch item of ``fn(batch_size)``: the slope between
    batches of ``n`` and ``2n`` (what does not grow with the batch cancels)."""
    small = saved_bytes(lambda: fn(n), exclude)
    large = saved_bytes(lambda: fn(2 * n), exclude)
    return max(large - small, 0) / n


def module_state_bytes(modules: list[nn.Module], optimiser_slots: int = 2) -> float:
    """Parameters, their gradients and ``optimiser_slots`` Adam moments, in bytes."""
    n = sum(p.numel() * p.element_size() for m in modules for p in m.parameters())
    return float(n * (2 + optimiser_slots))


def step_parts(
    modules: list[nn.Module],
    pde: Callable[[int], Tensor],
    batch: int,
    *,
    gradnorm: bool = False,
    data: Callable[[int], Tensor] | None = None,
    data_batch: int = 0,
    world: int = 1,
) -> dict[str, float]:
    """Peak bytes of one training step by part: the PDE batch (``pde(n)``: the loss of
    ``n`` points), the data batch likewise, parameters with gradients and Adam state.
    Each of ``world`` ranks holds 1/world of the batches."""
    params = [p for m in modules for p in m.parameters()]
    factor = BACKWARD_FACTOR * (GRADNORM_FACTOR if gradnorm else 1.0)
    parts = {
        "pde batch": factor * bytes_per_item(pde, params) * -(-batch // world),
        "parameters + Adam": module_state_bytes(modules),
    }
    if data is not None:
        per = bytes_per_item(data, params)
        parts["data batch"] = BACKWARD_FACTOR * per * -(-data_batch // world)
    return parts


def point_parts(n_points: int, weighting: str, data_samples: int = 0) -> dict[str, float]:
    """Bytes held whatever the batch: collocation points (float32 x, z, t and an
    int64 id or shot), per-point weights (SA: λ, its gradient, two Adam moments),
    observed trace samples (x, z, t, an int64 shot and the value each) and torch's
    own runtime."""
    parts = {
        "collocation points": n_points * (3 * 4 + 8),
        "point weights": n_points * 4 * (4 if weighting == "sa" else 1),
        "torch runtime": RUNTIME_BYTES,
    }
    if data_samples:
        parts["data samples"] = data_samples * (3 * 4 + 8 + 4)
    return parts


def problem_memory(problem: Any) -> MemoryEstimate:
    """Estimated peak memory of a training step of ``problem`` (a
    :class:`seispinn.pinn.problem.WaveProblem`): the batches' autograd bytes measured
    on probe batches of its own residual and data misfit, the rest by size."""
    c, p = problem.collocation, problem.points
    data = None
    if problem.data is not None:
        device = problem.device
        data = lambda n: problem.data_misfit(torch.arange(n, device=device))  # noqa: E731
    parts = step_parts(
        list(problem.trainable().values()),
        lambda n: problem.residual(p.points[:n], p.shot[:n]).square().sum(),
        min(c.batch_size, len(p)),
        gradnorm=problem.weighting.needs_point_loss,
        data=data,
        data_batch=c.data_batch,
        world=shard().world,
    )
    samples = len(problem.data.values) if problem.data is not None else 0
    parts.update(point_parts(len(p), problem.weighting.name, samples))
    return MemoryEstimate(parts, knobs=PINN_KNOBS)


def _cgroup_limit() -> int | None:
    """The container's memory limit minus its usage (cgroup v2 or v1), if any."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit.isdigit() and int(limit) < 2**60:
            return int(limit) - usage
    return None


def available_bytes(device: torch.device) -> int:
    """Memory free for this run: the GPU's free memory on CUDA; on CPU the
    kernel's ``MemAvailable``, or the container limit if that is lower."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:  # not Linux: all physical memory, the best we know
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    container = _cgroup_limit()
    return min(available, container) if container is not None else available


def check_fits(
    estimate: MemoryEstimate,
    device: torch.device,
    what: str,
    *,
    available: int | None = None,
    show: bool = False,
) -> str:
    """The one-line statement of the estimate (on stderr with ``show``), or
    :class:`ResourceError` when it exceeds ``USABLE_FRACTION`` of the free memory
    (``available`` overrides)."""
    free = available_bytes(device) if available is None else available
    line = f"{what}: estimated peak memory {estimate.describe()}; {gib(free)} free on {device}"
    if estimate.total > USABLE_FRACTION * free:
        knobs = f"; lower {', '.join(estimate.knobs)}" if estimate.knobs else ""
        raise ResourceError(f"{line}: does not fit{knobs}")
    if show:
        print(line, file=sys.stderr)
    return line
