"""Writing a run folder: checkpoints, atomic text and array writes, and the outputs
every inversion run folder holds.

Every write here goes to a temporary file in the same folder, is flushed to disk,
then renamed over the target (and the folder synced), so a kill, Ctrl-C or a power
cut at any moment leaves the old file or the new one, never a torn one. Reading a
finished run folder back (for plots and reports) is
:class:`seispinn.diagnostics.results.RunFolder`.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import torch

from seispinn.errors import TrainingError
from seispinn.gathers import ShotGathers
from seispinn.io.shots import write_shots
from seispinn.io.velocity import write_velocity
from seispinn.models import VelocityModel

if TYPE_CHECKING:
    from seispinn.inputs import InversionInputs

__all__ = [
    "write_atomic",
    "write_text_atomic",
    "write_json_atomic",
    "save_npy_atomic",
    "save_checkpoint",
    "load_checkpoint",
    "write_run_outputs",
]


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable, where the platform allows opening folders."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """``write(fh)`` into a temporary file beside ``path``, fsynced, renamed over
    ``path``, the folder fsynced (the folder is made when missing)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_text_atomic(path: Path, text: str) -> None:
    """``text`` (UTF-8) to ``path`` atomically (see :func:`write_atomic`)."""
    write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json_atomic(path: Path, value: Any, indent: int | None = 1) -> None:
    """``value`` as JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(value, indent=indent))


def save_npy_atomic(path: Path, values: np.ndarray) -> None:
    """``values`` as a ``.npy`` file at ``path`` atomically."""
    write_atomic(path, lambda fh: np.save(fh, values))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``state`` (a dict of tensors, numbers and strings) with ``torch.save``, atomically."""
    write_atomic(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary unpickling); any
    failure is one line naming the file (torch's own advice is never passed on)."""
    path = Path(path)
    if not path.exists():
        raise TrainingError(f"{path}: no checkpoint to resume from")
    if path.is_dir():
        raise TrainingError(f"{path}: is a folder, not a checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # corrupted, truncated or foreign file
        why = (
            "truncated, damaged, or holds more than tensors"
            if zipfile.is_zipfile(path)
            else "not a torch.save archive"
        )
        raise TrainingError(f"{path}: not a loadable seispinn checkpoint ({why})") from None
    if not isinstance(state, dict) or "step" not in state:
        raise TrainingError(f"{path}: not a seispinn checkpoint (no training state)")
    return state


def write_run_outputs(
    run_dir: Path,
    model: VelocityModel,
    inputs: InversionInputs,
    held_out: np.ndarray,
    predicted: ShotGathers | None,
    metrics: dict[str, Any],
) -> None:
    """What every inversion run folder holds besides its training state, PINN and
    finite-difference methods alike: ``inverted.sgy``, ``start.sgy``, ``observed.sgy``
    and ``true.sgy`` (unless already there: ``seispinn plot run`` needs them),
    ``heldout.npy`` (``[shot, receiver]`` bool), ``predicted.sgy`` (the inverted
    model's traces) and ``metrics.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_velocity(run_dir / "inverted.sgy", model)
    write_velocity(run_dir / "start.sgy", inputs.start)
    if not (run_dir / "observed.sgy").exists():
        write_shots(run_dir / "observed.sgy", inputs.gathers)
    if inputs.true is not None and not (run_dir / "true.sgy").exists():
        write_velocity(run_dir / "true.sgy", inputs.true)
    save_npy_atomic(run_dir / "heldout.npy", held_out)
    if predicted is not None:
        write_shots(run_dir / "predicted.sgy", predicted)
    write_json_atomic(run_dir / "metrics.json", metrics)
