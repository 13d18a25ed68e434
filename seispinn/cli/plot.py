"""``seispinn plot gamma RUN_DIR`` and ``seispinn plot run RUN_DIR``: PNG figures of
a run folder."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="figures of a run folder (γ over (x, z, t), velocity, gathers, losses)",
        description="Write PNG figures of a run folder (from forward, invert or compare).",
    )
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    g = kinds.add_parser(
        "gamma",
        help="γ slices, projections, sections, histogram, evolution, curriculum curves",
    )
    g.add_argument("run_dir", type=Path, help="run folder with gamma/ snapshots")
    g.add_argument("--out", type=Path, help="output folder (default RUN_DIR/figures)")
    g.add_argument(
        "--times", help="comma-separated slice times in s (default: four over the window)"
    )
    g.add_argument("--animate", choices=["gif", "mp4"], help="also write an animation")
    g.set_defaults(func=run)
    r = kinds.add_parser("run", help="every figure the run folder supports")
    r.add_argument("run_dir", type=Path, help="run folder")
    r.add_argument("--out", type=Path, help="output folder (default RUN_DIR/figures)")
    r.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from seispinn.errors import ConfigError
    from seispinn.plots.run import gamma_figures, run_figures

    if args.kind == "gamma":
        try:
            times = [float(t) for t in args.times.split(",")] if args.times else None
        except ValueError:
            raise ConfigError(
                f"--times: expected comma-separated seconds, got {args.times!r}"
            ) from None
        written = gamma_figures(args.run_dir, args.out, times=times, animate=args.animate)
    else:
        written = run_figures(args.run_dir, args.out)
    for path in written:
        print(path)
    return 0
