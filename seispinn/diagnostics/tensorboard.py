"""Training logs for TensorBoard (``[training] tensorboard = true``).

A :class:`TensorBoardLog` writes, into one event folder per run: every history
record's numbers (loss terms, term weights, learning rates, the weighting's
statistics: γ max/mean/spread, λ), and at every γ snapshot the measures of docs/method.md
(γ enrichment, γ–|residual| rank correlation, γ's effective share of the points,
source ÷ elsewhere residual), γ binned over (x, z) in four time windows as an
image, and whatever the run adds (an inversion: its velocity as an image and its
error against the truth).

``tensorboard --logdir RUN_DIR`` shows one run; ``--logdir`` on a comparison's
report folder overlays its variants. The ``tensorboard`` package is optional:
:func:`open_log` raises one :class:`ConfigError` line when it is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from seispinn.diagnostics.gamma import GammaSnapshot, bin_points, source_measures
from seispinn.errors import ConfigError

if TYPE_CHECKING:  # the package is optional: imported for real only by open_log
    from torch.utils.tensorboard import SummaryWriter

__all__ = ["TensorBoardLog", "open_log", "check_available", "image_rgb", "MISSING"]

MISSING = (
    "[training] tensorboard = true needs the tensorboard package "
    "(pip install tensorboard, or pip install 'seispinn[tensorboard]')"
)

#: Time windows of the γ image: γ over (x, z) in each, side by side.
GAMMA_WINDOWS = 4


def open_log(folder: Path, step_offset: int = 0) -> TensorBoardLog:
    """A log writing into ``folder``; steps are shifted by ``step_offset`` (later
    rounds of a multi-round inversion continue the first round's count)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(MISSING) from None
    folder.mkdir(parents=True, exist_ok=True)
    return TensorBoardLog(SummaryWriter(log_dir=str(folder)), step_offset)


def check_available() -> None:
    """Raise :data:`MISSING` as a ConfigError when the package is not installed
    (called when a config is read, before any work)."""
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        raise ConfigError(MISSING) from None


class TensorBoardLog:
    """Scalars and images of one run (see the module docstring)."""

    def __init__(self, writer: SummaryWriter, step_offset: int = 0) -> None:
        self.writer = writer
        self.step_offset = step_offset

    def record(self, record: dict[str, float]) -> None:
        """One history record: every number but ``step`` under a group by prefix
        (``loss/pde``, ``lr/velocity``, ``points/relative_max``, ...)."""
        step = int(record["step"]) + self.step_offset
        for key, value in record.items():
            if key in ("step", "round") or not isinstance(value, (int, float)):
                continue
            group, _, name = key.partition("_")
            tag = f"{group}/{name}" if name else key
            self.writer.add_scalar(tag, float(value), step)

    def snapshot(
        self,
        snap: GammaSnapshot,
        images: dict[str, np.ndarray] | None = None,
        scalars: dict[str, float] | None = None,
    ) -> None:
        """γ measures and image at a snapshot, plus the run's own ``images``
        (``[H, W]`` arrays, drawn with a colour map) and ``scalars``."""
        step = snap.step
        w = self.writer
        for key, value in source_measures(snap).items():
            if np.isfinite(value):
                w.add_scalar(f"gamma/{key}", float(value), step)
        grid = bin_points(snap.points, snap.gamma, (GAMMA_WINDOWS, 24, 32))
        side_by_side = np.concatenate(list(grid.values), axis=1)
        w.add_image("gamma/xz_by_time", image_rgb(side_by_side), step, dataformats="HWC")
        for name, values in (images or {}).items():
            w.add_image(name, image_rgb(values), step, dataformats="HWC")
        for name, value in (scalars or {}).items():
            w.add_scalar(name, float(value), step)
        w.flush()

    def close(self) -> None:
        self.writer.close()


def image_rgb(values: np.ndarray, cmap: str = "viridis") -> np.ndarray:
    """``[H, W]`` values as an ``[H, W, 3]`` uint8 image, the colour map spanning
    the finite values (NaN, e.g. an empty bin, drawn black)."""
    from matplotlib import colormaps

    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    lo, hi = (float(v[finite].min()), float(v[finite].max())) if finite.any() else (0.0, 1.0)
    scaled = (v - lo) / (hi - lo) if hi > lo else np.zeros_like(v)
    rgb = colormaps[cmap](np.nan_to_num(scaled))[..., :3]
    rgb[~finite] = 0.0
    return (rgb * 255).round().astype(np.uint8)
