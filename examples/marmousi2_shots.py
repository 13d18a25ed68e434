"""Simulate shots over a crop of the real Marmousi2 model (not shipped).

    python examples/marmousi2_shots.py PATH/vp_marmousi-ii.segy.gz [--out out/marmousi2]

The Marmousi2 P-wave velocity file (vp_marmousi-ii.segy.gz, 1.25 m grid, km/s) is
distributed by the SEG / the Allied Geophysical Laboratories; it is not shipped here.

The file has no usable spacing in its headers and stores km/s, so both are
stated. Prints the load and modelling times and writes the gathers (SEG-Y) and
a figure.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from seispinn.acquisition import surface_line
from seispinn.io import read_velocity, write_shots, write_velocity
from seispinn.modelling.simulate import ModellingOptions, simulate
from seispinn.plots.seismic import model_and_gathers_figure


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", type=Path, help="vp_marmousi-ii.segy.gz")
    p.add_argument("--out", type=Path, default=Path("out/marmousi2"))
    args = p.parse_args()
    t0 = time.perf_counter()
    full = read_velocity(args.path, dx=1.25, dz=1.25, units="km/s")
    print(
        f"loaded {full.shape} in {time.perf_counter() - t0:.1f} s, "
        f"{full.values.min():.0f}-{full.values.max():.0f} m/s"
    )
    model = full.crop(x_range=(7000.0, 10000.0), z_range=(0.0, 1200.0)).resample(10.0)
    acq = surface_line(
        model,
        n_shots=4,
        n_receivers=150,
        freq=8.0,
        dt=0.002,
        duration=1.6,
        source_depth=10.0,
        receiver_depth=10.0,
    )
    t0 = time.perf_counter()
    gathers = simulate(model, acq, ModellingOptions(accuracy=8))
    print(f"simulated {gathers.data.shape} over {model.shape} in {time.perf_counter() - t0:.1f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    write_velocity(args.out / "model_vp.sgy", model)
    write_shots(args.out / "shots.sgy", gathers)
    model_and_gathers_figure(model, gathers).savefig(args.out / "marmousi2.png", dpi=110)
    print(f"wrote {args.out}/model_vp.sgy, shots.sgy, marmousi2.png")


if __name__ == "__main__":
    main()
