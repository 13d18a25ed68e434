"""SEG-Y shot gathers: one trace per source-receiver pair, ``[shot, receiver, time]``.

Traces are grouped into shots by field record and source position, never by their
order in the file; receivers are sorted by channel or position; depths are positive
down. The header conventions are in docs/segy.md. Every problem with a file raises
:class:`~seispinn.errors.SegyError` whose one-line message starts with the file's path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import segyio
from segyio import TraceField

from seispinn.errors import ModelError
from seispinn.gathers import ShotGathers
from seispinn.io import _headers as h
from seispinn.io import _segyfile as low
from seispinn.io._segyfile import PathLike, fail

__all__ = ["read_shots", "write_shots"]

# Shots of different sizes are padded to the largest; refuse padding that would
# multiply memory (a damaged FieldRecord or source header makes every trace a shot).
_MAX_PADDING = 4
_PADDING_BYTES = 256 * 2**20


def read_shots(path: PathLike, *, dt: float | None = None) -> ShotGathers:
    """Read shot gathers (one trace per source-receiver pair).

    Args:
        path: SEG-Y file, optionally gzip-compressed.
        dt: sample interval in seconds; overrides the headers, required when
            their sample interval is 0.

    Returns:
        ``ShotGathers``: ``data`` ``[shot, receiver, time]`` float32, positions in
        metres (z = depth, positive down), ``dt``/``t0`` in seconds. Shots are
        sorted by field record, then source position; receivers by channel number,
        or by position when the channels are missing or repeated (see the module
        docstring).

    Raises:
        SegyError: unreadable file, no usable dt, NaN/inf samples.
    """
    shown = os.fspath(path)
    with low.opened(path) as (layout, f):
        text = low.text_values(f)
        if text.get("KIND") == "VELOCITY":
            raise fail(
                shown, "is a seispinn velocity model, not shot gathers; read it with read_velocity"
            )
        geometry = h.trace_geometry(f)
        header_dt, why_dt = h.sample_interval(layout, f, text, "DT", per_unit=1_000_000)
        t0, why_t0 = h.first_sample(layout, f, text, "T0", per_unit=1000)
        if t0 is None:
            raise fail(shown, f"cannot read as shot gathers: {why_t0}")
        if dt is None and header_dt is None:
            raise fail(
                shown, f"has no usable time sampling in its headers ({why_dt}); pass dt=<seconds>"
            )
        data = _scatter_traces(layout, f, geometry)
    _refuse_model_values(shown, data, geometry)
    return _gathers(shown, data, geometry, dt if dt is not None else header_dt, t0)


def _scatter_traces(layout: low.Layout, f: segyio.SegyFile, g: h.TraceGeometry) -> np.ndarray:
    n_shots, n_slots = g.counts.size, int(g.counts.max())
    padded = n_shots * n_slots * layout.samples * 4
    if n_shots * n_slots > _MAX_PADDING * layout.traces and padded > _PADDING_BYTES:
        raise fail(
            layout.path,
            f"shot sizes too uneven for a [shot, receiver, time] array: {n_shots} shots of "
            f"{int(g.counts.min())} to {n_slots} traces would pad {layout.traces} traces to "
            f"{n_shots * n_slots} ({padded / 2**30:.1f} GiB); check FieldRecord (byte 9) "
            "and the source positions (bytes 49, 73) that group traces into shots",
        )
    data = np.zeros((n_shots, n_slots, layout.samples), dtype=np.float32)
    for start, stop in low.chunks(layout):
        data[g.shot[start:stop], g.slot[start:stop]] = low.read_traces(f, start, stop)
    return data


def _gathers(shown: str, data: np.ndarray, g: h.TraceGeometry, dt: float, t0: float) -> ShotGathers:
    bad = np.count_nonzero(~np.isfinite(data))
    if bad:
        raise fail(shown, f"{bad} samples are NaN or infinite")
    n_shots, n_rec = data.shape[:2]
    first = np.zeros(n_shots, dtype=np.int64)
    first[g.shot[::-1]] = np.arange(g.shot.size)[::-1]  # first trace of each shot
    receiver_x = np.full((n_shots, n_rec), np.nan)
    receiver_z = np.full((n_shots, n_rec), np.nan)
    receiver_x[g.shot, g.slot] = g.receiver_x
    receiver_z[g.shot, g.slot] = g.receiver_z
    try:
        return ShotGathers(
            data,
            source_x=g.source_x[first],
            source_z=g.source_z[first],
            receiver_x=receiver_x,
            receiver_z=receiver_z,
            dt=float(dt),
            n_receivers=g.counts,
            t0=float(t0),
        )
    except ModelError as exc:
        raise fail(shown, str(exc)) from exc


def write_shots(
    path: PathLike, gathers: ShotGathers, *, sample_format: int = 5, endian: str = "big"
) -> Path:
    """Write ``gathers`` as SEG-Y, one trace per real (unpadded) receiver, shot by shot.

    Args:
        path: target file; a ``.gz`` name is gzip-compressed. Written atomically.
        gathers: data ``[shot, receiver, time]``, positions in metres, dt in s.
        sample_format: 5 (IEEE float, exact) or 1 (IBM float, rounds to 24 bits).
        endian: ``"big"`` (standard) or ``"little"``.

    Returns:
        ``Path(path)``. ``read_shots`` of it returns ``gathers`` with identical
        data and dt/t0, and positions exact when they are multiples of 0.1 mm
        (others are rounded to 0.1 mm). Shots without receivers are not written.
    """
    shown = os.fspath(path)
    h.check_write_args(shown, sample_format, endian)
    mask = gathers.receiver_mask
    shot_of, rec_of = np.nonzero(mask)  # row-major: shot by shot, receivers in order
    traces = gathers.data[shot_of, rec_of]
    if traces.shape[0] == 0:
        raise fail(shown, "cannot write shot gathers without any receiver")
    if not np.all(np.isfinite(traces)):
        raise fail(shown, "cannot write: shot data contain NaN or infinite samples")
    sx, sz = gathers.source_x[shot_of], gathers.source_z[shot_of]
    rx, rz = gathers.receiver_x[shot_of, rec_of], gathers.receiver_z[shot_of, rec_of]
    if not all(np.all(np.isfinite(a)) for a in (sx, sz, rx, rz)):
        raise fail(shown, "cannot write: a source or real receiver position is NaN")
    xy_s = h.scalar_or_fail(shown, np.concatenate([sx, rx]), low.INT32_MAX, 1, "x positions")
    z_s = h.scalar_or_fail(shown, np.concatenate([sz, -rz]), low.INT32_MAX, 1, "depths")
    t_s = h.scalar_or_fail(shown, np.array([gathers.t0]), low.INT16_MAX, 1000, "t0")
    sxi, rxi = low.encode(sx, xy_s), low.encode(rx, xy_s)
    szi, rei = low.encode(sz, z_s), low.encode(-rz, z_s)
    delay = int(low.encode(gathers.t0, t_s, 1000))
    interval = h.interval_code(gathers.dt, 1_000_000)
    offsets = np.rint(rx - sx).astype(np.int64)
    nt = gathers.nt
    with low.atomic_target(path) as tmp:
        with segyio.create(tmp, h.segy_spec(nt, traces.shape[0], sample_format, endian)) as f:
            h.write_file_headers(f, _shots_text(gathers), interval, nt)
            f.trace = np.ascontiguousarray(traces)
            for k in range(traces.shape[0]):
                f.header[k] = {
                    TraceField.TRACE_SEQUENCE_LINE: k + 1,
                    TraceField.TRACE_SEQUENCE_FILE: k + 1,
                    TraceField.FieldRecord: int(shot_of[k]) + 1,
                    TraceField.TraceNumber: int(rec_of[k]) + 1,
                    TraceField.EnergySourcePoint: int(shot_of[k]) + 1,
                    TraceField.TraceIdentificationCode: 1,
                    TraceField.offset: int(offsets[k]),
                    TraceField.ReceiverGroupElevation: int(rei[k]),
                    TraceField.SourceSurfaceElevation: 0,
                    TraceField.SourceDepth: int(szi[k]),
                    TraceField.ElevationScalar: z_s,
                    TraceField.SourceGroupScalar: xy_s,
                    TraceField.SourceX: int(sxi[k]),
                    TraceField.GroupX: int(rxi[k]),
                    TraceField.CoordinateUnits: 1,
                    TraceField.DelayRecordingTime: delay,
                    TraceField.ScalarTraceHeader: t_s,
                    TraceField.TRACE_SAMPLE_COUNT: nt % 2**16,
                    TraceField.TRACE_SAMPLE_INTERVAL: interval,
                }
    return Path(path)


def _shots_text(g: ShotGathers) -> list[str]:
    return [
        "SEISPINN SHOT GATHERS",
        f"SHOTS={g.n_shots} MAX RECEIVERS={g.data.shape[1]} NT={g.nt} DT={g.dt:g} S T0={g.t0:g} S",
        "ONE TRACE PER SOURCE-RECEIVER PAIR; FIELD RECORD (9) = SHOT NUMBER, 13 = RECEIVER",
        "X: SOURCEX (73), GROUPX (81), SCALAR 71 (NEGATIVE DIVIDES); Y UNUSED",
        "Z POSITIVE DOWN, SCALAR 69: SOURCE = SOURCEDEPTH (49) - SURFACE ELEVATION (45)",
        "RECEIVER Z = -RECEIVER GROUP ELEVATION (41)",
        "DT: SAMPLE INTERVAL (3217, 117) IN MICROSECONDS; T0: DELAY (109) IN MS, SCALAR 215",
        "EXACT VALUES (PYTHON FLOAT REPR) FOR SEISPINN:",
        f"SEISPINN DT={g.dt!r}",
        f"SEISPINN T0={g.t0!r}",
        "SEISPINN KIND=SHOTS",
    ]


def _refuse_model_values(shown: str, data: np.ndarray, g: h.TraceGeometry) -> None:
    """Refuse as shot gathers a file with one trace per source and no sample <= 0:
    a velocity model (seismograms swing both ways)."""
    if g.counts.size > 1 and not h.shares_sources(g) and float(data.min()) > 0:
        raise fail(
            shown,
            f"looks like a velocity model (one trace per position, {g.counts.size} traces, "
            f"samples {float(data.min()):g}..{float(data.max()):g}, none negative), not shot "
            "gathers; read it with read_velocity",
        )
