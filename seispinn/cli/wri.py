"""``seispinn wri``: wavefield-reconstruction inversion with Deepwave by itself, on an
inversion config's data (SEG-Y shots or a synthetic survey) -> a run folder."""

from __future__ import annotations

import argparse

from seispinn.cli._baseline import add_baseline_parser


def add_parser(sub: argparse._SubParsersAction) -> None:
    add_baseline_parser(
        sub,
        "wri",
        "wavefield-reconstruction inversion with Deepwave alone (extended source; SEG-Y in "
        "and out)",
        "wavefield-reconstruction inversion with Deepwave: an extended source solved in "
        "data space, a closed-form squared-slowness update (docs/fwi.md)",
        "wri.iterations=20",
    )
