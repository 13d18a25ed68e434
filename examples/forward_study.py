"""Uniform vs grad-norm vs SA (vs RBA) on forward wave-PINN cases, over seeds and variants.

    python examples/forward_study.py examples/forward_homogeneous.toml \
        --weightings uniform,gradnorm,sa --seeds 0,1,2 --steps 4000 --jobs 2 --out runs/study

    # an ablation: each --variant is LABEL:section.key=value[;section.key=value...];
    # a variant that sets weighting.name or training.steps keeps its own
    python examples/forward_study.py examples/forward_homogeneous.toml --weightings uniform \
        --variant base: --variant margin300:domain.margin=300.0 --seeds 0 --steps 4000

Prints, per case, variant and strategy, the medians over seeds of the wavefield
error, the source-region and other RMS residuals, the uniform/strategy ratio of
the source residual, the γ enrichment, the rank correlation of γ with |r|, γ's
effective share of the points and the wall time. Every finished run is
appended to OUT/study.jsonl at once, and OUT/study.json holds them all at the
end. ``--set`` applies to every variant; ``--reference-cache DIR`` reuses
Deepwave references (default OUT/reference_cache).
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

import torch

from seispinn.experiments import study
from seispinn.experiments.forward import load_forward_config, run_forward


def _one(job: dict) -> dict:
    torch.set_num_threads(job["threads"])
    overrides, run_dir = study.job_overrides(job)
    config = load_forward_config(job["config"], overrides)
    return run_forward(
        config,
        run_dir,
        config_path=Path(job["config"]),
        device=job["device"],
        reference_cache=Path(job["cache"]),
    )


def _cell(value: float) -> str:
    """Two decimals, or – where the measure does not apply (a uniform mask's ranking)."""
    return "–" if math.isnan(value) else f"{value:.2f}"


def table(results: list[dict]) -> str:
    """A markdown table of medians over seeds, [min–max] of the wavefield error."""
    rows = [
        "| case | variant | weighting | seeds | wavefield error (min–max) | source residual | "
        "other residual | uniform/this source residual | enrichment | rank corr. | "
        "effective share | seconds |",
        "|" + "---|" * 12,
    ]
    for case, variant, w, rs, uni in study.groups(results):
        src = study.median(rs, "source_residual")
        ratio = study.median(uni, "source_residual") / src if uni else float("nan")
        err = [r["wavefield_error"] for r in rs]
        rows.append(
            f"| {case} | {variant} | {w} | {len(rs)} | {statistics.median(err):.3f} "
            f"({min(err):.3f}–{max(err):.3f}) | {src:.3g} | "
            f"{study.median(rs, 'other_residual'):.3g} | {ratio:.2f} | "
            f"{study.median(rs, 'enrichment'):.2f} | "
            f"{_cell(study.median(rs, 'rank_correlation'))} | "
            f"{study.median(rs, 'effective_share'):.3g} | {study.median(rs, 'train_seconds'):.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    study.add_arguments(p)
    p.add_argument("--reference-cache", help="cached Deepwave references (default: OUT/...)")
    args = p.parse_args()
    cache = args.reference_cache or str(Path(args.out) / "reference_cache")
    jobs = study.build_jobs(args, cache=cache)
    results = study.run_jobs(
        _one,
        jobs,
        args.jobs,
        Path(args.out),
        lambda r: f"error {r['wavefield_error']:.3f}, {r['train_seconds']:.0f} s",
    )
    print(table(results))


if __name__ == "__main__":
    main()
