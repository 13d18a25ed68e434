"""SEG-Y header conventions shared by the velocity-model and shot-gather readers and
writers (:mod:`seispinn.io.velocity`, :mod:`seispinn.io.shots`) and the summary
(:mod:`seispinn.io.summary`): the x and depth axes of a model, the sample interval
and first-sample time, the trace geometry of gathers, and the writers' headers.
The conventions themselves are written out in docs/segy.md."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import segyio
from segyio import BinField, TraceField

from seispinn.io import _segyfile as low

# A maximum velocity below this is taken as km/s when units are not given: no
# rock is slower than ~10 m/s, none faster than ~10 km/s.
KMS_BELOW = 10.0

_X_FIELDS = (
    ("CDP_X", TraceField.CDP_X),
    ("SourceX", TraceField.SourceX),
    ("GroupX", TraceField.GroupX),
)
_WRITABLE_FORMATS = (1, 5)


# --- axes of a velocity model --------------------------------------------------------


@dataclass(frozen=True)
class Spacing:
    """One axis as found in a file's headers; ``value`` None means unusable."""

    value: float | None
    origin: float | None
    why: str = ""  # why value (or origin) is unusable
    note: str = ""  # how value was found, when a reader should say so


def x_axis(layout: low.Layout, f: segyio.SegyFile, text: dict[str, str]) -> Spacing:
    scalars = low.header(f, TraceField.SourceGroupScalar)
    exact = _exact_x(layout, f, text, scalars)
    if exact is not None:
        return exact
    if np.any(scalars != scalars[0]):
        return Spacing(None, None, "coordinate scalar (byte 71) varies between traces")
    scalar = int(scalars[0])
    if layout.traces == 1:
        x0 = float(low.decode(low.header(f, TraceField.CDP_X)[0], scalar))
        return Spacing(None, x0, "a single trace has no x spacing")
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
            return Spacing(step, x0)
        if _rounded_even(ints):
            note = (
                f"{name} steps {int(steps.min())}-{int(steps.max())} (units of "
                f"{_unit(scalar)} m) read as an even spacing rounded to whole units: "
                f"dx = {step:g} m from the first and last trace"
            )
            return Spacing(step, x0, note=note)
        bad = int(np.flatnonzero(steps != steps[0])[0]) if np.any(steps != steps[0]) else 0
        problems.append(
            f"{name} not evenly increasing (traces {bad + 1}-{bad + 2} step {int(steps[bad])})"
        )
    return Spacing(None, None, ", ".join(problems))


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
) -> Spacing | None:
    """Exact dx/x0 from seispinn's textual header, if they match CDP_X."""
    dx, x0 = low.text_float(text, "DX"), low.text_float(text, "X0")
    if dx is None or x0 is None or dx <= 0 or np.any(scalars != scalars[0]):
        return None
    x = x0 + dx * np.arange(layout.traces)
    if np.array_equal(low.encode(x, int(scalars[0])), low.header(f, TraceField.CDP_X)):
        return Spacing(dx, x0)
    return None


def z_axis(layout: low.Layout, f: segyio.SegyFile, text: dict[str, str]) -> Spacing:
    dz, why = sample_interval(layout, f, text, "DZ", per_unit=1000)
    z0, why0 = first_sample(layout, f, text, "Z0", per_unit=1)
    return Spacing(dz, z0, "; ".join(w for w in (why, why0) if w))


def sample_interval(
    layout: low.Layout, f: segyio.SegyFile, text: dict[str, str], key: str, per_unit: int
) -> tuple[float | None, str]:
    """The sample interval in SI units (``interval / per_unit``) or None and why."""
    exact = low.text_float(text, key)
    if exact is not None and exact > 0 and interval_code(exact, per_unit) == layout.interval:
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


def interval_code(value: float, per_unit: int) -> int:
    """The unsigned 16-bit sample-interval field for ``value``; 0 if it does not fit."""
    code = int(np.rint(value * per_unit))
    return code if 1 <= code <= low.UINT16_MAX else 0


def first_sample(
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


# --- writers -------------------------------------------------------------------------


def check_write_args(shown: str, sample_format: int, endian: str) -> None:
    if sample_format not in _WRITABLE_FORMATS:
        raise low.fail(shown, f"can write sample format 1 (IBM) or 5 (IEEE), not {sample_format}")
    if endian not in ("big", "little"):
        raise low.fail(shown, f"endian must be 'big' or 'little', not {endian!r}")


def scalar_or_fail(shown: str, values: np.ndarray, limit: int, per_unit: int, what: str) -> int:
    scalar = low.choose_scalar(values, limit, per_unit)
    if scalar is None:
        raise low.fail(shown, f"cannot write: {what} are too large for SEG-Y integer headers")
    return scalar


def segy_spec(samples: int, traces: int, sample_format: int, endian: str) -> segyio.spec:
    spec = segyio.spec()
    spec.format = sample_format
    spec.samples = np.arange(samples, dtype=np.float64)
    spec.tracecount = traces
    spec.endian = endian
    return spec


def write_file_headers(f: segyio.SegyFile, text: list[str], interval: int, samples: int) -> None:
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


# --- trace geometry of shot gathers ----------------------------------------------------


@dataclass(frozen=True)
class TraceGeometry:
    """Per-trace ``[trace]`` arrays decoded from the headers, and each trace's shot."""

    source_x: np.ndarray
    source_z: np.ndarray
    receiver_x: np.ndarray
    receiver_z: np.ndarray
    shot: np.ndarray  # [trace] shot index, shots sorted by field record and source position
    slot: np.ndarray  # [trace] receiver index within its shot (channel or position order)
    counts: np.ndarray  # [shot] receivers per shot


def trace_geometry(f: segyio.SegyFile) -> TraceGeometry:
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
        (np.arange(shot.size), *receiver_keys(shot, h(TraceField.TraceNumber), rx, rz))
    )
    starts = np.cumsum(counts) - counts
    slot = np.empty_like(shot)
    slot[order] = np.arange(shot.size) - starts[shot[order]]
    return TraceGeometry(sx, sz, rx, rz, shot, slot, counts)


def receiver_keys(
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


def shares_sources(g: TraceGeometry) -> bool:
    """True when some source (field record and position) has traces at two or more
    receiver positions: the mark of shot gathers. A model written with constant
    source and receiver headers has one 'source' with one receiver position."""
    receivers = np.column_stack([g.shot, g.receiver_x, g.receiver_z])
    return len(np.unique(receivers, axis=0)) > g.counts.size
