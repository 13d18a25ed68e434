"""The seed's race in 1D: per-point weighting strategies on a sharp transition.

A small MLP regresses ``u*(x)`` (default ``tanh(20 x)`` on [−1, 1]) from 30
uniformly spaced points, once per strategy, from the same initial network and
for the same number of full-batch Adam steps, over several seeds. The per-point
residual is ``r_i = u(x_i) − u*(x_i)``. Measured (METHOD.md §2, §4):

- RMS residual at the training points inside the central band ``|x| <= band``
  and outside it, and their ratio (centre / outer);
- the same on a dense grid (how the fit behaves between training points);
- the weight enrichment in the band: share of Σw inside ÷ share of points inside;
- wall time of the training.

Everything is configured by one frozen :class:`RaceConfig`; an ablation is
``with_overrides(config, {"sa.mask": "sigmoid", "sa.init": "-3"})``.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import multiprocessing
import statistics
import time
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from seispinn.errors import ConfigError, TrainingError
from seispinn.pinn.networks import MLP
from seispinn.pinn.weighting import (
    STRATEGIES,
    GradNormOptions,
    PointLoss,
    PointWeighting,
    RBAOptions,
    SAOptions,
    enrichment,
    make_weighting,
)

__all__ = [
    "TARGETS",
    "METRICS",
    "RaceConfig",
    "RaceResult",
    "with_overrides",
    "band_rms",
    "fit_points",
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
        steps, lr: full-batch Adam steps and learning rate for θ.
        lbfgs_steps: optional L-BFGS iterations afterwards, with weights frozen.
        seeds: one run per seed per strategy; a seed fixes the initial network.
        strategies: names from :data:`seispinn.pinn.weighting.STRATEGIES`.
        sa, gradnorm, rba: the strategies' options.
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
        return {"sa": self.sa, "gradnorm": self.gradnorm, "rba": self.rba}.get(strategy)


# ------------------------------------------------------------------------------------
# Overrides "key=value" -> a new config
# ------------------------------------------------------------------------------------


def _parse(text: str, hint: Any, key: str) -> Any:
    """Parse ``text`` as a value of type ``hint`` (bool, int, float, str, X | None, tuple)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if text.strip().lower() in ("none", "null", ""):
            return None
        return _parse(text, args[0], key)
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return tuple(_parse(t, item, key) for t in text.split(",") if t.strip())
    try:
        if hint is bool:
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return lowered in ("true", "1", "yes")
        return hint(text.strip())
    except (TypeError, ValueError):
        raise ConfigError(
            f"override {key}={text!r}: expected {getattr(hint, '__name__', hint)}"
        ) from None


def _replace(obj: Any, path: list[str], text: str, key: str) -> Any:
    names = {f.name for f in dataclasses.fields(obj)}
    if path[0] not in names:
        raise ConfigError(f"unknown race setting {key!r}; {type(obj).__name__} has {sorted(names)}")
    current = getattr(obj, path[0])
    if len(path) > 1:
        if not dataclasses.is_dataclass(current):
            raise ConfigError(f"unknown race setting {key!r}: {path[0]} has no sub-settings")
        return dataclasses.replace(obj, **{path[0]: _replace(current, path[1:], text, key)})
    if dataclasses.is_dataclass(current):
        raise ConfigError(f"race setting {key!r} is a group; set one of its fields, e.g. {key}.lr")
    hint = typing.get_type_hints(type(obj))[path[0]]
    return dataclasses.replace(obj, **{path[0]: _parse(text, hint, key)})


def with_overrides(config: RaceConfig, overrides: Mapping[str, str]) -> RaceConfig:
    """A copy of ``config`` with dotted ``key -> text`` overrides applied.

    Examples: ``{"steps": "500", "seeds": "0,1", "sa.mask": "sigmoid",
    "sa.init": "-3", "gradnorm.chunk_size": "none"}``. Unknown keys and
    unparsable values raise :class:`ConfigError`.
    """
    for key, text in overrides.items():
        config = _replace(config, key.split("."), str(text), key)
    return config


# ------------------------------------------------------------------------------------
# Measures
# ------------------------------------------------------------------------------------


def band_rms(residual: Tensor, in_band: Tensor) -> tuple[float, float]:
    """RMS of ``residual`` (``[N]``) inside and outside a band (``[N]`` bool).

    Returns:
        ``(centre, outer)`` RMS; NaN for an empty side.
    """
    r = residual.detach().double()

    def rms(values: Tensor) -> float:
        return float(values.pow(2).mean().sqrt()) if values.numel() else math.nan

    return rms(r[in_band]), rms(r[~in_band])


def _ratio(centre: float, outer: float) -> float:
    return centre / outer if outer > 0 else math.inf


# ------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------


def _regression_loss(model: nn.Module) -> Callable[[dict[str, Tensor], Any], Tensor]:
    """``(params, (x [B, 1], y [B])) -> [B]`` squared residuals, for grad-norm."""

    def loss_fn(params: dict[str, Tensor], points: Any) -> Tensor:
        x, y = points
        return (functional_call(model, params, (x,)).squeeze(-1) - y) ** 2

    return loss_fn


def fit_points(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    ids: Tensor,
    weighting: PointWeighting,
    steps: int,
    lr: float,
    lbfgs_steps: int = 0,
) -> None:
    """Full-batch weighted least squares: Adam on θ (and ascent on SA's λ), then L-BFGS.

    Args:
        model: maps ``[N, 1]`` to ``[N, 1]``; trained in place.
        x: ``[N, 1]`` training inputs.
        y: ``[N]`` targets.
        ids: ``[N]`` point ids of the rows of ``x``.
        weighting: per-point weights; updated in place, frozen for L-BFGS.
        steps: Adam steps; ``lr``: Adam learning rate.
        lbfgs_steps: L-BFGS iterations after Adam (0: none).
    """
    # Not fused=True: on CPU its first call costs seconds, more than it ever saves here.
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    ascent = weighting.make_ascent_optimizer()
    point_loss = PointLoss(model, _regression_loss(model), (x, y))
    for step in range(steps):
        opt.zero_grad(set_to_none=True)
        if ascent is not None:
            ascent.zero_grad(set_to_none=True)
        sq = (model(x).squeeze(-1) - y) ** 2
        loss = weighting.weighted_loss(sq, ids)
        loss.backward()
        opt.step()
        if ascent is not None:
            ascent.step()
        weighting.update(step, ids, sq.detach(), point_loss)
        if not torch.isfinite(loss):
            raise TrainingError(f"diverged at step {step} (loss {loss.item()})")
    if lbfgs_steps:
        weighting.freeze()
        lbfgs = torch.optim.LBFGS(
            model.parameters(), max_iter=lbfgs_steps, line_search_fn="strong_wolfe"
        )

        def closure() -> Tensor:
            lbfgs.zero_grad(set_to_none=True)
            loss = weighting.weighted_loss((model(x).squeeze(-1) - y) ** 2, ids)
            loss.backward()
            return loss

        final = lbfgs.step(closure)
        if final is not None and not torch.isfinite(final):
            raise TrainingError(f"L-BFGS diverged (loss {float(final)})")


def _problem(config: RaceConfig) -> dict[str, Tensor]:
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
    config: RaceConfig, strategy: str, seed: int, problem: Mapping[str, Tensor] | None = None
) -> dict[str, Any]:
    """Train one network with one strategy from seed ``seed``'s initial weights.

    Returns:
        A dict with the :data:`METRICS` (floats), ``seed``, ``weights`` (``[N]``
        list, w / mean(w) at the training points), ``prediction`` (``[n_dense]``
        list, the fit on the dense grid) and ``diagnostics`` (the strategy's).
    """
    problem = problem if problem is not None else _problem(config)
    x, y = problem["x"], problem["y"]
    model = _network(config)
    model.load_state_dict(_initial_state(config, seed))
    ids = torch.arange(config.n_points)
    weighting = make_weighting(strategy, config.n_points, config.options_for(strategy))
    start = time.perf_counter()
    try:
        with _torch_threads(config.threads):
            fit_points(
                model, x[:, None], y, ids, weighting, config.steps, config.lr, config.lbfgs_steps
            )
    except TrainingError as exc:
        raise TrainingError(f"race {strategy}, seed {seed}: {exc}") from exc
    seconds = time.perf_counter() - start
    with torch.no_grad():
        residual = model(x[:, None]).squeeze(-1) - y
        prediction = model(problem["x_dense"][:, None]).squeeze(-1)
    in_band = x.abs() <= config.band
    dense_in_band = problem["x_dense"].abs() <= config.band
    centre, outer = band_rms(residual, in_band)
    d_centre, d_outer = band_rms(prediction - problem["y_dense"], dense_in_band)
    weights = weighting.weights(ids).detach()
    return {
        "seed": seed,
        "centre_residual": centre,
        "outer_residual": outer,
        "ratio": _ratio(centre, outer),
        "enrichment": enrichment(weights, in_band),
        "dense_centre_residual": d_centre,
        "dense_outer_residual": d_outer,
        "dense_ratio": _ratio(d_centre, d_outer),
        "seconds": seconds,
        "weights": weighting.relative_weights(ids).tolist(),
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
    problem = _problem(config)
    jobs = [(config, name, seed) for seed in config.seeds for name in config.strategies]
    done: dict[tuple[str, int], dict[str, Any]] = {}
    if config.workers == 1:
        for _, name, seed in jobs:
            done[name, seed] = run_strategy(config, name, seed, problem)
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
        x_train=problem["x"].tolist(),
        y_train=problem["y"].tolist(),
        x_dense=problem["x_dense"].tolist(),
        y_dense=problem["y_dense"].tolist(),
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
        for name in ("sa", "gradnorm", "rba"):
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
