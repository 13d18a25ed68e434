"""``seispinn fwi``: conventional FWI with Deepwave by itself, on an inversion config's
data (SEG-Y shots or a synthetic survey) -> a run folder with the SEG-Y model."""

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


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fwi",
        help="conventional FWI with Deepwave alone (SEG-Y shots or a synthetic survey "
        "-> SEG-Y model)",
        description=(
            "Invert the data of an inversion config (its [data] and [source] sections, "
            "as for `seispinn invert`) by multiscale preconditioned L-BFGS FWI with "
            "Deepwave, options in its [fwi] section (docs/fwi.md), the same receivers "
            "held out. Writes a run folder: inverted.sgy, predicted.sgy, metrics.json, "
            "history.json, bands.json and fwi.png."
        ),
    )
    p.add_argument("--config", type=Path, help="inversion TOML config")
    p.add_argument("--run-dir", type=Path, default=Path("runs/fwi"), help="run folder")
    add_set_argument(p, "fwi.iterations=30")
    p.add_argument("--device", help="torch device for Deepwave (default: cuda if available)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `seispinn --help` does not load torch and Deepwave.
    from seispinn.experiments.fwi import run_fwi_inversion
    from seispinn.experiments.invert import load_invert_config

    # A bad config fails here, once, blaming the file or the option it came from.
    config = load_blamed(
        load_invert_config, args.config, training_overrides(args), override_items(args)
    )
    check_run_dir(args.run_dir)
    check_device(args.device)
    check_data_files(config.data, args.config)
    t0 = time.perf_counter()
    metrics = run_fwi_inversion(
        config.data,
        config.source,
        config.fwi,
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
