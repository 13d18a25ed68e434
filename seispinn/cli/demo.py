"""``seispinn demo``: the main job, a small comparison of uniform weighting, SA-PINN
and conventional FWI on the shipped Marmousi-style model."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from seispinn.cli.compare import add_compare_arguments, run_compare
from seispinn.errors import SeispinnError


def _default_config() -> Path:
    # The checkout's examples/ folder (seispinn is installed editable from it).
    return Path(__file__).resolve().parents[2] / "examples" / "demo.toml"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="the main job: uniform vs SA-PINN vs FWI on the shipped Marmousi-style model",
        description=(
            "Invert a crop of the shipped Marmousi-style model (data/model_vp.sgy's "
            "generator, examples/demo.toml) with uniform weighting and with "
            "SA-PINN masks, and by conventional FWI with Deepwave, from the same data "
            "and smoothed start; write a report folder (report.md, metrics, figures). "
            "About 7 minutes on 2 CPU cores."
        ),
    )
    add_compare_arguments(p, Path("out/demo"), None)
    p.set_defaults(func=run, weightings="uniform,sa", baseline="fwi")


def run(args: argparse.Namespace) -> int:
    args.config = args.config or _default_config()
    if not args.config.exists():
        raise SeispinnError(f"{args.config}: the demo's config is missing (run from a checkout)")
    t0 = time.perf_counter()
    out = run_compare(args)
    print(f"demo finished in {time.perf_counter() - t0:.0f} s; open {out / 'report.md'}")
    return 0
