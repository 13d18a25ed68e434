"""``seispinn forward``: train the forward wave PINN and score it against Deepwave."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seispinn.config import parse_overrides


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "forward",
        help="train the forward wave-equation PINN and score it against Deepwave",
        description=(
            "Train a wavefield PINN for one Gaussian-spread Ricker source in a given "
            "velocity model (TOML config; defaults: the recipe in docs/wave-pinn.md) and "
            "score it against Deepwave snapshots. Writes a run folder with the config, "
            "checkpoints, history.json, gamma/ snapshots, metrics.json and snapshots.npz."
        ),
    )
    p.add_argument("--config", type=Path, help="TOML config (sections as in examples/*.toml)")
    p.add_argument("--run-dir", type=Path, default=Path("runs/forward"), help="run folder")
    p.add_argument(
        "--weighting",
        choices=["uniform", "gradnorm", "sa", "rba"],
        help="override [weighting] name",
    )
    p.add_argument("--steps", type=int, help="override [training] steps")
    p.add_argument("--seed", type=int, help="override [training] seed")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override any config value, e.g. --set network.exact_ic=false",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from the run folder's checkpoint"
    )
    p.add_argument("--device", help="torch device (default: cuda if available)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `seispinn --help` does not load torch and Deepwave.
    from seispinn.experiments.forward import load_forward_config, run_forward

    overrides = parse_overrides(args.set)
    if args.weighting:
        overrides.setdefault("weighting", {})["name"] = args.weighting
    if args.steps is not None:
        overrides.setdefault("training", {})["steps"] = args.steps
    if args.seed is not None:
        overrides.setdefault("training", {})["seed"] = args.seed
    config = load_forward_config(args.config, overrides)
    metrics = run_forward(
        config, args.run_dir, resume=args.resume, config_path=args.config, device=args.device
    )
    print(json.dumps(metrics, indent=1))
    print(
        f"wavefield error {metrics['wavefield_error']:.3f}, source/other residual "
        f"{metrics['source_residual']:.3g}/{metrics['other_residual']:.3g}, enrichment "
        f"{metrics['enrichment']:.2f}, {metrics['train_seconds']:.0f} s -> {args.run_dir}"
    )
    return 0
