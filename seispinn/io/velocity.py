"""SEG-Y velocity models: one trace per x position, samples along depth, m/s.

The header conventions (x from CDP_X, dz as a sample interval in mm, z0 as the
delay, exact floats in the textual header, units) are in docs/segy.md. Every
problem with a file raises :class:`~seispinn.errors.SegyError` whose one-line
message starts with the file's path.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import segyio
from segyio import TraceField

from seispinn.errors import ModelError, SegyError
from seispinn.io import _headers as h
from seispinn.io import _segyfile as low
from seispinn.io._segyfile import PathLike, fail
from seispinn.models import VelocityModel

__all__ = ["UNITS", "read_velocity", "write_velocity"]

#: Velocity units a reader converts from, and their factor to m/s.
UNITS: dict[str, float] = {"m/s": 1.0, "km/s": 1000.0, "ft/s": 0.3048}


def read_velocity(
    path: PathLike,
    *,
    dx: float | None = None,
    dz: float | None = None,
    units: str | None = None,
    x0: float | None = None,
    z0: float | None = None,
) -> VelocityModel:
    """Read a velocity model stored one trace per x position, samples along depth.

    Args:
        path: SEG-Y file, optionally gzip-compressed.
        dx, dz: grid spacing in metres; override the headers (docs/segy.md),
            and are required when the headers have none.
        units: ``"m/s"``, ``"km/s"`` or ``"ft/s"``; inferred (with a note on
            stderr) when not given and the file is not seispinn's own.
        x0, z0: origin in metres; override the headers (default 0 when absent).

    Returns:
        ``VelocityModel`` with ``values`` ``[nz, nx]`` float32 in m/s, where nx is
        the number of traces and nz the samples per trace.

    Raises:
        SegyError: unreadable file, no usable spacing, invalid velocities.
    """
    shown = os.fspath(path)
    factor = _units_factor(shown, units)
    with low.opened(path) as (layout, f):
        text = low.text_values(f)
        geometry = h.trace_geometry(f)
        xs = h.x_axis(layout, f, text)
        _refuse_shots_as_model(shown, text, geometry, dx is None and xs.value is None)
        zs = h.z_axis(layout, f, text)
        _require(shown, dx, dz, z0, xs, zs)
        if dx is None and xs.note:
            print(f"seispinn: note: {shown}: {xs.note}", file=sys.stderr)
        values = _read_columns(layout, f)
    if float(values.min(initial=np.inf)) <= 0:  # NaN compares False: VelocityModel says it
        _refuse_shots_as_model(shown, text, geometry, True)
    if factor is None:
        factor = _guess_units(shown, values, text)
    if factor != 1.0:
        values *= np.float32(factor)  # in place: the array can be 150 MB
    try:
        return VelocityModel(
            values,
            dx=float(dx if dx is not None else xs.value),
            dz=float(dz if dz is not None else zs.value),
            x0=float(x0 if x0 is not None else (xs.origin or 0.0)),
            z0=float(z0 if z0 is not None else zs.origin),
            source=shown,
        )
    except ModelError as exc:
        raise SegyError(str(exc)) from exc


def _units_factor(shown: str, units: str | None) -> float | None:
    if units is None:
        return None
    key = units.strip().lower()
    if key not in UNITS:
        raise fail(shown, f"unknown velocity units {units!r}; use one of {', '.join(UNITS)}")
    return UNITS[key]


def _guess_units(shown: str, values: np.ndarray, text: dict[str, str]) -> float:
    if text.get("UNITS") == "M/S":
        return 1.0
    lo, hi = float(values.min()), float(values.max())
    if not (np.isfinite(lo) and np.isfinite(hi) and lo > 0):
        return 1.0  # invalid: VelocityModel reports it, a units note would only confuse
    if hi < h.KMS_BELOW:
        guess, action = "km/s", "; converting to m/s (pass units= to choose)"
    else:
        guess, action = "m/s", " (pass units='km/s' or 'ft/s' if not)"
    print(
        f"seispinn: note: {shown}: velocity units not given; values {lo:g}..{hi:g} "
        f"look like {guess}{action}",
        file=sys.stderr,
    )
    return UNITS[guess]


def _require(
    shown: str,
    dx: float | None,
    dz: float | None,
    z0: float | None,
    xs: h.Spacing,
    zs: h.Spacing,
) -> None:
    """Raise one error naming every argument the caller must pass."""
    missing = []
    if dx is None and xs.value is None:
        missing.append(("x spacing", xs.why, "dx=<metres>"))
    if dz is None and zs.value is None:
        missing.append(("depth spacing", zs.why, "dz=<metres>"))
    if z0 is None and zs.origin is None:
        missing.append(("depth origin", zs.why, "z0=<metres>"))
    if not missing:
        return
    what = " or ".join(m[0] for m in missing)
    why = "; ".join(dict.fromkeys(m[1] for m in missing))
    args = " and ".join(m[2] for m in missing)
    raise fail(shown, f"has no usable {what} in its headers ({why}); pass {args}")


def _read_columns(layout: low.Layout, f: segyio.SegyFile) -> np.ndarray:
    """``[nz, nx]`` float32: trace i becomes column i, filled chunk by chunk so that
    only one full-size array is ever held."""
    out = np.empty((layout.samples, layout.traces), dtype=np.float32)
    for start, stop in low.chunks(layout):
        out[:, start:stop] = low.read_traces(f, start, stop).T
    return out


def write_velocity(
    path: PathLike, model: VelocityModel, *, sample_format: int = 5, endian: str = "big"
) -> Path:
    """Write ``model`` as SEG-Y: one trace per x position (``nx`` traces of ``nz``
    samples), m/s, headers as in docs/segy.md.

    Args:
        path: target file; a ``.gz`` name is gzip-compressed. Written atomically.
        model: the velocity model (``values`` ``[nz, nx]`` m/s).
        sample_format: 5 (IEEE float, exact) or 1 (IBM float: exact only for
            values IBM floats represent, e.g. integers or multiples of 1/16).
        endian: ``"big"`` (standard) or ``"little"``.

    Returns:
        ``Path(path)``. ``read_velocity`` of it returns ``model`` exactly.
    """
    shown = os.fspath(path)
    h.check_write_args(shown, sample_format, endian)
    nz, nx = model.shape
    x = model.x0 + model.dx * np.arange(nx)
    xs = h.scalar_or_fail(shown, x, low.INT32_MAX, 1, "x coordinates")
    zs = h.scalar_or_fail(shown, np.array([model.z0]), low.INT16_MAX, 1, "z0")
    interval = h.interval_code(model.dz, 1000)
    xi, z0i = low.encode(x, xs), int(low.encode(model.z0, zs))
    text = [
        "SEISPINN VELOCITY MODEL",
        "P-WAVE VELOCITY IN M/S; ONE TRACE PER X POSITION, SAMPLES ALONG DEPTH",
        f"NX={nx} NZ={nz} DX={model.dx:g} M DZ={model.dz:g} M X0={model.x0:g} M Z0={model.z0:g} M",
        "X: CDP_X (181) = SOURCEX (73) = GROUPX (81), SCALAR 71 (NEGATIVE DIVIDES)",
        "DZ: SAMPLE INTERVAL (3217, 117) IN MM, I.E. DEPTH STORED AS TIME WITH 1 MS = 1 M",
        "Z0: DELAY RECORDING TIME (109) IN M, SCALAR 215",
        "EXACT VALUES (PYTHON FLOAT REPR) FOR SEISPINN:",
        f"SEISPINN DX={model.dx!r}",
        f"SEISPINN DZ={model.dz!r}",
        f"SEISPINN X0={model.x0!r}",
        f"SEISPINN Z0={model.z0!r}",
        "SEISPINN UNITS=M/S",
        "SEISPINN KIND=VELOCITY",
    ]
    with low.atomic_target(path) as tmp:
        with segyio.create(tmp, h.segy_spec(nz, nx, sample_format, endian)) as f:
            h.write_file_headers(f, text, interval, nz)
            f.trace = np.ascontiguousarray(model.values.T)
            for i in range(nx):
                f.header[i] = {
                    TraceField.TRACE_SEQUENCE_LINE: i + 1,
                    TraceField.TRACE_SEQUENCE_FILE: i + 1,
                    TraceField.CDP: i + 1,
                    TraceField.CDP_X: int(xi[i]),
                    TraceField.SourceX: int(xi[i]),
                    TraceField.GroupX: int(xi[i]),
                    TraceField.SourceGroupScalar: xs,
                    TraceField.CoordinateUnits: 1,
                    TraceField.DelayRecordingTime: z0i,
                    TraceField.ScalarTraceHeader: zs,
                    TraceField.TRACE_SAMPLE_COUNT: nz % 2**16,
                    TraceField.TRACE_SAMPLE_INTERVAL: interval,
                }
    return Path(path)


def _refuse_shots_as_model(
    shown: str, text: dict[str, str], g: h.TraceGeometry, unusable: bool
) -> None:
    """Refuse shot gathers given as a velocity model: seispinn's own shot file, or
    traces that share sources (:func:`h.shares_sources`) where that evidence is not
    contradicted — the x spacing is ``unusable`` or the samples are not all positive
    (a model written with only GroupX set also 'shares' a blank source)."""
    if text.get("KIND") == "SHOTS" or (
        text.get("KIND") != "VELOCITY" and unusable and h.shares_sources(g)
    ):
        raise fail(
            shown,
            f"looks like shot gathers ({g.counts.size} shots, up to {int(g.counts.max())} "
            "receivers each), not a velocity model; read it with read_shots",
        )
