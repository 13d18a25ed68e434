"""Recorded (or simulated) shot gathers.

Convention: traces ``[shot, receiver, time]``, positions in metres, ``dt`` in
seconds. Shots may have different receiver counts: the array is padded to the
largest count, ``n_receivers[s]`` says how many of shot ``s``'s rows are real,
and padded positions are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seispinn.errors import ModelError

__all__ = ["ShotGathers"]


# eq=False: the generated == would compare arrays elementwise and fail.
@dataclass(frozen=True, eq=False)
class ShotGathers:
    """Shot gathers with their geometry.

    Attributes:
        data: ``[shot, receiver, time]`` float32 traces (zero where padded).
        source_x, source_z: ``[shot]`` source positions in metres (z = depth, down).
        receiver_x, receiver_z: ``[shot, receiver]`` positions in metres (NaN where padded).
        dt: sample interval in seconds.
        n_receivers: ``[shot]`` number of real receivers per shot.
        t0: time of the first sample in seconds.
    """

    data: np.ndarray
    source_x: np.ndarray
    source_z: np.ndarray
    receiver_x: np.ndarray
    receiver_z: np.ndarray
    dt: float
    n_receivers: np.ndarray | None = None
    t0: float = 0.0

    def __post_init__(self) -> None:
        data = np.ascontiguousarray(self.data, dtype=np.float32)
        if data.ndim != 3:
            raise ModelError(f"shot data must be [shot, receiver, time], got shape {data.shape}")
        ns, nr, _ = data.shape
        object.__setattr__(self, "data", data)
        for name, shape in (
            ("source_x", (ns,)),
            ("source_z", (ns,)),
            ("receiver_x", (ns, nr)),
            ("receiver_z", (ns, nr)),
        ):
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != shape:
                raise ModelError(f"{name} must have shape {shape}, got {arr.shape}")
            object.__setattr__(self, name, arr)
        counts = self.n_receivers
        counts = np.full(ns, nr, dtype=np.int64) if counts is None else np.asarray(counts, np.int64)
        if counts.shape != (ns,) or np.any(counts < 0) or np.any(counts > nr):
            raise ModelError(f"n_receivers must be [shot] counts in 0..{nr}")
        object.__setattr__(self, "n_receivers", counts)
        if not (np.isfinite(self.dt) and self.dt > 0):
            raise ModelError(f"sample interval dt must be positive, got {self.dt}")

    @property
    def n_shots(self) -> int:
        return self.data.shape[0]

    @property
    def nt(self) -> int:
        return self.data.shape[2]

    @property
    def times(self) -> np.ndarray:
        """``[time]`` sample times in seconds."""
        return self.t0 + self.dt * np.arange(self.nt)

    @property
    def receiver_mask(self) -> np.ndarray:
        """``[shot, receiver]`` bool, True for real (not padded) receivers."""
        return np.arange(self.data.shape[1])[None, :] < self.n_receivers[:, None]

    def shot(self, s: int) -> np.ndarray:
        """``[receiver, time]`` traces of shot ``s`` without padding."""
        return self.data[s, : self.n_receivers[s]]
