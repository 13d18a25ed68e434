"""Uniform vs grad-norm vs SA in PINN inversion, over cases, seeds and variants.

    python examples/invert_study.py examples/anomaly_wells.toml \
        --weightings uniform,gradnorm,sa --seeds 0 --steps 3000 --jobs 2 --out runs/inv_study

Prints, per case, variant and strategy, the medians over seeds of the velocity
error (relative L2 over the model), the error inside the anomaly relative to
the start's (and its reduction), the held-out receivers' misfit of the
inverted model re-simulated with Deepwave (and the start model's), and the
wall time. Runs are logged to OUT/study.jsonl as they finish.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from seispinn.experiments import study
from seispinn.experiments.invert import load_invert_config, run_inversion
from seispinn.io import read_velocity
from seispinn.pinn.weighting import STRATEGIES
from seispinn.plots.inversion import inversion_figure


def _one(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    overrides, run_dir = study.job_overrides(job)
    config = load_invert_config(job["config"], overrides)
    result = run_inversion(config, run_dir, config_path=Path(job["config"]), device=job["device"])
    return result.metrics


def _fmt(rs: list[dict], key: str) -> str:
    vals = [r[key] for r in rs if key in r]
    return f"{study.median(rs, key):.3f}" if vals else "–"


def table(results: list[dict]) -> str:
    rows = [
        "| case | variant | weighting | seeds | velocity error (start) | anomaly error ÷ start's | "
        "held-out misfit (start) | seconds |",
        "|" + "---|" * 8,
    ]
    for case, variant, w, rs, _ in study.groups(results):
        rows.append(
            f"| {case} | {variant} | {w} | {len(rs)} | {_fmt(rs, 'velocity_error')} "
            f"({_fmt(rs, 'start_velocity_error')}) | {_fmt(rs, 'anomaly_error_ratio')} | "
            f"{_fmt(rs, 'heldout_misfit')} ({_fmt(rs, 'start_heldout_misfit')}) | "
            f"{study.median(rs, 'train_seconds'):.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    study.add_arguments(p)
    p.add_argument("--plot", type=Path, help="figure of true/start/inverted per case (first seed)")
    args = p.parse_args()
    results = study.run_jobs(
        _one,
        study.build_jobs(args),
        args.jobs,
        Path(args.out),
        lambda r: (
            f"velocity error {r.get('velocity_error', float('nan')):.4f}, "
            f"anomaly ratio {r.get('anomaly_error_ratio', float('nan')):.3f}, "
            f"{r['train_seconds']:.0f} s"
        ),
    )
    print(table(results))
    if args.plot:
        plot(results, Path(args.out), args.plot)


def plot(results: list[dict], out: Path, path: Path) -> None:
    """One figure per case and variant: true / start / inverted (one per weighting)."""
    for case, variant in sorted({(r["case"], r["variant"]) for r in results}):
        seed = min(r["seed"] for r in results if r["case"] == case and r["variant"] == variant)
        runs = {
            w: out / case / variant / f"{w}_seed{seed}"
            for w in STRATEGIES
            if (out / case / variant / f"{w}_seed{seed}" / "inverted.sgy").exists()
        }
        first = next(iter(runs.values()))
        fig = inversion_figure(
            read_velocity(first / "true.sgy"),
            read_velocity(first / "start.sgy"),
            {w: read_velocity(d / "inverted.sgy") for w, d in runs.items()},
        )
        target = path.with_name(f"{path.stem}_{case}_{variant}{path.suffix}")
        fig.savefig(target, dpi=90)
        print(f"wrote {target}")


if __name__ == "__main__":
    main()
