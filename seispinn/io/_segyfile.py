"""Low-level SEG-Y plumbing shared by the readers and writers of :mod:`seispinn.io`.

segyio does the sample decoding (IBM/IEEE/integers, either byte order), but on
bad input it either raises bare ``RuntimeError``/``OSError`` without the file
name or, for some damage, reads garbage. So before segyio sees a file we parse
the 400-byte binary header ourselves, detect the byte order, and check the file
size against ``3600 + 3200 * ext_headers + traces * (240 + samples * bytes)``.
Every problem comes out as one :class:`~seispinn.errors.SegyError` line that
starts with the file path.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import segyio

from seispinn.errors import SegyError

PathLike = str | os.PathLike

TEXT_BYTES = 3200
BINARY_BYTES = 400
TRACE_HEADER_BYTES = 240
INT32_MAX = 2**31 - 1
INT16_MAX = 2**15 - 1
UINT16_MAX = 2**16 - 1

# Sample format code -> (bytes per sample, name). Only codes segyio decodes.
FORMATS: dict[int, tuple[int, str]] = {
    1: (4, "4-byte IBM float"),
    2: (4, "4-byte signed integer"),
    3: (2, "2-byte signed integer"),
    5: (4, "4-byte IEEE float"),
    6: (8, "8-byte IEEE float"),
    8: (1, "1-byte signed integer"),
    9: (8, "8-byte signed integer"),
    10: (4, "4-byte unsigned integer"),
    11: (2, "2-byte unsigned integer"),
    12: (8, "8-byte unsigned integer"),
    16: (1, "1-byte unsigned integer"),
}

# Scalars tried when writing, finest-last: a negative SEG-Y scalar divides, so
# -100 stores centimetres. Coarser positive scalars only if values overflow int32.
_DIVIDING_SCALARS = (1, -10, -100, -1000, -10000)
_MULTIPLYING_SCALARS = (10, 100, 1000, 10000)

_CHUNK_BYTES = 32 * 2**20  # read traces in ~32 MB chunks to bound memory


@dataclass(frozen=True)
class Layout:
    """What the binary header and the file size say about a SEG-Y file."""

    path: str  # as the user gave it, for messages
    size: int  # bytes of the (decompressed) SEG-Y data
    compressed_size: int | None  # bytes on disk when gzip-compressed
    endian: str  # "big" or "little"
    format: int
    samples: int
    interval: int  # binary-header sample interval (µs for time data), unsigned
    ext_headers: int
    traces: int

    @property
    def bytes_per_sample(self) -> int:
        return FORMATS[self.format][0]

    @property
    def format_name(self) -> str:
        return FORMATS[self.format][1]

    @property
    def trace_bytes(self) -> int:
        return TRACE_HEADER_BYTES + self.samples * self.bytes_per_sample


def fail(path: PathLike, problem: str) -> SegyError:
    """A :class:`SegyError` reading ``"<path>: <problem>"`` on one line."""
    one_line = " ".join(str(problem).split())
    return SegyError(f"{os.fspath(path)}: {one_line}")


@contextlib.contextmanager
def opened(path: PathLike) -> Iterator[tuple[Layout, segyio.SegyFile]]:
    """Validate ``path`` and open it with segyio (``ignore_geometry=True``).

    A gzip file (recognised by its magic bytes, whatever its name) is first
    decompressed to a temporary file because segyio needs a seekable real file.
    segyio's own exceptions while the file is open become :class:`SegyError`.
    """
    shown = os.fspath(path)
    with _decompressed(path) as (real, compressed_size):
        layout = inspect(shown, real, compressed_size)
        try:
            with segyio.open(real, "r", ignore_geometry=True, endian=layout.endian) as f:
                if f.tracecount != layout.traces or len(f.samples) != layout.samples:
                    raise fail(shown, "segyio and the binary header disagree on the file layout")
                check_sample_counts(layout, f)
                yield layout, f
        except (RuntimeError, OSError, IndexError) as exc:
            raise fail(shown, f"cannot read SEG-Y data: {exc}") from exc


@contextlib.contextmanager
def _decompressed(path: PathLike) -> Iterator[tuple[str, int | None]]:
    shown = os.fspath(path)
    head = _read_head(shown, 2)
    if head != b"\x1f\x8b":
        yield shown, None
        return
    with tempfile.TemporaryDirectory(prefix="seispinn-segy-") as tmp:
        real = os.path.join(tmp, Path(shown).name.removesuffix(".gz") or "data.segy")
        try:
            with gzip.open(shown, "rb") as src, open(real, "wb") as dst:
                shutil.copyfileobj(src, dst, length=4 * 2**20)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise fail(shown, f"cannot decompress gzip file: {exc}") from exc
        yield real, os.path.getsize(shown)


def _read_head(path: str, n: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except FileNotFoundError as exc:
        raise fail(path, "no such file") from exc
    except IsADirectoryError as exc:
        raise fail(path, "is a directory, not a SEG-Y file") from exc
    except OSError as exc:
        raise fail(path, f"cannot open: {exc.strerror or exc}") from exc


def inspect(shown: str, real: str, compressed_size: int | None = None) -> Layout:
    """Parse the binary header of ``real`` and check its size; raise on any problem."""
    size = os.path.getsize(real)
    if size == 0:
        raise fail(shown, "empty file (0 bytes), not a SEG-Y file")
    if size < TEXT_BYTES + BINARY_BYTES:
        raise fail(
            shown,
            f"not a SEG-Y file: {size} bytes, shorter than the 3600-byte SEG-Y file header",
        )
    binary = _read_head(real, TEXT_BYTES + BINARY_BYTES)[TEXT_BYTES:]
    endian = detect_endian(binary)
    if endian is None:
        code = int.from_bytes(binary[24:26], "big")
        raise fail(
            shown,
            f"not a SEG-Y file: binary-header sample format code {code} (bytes 3225-3226) "
            "is not a known format in either byte order",
        )
    order = "big" if endian == "big" else "little"

    def field(offset: int, nbytes: int, signed: bool = False) -> int:
        return int.from_bytes(binary[offset : offset + nbytes], order, signed=signed)

    fmt = field(24, 2)
    if fmt not in FORMATS:  # the rev2 byte-order constant chose an order the code disagrees with
        raise fail(
            shown,
            f"binary-header sample format code {fmt} (bytes 3225-3226, {order}-endian as the "
            "byte-order constant at bytes 3297-3300 says) is not a known format",
        )
    interval = field(16, 2)
    samples = field(20, 2)
    if samples == 0:
        samples = field(68, 4, signed=True)  # SEG-Y rev2 extended sample count
    ext_headers = field(304, 2, signed=True)
    if samples <= 0:
        raise fail(shown, "not a usable SEG-Y file: the binary header gives 0 samples per trace")
    if ext_headers < 0:
        raise fail(
            shown,
            f"a variable number of extended textual headers ({ext_headers}) is not supported",
        )
    layout = Layout(shown, size, compressed_size, endian, fmt, samples, interval, ext_headers, 0)
    start = TEXT_BYTES * (1 + ext_headers) + BINARY_BYTES
    body = size - start
    if body < 0:
        raise fail(
            shown,
            f"truncated SEG-Y: {size} bytes, but the binary header announces {ext_headers} "
            f"extended textual headers, so traces start at byte {start}",
        )
    if body == 0:
        raise fail(shown, "SEG-Y file has no traces (nothing after the file headers)")
    traces, extra = divmod(body, layout.trace_bytes)
    if extra:
        raise fail(
            shown,
            f"truncated or corrupt SEG-Y: {body} bytes of traces is not a whole number of "
            f"{layout.trace_bytes}-byte traces (240 + {samples} samples x "
            f"{layout.bytes_per_sample} bytes); the last trace has {extra} of its bytes",
        )
    return Layout(shown, size, compressed_size, endian, fmt, samples, interval, ext_headers, traces)


def detect_endian(binary: bytes) -> str | None:
    """``"big"``/``"little"`` from a 400-byte binary header, or None if neither fits.

    SEG-Y rev2 has an explicit byte-order constant 0x01020304 (bytes 3297-3300);
    most files predate it, so otherwise the sample format code decides: valid
    codes are below 256, so read in the wrong byte order they become >= 256.
    """
    const = binary[96:100]
    if const == b"\x01\x02\x03\x04":
        return "big"
    if const == b"\x04\x03\x02\x01":
        return "little"
    if int.from_bytes(binary[24:26], "big") in FORMATS:
        return "big"
    if int.from_bytes(binary[24:26], "little") in FORMATS:
        return "little"
    return None


def header(f: segyio.SegyFile, field: int, *, unsigned16: bool = False) -> np.ndarray:
    """``[trace]`` int64 values of one trace-header field for every trace."""
    values = np.asarray(f.attributes(field)[:], dtype=np.int64)
    # segyio reads 2-byte fields as signed; sample counts/intervals are unsigned.
    return values & 0xFFFF if unsigned16 else values


def check_sample_counts(layout: Layout, f: segyio.SegyFile) -> None:
    """Fixed-length traces only: every non-zero trace-header sample count must agree."""
    counts = header(f, segyio.TraceField.TRACE_SAMPLE_COUNT, unsigned16=True)
    bad = np.flatnonzero((counts != 0) & (counts != layout.samples % 2**16))
    if bad.size:
        i = int(bad[0])
        raise fail(
            layout.path,
            f"inconsistent sample counts: trace {i + 1} says {int(counts[i])} samples but the "
            f"binary header says {layout.samples} ({bad.size} traces disagree); "
            "traces of different lengths are not supported",
        )


def read_traces(f: segyio.SegyFile, start: int, stop: int) -> np.ndarray:
    """``[trace, sample]`` float32 of traces ``start:stop`` (integers converted)."""
    if stop <= start:
        return np.empty((0, len(f.samples)), dtype=np.float32)
    block = np.asarray(f.trace.raw[start:stop])
    if block.ndim == 1:  # segyio returns 1D for a single trace
        block = block[None, :]
    return block.astype(np.float32, copy=False)


def chunks(layout: Layout) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` trace ranges of about 32 MB each."""
    step = max(1, _CHUNK_BYTES // (layout.samples * 4))
    for start in range(0, layout.traces, step):
        yield start, min(start + step, layout.traces)


# --- scaled integers --------------------------------------------------------------


def decode(ints: np.ndarray, scalar: np.ndarray | int, per_unit: int = 1) -> np.ndarray:
    """Physical values from SEG-Y integers and scalars (float64).

    SEG-Y convention: a negative scalar divides, a positive one multiplies, 0
    means 1. ``per_unit`` converts header units to the result's (1000 for ms to
    s). One correctly rounded division per value, so a value written from a
    decimal such as 1.25 reads back as exactly that float.
    """
    ints = np.asarray(ints, dtype=np.float64)
    scalar = np.asarray(scalar, dtype=np.int64)
    divisor = np.where(scalar < 0, -scalar, 1) * per_unit
    factor = np.where(scalar > 0, scalar, 1)
    return ints * factor / divisor


def encode(values: np.ndarray, scalar: int, per_unit: int = 1) -> np.ndarray:
    """Inverse of :func:`decode`: int64 header integers (rounded) for ``values``."""
    values = np.asarray(values, dtype=np.float64) * per_unit
    scaled = values * -scalar if scalar < 0 else values / max(scalar, 1)
    return np.rint(scaled).astype(np.int64)


def choose_scalar(values: np.ndarray, limit: int, per_unit: int = 1) -> int | None:
    """The coarsest SEG-Y scalar that stores ``values`` exactly within ``±limit``.

    If none is exact, the finest that fits (values are then rounded); None if
    even the coarsest multiplying scalar overflows.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return 1
    best = None
    for scalar in _DIVIDING_SCALARS:
        ints = encode(values, scalar, per_unit)
        if np.abs(ints).max() > limit:
            break
        best = scalar
        if np.array_equal(decode(ints, scalar, per_unit), values):
            return scalar
    if best is not None:
        return best
    for scalar in _MULTIPLYING_SCALARS:
        if np.abs(encode(values, scalar, per_unit)).max() <= limit:
            return scalar
    return None


# --- textual header ---------------------------------------------------------------

_KEY_VALUE = re.compile(r"SEISPINN ([A-Z0-9_]+)=(\S+)")


def text_lines(lines: list[str]) -> bytes:
    """A 3200-byte textual header of 40 card images ``C01``..``C40`` (ASCII; segyio
    writes it as EBCDIC)."""
    cards = [f"C{i + 1:02d} {line}"[:80].ljust(80) for i, line in enumerate(lines[:39])]
    cards += [f"C{i + 1:02d}".ljust(80) for i in range(len(cards), 39)]
    cards.append("C40 END TEXTUAL HEADER".ljust(80))
    return "".join(cards).encode("ascii", "replace")


def text_values(f: segyio.SegyFile) -> dict[str, str]:
    """``KEY -> value`` of the ``SEISPINN KEY=value`` lines seispinn's writers put in
    the textual header (empty for other files)."""
    try:
        raw = bytes(f.text[0])
    except (RuntimeError, OSError):
        return {}
    text = raw.decode("ascii", "replace").upper()
    lines = [text[i : i + 80] for i in range(0, len(text), 80)]
    found: dict[str, str] = {}
    for line in lines:
        for key, value in _KEY_VALUE.findall(line):
            found.setdefault(key, value)
    return found


def text_float(values: dict[str, str], key: str) -> float | None:
    """The float for ``key`` from :func:`text_values`, None if absent or unparsable."""
    try:
        value = float(values[key])
    except (KeyError, ValueError):
        return None
    return value if np.isfinite(value) else None


def atomic_target(path: PathLike) -> contextlib.AbstractContextManager[str]:
    """Context manager giving a temporary file name next to ``path`` that replaces
    ``path`` only if the block succeeds, so a failed write leaves no half file.
    A ``.gz`` target is gzip-compressed."""
    return _atomic(os.fspath(path))


@contextlib.contextmanager
def _atomic(target: str) -> Iterator[str]:
    parent = os.path.dirname(os.path.abspath(target))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".seispinn-", suffix=".segy.part", dir=parent)
    except OSError as exc:
        raise fail(target, f"cannot write: {exc.strerror or exc}") from exc
    os.close(fd)
    # mkstemp creates 0600; a written model should get the usual umask permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield tmp
        if target.endswith(".gz"):
            with open(tmp, "rb") as src, gzip.open(tmp + ".gz", "wb", compresslevel=6) as dst:
                shutil.copyfileobj(src, dst, length=4 * 2**20)
            os.replace(tmp + ".gz", tmp)
        os.replace(tmp, target)
    except (RuntimeError, OSError, ValueError) as exc:
        raise fail(target, f"cannot write SEG-Y: {exc}") from exc
    finally:
        for leftover in (tmp, tmp + ".gz"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(leftover)
