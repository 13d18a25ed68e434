"""``seispinn info FILE``: what a SEG-Y file holds, without loading it whole.

Prints the layout (format, byte order, traces x samples), what the headers say
about spacing under seispinn's conventions (see docs/segy.md) and
the value range. ``--dx/--dz/--units`` describe the file as a velocity model
the way ``read_velocity(..., dx=, dz=, units=)`` would load it.
"""

from __future__ import annotations

import argparse

from seispinn.io import UNITS, SegySummary, summarise

__all__ = ["add_parser", "run", "format_summary"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "info",
        help="summarise a SEG-Y file (velocity model or shot gathers)",
        description="Summarise a SEG-Y file: layout, header spacing, value range. "
        "Gzip-compressed files are accepted.",
    )
    parser.add_argument("file", metavar="FILE", help="SEG-Y file (.segy, .sgy, .segy.gz)")
    parser.add_argument("--dx", type=float, help="x spacing in metres (overrides headers)")
    parser.add_argument("--dz", type=float, help="depth spacing in metres (overrides headers)")
    parser.add_argument("--units", choices=list(UNITS), help="velocity units of the samples")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    summary = summarise(args.file)
    print(format_summary(summary, dx=args.dx, dz=args.dz, units=args.units))
    return 0


def format_summary(
    s: SegySummary, *, dx: float | None = None, dz: float | None = None, units: str | None = None
) -> str:
    """The human-readable report ``seispinn info`` prints."""
    size = _megabytes(s.size_bytes)
    if s.compressed_bytes is not None:
        size += f" ({_megabytes(s.compressed_bytes)} gzip-compressed)"
    origin = "written by seispinn" if s.written_by_seispinn else "from another tool"
    rows = [
        ("format", f"SEG-Y, {s.format_name} (format {s.sample_format}), {s.endian}-endian"),
        ("size", size),
        ("layout", f"{s.traces} traces x {s.samples} samples"),
        ("sample interval", f"{s.sample_interval} (binary header)"),
        ("looks like", f"{s.kind} ({origin})"),
    ]
    if s.kind == "shot gathers":
        rows += _shot_rows(s)
    else:
        rows += _model_rows(s, dx, dz, units)
    width = max(len(name) for name, _ in rows)
    lines = [s.path] + [f"  {name:<{width}}  {text}" for name, text in rows]
    return "\n".join(lines)


def _shot_rows(s: SegySummary) -> list[tuple[str, str]]:
    rows = [("shots", f"{s.n_shots} ({s.traces / s.n_shots:.1f} traces per shot on average)")]
    if s.dt is not None:
        length = s.dt * (s.samples - 1)
        rows.append(("dt", f"{s.dt * 1e3:g} ms, t0 {s.t0:g} s, record length {length:g} s"))
    rows += [("note", note) for note in s.notes]
    rows.append(("values", _values(s)))
    return rows


def _model_rows(
    s: SegySummary, dx: float | None, dz: float | None, units: str | None
) -> list[tuple[str, str]]:
    rows = [
        ("dx", _spacing(s.dx, dx, "x", s.notes, "--dx")),
        ("dz", _spacing(s.dz, dz, "depth", s.notes, "--dz")),
        ("values", _values(s) + (f" (look like {s.units_guess})" if s.units_guess else "")),
    ]
    if s.kind == "section" and s.dt is not None:
        rows.append(("as time data", f"dt {s.dt * 1e3:g} ms"))
    use_dx = dx if dx is not None else s.dx
    use_dz = dz if dz is not None else s.dz
    unit = units or s.units_guess or "m/s"
    factor = UNITS[unit]
    shape = f"[nz={s.samples}, nx={s.traces}]"
    if use_dx is not None and use_dz is not None:
        shape += f", {use_dx * (s.traces - 1):g} m wide x {use_dz * (s.samples - 1):g} m deep"
    rows.append(("as a model", shape))
    rows.append(
        ("velocity", f"{s.value_min * factor:g} .. {s.value_max * factor:g} m/s (from {unit})")
    )
    problems = []
    if s.nonfinite:
        problems.append(f"{s.nonfinite} NaN/inf samples")
    if s.value_min <= 0:
        problems.append(f"minimum {s.value_min:g} is not positive")
    if problems:
        rows.append(("warning", "not a valid velocity model: " + ", ".join(problems)))
    return rows


def _spacing(
    found: float | None, given: float | None, axis: str, notes: tuple[str, ...], flag: str
) -> str:
    if given is not None:
        return f"{given:g} m (given)" + (f"; headers say {found:g} m" if found is not None else "")
    why = next((n.split(": ", 1)[1] for n in notes if n.startswith(f"{axis}: ")), "")
    if found is not None:
        return f"{found:g} m (headers" + (f": {why})" if why else ")")
    return f"not in the headers ({why}); pass {flag}" if why else f"unknown; pass {flag}"


def _values(s: SegySummary) -> str:
    text = f"min {s.value_min:g}, max {s.value_max:g}, mean {s.value_mean:g}"
    return text + (f", {s.nonfinite} NaN/inf" if s.nonfinite else "")


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n} bytes"
