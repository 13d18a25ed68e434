"""``seispinn invert``: PINN full-waveform inversion from a TOML config."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from seispinn.cli._checks import (
    check_data_files,
    check_device,
    check_run_dir,
    load_blamed,
    override_items,
)
from seispinn.cli._training import add_training_arguments, training_overrides
from seispinn.errors import ConfigError


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
    add_training_arguments(p, "runs/invert", "velocity.max_perturbation=0.2")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="K",
        help="train in K processes with torch.distributed (runs torchrun; gloo on CPU, "
        "NCCL on GPU)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so that `seispinn --help` does not load torch and Deepwave.
    from seispinn.experiments.invert import load_invert_config, run_inversion
    from seispinn.experiments.resume import check_resumable
    from seispinn.experiments.run import resume_folder
    from seispinn.pinn.distributed import init_from_env

    overrides = training_overrides(args)
    # A bad config fails here, once, blaming the file or the option it came from.
    config = load_blamed(load_invert_config, args.config, overrides, override_items(args))
    if args.nproc < 1:
        raise ConfigError(f"--nproc must be >= 1, got {args.nproc}")
    check_run_dir(args.run_dir)
    check_device(args.device)
    if args.resume:
        # before any data are simulated
        check_resumable(resume_folder(args.run_dir, config.physics.rounds), config)
    check_data_files(config.data, args.config)
    if args.nproc > 1 and "WORLD_SIZE" not in os.environ:
        return _relaunch(args.argv, args.nproc)
    # Under torchrun (WORLD_SIZE > 1) every process trains a share; rank 0 reports.
    rank = init_from_env().rank
    result = run_inversion(
        config, args.run_dir, resume=args.resume, config_path=args.config, device=args.device
    )
    if rank != 0:
        return 0
    m = result.metrics
    print(json.dumps(m, indent=1))
    parts = [
        f"{k} {m[k]:.3f}"
        for k in ("velocity_error", "anomaly_error_reduction", "heldout_misfit")
        if k in m
    ]
    print(f"{', '.join(parts)}; {m['train_seconds']:.0f} s -> {args.run_dir / 'inverted.sgy'}")
    return 0


def _relaunch(argv: list[str], nproc: int) -> int:
    """Run this very command under torchrun in ``nproc`` processes on this machine."""
    rest, skip = [], False
    for item in argv:
        if skip:
            skip = False
        elif item == "--nproc":
            skip = True
        elif not item.startswith("--nproc="):
            rest.append(item)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd = [*launcher, f"--nproc-per-node={nproc}", "-m", "seispinn", *rest]
    return subprocess.run(cmd, check=False).returncode
