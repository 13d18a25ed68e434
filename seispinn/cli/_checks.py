"""Checks the training subcommands make before any expensive work: the device, the
run folder, and which command-line option a bad value came from."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from seispinn.config import parse_overrides
from seispinn.errors import ConfigError

__all__ = [
    "check_data_files",
    "check_device",
    "check_run_dir",
    "load_blamed",
    "override_items",
    "shortcut_items",
]

T = TypeVar("T")


def check_device(device: str | None, option: str = "--device") -> None:
    """Refuse a device string torch cannot parse, or a CUDA/MPS device this machine
    lacks, with one line naming the option (None: the default, always fine)."""
    if device is None:
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(
            f"{option} {device!r}: not a torch device (e.g. cpu, cuda, cuda:1)"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{option} {device}: CUDA is not available to this torch build")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"{option} {device}: this machine has {count} CUDA device(s)")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{option} {device}: MPS is not available on this machine")


def check_run_dir(path: Path, option: str = "--run-dir") -> None:
    """Refuse a run folder that exists as something other than a folder."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: exists and is not a folder")


def override_items(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """Each command-line override as (how it was written, its nested dict), in the
    order :func:`seispinn.cli._training.training_overrides` applies them."""
    items = [(f"--set {item}", parse_overrides([item])) for item in args.set]
    return items + shortcut_items(args)


def shortcut_items(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    """The shortcut options a subcommand has (``--weighting``, ``--steps``, ``--seed``,
    ``--tensorboard``) as (how written, nested dict): the one place each shortcut's
    config key is named."""
    items = []
    if getattr(args, "weighting", None):
        items.append((f"--weighting {args.weighting}", {"weighting": {"name": args.weighting}}))
    for name in ("steps", "seed"):
        value = getattr(args, name, None)
        if value is not None:
            items.append((f"--{name} {value}", {"training": {name: value}}))
    if getattr(args, "tensorboard", False):
        items.append(("--tensorboard", {"training": {"tensorboard": True}}))
    return items


def load_blamed(
    load: Callable[[Path | None, dict[str, Any]], T],
    path: Path | None,
    overrides: dict[str, Any],
    items: list[tuple[str, dict[str, Any]]],
) -> T:
    """``load(path, overrides)``; when that fails but the file alone loads, the error
    names the command-line option(s) to blame instead of the config file."""
    try:
        return load(path, overrides)
    except ConfigError as exc:
        if not items:
            raise
        try:
            load(path, {})
        except ConfigError:
            raise exc from None  # the file itself is bad: the message names it
        message = str(exc)
        where = str(path) if path is not None else "config"
        if message.startswith(where + " "):
            message = message[len(where) + 1 :]
        blamed = []
        for label, single in items:
            try:
                load(path, single)
            except ConfigError:
                blamed = [label]
                break
        else:
            blamed = [label for label, _ in items]
        raise ConfigError(f"{', '.join(blamed)}: {message}") from None


def check_data_files(data: Any, config_path: Path | None) -> None:
    """Every file ``[data]`` names exists, before the run folder is made."""
    from seispinn.inputs import DATA_FILES

    where = f"{config_path} [data]" if config_path is not None else "[data]"
    for key in DATA_FILES:
        value = getattr(data, key)
        if value and not Path(value).is_file():
            raise ConfigError(f"{where} {key}: {value}: no such file")
