"""The seed's race in 1D: per-point weighting strategies on a sharp transition.

A small MLP regresses ``u*(x)`` (default ``tanh(20 x)`` on [−1, 1]) from 30
uniformly spaced points, once per strategy, from the same initial network and
for the same number of full-batch Adam steps, over several seeds. Each run is a
:class:`RegressionProblem` trained by the wave PINN's own loop,
:func:`seispinn.pinn.training.train` (Adam for θ, the weighting's ascent optimiser
for SA's λ, its per-point update hook, an optional L-BFGS stage). The per-point
residual is ``r_i = u(x_i) − u*(x_i)``. Measured (docs/method.md, Measures):

- RMS residual at the training points inside the central band ``|x| <= band``
  and outside it, and their ratio (centre / outer);
- the same on a dense grid (how the fit behaves between training points);
- the weight enrichment in the band: share of Σw inside ÷ share of points inside;
- the weights' effective share of the points, (Σw)² / (N Σw²);
- wall time of the training.

Everything is configured by one frozen :class:`RaceConfig`; an ablation is
``with_overrides(config, ["sa.mask=sigmoid", "sa.init=-3"])``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import multiprocessing
import statistics
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from seispinn.config import apply_overrides, parse_overrides
from seispinn.diagnostics.measures import band_rms, effective_share, enrichment
from seispinn.errors import ConfigError, TrainingError
from seispinn.pinn.networks import MLP
from seispinn.pinn.regression import RegressionProblem
from seispinn.pinn.training import TrainOptions, train
from seispinn.pinn.weighting import (
    STRATEGIES,
    GradNormOptions,
    MultiplierOptions,
    RBAOptions,
    SAOptions,
    make_weighting,
    strategy_options,
)

__all__ = [
    "TARGETS",
    "METRICS",
    "RaceConfig",
    "RaceResult",
    "with_overrides",
    "run_strategy",
    "run_race",
    "summarise",
    "format_table",
]

#: Target functions ``u*(x; k)`` with a sharp feature at x = 0, k the sharpness.
TARGETS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "tanh": lambda x, k: torch.tanh(k * x),
    "erf": lambda x, k: torch.erf(k * x),
    "bump": lambda x, k: torch.exp(-((k * x) ** 2)),
}

#: Per-seed scalar figures, in table order.
METRICS = (
    "centre_residual",
    "outer_residual",
    "ratio",
    "enrichment",
    "effective_share",
    "dense_centre_residual",
    "dense_outer_residual",
    "dense_ratio",
    "seconds",
)


@dataclass(frozen=True)
class RaceConfig:
    """Everything that defines a race. Defaults reproduce the seed's experiment.

    Attributes:
        target, sharpness: ``u*(x) = TARGETS[target](x, sharpness)``.
        x_min, x_max: domain; ``n_points`` uniformly spaced training points span it.
        band: half-width of the central band ``|x| <= band`` scored as "centre".
        n_dense: points of the dense evaluation grid.
        width, depth, activation: the MLP (``depth`` hidden layers).
        steps, lr: full-batch Adam steps and (constant) learning rate for θ.
        lbfgs_steps: optional L-BFGS iterations afterwards, with weights frozen.
        seeds: one run per seed per strategy; a seed fixes the initial network.
        strategies: names from :data:`seispinn.pinn.weighting.STRATEGIES`.
        sa, gradnorm, rba, multipliers: the strategies' options.
        threads: torch CPU threads per run (1 is fastest for a tiny MLP).
        workers: runs in parallel, one process each (results do not depend on it).
    """

    target: str = "tanh"
    sharpness: float = 20.0
    x_min: float = -1.0
    x_max: float = 1.0
    n_points: int = 30
    band: float = 0.15
    n_dense: int = 1001
    width: int = 32
    depth: int = 2
    activation: str = "tanh"
    steps: int = 2000
    lr: float = 1e-3
    lbfgs_steps: int = 0
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    strategies: tuple[str, ...] = ("uniform", "gradnorm", "sa", "rba")
    sa: SAOptions = field(default_factory=SAOptions)
    gradnorm: GradNormOptions = field(default_factory=GradNormOptions)
    rba: RBAOptions = field(default_factory=RBAOptions)
    multipliers: MultiplierOptions = field(default_factory=MultiplierOptions)
    threads: int = 1
    workers: int = 1

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            choices = sorted(TARGETS)
            raise ConfigError(f"unknown race target {self.target!r}; choose one of {choices}")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown or not self.strategies:
            raise ConfigError(
                f"unknown or no strategies {unknown}; choose from {sorted(STRATEGIES)}"
            )
        if not self.seeds:
            raise ConfigError("the race needs at least one seed")
        if self.n_points < 2 or self.n_dense < 2 or self.steps < 0 or self.lbfgs_steps < 0:
            raise ConfigError("race needs n_points, n_dense >= 2 and steps, lbfgs_steps >= 0")
        if self.steps + self.lbfgs_steps == 0:
            raise ConfigError("race needs steps + lbfgs_steps >= 1: nothing would be trained")
        if not (self.x_min < -self.band <= 0 <= self.band < self.x_max):
            raise ConfigError(
                f"the band |x| <= {self.band} must lie inside ({self.x_min}, {self.x_max})"
            )
        if self.threads < 1 or self.workers < 1 or self.lr <= 0:
            raise ConfigError(
                "race needs threads >= 1, workers >= 1 and lr > 0, got "
                f"{self.threads}, {self.workers}, {self.lr}"
            )

    def options_for(self, strategy: str) -> object | None:
        """The options dataclass of ``strategy`` (None for uniform)."""
        return strategy_options(self, strategy)


# ------------------------------------------------------------------------------------
# Overrides: the project's one language (seispinn.config)
# ------------------------------------------------------------------------------------


def with_overrides(config: RaceConfig, overrides: Iterable[str] | Mapping[str, Any]) -> RaceConfig:
    """A copy of ``config`` with overrides applied (:func:`seispinn.config.apply_overrides`).

    Args:
        overrides: ``key=value`` items as on a command line (dotted keys, TOML values,
            bare words as strings, comma lists for tuples), e.g. ``["steps=500",
            "seeds=0,1", "sa.mask=sigmoid", "sa.init=-3"]``, or the nested dict
            :func:`seispinn.config.parse_overrides` makes of them.

    Raises:
        ConfigError: an unknown key, a value of the wrong type or one out of range.
    """
    if isinstance(overrides, str):
        overrides = [overrides]
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(list(overrides))
    return apply_overrides(config, dict(overrides), "race")


def _ratio(centre: float, outer: float) -> float:
    return centre / outer if outer > 0 else math.inf


# ------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------


def _train_options(config: RaceConfig, seed: int) -> TrainOptions:
    """The shared trainer's settings for one race run: constant learning rate,
    full batch, no run folder, no progress bar, one history record at each end."""
    once = max(config.steps, 1)
    return TrainOptions(
        steps=config.steps,
        lr=config.lr,
        lr_final=config.lr,
        lbfgs_steps=config.lbfgs_steps,
        seed=seed,
        progress=False,
        checkpoint_every=once,
        log_every=once,
    )


def _points(config: RaceConfig) -> dict[str, Tensor]:
    target = TARGETS[config.target]
    x = torch.linspace(config.x_min, config.x_max, config.n_points)
    xd = torch.linspace(config.x_min, config.x_max, config.n_dense)
    return {
        "x": x,
        "y": target(x, config.sharpness),
        "x_dense": xd,
        "y_dense": target(xd, config.sharpness),
    }


def _initial_state(config: RaceConfig, seed: int) -> dict[str, Tensor]:
    # fork_rng: seeding must not reset the caller's global random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return copy.deepcopy(_network(config).state_dict())


def _network(config: RaceConfig) -> MLP:
    return MLP(1, 1, config.width, config.depth, config.activation)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    # A 30-point MLP is dominated by per-op overhead; extra threads only add sync,
    # and spin-wait badly when another process holds a core (measured 30x slower).
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_strategy(
    config: RaceConfig, strategy: str, seed: int, points: Mapping[str, Tensor] | None = None
) -> dict[str, Any]:
    """Train one network with one strategy from seed ``seed``'s initial weights,
    with :func:`seispinn.pinn.training.train` on a :class:`RegressionProblem`.

    Args:
        points: the training and dense points of ``config`` (computed when None).

    Returns:
        A dict with the :data:`METRICS` (floats), ``seed``, ``weights`` (``[N]``
        list, w / mean(w) at the training points), ``prediction`` (``[n_dense]``
        list, the fit on the dense grid) and ``diagnostics`` (the strategy's).
    """
    points = points if points is not None else _points(config)
    x, y = points["x"], points["y"]
    model = _network(config)
    model.load_state_dict(_initial_state(config, seed))
    weighting = make_weighting(strategy, config.n_points, config.options_for(strategy))
    problem = RegressionProblem(model, x, y, weighting)
    # The evaluation too: a matrix product's rounding depends on the thread count, and
    # the figures must not depend on the caller's (a worker process has the default).
    with _torch_threads(config.threads):
        start = time.perf_counter()
        try:
            train(problem, _train_options(config, seed))
        except TrainingError as exc:
            raise TrainingError(f"race {strategy}, seed {seed}: {exc}") from exc
        seconds = time.perf_counter() - start
        with torch.no_grad():
            residual = problem.residual()
            prediction = model(points["x_dense"][:, None]).squeeze(-1)
    in_band = x.abs() <= config.band
    dense_in_band = points["x_dense"].abs() <= config.band
    centre, outer = band_rms(residual, in_band)
    d_centre, d_outer = band_rms(prediction - points["y_dense"], dense_in_band)
    ids = problem.ids
    weights = weighting.weights(ids).detach()
    return {
        "seed": seed,
        "centre_residual": centre,
        "outer_residual": outer,
        "ratio": _ratio(centre, outer),
        "enrichment": enrichment(weights, in_band),
        "effective_share": effective_share(weights),
        "dense_centre_residual": d_centre,
        "dense_outer_residual": d_outer,
        "dense_ratio": _ratio(d_centre, d_outer),
        "seconds": seconds,
        "weights": weighting.gamma(ids).tolist(),
        "prediction": prediction.tolist(),
        "diagnostics": weighting.diagnostics(ids),
    }


@dataclass(frozen=True)
class RaceResult:
    """The race's raw results.

    Attributes:
        config: the configuration that produced them.
        x_train, y_train: ``[N]`` training points and targets.
        x_dense, y_dense: ``[n_dense]`` dense grid and truth.
        runs: strategy name -> one :func:`run_strategy` dict per seed.
    """

    config: RaceConfig
    x_train: list[float]
    y_train: list[float]
    x_dense: list[float]
    y_dense: list[float]
    runs: dict[str, list[dict[str, Any]]]

    def summary(self) -> dict[str, dict[str, Any]]:
        """The JSON report: one object per strategy (see :func:`summarise`)."""
        return {name: summarise(runs, self.config, name) for name, runs in self.runs.items()}


def _run_job(job: tuple[RaceConfig, str, int]) -> dict[str, Any]:
    config, name, seed = job
    return run_strategy(config, name, seed)


def run_race(
    config: RaceConfig, progress: Callable[[str, int, dict[str, Any]], None] | None = None
) -> RaceResult:
    """Run every strategy of ``config`` on every seed (``config.workers`` at a time).

    Args:
        config: the race.
        progress: called as ``progress(strategy, seed, run)`` after each run.
    """
    points = _points(config)
    jobs = [(config, name, seed) for seed in config.seeds for name in config.strategies]
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if config.workers == 1:
        for _, name, seed in jobs:
            done[name, seed] = run_strategy(config, name, seed, points)
            if progress is not None:
                progress(name, seed, done[name, seed])
    else:
        # spawn, not fork: forking a process that already ran torch can deadlock.
        context = multiprocessing.get_context("spawn")
        workers = min(config.workers, len(jobs))
        try:
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {pool.submit(_run_job, job): job for job in jobs}
                for future in as_completed(futures):
                    _, name, seed = futures[future]
                    done[name, seed] = future.result()
                    if progress is not None:
                        progress(name, seed, done[name, seed])
        except BrokenProcessPool as exc:
            raise ConfigError(
                "race worker processes died; a script that calls run_race with workers > 1 "
                "must guard its entry point with `if __name__ == '__main__':` (or use workers=1)"
            ) from exc
    return RaceResult(
        config=config,
        x_train=points["x"].tolist(),
        y_train=points["y"].tolist(),
        x_dense=points["x_dense"].tolist(),
        y_dense=points["y_dense"].tolist(),
        runs={name: [done[name, seed] for seed in config.seeds] for name in config.strategies},
    )


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    if len(ordered) == 1:
        q25 = q75 = ordered[0]
    else:
        q25, _, q75 = statistics.quantiles(ordered, n=4, method="inclusive")
    return {"min": ordered[0], "q25": q25, "q75": q75, "max": ordered[-1]}


def summarise(
    runs: list[dict[str, Any]], config: RaceConfig | None = None, strategy: str | None = None
) -> dict[str, Any]:
    """Medians over seeds of every metric, their spread, and the per-seed figures.

    Returns:
        ``{metric: median for metric in METRICS, "spread": {metric: {min, q25, q75,
        max}}, "per_seed": [{seed, metric...}], "options": {...}}``; ``per_seed``
        omits the arrays (weights, predictions) except ``weights``.
    """
    out: dict[str, Any] = {}
    spread: dict[str, dict[str, float]] = {}
    for metric in METRICS:
        values = [float(r[metric]) for r in runs]
        out[metric] = statistics.median(values)
        spread[metric] = _quantiles(values)
    out["spread"] = spread
    out["per_seed"] = [
        {k: r[k] for k in ("seed", *METRICS, "weights", "diagnostics")} for r in runs
    ]
    if config is not None:
        options = config.options_for(strategy) if strategy else None
        out["options"] = dataclasses.asdict(options) if options is not None else {}
        race = dataclasses.asdict(config)
        for name in (s.field for s in STRATEGIES.values() if s.field is not None):
            race.pop(name)
        out["race"] = race
    return out


def format_table(summary: Mapping[str, Mapping[str, Any]]) -> str:
    """A text table: per strategy the median [min–max] of each figure over seeds."""
    columns = [
        ("centre", "centre_residual"),
        ("outer", "outer_residual"),
        ("ratio", "ratio"),
        ("enrich", "enrichment"),
        ("eff. share", "effective_share"),
        ("dense centre", "dense_centre_residual"),
        ("dense outer", "dense_outer_residual"),
        ("dense ratio", "dense_ratio"),
        ("seconds", "seconds"),
    ]

    def cell(s: Mapping[str, Any], key: str) -> str:
        lo, hi = s["spread"][key]["min"], s["spread"][key]["max"]
        return f"{s[key]:.3g} [{lo:.3g}–{hi:.3g}]"

    rows = [["strategy", *(c for c, _ in columns)]]
    for name, s in summary.items():
        rows.append([name, *(cell(s, key) for _, key in columns)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    n_seeds = len(next(iter(summary.values()))["per_seed"]) if summary else 0
    lines.append(f"median [min–max] over {n_seeds} seeds; residuals are RMS of u − u*")
    return "\n".join(lines)
