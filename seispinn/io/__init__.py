"""File input/output: SEG-Y velocity models (:mod:`.velocity`) and shot gathers
(:mod:`.shots`), a summary of any SEG-Y (:mod:`.summary`), and writing run folders
(:mod:`.runfolder`). The SEG-Y header conventions are in docs/segy.md."""

from seispinn.io.shots import read_shots, write_shots
from seispinn.io.summary import SegySummary, summarise
from seispinn.io.velocity import UNITS, read_velocity, write_velocity

__all__ = [
    "read_velocity",
    "write_velocity",
    "read_shots",
    "write_shots",
    "summarise",
    "SegySummary",
    "UNITS",
]
