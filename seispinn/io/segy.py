"""SEG-Y reading and writing of velocity models and shot gathers.

Readers accept any byte order (detected from the binary header), sample
formats 1 (IBM float), 5 (IEEE float) and the integer/8-byte formats segyio
decodes, and gzip-compressed files (``.segy.gz``; decompressed to a temporary
file). Every problem with a file raises :class:`~seispinn.errors.SegyError`
whose one-line message starts with the file path.

Header conventions
==================

Scaled integers follow SEG-Y: a negative scalar divides, a positive one
multiplies, 0 means 1. Writers pick the coarsest scalar (1, -10, ..., -10000)
that stores every value exactly, so positions that are multiples of 0.1 mm
round-trip exactly; other values are rounded to 0.1 mm in the trace headers.

Velocity model (one trace per x position, samples along depth):

* x of trace ``i``: ``CDP_X`` (bytes 181-184), also written to ``SourceX`` (73)
  and ``GroupX`` (81), scaled by ``SourceGroupScalar`` (71). ``dx`` is their
  (exactly even) step and ``x0`` the first trace's x. Reading uses the first of
  CDP_X, SourceX, GroupX that is evenly spaced and increasing, or an even
  spacing rounded to whole stored units (steps differing by at most one unit,
  no value more than one unit off the line through the ends): then dx is
  (last - first) / (n - 1) and the reader prints a note.
* ``dz``: the sample interval (binary header 3217, also trace header 117) holds
  dz in millimetres, i.e. the depth axis is stored like a time axis with
  1 ms = 1 m (the usual Seismic Unix / Madagascar habit for depth sections):
  interval 1250 means dz = 1.25 m. 0 means "unknown"; so does a trace-header
  interval that disagrees with the binary header. Writers store dz rounded to
  the millimetre, or 0 above 65.535 m (the field is 16-bit unsigned); the
  textual header below keeps the exact value.
* ``z0``: ``DelayRecordingTime`` (109) in metres (ms = m again), scaled by
  ``ScalarTraceHeader`` (215) as SEG-Y rev2 does for times.
* The textual header says what the file is (seispinn velocity model, m/s, dx,
  dz) and carries lines ``SEISPINN DX=<float repr>`` (also DZ, X0, Z0, UNITS)
  with the exact floats. A reader uses those exact values only when they encode
  to the very integers found in the binary/trace headers, so editing the
  headers with another tool still wins.
* Samples are velocities in m/s. Files from elsewhere may be in km/s or ft/s:
  pass ``units``, or the reader guesses (maximum below 10 means km/s, else m/s)
  and prints a note on stderr.

Shot gathers (one trace per source-receiver pair):

* Traces are grouped into shots by ``FieldRecord`` (9) *and* source position,
  never by their order in the file, so interleaved shots are fine. Shots come
  out sorted as seismic tools sort them: by ``FieldRecord``, then source x, y,
  z, so ``data[0]`` is the lowest field record. Receivers within a shot are
  sorted by ``TraceNumber`` (13, the channel) when it is positive and distinct
  within every shot, else by receiver x, then z (a line's gather plots as a
  gather; a vertical array reads top down). Traces keep their own positions.
* x: ``SourceX`` (73) and ``GroupX`` (81) scaled by ``SourceGroupScalar`` (71);
  y is ignored (2-D).
* Depth z (positive down, seispinn's convention) scaled by ``ElevationScalar``
  (69): source z = ``SourceDepth`` (49) - ``SourceSurfaceElevation`` (45)
  (depth below the surface minus the surface's elevation above datum);
  receiver z = -``ReceiverGroupElevation`` (41). Writers put 0 in 45.
* ``dt``: sample interval in microseconds (3217/117); ``t0``:
  ``DelayRecordingTime`` (109) in ms scaled by ``ScalarTraceHeader`` (215). The
  textual header holds exact ``SEISPINN DT=``/``T0=`` as for models, so a dt
  that is not a whole number of µs still round-trips.
* ``FieldRecord`` = shot number (1-based), ``TraceNumber`` (13) = receiver
  number, ``offset`` (37) = receiver x - source x rounded to metres (for other
  tools; seispinn does not read it).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import segyio
from segyio import BinField, TraceField

from seispinn.errors import ModelError, SegyError
from seispinn.gathers import ShotGathers
from seispinn.io import _segyfile as low
from seispinn.io._segyfile import PathLike, fail
from seispinn.models import VelocityModel

__all__ = [
    "read_velocity",
    "write_velocity",
    "read_shots",
    "write_shots",
    "summarise",
    "SegySummary",
    "UNITS",
]

#: Velocity units a reader converts from, and their factor to m/s.
UNITS: dict[str, float] = {"m/s": 1.0, "km/s": 1000.0, "ft/s": 0.3048}

# A maximum velocity below this is taken as km/s when units are not given: no
# rock is slower than ~10 m/s, none faster than ~10 km/s.
_KMS_BELOW = 10.0

_X_FIELDS = (
    ("CDP_X", TraceField.CDP_X),
    ("SourceX", TraceField.SourceX),
    ("GroupX", TraceField.GroupX),
)
_WRITABLE_FORMATS = (1, 5)
# Shots of different sizes are padded to the largest; refuse padding that would
# multiply memory (a damaged FieldRecord or source header makes every trace a shot).
_MAX_PADDING = 4
_PADDING_BYTES = 256 * 2**20


# --- velocity models ----------------------------------------------------------------


@dataclass(frozen=True)
class _Spacing:
    """One axis as found in a file's headers; ``value`` None means unusable."""

    value: float | None
    origin: float | None
    why: str = ""  # why value (or origin) is unusable
    note: str = ""  # how value was found, when a reader should say so


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
        dx, dz: grid spacing in metres; override the headers (see the module
            docstring), and are required when the headers have none.
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
        geometry = _trace_geometry(f)
        xs = _x_axis(layout, f, text)
        _refuse_shots_as_model(shown, text, geometry, dx is None and xs.value is None)
        zs = _z_axis(layout, f, text)
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
    if hi < _KMS_BELOW:
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
    xs: _Spacing,
    zs: _Spacing,
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


def _x_axis(layout: low.Layout, f: segyio.SegyFile, text: dict[str, str]) -> _Spacing:
    scalars = low.header(f, TraceField.SourceGroupScalar)
    exact = _exact_x(layout, f, text, scalars)
    if exact is not None:
        return exact
    if np.any(scalars != scalars[0]):
        return _Spacing(None, None, "coordinate scalar (byte 71) varies between traces")
    scalar = int(scalars[0])
    if layout.traces == 1:
        x0 = float(low.decode(low.header(f, TraceField.CDP_X)[0], scalar))
        return _Spacing(None, x0, "a single trace has no x spacing")
    problems = []
    for name, field in _X_FIELDS:
        ints = low.header(f, field)
        steps = np.diff(ints)
        if np.all(steps == 0):
            problems.append(f"{name} constant")
            continue
        total, n = int(ints[-1] - ints[0]), layout.traces - 1
        # One division of exact integers: dx = 1.25 written as 125/-100 reads back as 1.25.
        step = total * scalar / n if scalar > 0 else total / (max(-scalar, 1) * n)
        x0 = float(low.decode(ints[0], scalar))
        if np.all(steps == steps[0]) and steps[0] > 0:
            return _Spacing(step, x0)
        if _rounded_even(ints):
            note = (
                f"{name} steps {int(steps.min())}-{int(steps.max())} (units of "
                f"{_unit(scalar)} m) read as an even spacing rounded to whole units: "
                f"dx = {step:g} m from the first and last trace"
            )
            return _Spacing(step, x0, note=note)
        bad = int(np.flatnonzero(steps != steps[0])[0]) if np.any(steps != steps[0]) else 0
        problems.append(
            f"{name} not evenly increasing (traces {bad + 1}-{bad + 2} step {int(steps[bad])})"
        )
    return _Spacing(None, None, ", ".join(problems))


def _rounded_even(ints: np.ndarray) -> bool:
    """True when stored coordinates ``[trace]`` are an increasing even spacing rounded
    to whole units: steps differ by at most one unit and no value is more than one
    unit off the line through the first and last."""
    steps = np.diff(ints)
    if steps.min() <= 0 or steps.max() - steps.min() > 1:
        return False
    line = np.linspace(float(ints[0]), float(ints[-1]), ints.size)
    return bool(np.abs(ints - line).max() <= 1.0)


def _unit(scalar: int) -> str:
    """The stored unit of a coordinate scalar, as a factor ('1', '0.01', '10')."""
    return f"{scalar:g}" if scalar > 0 else f"{1 / max(-scalar, 1):g}"


def _exact_x(
    layout: low.Layout, f: segyio.SegyFile, text: dict[str, str], scalars: np.ndarray
) -> _Spacing | None:
    """Exact dx/x0 from seispinn's textual header, if they match CDP_X."""
    dx, x0 = low.text_float(text, "DX"), low.text_float(text, "X0")
    if dx is None or x0 is None or dx <= 0 or np.any(scalars != scalars[0]):
        return None
    x = x0 + dx * np.arange(layout.traces)
    if np.array_equal(low.encode(x, int(scalars[0])), low.header(f, TraceField.CDP_X)):
        return _Spacing(dx, x0)
    return None


def _z_axis(layout: low.Layout, f: segyio.SegyFile, text: dict[str, str]) -> _Spacing:
    dz, why = _interval(layout, f, text, "DZ", per_unit=1000)
    z0, why0 = _delay(layout, f, text, "Z0", per_unit=1)
    return _Spacing(dz, z0, "; ".join(w for w in (why, why0) if w))


def _interval(
    layout: low.Layout, f: segyio.SegyFile, text: dict[str, str], key: str, per_unit: int
) -> tuple[float | None, str]:
    """The sample interval in SI units (``interval / per_unit``) or None and why."""
    exact = low.text_float(text, key)
    if exact is not None and exact > 0 and _interval_code(exact, per_unit) == layout.interval:
        return exact, ""
    if layout.interval == 0:
        return None, "binary-header sample interval 0"
    in_traces = low.header(f, TraceField.TRACE_SAMPLE_INTERVAL, unsigned16=True)
    differ = in_traces[(in_traces != 0) & (in_traces != layout.interval)]
    if differ.size:
        return None, (
            f"sample interval {int(differ[0])} in trace headers but "
            f"{layout.interval} in the binary header"
        )
    return layout.interval / per_unit, ""


def _interval_code(value: float, per_unit: int) -> int:
    """The unsigned 16-bit sample-interval field for ``value``; 0 if it does not fit."""
    code = int(np.rint(value * per_unit))
    return code if 1 <= code <= low.UINT16_MAX else 0


def _delay(
    layout: low.Layout, f: segyio.SegyFile, text: dict[str, str], key: str, per_unit: int
) -> tuple[float | None, str]:
    """The first-sample time/depth from DelayRecordingTime, or None and why."""
    delays = low.header(f, TraceField.DelayRecordingTime)
    scalars = low.header(f, TraceField.ScalarTraceHeader)
    if np.any(delays != delays[0]) or np.any(scalars != scalars[0]):
        return None, (
            f"delay recording time varies between traces ({int(delays.min())}..{int(delays.max())})"
        )
    exact = low.text_float(text, key)
    if exact is not None and low.encode(exact, int(scalars[0]), per_unit) == delays[0]:
        return exact, ""
    return float(low.decode(delays[0], scalars[0], per_unit)), ""


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
    samples), m/s, headers as in the module docstring.

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
    _check_write_args(shown, sample_format, endian)
    nz, nx = model.shape
    x = model.x0 + model.dx * np.arange(nx)
    xs = _scalar_or_fail(shown, x, low.INT32_MAX, 1, "x coordinates")
    zs = _scalar_or_fail(shown, np.array([model.z0]), low.INT16_MAX, 1, "z0")
    interval = _interval_code(model.dz, 1000)
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
        with segyio.create(tmp, _spec(nz, nx, sample_format, endian)) as f:
            _write_file_headers(f, text, interval, nz)
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


def _check_write_args(shown: str, sample_format: int, endian: str) -> None:
    if sample_format not in _WRITABLE_FORMATS:
        raise fail(shown, f"can write sample format 1 (IBM) or 5 (IEEE), not {sample_format}")
    if endian not in ("big", "little"):
        raise fail(shown, f"endian must be 'big' or 'little', not {endian!r}")


def _scalar_or_fail(shown: str, values: np.ndarray, limit: int, per_unit: int, what: str) -> int:
    scalar = low.choose_scalar(values, limit, per_unit)
    if scalar is None:
        raise fail(shown, f"cannot write: {what} are too large for SEG-Y integer headers")
    return scalar


def _spec(samples: int, traces: int, sample_format: int, endian: str) -> segyio.spec:
    spec = segyio.spec()
    spec.format = sample_format
    spec.samples = np.arange(samples, dtype=np.float64)
    spec.tracecount = traces
    spec.endian = endian
    return spec


def _write_file_headers(f: segyio.SegyFile, text: list[str], interval: int, samples: int) -> None:
    f.text[0] = low.text_lines(text)
    f.bin.update(
        {
            BinField.Interval: interval,
            BinField.IntervalOriginal: interval,
            BinField.MeasurementSystem: 1,  # metres
            BinField.SEGYRevision: 1,
        }
    )
    if samples > low.UINT16_MAX:
        f.bin.update({BinField.Samples: 0, BinField.SamplesOriginal: 0})


# --- shot gathers -------------------------------------------------------------------


@dataclass(frozen=True)
class _TraceGeometry:
    """Per-trace ``[trace]`` arrays decoded from the headers, and each trace's shot."""

    source_x: np.ndarray
    source_z: np.ndarray
    receiver_x: np.ndarray
    receiver_z: np.ndarray
    shot: np.ndarray  # [trace] shot index, shots sorted by field record and source position
    slot: np.ndarray  # [trace] receiver index within its shot (channel or position order)
    counts: np.ndarray  # [shot] receivers per shot


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
        geometry = _trace_geometry(f)
        header_dt, why_dt = _interval(layout, f, text, "DT", per_unit=1_000_000)
        t0, why_t0 = _delay(layout, f, text, "T0", per_unit=1000)
        if t0 is None:
            raise fail(shown, f"cannot read as shot gathers: {why_t0}")
        if dt is None and header_dt is None:
            raise fail(
                shown, f"has no usable time sampling in its headers ({why_dt}); pass dt=<seconds>"
            )
        data = _scatter_traces(layout, f, geometry)
    _refuse_model_values(shown, data, geometry)
    return _gathers(shown, data, geometry, dt if dt is not None else header_dt, t0)


def _trace_geometry(f: segyio.SegyFile) -> _TraceGeometry:
    def h(field: int) -> np.ndarray:
        return low.header(f, field)

    xy_scalar, z_scalar = h(TraceField.SourceGroupScalar), h(TraceField.ElevationScalar)
    sx = low.decode(h(TraceField.SourceX), xy_scalar)
    sy = low.decode(h(TraceField.SourceY), xy_scalar)
    # Differences of integers before scaling keep the result exact (and no -0.0).
    sz = low.decode(h(TraceField.SourceDepth) - h(TraceField.SourceSurfaceElevation), z_scalar)
    rx = low.decode(h(TraceField.GroupX), xy_scalar)
    rz = low.decode(-h(TraceField.ReceiverGroupElevation), z_scalar)
    # np.unique sorts its rows: shots come out by field record, then source x, y, z.
    keys = np.column_stack([h(TraceField.FieldRecord), sx, sy, sz])
    shot = np.unique(keys, axis=0, return_inverse=True)[1].reshape(-1)
    counts = np.bincount(shot)
    order = np.lexsort(
        (np.arange(shot.size), *_receiver_keys(shot, h(TraceField.TraceNumber), rx, rz))
    )
    starts = np.cumsum(counts) - counts
    slot = np.empty_like(shot)
    slot[order] = np.arange(shot.size) - starts[shot[order]]
    return _TraceGeometry(sx, sz, rx, rz, shot, slot, counts)


def _receiver_keys(
    shot: np.ndarray, channel: np.ndarray, rx: np.ndarray, rz: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Sort keys for the traces, least significant first (``np.lexsort``'s order):
    shot, then the channel number (TraceNumber) when it is positive and distinct
    within every shot, else the receiver's x, then z."""
    pairs = np.column_stack([shot, channel])
    channels_usable = np.all(channel > 0) and len(np.unique(pairs, axis=0)) == shot.size
    if channels_usable:
        return channel, shot
    return rz, rx, shot


def _scatter_traces(layout: low.Layout, f: segyio.SegyFile, g: _TraceGeometry) -> np.ndarray:
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


def _gathers(shown: str, data: np.ndarray, g: _TraceGeometry, dt: float, t0: float) -> ShotGathers:
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
    _check_write_args(shown, sample_format, endian)
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
    xy_s = _scalar_or_fail(shown, np.concatenate([sx, rx]), low.INT32_MAX, 1, "x positions")
    z_s = _scalar_or_fail(shown, np.concatenate([sz, -rz]), low.INT32_MAX, 1, "depths")
    t_s = _scalar_or_fail(shown, np.array([gathers.t0]), low.INT16_MAX, 1000, "t0")
    sxi, rxi = low.encode(sx, xy_s), low.encode(rx, xy_s)
    szi, rei = low.encode(sz, z_s), low.encode(-rz, z_s)
    delay = int(low.encode(gathers.t0, t_s, 1000))
    interval = _interval_code(gathers.dt, 1_000_000)
    offsets = np.rint(rx - sx).astype(np.int64)
    nt = gathers.nt
    with low.atomic_target(path) as tmp:
        with segyio.create(tmp, _spec(nt, traces.shape[0], sample_format, endian)) as f:
            _write_file_headers(f, _shots_text(gathers), interval, nt)
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


# --- summary ------------------------------------------------------------------------


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
        xs, zs = _x_axis(layout, f, text), _z_axis(layout, f, text)
        dt, why_dt = _interval(layout, f, text, "DT", per_unit=1_000_000)
        t0, _ = _delay(layout, f, text, "T0", per_unit=1000)
        geometry = _trace_geometry(f)
        n_shots = int(geometry.counts.size)
        vmin, vmax, mean, nonfinite = _value_stats(layout, f)
    kind = _kind(text, _shares_sources(geometry), vmin, vmax, nonfinite)
    notes = []
    if kind == "shot gathers":
        if dt is None:
            notes.append(f"time: {why_dt}")
        xs = zs = _Spacing(None, None)  # depth readings of a time axis would only mislead
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
        units = "km/s" if vmax < _KMS_BELOW else "m/s"
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


def _shares_sources(g: _TraceGeometry) -> bool:
    """True when some source (field record and position) has traces at two or more
    receiver positions: the mark of shot gathers. A model written with constant
    source and receiver headers has one 'source' with one receiver position."""
    receivers = np.column_stack([g.shot, g.receiver_x, g.receiver_z])
    return len(np.unique(receivers, axis=0)) > g.counts.size


def _refuse_shots_as_model(
    shown: str, text: dict[str, str], g: _TraceGeometry, unusable: bool
) -> None:
    """Refuse shot gathers given as a velocity model: seispinn's own shot file, or
    traces that share sources (:func:`_shares_sources`) where that evidence is not
    contradicted — the x spacing is ``unusable`` or the samples are not all positive
    (a model written with only GroupX set also 'shares' a blank source)."""
    if text.get("KIND") == "SHOTS" or (
        text.get("KIND") != "VELOCITY" and unusable and _shares_sources(g)
    ):
        raise fail(
            shown,
            f"looks like shot gathers ({g.counts.size} shots, up to {int(g.counts.max())} "
            "receivers each), not a velocity model; read it with read_shots",
        )


def _refuse_model_values(shown: str, data: np.ndarray, g: _TraceGeometry) -> None:
    """Refuse as shot gathers a file with one trace per source and no sample <= 0:
    a velocity model (seismograms swing both ways)."""
    if g.counts.size > 1 and not _shares_sources(g) and float(data.min()) > 0:
        raise fail(
            shown,
            f"looks like a velocity model (one trace per position, {g.counts.size} traces, "
            f"samples {float(data.min()):g}..{float(data.max()):g}, none negative), not shot "
            "gathers; read it with read_velocity",
        )
