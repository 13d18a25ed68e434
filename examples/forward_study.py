"""Uniform vs grad-norm vs SA (vs RBA) on forward wave-PINN cases, over seeds.

    python examples/forward_study.py examples/forward_homogeneous.toml \
        --weightings uniform,gradnorm,sa --seeds 0,1,2 --steps 8000 --jobs 2 --out runs/study

Prints, per case and strategy, the medians over seeds of the wavefield error,
the source-region and other RMS residuals, their uniform/strategy ratio, the γ
enrichment and the wall time; writes every run's metrics to OUT/study.json.
Overrides (``--set section.key=value``) make an ablation a command, not a copy.
"""

from __future__ import annotations

import argparse
import json
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

from seispinn.config import parse_overrides
from seispinn.experiments.forward import load_forward_config, run_forward


def _one(job: tuple[str, str, int, int, dict, str]) -> dict:
    config_path, weighting, seed, steps, sets, out = job
    torch.set_num_threads(1)
    overrides = {s: dict(v) for s, v in sets.items()}
    overrides.setdefault("weighting", {})["name"] = weighting
    training = overrides.setdefault("training", {})
    training.update({"seed": seed, "steps": steps, "progress": False})
    config = load_forward_config(config_path, overrides)
    run_dir = Path(out) / Path(config_path).stem / f"{weighting}_seed{seed}"
    metrics = run_forward(config, run_dir, config_path=Path(config_path))
    metrics["case"] = Path(config_path).stem
    return metrics


def table(results: list[dict]) -> str:
    rows = [
        "| case | weighting | wavefield error | source residual | other residual | "
        "uniform/this source residual | enrichment | seconds |",
        "|" + "---|" * 8,
    ]
    cases = sorted({r["case"] for r in results})
    for case in cases:
        mine = [r for r in results if r["case"] == case]
        uni = [r["source_residual"] for r in mine if r["weighting"] == "uniform"]
        for w in sorted(
            {r["weighting"] for r in mine}, key=["uniform", "gradnorm", "sa", "rba"].index
        ):
            rs = [r for r in mine if r["weighting"] == w]

            def med(k: str, rs: list[dict] = rs) -> float:
                return statistics.median(r[k] for r in rs)

            ratio = statistics.median(uni) / med("source_residual") if uni else float("nan")
            err = [r["wavefield_error"] for r in rs]
            rows.append(
                f"| {case} | {w} | {med('wavefield_error'):.3f} ({min(err):.3f}–{max(err):.3f}) | "
                f"{med('source_residual'):.3g} | {med('other_residual'):.3g} | {ratio:.2f} | "
                f"{med('enrichment'):.2f} | {med('train_seconds'):.0f} |"
            )
    return "\n".join(rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("configs", nargs="+")
    p.add_argument("--weightings", default="uniform,gradnorm,sa")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=8000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--set", action="append", default=[], help="section.key=value override")
    p.add_argument("--out", default="runs/study")
    args = p.parse_args()
    sets = parse_overrides(args.set)
    jobs = [
        (c, w, int(s), args.steps, sets, args.out)
        for c in args.configs
        for w in args.weightings.split(",")
        for s in args.seeds.split(",")
    ]
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(pool.map(_one, jobs))
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "study.json").write_text(json.dumps(results, indent=1))
    print(table(results))


if __name__ == "__main__":
    main()
