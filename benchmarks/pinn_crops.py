"""The demo's recipe on crops of the real Marmousi2 that no example uses.

    python benchmarks/pinn_crops.py --marmousi PATH [--crops 4000,500 9000,500]
        [--weightings uniform,sa] [--seeds 0] [--out runs/crops] [--set KEY=VALUE ...]

Each crop is 600 m × 400 m at 10 m from (x0, z0), with the demo's geometry moved
there (two shots 30 m below the crop's top, 20 surface receivers 20 m below it,
eight wells of 8 receivers), simulated with Deepwave (σ = 40 m, 5 Hz, 0.4 s) and
inverted from the truth smoothed over 60 m by ``seispinn compare`` with
``examples/demo.toml`` (no water layer: the crops lie below the sea
floor) and the conventional FWI baseline. Prints one table per crop and writes
the reports under ``--out``. Needs the Marmousi2 velocity file (vp_marmousi-ii.segy.gz,
1.25 m grid, km/s; distributed by the SEG, not shipped here).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from seispinn.acquisition import surface_line, with_well_receivers
from seispinn.config import parse_overrides
from seispinn.experiments.compare import compare, markdown_table
from seispinn.experiments.invert import load_invert_config
from seispinn.io import read_velocity, write_shots, write_velocity
from seispinn.modelling.simulate import ModellingOptions, simulate

ROOT = Path(__file__).resolve().parents[1]


def crop_data(full, x0: float, z0: float, out: Path) -> tuple[Path, Path]:
    """Write the crop's true model and shots (the demo's geometry moved to it)."""
    model = full.crop(x_range=(x0, x0 + 600.0), z_range=(z0, z0 + 400.0)).resample(10.0)
    acq = surface_line(
        model,
        n_shots=2,
        n_receivers=20,
        freq=5.0,
        dt=0.002,
        duration=0.4,
        source_depth=z0 + 30.0,
        receiver_depth=z0 + 20.0,
    )
    acq = with_well_receivers(acq, model, list(x0 + 20.0 + 80.0 * np.arange(8)), 8)
    acq = dataclasses.replace(acq, delay=0.24)
    gathers = simulate(model, acq, ModellingOptions(source_sigma=40.0, accuracy=8, pml_width=40))
    out.mkdir(parents=True, exist_ok=True)
    write_velocity(out / "true.sgy", model)
    write_shots(out / "shots.sgy", gathers)
    return out / "true.sgy", out / "shots.sgy"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--marmousi", type=Path, required=True, help="vp_marmousi-ii.segy.gz")
    p.add_argument("--crops", nargs="+", default=["4000,500", "9000,500"], help="x0,z0 (m)")
    p.add_argument("--weightings", default="uniform,sa")
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", type=Path, default=Path("runs/crops"))
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = p.parse_args()
    if not args.marmousi.is_file():
        raise SystemExit(f"{args.marmousi}: no such file (the Marmousi2 model is not shipped)")
    full = read_velocity(args.marmousi, dx=1.25, dz=1.25, units="km/s")
    for crop in args.crops:
        x0, z0 = (float(v) for v in crop.split(","))
        case = args.out / f"x{x0:.0f}_z{z0:.0f}"
        true, shots = crop_data(full, x0, z0, case / "data")
        overrides = {
            "data": {
                "survey": "",
                "crop_x": [],
                "crop_z": [],
                "shots": str(true.parent / "shots.sgy"),
                "true_model": str(true),
                "start_smoothing": 60.0,
                "water_depth": 0.0,
                "water_velocity": 0.0,
            },
        }
        for section, values in parse_overrides(args.set).items():
            overrides.setdefault(section, {}).update(values)
        config = load_invert_config(ROOT / "examples/demo.toml", overrides)
        seeds = [int(s) for s in args.seeds.split(",")]
        weightings = [w for w in args.weightings.split(",") if w]
        report = compare(config, weightings, case / "report", baseline="fwi", seeds=seeds)
        print(f"## crop x0 = {x0:.0f} m, z0 = {z0:.0f} m\n")
        print(markdown_table(report.rows), flush=True)


if __name__ == "__main__":
    main()
