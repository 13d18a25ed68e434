"""``seispinn forward``: train the forward wave PINN and score it against Deepwave."""

from __future__ import annotations

import argparse
import json

from seispinn.cli._checks import (
    check_device,
    check_run_dir,
    load_blamed,
    override_items,
)
from seispinn.cli._training import add_training_arguments, training_overrides


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "forward",
        help="train the forward wave-equation PINN and score it against Deepwave",
        description=(
            "Train a wavefield PINN for one Gaussian-spread Ricker source in a given "
            "velocity model (TOML config; defaults: the recipe in docs/forward-pinn.md) and "
            "score it against Deepwave snapshots. Writes a run folder with the config, "
            "checkpoints, history.json, gamma/ snapshots, metrics.json and snapshots.npz."
        ),
    )
    add_training_arguments(p, "runs/forward", "network.exact_ic=false")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `seispinn --help` does not load torch and Deepwave.
    from seispinn.experiments.forward import load_forward_config, run_forward
    from seispinn.experiments.resume import check_resumable

    overrides = training_overrides(args)
    config = load_blamed(load_forward_config, args.config, overrides, override_items(args))
    check_run_dir(args.run_dir)
    check_device(args.device)
    if args.resume:
        check_resumable(args.run_dir, config)  # before any reference is simulated
    metrics = run_forward(
        config, args.run_dir, resume=args.resume, config_path=args.config, device=args.device
    )
    print(json.dumps(metrics, indent=1))
    print(
        f"wavefield error {metrics['wavefield_error']:.3f}, source/other residual "
        f"{metrics['source_residual']:.3g}/{metrics['other_residual']:.3g}, enrichment "
        f"{metrics['enrichment']:.2f}, effective share {metrics['effective_share']:.3g}, "
        f"{metrics['train_seconds']:.0f} s -> {args.run_dir}"
    )
    return 0
