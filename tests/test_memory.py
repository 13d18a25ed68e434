"""The memory estimate against the memory a run really takes: the peak resident
memory of training steps, measured in fresh processes at two batch sizes, grows
with the batch as the estimate's ``pde batch`` part does (within a tolerance that
fails when the backward factor is halved or doubled)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

#: One process: build a forward PINN with ``batch`` points in one batch, reset the
#: peak resident memory (Linux: ``clear_refs`` 5 resets VmHWM; building the problem
#: may itself peak higher, e.g. the Deepwave reference), train three steps, print the
#: peak's growth over the resident memory at the reset, and the estimate.
PROBE = textwrap.dedent(
    """
    import sys, torch
    torch.set_num_threads(1)
    from seispinn.experiments.forward import forward_problem, load_forward_config, reference_model
    from seispinn.memory import problem_memory
    from seispinn.pinn.training import train
    batch = int(sys.argv[1])
    cfg = load_forward_config(None, {
        "training": {"steps": 3, "progress": False, "log_every": 1},
        "collocation": {"n_points": batch, "batch_size": batch, "n_ic": 100},
        "network": {"width": 32, "depth": 3},
        "reference": {"dx": 10.0, "padding": 200.0},
    })
    problem = forward_problem(cfg, reference_model(cfg), torch.device("cpu"))
    estimate = problem_memory(problem).parts["pde batch"]
    def status(key):
        with open("/proc/self/status") as f:
            line = next(x for x in f if x.startswith(key + ":"))
        return int(line.split()[1]) * 1024
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    train(problem, cfg.training)
    print(status("VmHWM") - before, estimate)
    """
)


def _growth_and_estimate(batch: int, repeats: int = 2) -> tuple[float, float]:
    """The largest peak growth of ``repeats`` fresh processes, and the estimate. One
    process can peak low: glibc's allocator sometimes serves a step's tensors from
    memory an earlier one freed (measured per point: 12.5-14.5 KB most runs, 9.9 KB
    once in a CI run); the estimate is for the peak a run can reach."""
    growths, estimate = [], 0.0
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", PROBE, str(batch)],
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        ).stdout.split()
        growths.append(float(out[-2]))
        estimate = float(out[-1])
    return max(growths), estimate


@pytest.mark.skipif(
    not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's peak-RSS reset"
)
def test_estimate_follows_the_measured_peak_per_point() -> None:
    """Measured on CPU: 12.5-14.5 KB per point against an estimate of 14.4 (32x3
    network, 8,000 → 32,000 points; a single process read 9.9 once, hence the largest
    of two and the lower bound 0.6); with the backward factor halved the ratio is
    1.74, doubled about 0.45."""
    small_growth, small_est = _growth_and_estimate(8_000)
    large_growth, large_est = _growth_and_estimate(32_000)
    measured = (large_growth - small_growth) / 24_000
    estimated = (large_est - small_est) / 24_000
    assert 0.6 < measured / estimated < 1.3, (measured, estimated)
