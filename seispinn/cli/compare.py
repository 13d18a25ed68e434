"""``seispinn compare``: one inversion per weighting (and a conventional-FWI
baseline) on the same data, and a report folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from seispinn.cli._checks import (
    check_data_files,
    check_device,
    check_run_dir,
    load_blamed,
    override_items,
)
from seispinn.cli._training import add_set_argument, add_tensorboard_argument, training_overrides
from seispinn.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="compare weightings (and conventional FWI) on one inversion; write a report",
        description=(
            "Run the inversion of --config once per weighting (same data, start model, "
            "network initialisation, steps and seeds), optionally a conventional FWI "
            "with Deepwave on the same data and start, and write a report folder: "
            "report.md, metrics.json/.csv, figures/ and one run folder per run."
        ),
    )
    add_compare_arguments(p, Path("runs/compare"))
    p.set_defaults(func=run)


def add_compare_arguments(
    p: argparse.ArgumentParser, out: Path, config: Path | None = None
) -> None:
    p.add_argument("--config", type=Path, default=config, help="inversion TOML config")
    p.add_argument(
        "--weightings",
        default="uniform,gradnorm,sa",
        help="comma-separated per-point weighting strategies (STRATEGIES: uniform, gradnorm, "
        "sa, rba, multipliers)",
    )
    p.add_argument(
        "--formulations",
        help="comma-separated PINN formulations to run each weighting in (total, "
        "scattered; default: the config's [physics] formulation)",
    )
    p.add_argument(
        "--baseline",
        help="comma-separated finite-difference baselines to add: fwi (conventional FWI), "
        "wri (wavefield-reconstruction inversion)",
    )
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--steps", type=int, help="override [training] steps")
    p.add_argument("--out", type=Path, default=out, help="report folder")
    add_set_argument(p, "training.lr=2e-3")
    p.add_argument("--device", help="torch device (default: cuda if available)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="finish an interrupted comparison in --out: keep the runs that are done, "
        "continue the others from their checkpoints",
    )
    add_tensorboard_argument(p)


def _ints(text: str, what: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ConfigError(f"--{what}: expected comma-separated integers, got {text!r}") from None


def run_compare(args: argparse.Namespace) -> Path:
    # Imported here so that `seispinn --help` does not load torch and Deepwave.
    from seispinn.experiments.compare import compare, markdown_table
    from seispinn.experiments.invert import load_invert_config

    overrides = training_overrides(args)
    config = load_blamed(load_invert_config, args.config, overrides, override_items(args))
    check_run_dir(args.out, "--out")
    check_device(args.device)
    check_data_files(config.data, args.config)
    weightings = [w.strip() for w in args.weightings.split(",") if w.strip()]
    formulations = None
    if args.formulations is not None:
        formulations = [f.strip() for f in args.formulations.split(",") if f.strip()]
    report = compare(
        config,
        weightings,
        args.out,
        formulations=formulations,
        baseline=args.baseline,
        seeds=_ints(args.seeds, "seeds"),
        device=args.device,
        resume=args.resume,
    )
    print(markdown_table(report.rows))
    print(f"report: {report.out / 'report.md'}")
    return report.out


def run(args: argparse.Namespace) -> int:
    run_compare(args)
    return 0
