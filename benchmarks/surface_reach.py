"""Where the extension lives from surface data: a PINN's reconstruction against the
finite-difference one, in the same (starting) velocity.

    python benchmarks/surface_reach.py [--config examples/anomaly_surface.toml]
        [--steps 3000] [--set KEY=VALUE ...] [--out runs/reach]

Trains one round of the config's PINN with the velocity held at the start (a pure
reconstruction of δu from the data and the wave equation), then computes Deepwave's
data-space reconstruction (:mod:`seispinn.modelling.wri`, the config's ``[wri]``
penalty) in the same velocity, and prints, for each: the share of the extended
source's energy (the PDE residual) and of δu's energy in each depth band; the share
of δu before the background's first arrival; the share beside the box's sides
(left, right, bottom); the data misfit each reaches; and how well each one's
closed-form velocity direction correlates with the other's and with the true
change (over the cells an update may move). Writes ``OUT/reach.json`` and
``OUT/reach.png`` (the depth profiles).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from seispinn.config import parse_overrides
from seispinn.diagnostics.extension import depth_share, early_share, edge_share, first_arrival
from seispinn.experiments.invert import invert, load_invert_config
from seispinn.inputs import holdout_mask, prepare_inputs
from seispinn.modelling.simulate import second_time_derivative
from seispinn.modelling.wri import ExtendedModelling, SlownessModel, largest_eigenvalue
from seispinn.pinn.closed_form import network_extension


def _bands(share: np.ndarray, z: np.ndarray, edges: list[float]) -> list[float]:
    return [float(share[(z >= a) & (z < b)].sum()) for a, b in zip(edges, edges[1:], strict=False)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="examples/anomaly_surface.toml")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--stride", type=int, default=4, help="time samples kept (every k-th)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    p.add_argument("--out", type=Path, default=Path("runs/reach"))
    args = p.parse_args()
    torch.set_num_threads(2)
    fixed = {
        "physics": {"rounds": 1},
        "training": {"steps": args.steps, "frozen_until": {"velocity": args.steps + 1}},
    }
    overrides = fixed
    for section, values in parse_overrides(args.set).items():
        overrides.setdefault(section, {}).update(values)
    config = load_invert_config(args.config, overrides)
    inputs = prepare_inputs(config.data, config.source)
    result = invert(inputs, config, args.out / "pinn", score_heldout=False)
    net = network_extension(result.problem, args.stride)
    pinn_misfit = float(result.history[-1]["loss_data"])

    start = inputs.prior.applied(inputs.start)
    g = inputs.gathers
    use = ~holdout_mask(g, config.data.holdout_every) & g.receiver_mask
    ops = ExtendedModelling(start, start.values.astype(np.float64), g, inputs.source, use, 0.0)
    d0, u0 = ops.background()
    observed = torch.from_numpy(g.data.astype(np.float64) * use[..., None])
    residual = observed - d0
    penalty = config.wri.penalty * largest_eigenvalue(ops.gram, residual)
    e = ops.reconstruct(residual, penalty, config.wri.cg_iterations)
    fitted, du = ops.extended(e)
    fd_misfit = float(((residual - fitted) ** 2).sum() / (observed**2).sum())
    nt = net.du.shape[0]
    keep = slice(0, nt * args.stride, args.stride)
    e_fd = e.permute(2, 0, 1).reshape(du.shape)[keep].numpy()
    du_fd, u0 = du[keep].numpy(), u0[keep].numpy()
    tau = first_arrival(u0, net.dt)

    z = start.z
    edges = [float(z[0]), *[float(v) for v in np.linspace(z[0], z[-1] + start.dz, 5)[1:]]]
    rows = {}
    for name, ext, field in (("PINN", net.e.numpy(), net.du.numpy()), ("FD", e_fd, du_fd)):
        rows[name] = {
            "extension_by_depth": _bands(depth_share(ext), z, edges),
            "du_by_depth": _bands(depth_share(field), z, edges),
            "du_before_first_arrival": early_share(field, tau, net.dt, margin=0.02),
            "du_beside_edges": edge_share(field),
            "extension_profile": depth_share(ext).tolist(),
            "du_profile": depth_share(field).tolist(),
        }
    rows["PINN"]["data_misfit"] = pinn_misfit
    rows["FD"]["data_misfit"] = fd_misfit
    state = SlownessModel.around(start, g, inputs.prior, 2, config.wri.smoothing)
    fd_tt = torch.from_numpy(second_time_derivative(u0 + du_fd, net.dt))
    directions = {
        "PINN": state.direction(net.u_tt, net.e, net.dt, config.wri.stabilise),
        "FD": state.direction(fd_tt, torch.from_numpy(e_fd), net.dt, config.wri.stabilise),
    }
    free = state.mask > 0
    corr = {"PINN_vs_FD": _corr(directions["PINN"], directions["FD"], free)}
    if inputs.true is not None:
        true_dm = 1.0 / inputs.true.values.astype(np.float64) ** 2 - state.m
        for name, d in directions.items():
            corr[f"{name}_vs_true"] = _corr(d, true_dm, free)
    print("direction correlation: " + ", ".join(f"{k} {v:.3f}" for k, v in corr.items()))
    bands = ", ".join(f"{a:.0f}-{b:.0f} m" for a, b in zip(edges, edges[1:], strict=False))
    print(f"depth bands: {bands}")
    for name, r in rows.items():
        print(
            f"{name}: extension by depth {np.round(r['extension_by_depth'], 3).tolist()}, "
            f"δu by depth {np.round(r['du_by_depth'], 3).tolist()}, "
            f"δu before the first arrival {r['du_before_first_arrival']:.3f}, "
            f"beside the edges {r['du_beside_edges']:.3f}, data misfit {r['data_misfit']:.3g}"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"z": z.tolist(), **rows, "direction_correlation": corr}
    (args.out / "reach.json").write_text(json.dumps(summary, indent=1))
    _figure(z, rows).savefig(args.out / "reach.png", dpi=110)


def _corr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    a, b = a[where] - a[where].mean(), b[where] - b[where].mean()
    return float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))


def _figure(z: np.ndarray, rows: dict):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4))
    for k, key in enumerate(("extension_profile", "du_profile")):
        ax = fig.add_subplot(1, 2, k + 1)
        for name, r in rows.items():
            ax.plot(r[key], z, label=name)
        ax.invert_yaxis()
        ax.set_xlabel("share of energy per depth row")
        ax.set_ylabel("depth (m)")
        ax.set_title("extended source (PDE residual)" if k == 0 else "scattered field δu")
        ax.legend()
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
