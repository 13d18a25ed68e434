"""How far a wavefield trained with a fixed velocity is from letting the velocity move.

    python examples/invert_implied_velocity.py examples/anomaly_wells.toml --steps 1000 3000

Trains the config's wavefield with the velocity network frozen at the start
(2000 m/s background for the anomaly example) for each step count, then prints
the constant velocity that the wavefield implies, by least squares, away from
the anomaly (> 160 m from its centre) and from the sources (> 120 m), after the
first 0.1 s: in velocity form and in slowness form (see
``seispinn.pinn.formulations.implied_velocity``). Both equal the true 2000 m/s
only when the wavefield is accurate; the gap is the bias a velocity network
released at that point inherits.
"""

from __future__ import annotations

import argparse

import torch

from seispinn.experiments.invert import invert, load_invert_config
from seispinn.inputs import prepare_inputs
from seispinn.pinn.formulations import implied_velocity


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config")
    p.add_argument("--steps", type=int, nargs="+", default=[1000, 3000])
    p.add_argument("--centre", type=float, nargs=2, default=[300.0, 200.0], help="anomaly x z (m)")
    args = p.parse_args()
    for steps in args.steps:
        config = load_invert_config(
            args.config,
            {
                # The implied velocity reads the total field's source term.
                "physics": {"formulation": "total", "edges": "open", "rounds": 1},
                "velocity": {"mode": "perturbation"},
                "training": {
                    "steps": steps,
                    "frozen_until": {"velocity": steps + 1},
                    "progress": False,
                },
            },
        )
        inputs = prepare_inputs(config.data, config.source)
        problem = invert(inputs, config, score_heldout=False).problem
        pts, shot = problem.points.points, problem.points.shot
        x, z, t = pts[:, 0], pts[:, 1], pts[:, 2]
        far = (x - args.centre[0]) ** 2 + (z - args.centre[1]) ** 2 > 160.0**2
        f = problem.formulation
        quiet = (x - f.source_x[shot]) ** 2 + (z - f.source_z[shot]) ** 2 > 120.0**2
        c = implied_velocity(problem, far & quiet & (t > 0.1))
        print(
            f"{steps} steps: implied background velocity {c['velocity_form']:.0f} m/s "
            f"(velocity form), {c['slowness_form']:.0f} m/s (slowness form)",
            flush=True,
        )


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()
