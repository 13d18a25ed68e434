"""seispinn's own error types.

Every problem caused by user input (a file, a config, an argument) raises a
subclass of :class:`SeispinnError` whose message names the source and the
problem in one line. The CLI prints that line and exits non-zero.
"""

from __future__ import annotations

__all__ = [
    "SeispinnError",
    "SegyError",
    "ModelError",
    "ConfigError",
    "TrainingError",
    "ResourceError",
]


class SeispinnError(Exception):
    """Base class of all errors seispinn raises on bad input."""


class SegyError(SeispinnError):
    """A SEG-Y file cannot be read or written as asked (names the file)."""


class ModelError(SeispinnError):
    """A velocity model or acquisition is invalid (NaN, negative, bad spacing...)."""


class ConfigError(SeispinnError):
    """A configuration key or value is unknown, of the wrong type, or out of range."""


class TrainingError(SeispinnError):
    """Training stopped: divergence (NaN/inf) or an unusable checkpoint."""


class ResourceError(SeispinnError):
    """A run would not fit: its estimated peak memory exceeds what the device has free."""
