"""Reading a run folder (``seispinn forward`` / ``invert`` / ``compare``) back.

Every part is optional: a forward run has no models, an interrupted one may have
no metrics. Missing parts read as ``None``; malformed ones raise one clear error
naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seispinn.diagnostics.gamma import GammaSnapshot, load_gamma_series
from seispinn.errors import SeispinnError
from seispinn.gathers import ShotGathers
from seispinn.io import read_shots, read_velocity
from seispinn.models import VelocityModel

__all__ = ["RunFolder"]


@dataclass(frozen=True)
class RunFolder:
    """A run folder at ``path`` (must exist)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if not self.path.is_dir():
            raise SeispinnError(f"{self.path}: no such run folder")

    def _json(self, name: str) -> Any | None:
        f = self.path / name
        if not f.exists():
            return None
        try:
            return json.loads(f.read_text())
        except (OSError, ValueError) as exc:
            raise SeispinnError(f"{f}: not valid JSON ({exc})") from None

    def history(self) -> list[dict[str, float]]:
        """Training records (``history.json``), empty when absent."""
        return self._json("history.json") or []

    def metrics(self) -> dict[str, Any]:
        """``metrics.json``, empty when absent."""
        return self._json("metrics.json") or {}

    def model(self, name: str) -> VelocityModel | None:
        """``true``, ``start``, ``inverted`` (``NAME.sgy``) or None when absent."""
        f = self.path / f"{name}.sgy"
        return read_velocity(f) if f.exists() else None

    def gathers(self, name: str) -> ShotGathers | None:
        """``observed`` or ``predicted`` gathers (``NAME.sgy``) or None."""
        f = self.path / f"{name}.sgy"
        return read_shots(f) if f.exists() else None

    def held_out(self) -> np.ndarray | None:
        """``[shot, receiver]`` bool of the receivers held out of training, or None."""
        f = self.path / "heldout.npy"
        return np.load(f) if f.exists() else None

    def has_gamma(self) -> bool:
        return any((self.path / "gamma").glob("*.npz"))

    def gamma_series(self) -> list[GammaSnapshot]:
        """The γ snapshots by step (raises if there are none)."""
        return load_gamma_series(self.path)
