"""``seispinn race``: the 1D race of per-point weighting strategies.

Prints a table (median [min–max] over seeds per strategy), and optionally writes
the JSON report (``--json``) and the figure (``--plot``). Every race setting can
be overridden with ``--set KEY=VALUE`` (dotted keys, e.g. ``--set sa.mask=sigmoid``);
the common ones also have their own flags.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from seispinn.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "race",
        help="race the per-point weighting strategies on a 1D sharp transition",
        description=(
            "Fit u*(x) = tanh(20x) from 30 points once per weighting strategy "
            "(uniform, gradnorm, sa, rba, multipliers) over several seeds; report the centre/outer "
            "residual ratio, the weight enrichment in the centre and the weights' "
            "effective share of the points."
        ),
    )
    p.add_argument("--strategies", type=_names, help="comma list, default uniform,gradnorm,sa,rba")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=_ints, help="comma list of seeds (default 0,1,2,3,4)")
    seeds.add_argument("--n-seeds", type=int, help="use seeds 0..N-1")
    p.add_argument("--steps", type=int, help="Adam steps per run (default 2000)")
    p.add_argument("--sa-mask", choices=("sigmoid", "square", "softplus"), help="SA mask m(λ)")
    p.add_argument("--sa-init", type=float, help="initial λ of SA")
    p.add_argument(
        "--sa-optimizer",
        choices=("bounded", "scaled", "sgd", "adam"),
        help="SA ascent (default bounded)",
    )
    p.add_argument("--sa-lr", type=float, help="SA ascent learning rate")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "override any race setting (dotted key, TOML value; wins over the flags), "
            "e.g. gradnorm.eps=1e-3, rba.decay=0.99, width=64, seeds=0,1"
        ),
    )
    p.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="runs in parallel (processes); default min(2, CPUs)",
    )
    p.add_argument("--json", type=Path, metavar="PATH", help="write the report as JSON")
    p.add_argument("--plot", type=Path, metavar="PATH", help="write the figure (first seed)")
    p.add_argument("-v", "--verbose", action="store_true", help="print each run as it ends")
    p.set_defaults(func=run)
    return p


#: Flag -> the race setting it overrides (a dotted key of ``RaceConfig``).
_FLAG_KEYS = {
    "strategies": "strategies",
    "seeds": "seeds",
    "steps": "steps",
    "sa_mask": "sa.mask",
    "sa_init": "sa.init",
    "sa_optimizer": "sa.optimizer",
    "sa_lr": "sa.lr",
    "workers": "workers",
}


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in _names(text)]
    except ValueError:
        message = f"expected a comma list of integers, got {text!r}"
        raise argparse.ArgumentTypeError(message) from None


def _overrides(args: argparse.Namespace) -> list[str]:
    """The flags and ``--set`` items as ``key=value`` items of the project's override
    language (:func:`seispinn.config.parse_overrides`); ``--set`` comes last, so it wins.
    A flag's value is written as JSON, which TOML reads the same (lists included)."""
    values = {flag: getattr(args, flag) for flag in _FLAG_KEYS}
    if args.n_seeds is not None:
        if args.n_seeds < 1:
            raise ConfigError(f"--n-seeds must be >= 1, got {args.n_seeds}")
        values["seeds"] = list(range(args.n_seeds))
    flags = [f"{_FLAG_KEYS[flag]}={json.dumps(v)}" for flag, v in values.items() if v is not None]
    return [*flags, *args.overrides]


def _json_safe(value: Any) -> Any:
    # JSON has no inf/NaN; null says "not measurable" (e.g. an empty band).
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def run(args: argparse.Namespace) -> int:
    from seispinn.experiments.race import RaceConfig, format_table, run_race, with_overrides

    config = with_overrides(RaceConfig(), _overrides(args))

    def progress(name: str, seed: int, result: dict[str, Any]) -> None:
        if args.verbose:
            print(
                f"{name:9s} seed {seed}: centre {result['centre_residual']:.3g} "
                f"outer {result['outer_residual']:.3g} ratio {result['ratio']:.3g} "
                f"({result['seconds']:.1f} s)",
                file=sys.stderr,
            )

    result = run_race(config, progress)
    summary = result.summary()
    print(format_table(summary))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_json_safe(summary), indent=1) + "\n")
        print(f"wrote {args.json}")
    if args.plot is not None:
        from seispinn.plots.race import plot_race

        first = {name: runs[0] for name, runs in result.runs.items()}
        fig = plot_race(
            result.x_train,
            result.y_train,
            result.x_dense,
            result.y_dense,
            first,
            band=config.band,
            title=f"race, seed {config.seeds[0]}, {config.steps} steps",
        )
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"wrote {args.plot}")
    return 0
