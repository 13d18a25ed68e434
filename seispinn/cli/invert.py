"""``seispinn invert``: PINN full-waveform inversion from a TOML config."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from seispinn.config import parse_overrides


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "invert",
        help="PINN full-waveform inversion (SEG-Y shots or a synthetic survey -> SEG-Y model)",
        description=(
            "Train a wavefield network and a bounded velocity network on the wave equation "
            "and the recorded traces ([data] shots = SEG-Y, or survey = a survey TOML whose "
            "shots are simulated). Writes a run folder with the config, checkpoints, "
            "history.json, gamma/ snapshots, inverted.sgy and metrics.json."
        ),
    )
    p.add_argument("--config", type=Path, help="TOML config (see examples/invert_anomaly.toml)")
    p.add_argument("--run-dir", type=Path, default=Path("runs/invert"), help="run folder")
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
        help="override any config value, e.g. --set velocity.max_perturbation=0.2",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue from the run folder's checkpoint"
    )
    p.add_argument("--device", help="torch device (default: cuda if available)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `seispinn --help` does not load torch and Deepwave.
    from seispinn.experiments.invert import load_invert_config, run_inversion

    overrides = parse_overrides(args.set)
    if args.weighting:
        overrides.setdefault("weighting", {})["name"] = args.weighting
    if args.steps is not None:
        overrides.setdefault("training", {})["steps"] = args.steps
    if args.seed is not None:
        overrides.setdefault("training", {})["seed"] = args.seed
    config = load_invert_config(args.config, overrides)
    result = run_inversion(
        config, args.run_dir, resume=args.resume, config_path=args.config, device=args.device
    )
    m = result.metrics
    print(json.dumps(m, indent=1))
    parts = [
        f"{k} {m[k]:.3f}"
        for k in ("velocity_error", "anomaly_error_reduction", "heldout_misfit")
        if k in m
    ]
    print(f"{', '.join(parts)}; {m['train_seconds']:.0f} s -> {args.run_dir / 'inverted.sgy'}")
    return 0
