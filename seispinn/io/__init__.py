"""File input/output: SEG-Y velocity models and shot gathers (see :mod:`seispinn.io.segy`)."""

from seispinn.io.segy import (
    UNITS,
    SegySummary,
    read_shots,
    read_velocity,
    summarise,
    write_shots,
    write_velocity,
)

__all__ = [
    "read_velocity",
    "write_velocity",
    "read_shots",
    "write_shots",
    "summarise",
    "SegySummary",
    "UNITS",
]
