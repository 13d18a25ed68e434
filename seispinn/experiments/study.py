"""Run many experiments (cases × variants × weightings × seeds) in worker processes.

Shared by ``examples/forward_study.py`` and ``examples/invert_study.py``: the
job list, the command-line arguments, a process pool that survives a failed
run, and a ``study.jsonl`` log written as runs finish (a killed study keeps
what finished).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from seispinn.config import merge_overrides, parse_overrides
from seispinn.pinn.weighting import STRATEGIES

__all__ = ["add_arguments", "build_jobs", "job_overrides", "run_jobs", "median", "groups"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments every study takes."""
    p.add_argument("configs", nargs="+")
    p.add_argument("--weightings", default="uniform,gradnorm,sa")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, help="override [training] steps for every run")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--device", help="torch device for every run (default: cuda if available)")
    p.add_argument("--set", action="append", default=[], help="section.key=value override")
    p.add_argument("--variant", action="append", default=[], help="LABEL:sec.key=v;sec.key=v")
    p.add_argument("--out", default="runs/study")


def _variants(items: list[str]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for item in items or ["default:"]:
        label, _, sets = item.partition(":")
        out[label] = parse_overrides([s for s in sets.split(";") if s.strip()])
    return out


def build_jobs(args: argparse.Namespace, **extra: Any) -> list[dict[str, Any]]:
    """One job per (variant, config, weighting, seed). A variant that sets
    ``weighting.name`` runs with that weighting only; ``extra`` goes into every job."""
    common = parse_overrides(args.set)
    jobs = []
    for label, sets in _variants(args.variant).items():
        merged = merge_overrides(common, sets)
        fixed = merged.get("weighting", {}).get("name")
        for c in args.configs:
            for w in [fixed] if fixed else args.weightings.split(","):
                for s in args.seeds.split(","):
                    jobs.append(
                        dict(
                            config=c,
                            case=Path(c).stem,
                            weighting=w,
                            seed=int(s),
                            steps=args.steps,
                            sets=merged,
                            out=args.out,
                            variant=label,
                            device=args.device,
                            threads=args.threads,
                            **extra,
                        )
                    )
    return jobs


def job_overrides(job: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """The job's nested config overrides and its run folder (a variant's own steps win)."""
    training: dict[str, Any] = {"seed": job["seed"], "progress": False}
    if job["steps"] is not None and "steps" not in job["sets"].get("training", {}):
        training["steps"] = job["steps"]
    overrides = merge_overrides(
        job["sets"], {"weighting": {"name": job["weighting"]}, "training": training}
    )
    run_dir = (
        Path(job["out"]) / job["case"] / job["variant"] / f"{job['weighting']}_seed{job['seed']}"
    )
    return overrides, run_dir


def _label(job: dict[str, Any]) -> str:
    return f"{job['case']}/{job['variant']}/{job['weighting']}/seed{job['seed']}"


def run_jobs(
    fn: Callable[[dict[str, Any]], dict[str, Any]],
    jobs: list[dict[str, Any]],
    n_workers: int,
    out: Path,
    summary: Callable[[dict[str, Any]], str],
) -> list[dict[str, Any]]:
    """Run ``fn(job)`` (a module-level function returning metrics) for every job in
    ``n_workers`` spawned processes; log each result to ``out/study.jsonl`` as it
    finishes and print ``label: summary(result)``; a failed run is reported, not fatal."""
    out.mkdir(parents=True, exist_ok=True)
    results = []
    # spawn: a CUDA context must not be forked into the workers.
    ctx = multiprocessing.get_context("spawn")
    with (
        ProcessPoolExecutor(n_workers, mp_context=ctx) as pool,
        open(out / "study.jsonl", "a") as log,
    ):
        futures = {pool.submit(fn, j): j for j in jobs}
        for f in as_completed(futures):
            job = futures[f]
            try:
                r = f.result()
            except Exception as exc:  # one failed run must not lose the others
                print(f"{_label(job)}: failed: {exc}", flush=True)
                continue
            r.update(case=job["case"], variant=job["variant"])
            results.append(r)
            log.write(json.dumps(r) + "\n")
            log.flush()
            print(f"{_label(job)}: {summary(r)}", flush=True)
    (out / "study.json").write_text(json.dumps(results, indent=1))
    return results


def median(rs: list[dict[str, Any]], key: str) -> float:
    """Median of ``key`` over the runs that have it, NaNs left out (NaN when none
    has a number: a uniform mask's rank correlation)."""
    values = [r[key] for r in rs if key in r and not math.isnan(r[key])]
    return statistics.median(values) if values else float("nan")


def groups(results: list[dict[str, Any]]):
    """``(case, variant, weighting, runs, uniform_runs)`` in a stable order."""
    for case, variant in sorted({(r["case"], r.get("variant", "")) for r in results}):
        mine = [r for r in results if r["case"] == case and r.get("variant", "") == variant]
        uni = [r for r in mine if r["weighting"] == "uniform"]
        for w in sorted({r["weighting"] for r in mine}, key=list(STRATEGIES).index):
            yield case, variant, w, [r for r in mine if r["weighting"] == w], uni
