"""The subcommands of the finite-difference baselines (``seispinn fwi``, ``seispinn
wri``): one baseline alone on an inversion config's data -> a run folder."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from seispinn.cli._checks import (
    check_data_files,
    check_device,
    check_run_dir,
    load_blamed,
    override_items,
)
from seispinn.cli._training import add_set_argument, training_overrides

__all__ = ["add_baseline_parser"]


def add_baseline_parser(
    sub: argparse._SubParsersAction, name: str, help: str, what: str, example: str
) -> None:
    """Register ``seispinn NAME``: baseline ``name`` (``what`` describes it)."""
    p = sub.add_parser(
        name,
        help=help,
        description=(
            "Invert the data of an inversion config (its [data] and [source] sections, "
            f"as for `seispinn invert`) by {what}, options in its [{name}] section, the "
            "same receivers held out and the same water layer and velocity range. Writes "
            "a run folder: inverted.sgy, predicted.sgy, metrics.json, history.json, "
            f"bands.json and {name}.png."
        ),
    )
    p.add_argument("--config", type=Path, help="inversion TOML config")
    p.add_argument("--run-dir", type=Path, default=Path(f"runs/{name}"), help="run folder")
    add_set_argument(p, example)
    p.add_argument("--device", help="torch device for Deepwave (default: cuda if available)")
    p.set_defaults(func=lambda args: _run(name, args))


def _run(name: str, args: argparse.Namespace) -> int:
    # Imported here so that `seispinn --help` does not load torch and Deepwave.
    from seispinn.experiments.baseline import run_baseline_inversion
    from seispinn.experiments.invert import load_invert_config

    # A bad config fails here, once, blaming the file or the option it came from.
    config = load_blamed(
        load_invert_config, args.config, training_overrides(args), override_items(args)
    )
    check_run_dir(args.run_dir)
    check_device(args.device)
    check_data_files(config.data, args.config)
    t0 = time.perf_counter()
    metrics = run_baseline_inversion(
        name,
        config.data,
        config.source,
        getattr(config, name),
        args.run_dir,
        config_path=args.config,
        device=args.device,
    )
    print(json.dumps(metrics, indent=1))
    parts = [
        f"{k} {metrics[k]:.3f} (start {metrics['start_' + k]:.3f})"
        for k in ("velocity_error", "heldout_misfit")
        if k in metrics and "start_" + k in metrics
    ]
    print(
        f"{', '.join(parts)}; {metrics['evaluations']} evaluations, "
        f"{time.perf_counter() - t0:.0f} s -> {args.run_dir / 'inverted.sgy'}"
    )
    return 0
