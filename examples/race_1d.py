"""The seed's race: uniform vs grad-norm vs SA-PINN vs RBA on u*(x) = tanh(20x).

Fits 30 points with a small MLP once per strategy over 5 seeds and prints, per
strategy, the median centre and outer residuals, their ratio and the weight
enrichment in the centre; writes the figure to ``out/race_1d.png``.

    .venv/bin/python examples/race_1d.py [KEY=VALUE ...]   # e.g. sa.mask=sigmoid sa.init=-3

KEY=VALUE items are the project's overrides (``seispinn race --set``): dotted keys
of :class:`RaceConfig`, TOML values.
"""

from __future__ import annotations

import os
import sys

from seispinn.experiments.race import RaceConfig, format_table, run_race, with_overrides
from seispinn.plots.race import plot_race


def main(argv: list[str]) -> None:
    # The command line's items come after the default, so workers=1 there wins.
    config = with_overrides(RaceConfig(), [f"workers={min(2, os.cpu_count() or 1)}", *argv])
    result = run_race(config)
    summary = result.summary()
    print(format_table(summary))
    if "sa" in summary and "uniform" in summary:
        sa, uniform = summary["sa"], summary["uniform"]
        print(
            f"SA / uniform: centre/outer ratio {sa['ratio'] / uniform['ratio']:.2f}x, "
            f"centre residual {sa['centre_residual'] / uniform['centre_residual']:.2f}x, "
            f"SA centre enrichment {sa['enrichment']:.2f}, "
            f"effective share {sa['effective_share']:.2f}"
        )
    first = {name: runs[0] for name, runs in result.runs.items()}
    fig = plot_race(result.x_train, result.y_train, result.x_dense, result.y_dense, first,
                    band=config.band, title=f"seed {config.seeds[0]}")  # fmt: skip
    os.makedirs("out", exist_ok=True)
    fig.savefig("out/race_1d.png", dpi=120)
    print("wrote out/race_1d.png")


if __name__ == "__main__":  # the guard lets the race's worker processes import this file
    main(sys.argv[1:])
