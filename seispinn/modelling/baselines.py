"""The finite-difference inversions a PINN run is compared with, by name.

A baseline is one entry of :data:`BASELINES`: its config section's options class, the
function that runs it (every one takes the observed gathers, the start, the source,
its options, the receivers used, the modelling settings, the truth for per-band
errors and the :class:`seispinn.models.ModelPrior`, and returns a
:class:`seispinn.modelling.fwi.FWIResult`), and its name in reports. A new baseline
is a new entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from seispinn.errors import ConfigError
from seispinn.modelling.fwi import FWIOptions, FWIResult, fwi
from seispinn.modelling.wri import WRIOptions, wri

__all__ = ["Baseline", "BASELINES", "baseline_names"]


class Baseline(NamedTuple):
    """A finite-difference inversion: its ``[section]`` (also its name), options class,
    the function that runs it and a title for reports."""

    name: str
    options: type
    run: Callable[..., FWIResult]
    title: str


#: Name -> :class:`Baseline`; the name is also the config section of its options.
BASELINES: dict[str, Baseline] = {
    b.name: b
    for b in (
        Baseline("fwi", FWIOptions, fwi, "conventional FWI (multiscale preconditioned L-BFGS)"),
        Baseline("wri", WRIOptions, wri, "wavefield-reconstruction inversion (extended source)"),
    )
}


def baseline_names(text: str | list[str] | None) -> list[str]:
    """The baselines a comma list (or a list) names, each checked; [] for None."""
    if text is None:
        return []
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    bad = [n for n in names if n not in BASELINES]
    if bad:
        raise ConfigError(f"baseline: unknown {bad[0]!r} (known: {', '.join(BASELINES)})")
    return list(dict.fromkeys(names))
