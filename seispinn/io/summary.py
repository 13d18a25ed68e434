"""What a SEG-Y file holds, whatever wrote it (``seispinn info``): headers, the
spacing seispinn's conventions read from them, value statistics and its kind
(velocity model, shot gathers or another section), read in bounded chunks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import segyio

from seispinn.io import _headers as h
from seispinn.io import _segyfile as low
from seispinn.io._segyfile import PathLike

__all__ = ["SegySummary", "summarise"]


@dataclass(frozen=True)
class SegySummary:
    """What ``seispinn info`` reports about a SEG-Y file.

    Spacings are what the headers give under seispinn's conventions (None when
    unusable; ``notes`` says why). Value statistics are over finite samples,
    in the file's own units.
    """

    path: str
    size_bytes: int
    compressed_bytes: int | None
    endian: str
    sample_format: int
    format_name: str
    traces: int
    samples: int
    sample_interval: int  # raw binary-header value (µs for time data, mm for depth)
    kind: str  # "velocity model", "shot gathers" or "section"
    written_by_seispinn: bool
    n_shots: int  # distinct (FieldRecord, source position) pairs
    dx: float | None
    x0: float | None
    dz: float | None
    z0: float | None
    dt: float | None
    t0: float | None
    value_min: float
    value_max: float
    value_mean: float
    nonfinite: int
    units_guess: str | None  # for velocity models not written by seispinn
    notes: tuple[str, ...]


def summarise(path: PathLike) -> SegySummary:
    """Headers, inferred spacing and value statistics of a SEG-Y file, reading the
    traces in ~32 MB chunks so memory stays bounded for any file size."""
    with low.opened(path) as (layout, f):
        text = low.text_values(f)
        xs, zs = h.x_axis(layout, f, text), h.z_axis(layout, f, text)
        dt, why_dt = h.sample_interval(layout, f, text, "DT", per_unit=1_000_000)
        t0, _ = h.first_sample(layout, f, text, "T0", per_unit=1000)
        geometry = h.trace_geometry(f)
        n_shots = int(geometry.counts.size)
        vmin, vmax, mean, nonfinite = _value_stats(layout, f)
    kind = _kind(text, h.shares_sources(geometry), vmin, vmax, nonfinite)
    notes = []
    if kind == "shot gathers":
        if dt is None:
            notes.append(f"time: {why_dt}")
        xs = zs = h.Spacing(None, None)  # depth readings of a time axis would only mislead
    else:
        if xs.value is None and xs.why:
            notes.append(f"x: {xs.why}")
        if xs.note:
            notes.append(f"x: {xs.note}")
        if zs.value is None and zs.why:
            notes.append(f"depth: {zs.why}")
        if kind == "velocity model":
            dt = t0 = None
    units = None
    if kind == "velocity model" and "UNITS" not in text:
        units = "km/s" if vmax < h.KMS_BELOW else "m/s"
    return SegySummary(
        path=layout.path,
        size_bytes=layout.size,
        compressed_bytes=layout.compressed_size,
        endian=layout.endian,
        sample_format=layout.format,
        format_name=layout.format_name,
        traces=layout.traces,
        samples=layout.samples,
        sample_interval=layout.interval,
        kind=kind,
        written_by_seispinn=text.get("KIND") in ("VELOCITY", "SHOTS"),
        n_shots=n_shots,
        dx=xs.value,
        x0=xs.origin,
        dz=zs.value,
        z0=zs.origin,
        dt=dt,
        t0=t0,
        value_min=vmin,
        value_max=vmax,
        value_mean=mean,
        nonfinite=nonfinite,
        units_guess=units,
        notes=tuple(notes),
    )


def _value_stats(layout: low.Layout, f: segyio.SegyFile) -> tuple[float, float, float, int]:
    lo, hi, total, count, nonfinite = np.inf, -np.inf, 0.0, 0, 0
    for start, stop in low.chunks(layout):
        block = low.read_traces(f, start, stop)
        finite = np.isfinite(block)
        if not finite.all():
            nonfinite += int(block.size - np.count_nonzero(finite))
            block = block[finite]
        if block.size:
            lo, hi = min(lo, float(block.min())), max(hi, float(block.max()))
            total += float(block.sum(dtype=np.float64))
            count += block.size
    if count == 0:
        return float("nan"), float("nan"), float("nan"), nonfinite
    return lo, hi, total / count, nonfinite


def _kind(
    text: dict[str, str], shares_sources: bool, vmin: float, vmax: float, nonfinite: int
) -> str:
    if text.get("KIND") == "VELOCITY":
        return "velocity model"
    if text.get("KIND") == "SHOTS":
        return "shot gathers"
    if shares_sources:
        return "shot gathers"
    # One trace per position; plausible velocities (km/s, m/s or ft/s) say "model".
    if nonfinite == 0 and vmin > 0 and vmax < 30000:
        return "velocity model"
    return "section"
