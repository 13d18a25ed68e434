"""``seispinn simulate``: synthetic shot gathers with Deepwave."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from seispinn.cli._checks import check_device


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate shot gathers over a velocity model",
        description=(
            "Simulate a surface line of shots (acquisition and modelling from a survey "
            "TOML) over a model built from the survey or read from SEG-Y; write the "
            "gathers as SEG-Y and optionally a figure."
        ),
    )
    p.add_argument("--survey", required=True, type=Path, help="survey TOML (see data/survey.toml)")
    p.add_argument("--model", type=Path, help="velocity SEG-Y instead of the survey's [model]")
    p.add_argument("--dx", type=float, help="model x spacing (m) if the SEG-Y lacks it")
    p.add_argument("--dz", type=float, help="model z spacing (m) if the SEG-Y lacks it")
    p.add_argument("--units", choices=["m/s", "km/s", "ft/s"], help="model velocity units")
    p.add_argument("--source-sigma", type=float, help="Gaussian-spread source width (m)")
    p.add_argument("--free-surface", action="store_true", help="reflecting top boundary")
    p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--out", required=True, type=Path, help="output shot gathers SEG-Y")
    p.add_argument("--plot", type=Path, help="also write a PNG of model and gathers")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `seispinn --help` does not load torch and Deepwave.
    from seispinn.io import read_velocity, write_shots
    from seispinn.modelling.simulate import simulate
    from seispinn.survey import load_survey

    check_device(args.device)
    survey = load_survey(args.survey)
    if args.model is not None:
        model = read_velocity(args.model, dx=args.dx, dz=args.dz, units=args.units)
    else:
        model = survey.model.build()
    options = survey.modelling
    overrides = {
        "source_sigma": args.source_sigma,
        "device": args.device,
        "free_surface": True if args.free_surface else None,
    }
    options = dataclasses.replace(options, **{k: v for k, v in overrides.items() if v is not None})
    acquisition = survey.acquisition.build(model)
    start = time.perf_counter()
    gathers = simulate(model, acquisition, options)
    seconds = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_shots(args.out, gathers)
    print(
        f"simulated {gathers.n_shots} shots x {gathers.data.shape[1]} receivers x "
        f"{gathers.nt} samples in {seconds:.1f} s -> {args.out}"
    )
    if args.plot is not None:
        from seispinn.plots.seismic import model_and_gathers_figure

        args.plot.parent.mkdir(parents=True, exist_ok=True)
        model_and_gathers_figure(model, gathers).savefig(args.plot, dpi=120)
        print(f"figure -> {args.plot}")
    return 0
