"""Runnable, measured experiments: configs and thin drivers over :mod:`seispinn.pinn`.

- :mod:`seispinn.experiments.run`: the one run driver of the wave PINN.
- :mod:`seispinn.experiments.forward`: the forward PINN scored against Deepwave.
- :mod:`seispinn.experiments.invert`: PINN inversion from SEG-Y or a survey.
- :mod:`seispinn.experiments.compare`: weightings and conventional FWI side by side.
- :mod:`seispinn.experiments.race`: the 1D race of per-point weighting strategies.
- :mod:`seispinn.experiments.study`: many runs over cases, variants and seeds.
"""

from seispinn.experiments.race import RaceConfig, RaceResult, format_table, run_race, with_overrides

__all__ = ["RaceConfig", "RaceResult", "format_table", "run_race", "with_overrides"]
