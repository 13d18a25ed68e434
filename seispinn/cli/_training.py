"""Arguments shared by the subcommands that train a PINN from a TOML config."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from seispinn.cli._checks import shortcut_items
from seispinn.config import merge_overrides, parse_overrides

__all__ = ["add_training_arguments", "add_tensorboard_argument", "training_overrides"]


def add_training_arguments(p: argparse.ArgumentParser, run_dir: str, set_example: str) -> None:
    """``--config --run-dir --weighting --steps --seed --set --resume --device``."""
    p.add_argument("--config", type=Path, help="TOML config (sections as in examples/*.toml)")
    p.add_argument("--run-dir", type=Path, default=Path(run_dir), help="run folder")
    p.add_argument(
        "--weighting",
        help="override [weighting] name: a per-point weighting strategy "
        "(uniform, gradnorm, sa, rba, multipliers: seispinn.pinn.weighting.STRATEGIES)",
    )
    p.add_argument("--steps", type=int, help="override [training] steps")
    p.add_argument("--seed", type=int, help="override [training] seed")
    add_set_argument(p, set_example)
    p.add_argument(
        "--resume", action="store_true", help="continue from the run folder's checkpoint"
    )
    p.add_argument("--device", help="torch device (default: cuda if available)")
    add_tensorboard_argument(p)


def add_set_argument(p: argparse.ArgumentParser, example: str) -> None:
    """``--set SECTION[.SUB].KEY=VALUE``, repeatable: a config value from the command line."""
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION[.SUB].KEY=VALUE",
        help=f"override any config value, e.g. --set {example}",
    )


def add_tensorboard_argument(p: argparse.ArgumentParser) -> None:
    """``--tensorboard``: the shortcut for ``--set training.tensorboard=true``."""
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also write TensorBoard events (RUN_DIR/tensorboard; needs the tensorboard package)",
    )


def training_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Nested ``{section: {key: value}}`` overrides from ``--set`` and the shortcut
    options (:func:`seispinn.config.parse_overrides`); a shortcut wins over ``--set``."""
    overrides = parse_overrides(args.set)
    for _, item in shortcut_items(args):
        overrides = merge_overrides(overrides, item)
    return overrides
