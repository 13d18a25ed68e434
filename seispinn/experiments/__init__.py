"""Runnable, measured experiments (each a module with a frozen config and a ``run_*``).

- :mod:`seispinn.experiments.race`: the 1D race of per-point weighting strategies.
"""

from seispinn.experiments.race import RaceConfig, RaceResult, format_table, run_race, with_overrides

__all__ = ["RaceConfig", "RaceResult", "format_table", "run_race", "with_overrides"]
