"""PINN inversion from SEG-Y to SEG-Y in a few lines (the README's example).

    python examples/invert_from_segy.py [--steps N]

First makes the inputs a geophysicist would have (observed shots and a starting
model as SEG-Y, from examples/surveys/anomaly_wells.toml), then inverts them.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from seispinn.acquisition import Source
from seispinn.experiments.invert import invert, load_invert_config
from seispinn.inputs import InversionInputs
from seispinn.io import read_shots, read_velocity, write_shots, write_velocity
from seispinn.modelling.simulate import ModellingOptions, simulate
from seispinn.models import homogeneous
from seispinn.survey import load_survey


def make_inputs(out: Path) -> None:
    survey = load_survey("examples/surveys/anomaly_wells.toml")
    true = survey.model.build()
    acq = survey.acquisition.build(true)
    acq = dataclasses.replace(acq, delay=0.24)
    write_shots(out / "observed.sgy", simulate(true, acq, ModellingOptions(source_sigma=40.0)))
    write_velocity(out / "start.sgy", homogeneous(true.nx, true.nz, true.dx, 2000.0))
    write_velocity(out / "true.sgy", true)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, help="steps per round (default: the recipe's)")
    p.add_argument("--out", type=Path, default=Path("out/invert_from_segy"))
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    make_inputs(args.out)

    # --- the inversion, as in the README ---
    shots = read_shots(args.out / "observed.sgy")  # [shot, receiver, time]
    start = read_velocity(args.out / "start.sgy")  # [nz, nx] m/s: also the output grid
    true = read_velocity(args.out / "true.sgy")  # optional, for scores
    source = Source(sigma=40.0, freq=5.0, delay=0.24)  # the wavelet is not in SEG-Y
    steps = {"training": {"steps": args.steps}} if args.steps else {}
    config = load_invert_config("examples/anomaly_wells.toml", steps)  # the recipe
    prior = config.data.prior  # the expected velocity range, 1,600-2,800 m/s
    result = invert(InversionInputs(shots, start, source, true, prior), config, args.out / "run")
    write_velocity(args.out / "inverted.sgy", result.model)
    print({k: v for k, v in result.metrics.items() if isinstance(v, float)})


if __name__ == "__main__":
    main()
