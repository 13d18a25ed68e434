"""``seispinn demo``: the main job on the shipped data."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from seispinn.errors import SeispinnError


def _default_data() -> Path:
    # The checkout's data/ folder (seispinn is installed editable from it).
    return Path(__file__).resolve().parents[2] / "data"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the main job on the shipped Marmousi-style data",
        description=(
            "Load the shipped Marmousi-style model (data/model_vp.sgy), simulate its "
            "shots with Deepwave, check them against the shipped gathers "
            "(data/shots.sgy) and write the gathers and a figure."
        ),
    )
    p.add_argument(
        "--data", type=Path, default=None, help="folder with survey.toml and SEG-Y files"
    )
    p.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `seispinn --help` does not load torch and Deepwave.
    import numpy as np

    from seispinn.forward.simulate import simulate
    from seispinn.io import read_shots, read_velocity, write_shots
    from seispinn.plots.seismic import model_and_gathers_figure
    from seispinn.survey import load_survey

    data = args.data or _default_data()
    survey = load_survey(data / "survey.toml")
    model = read_velocity(data / "model_vp.sgy")
    print(
        f"model {data / 'model_vp.sgy'}: {model.nz} x {model.nx} at {model.dx:g} m, "
        f"{model.values.min():.0f}-{model.values.max():.0f} m/s"
    )
    acquisition = survey.acquisition.build(model)
    start = time.perf_counter()
    gathers = simulate(model, acquisition, survey.modelling)
    seconds = time.perf_counter() - start
    print(
        f"simulated {gathers.n_shots} shots x {gathers.data.shape[1]} receivers x "
        f"{gathers.nt} samples (dt {gathers.dt * 1000:g} ms) in {seconds:.1f} s"
    )
    shipped = read_shots(data / "shots.sgy")
    if shipped.data.shape != gathers.data.shape:
        raise SeispinnError(
            f"{data / 'shots.sgy'}: shape {shipped.data.shape} does not match the survey's "
            f"{gathers.data.shape}; regenerate with python data/make_data.py"
        )
    diff = np.linalg.norm(shipped.data - gathers.data) / np.linalg.norm(shipped.data)
    print(f"relative L2 difference to the shipped gathers: {diff:.2e}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_shots(args.out / "shots.sgy", gathers)
    model_and_gathers_figure(model, gathers).savefig(args.out / "model_and_gathers.png", dpi=120)
    print(f"wrote {args.out / 'shots.sgy'} and {args.out / 'model_and_gathers.png'}")
    return 0
