"""``seispinn fwi``: conventional FWI with Deepwave by itself, on an inversion config's
data (SEG-Y shots or a synthetic survey) -> a run folder with the SEG-Y model."""

from __future__ import annotations

import argparse

from seispinn.cli._baseline import add_baseline_parser


def add_parser(sub: argparse._SubParsersAction) -> None:
    add_baseline_parser(
        sub,
        "fwi",
        "conventional FWI with Deepwave alone (SEG-Y shots or a synthetic survey -> SEG-Y model)",
        "multiscale preconditioned L-BFGS FWI with Deepwave (docs/fwi.md)",
        "fwi.iterations=30",
    )
