"""The comparison workflow: one inversion per weighting (same data, start model,
network initialisation, steps and seeds), optionally the finite-difference
baselines (conventional FWI, wavefield-reconstruction inversion) on the same data, and
a report folder.

Report folder::

    report.md            the table and the figures side by side
    metrics.json/.csv    one row per run (and one for the starting model)
    observed.sgy true.sgy (synthetic data)  start.sgy
    runs/[<formulation>-]<weighting>_seed<k>/   PINN run folders (experiments.invert)
    runs/fwi/, runs/wri/ inverted.sgy, predicted.sgy, history.json (per evaluation),
                         bands.json (misfit and error per band), <name>.png, metrics.json
    runs/*/row.json      the run's row of the table, written when the run is done
    figures/             velocity, gathers, losses, curriculum, γ per run

In Python::

    from seispinn.experiments.compare import compare
    from seispinn.experiments.invert import load_invert_config
    report = compare(load_invert_config("examples/demo.toml"),
                     ["uniform", "sa"], "runs/report", baseline="fwi")

``resume=True`` finishes an interrupted comparison in the same folder: runs with a
``row.json`` are kept, a PINN run with a checkpoint continues from it, the rest run.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seispinn.diagnostics.gamma import curriculum, load_gamma_series
from seispinn.diagnostics.results import RunFolder
from seispinn.diagnostics.scoring import illuminated_part, model_scores
from seispinn.errors import ConfigError
from seispinn.experiments.baseline import run_baseline
from seispinn.experiments.invert import InvertConfig, check_memory, invert
from seispinn.experiments.resume import check_resumable, check_same_settings
from seispinn.experiments.run import resume_folder, round_folder
from seispinn.inputs import InversionInputs, holdout_mask, planned_inputs, prepare_inputs
from seispinn.io import read_velocity, write_velocity
from seispinn.io.runfolder import load_checkpoint, write_json_atomic, write_text_atomic
from seispinn.modelling.baselines import BASELINES, baseline_names
from seispinn.models import VelocityModel
from seispinn.pinn.formulations import FORMULATIONS
from seispinn.pinn.weighting import STRATEGIES
from seispinn.plots.curriculum import curriculum_figure, gamma_slices_figure, residual_gamma_figure
from seispinn.plots.inversion import (
    gather_comparison_figure,
    inversion_figure,
    loss_curves_figure,
)

__all__ = ["COLUMNS", "CompareReport", "compare", "write_table", "markdown_table"]

#: The table's columns, in order (measures of docs/method.md, then cost).
COLUMNS = (
    "method",
    "seed",
    "velocity_error",
    "velocity_rmse",
    "velocity_error_illuminated",
    "velocity_rmse_illuminated",
    "anomaly_error_ratio",
    "heldout_misfit",
    "source_residual_ratio",
    "gamma_enrichment",
    "gamma_rank_correlation",
    "gamma_effective_share",
    "steps",
    "wall_seconds",
)


@dataclass
class CompareReport:
    """Rows of the table (dicts keyed by :data:`COLUMNS`), the report folder, and
    the inverted models by run label."""

    rows: list[dict[str, Any]]
    out: Path
    models: dict[str, VelocityModel]


def _row(method: str, seed: Any, metrics: dict[str, Any], steps: int, seconds: float) -> dict:
    row = {k: metrics.get(k, float("nan")) for k in COLUMNS}
    row.update(method=method, seed=seed, steps=steps, wall_seconds=seconds)
    return row


def _start_row(inputs: InversionInputs, held: np.ndarray, illuminated: np.ndarray | None) -> dict:
    scores, _ = model_scores(inputs.start, inputs, held, illuminated)
    start = {k[len("start_") :]: v for k, v in scores.items() if k.startswith("start_")}
    start["anomaly_error_ratio"] = 1.0 if "anomaly_error_ratio" in scores else float("nan")
    return _row("start", "", start, 0, 0.0)


def _baseline_run(
    name: str,
    inputs: InversionInputs,
    config: InvertConfig,
    held: np.ndarray,
    illuminated: np.ndarray | None,
    run_dir: Path,
    resume: bool,
    progress: bool,
    device: str | None,
) -> tuple[dict, VelocityModel]:
    """A baseline's row: kept from ``run_dir`` when done before (``resume``), else run
    and its ``row.json`` written."""
    kept = _done(run_dir, inputs.start, None) if resume else None
    if kept is not None:
        if progress:
            print(f"[compare] {name}: done before, kept", flush=True)
        return kept
    options = getattr(config, name)
    if progress:
        stages = ", ".join(f"{f:g}" if f else "full" for f in options.stages(inputs.source.freq))
        print(f"[compare] {name}: stages {stages} (Hz low-pass corners)", flush=True)
    (run_dir / "row.json").unlink(missing_ok=True)
    metrics, model = run_baseline(
        name, inputs, options, held, illuminated, run_dir, progress=progress, device=device
    )
    row = _row(name, "", metrics, metrics["evaluations"], metrics["train_seconds"])
    write_text_atomic(run_dir / "row.json", json.dumps(row))
    return row, model


def _kept_row(run_dir: Path, steps: int | None) -> dict | None:
    """The row of a run that is done (its ``row.json``, beside ``inverted.sgy``), or
    None when it has none, an unreadable one, or one of other than ``steps`` (None:
    any)."""
    if not (run_dir / "row.json").exists() or not (run_dir / "inverted.sgy").exists():
        return None
    try:
        row = json.loads((run_dir / "row.json").read_text())
    except (OSError, ValueError):
        return None  # a damaged row is rerun, not trusted
    if not isinstance(row, dict) or (steps is not None and row.get("steps") != steps):
        return None
    return row


def _done(
    run_dir: Path, start: VelocityModel, steps: int | None
) -> tuple[dict, VelocityModel] | None:
    """A finished run's row and model ``[nz, nx]`` (m/s) (:func:`_kept_row`)."""
    row = _kept_row(run_dir, steps)
    if row is None:
        return None
    values = read_velocity(run_dir / "inverted.sgy", units="m/s").values
    return row, dataclasses.replace(start, values=values)


def _trained_seconds(run_dir: Path, rounds: int) -> float:
    """The training time the checkpoints of a run folder record (every round's)."""
    folders = [round_folder(run_dir, k, rounds) for k in range(rounds)]
    return sum(
        float(load_checkpoint(f / "checkpoint.pt").get("seconds", 0.0))
        for f in folders
        if (f / "checkpoint.pt").exists()
    )


def _check_resume(
    out: Path,
    config: InvertConfig,
    variants: list[tuple[str, InvertConfig]],
    seeds: Sequence[int],
    progress: bool,
) -> None:
    """A comparison resumes only in a report folder made with the same settings, and
    each run it will continue only under its own settings, before any work."""
    path = out / "config.json"
    if not path.exists():
        raise ConfigError(f"{path}: no comparison to resume in {out}")
    check_same_settings(path, config, "comparison")
    for seed in seeds:
        for method, variant in variants:
            d = out / "runs" / _label(method, seed)
            rounds = variant.physics.rounds
            folder = resume_folder(d, rounds)
            steps = variant.training.steps * rounds
            if _kept_row(d, steps) is None and (folder / "checkpoint.pt").exists():
                check_resumable(folder, _seeded(variant, seed, progress))


def _label(method: str, seed: int) -> str:
    """A PINN run's folder name: ``[<formulation>-]<weighting>_seed<k>``."""
    return f"{method.replace('/', '-')}_seed{seed}"


def compare(
    config: InvertConfig,
    weightings: Sequence[str],
    out: str | Path,
    *,
    baseline: str | Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    device: str | None = None,
    progress: bool = True,
    formulations: Sequence[str] | None = None,
    resume: bool = False,
) -> CompareReport:
    """Run the inversion of ``config`` once per formulation, weighting and seed (and
    each finite-difference baseline once, ``baseline='fwi,wri'``) on the same inputs;
    write the report
    folder. ``formulations`` (``'total'``, ``'scattered'``; default: the config's)
    label each row ``formulation/weighting`` when given. ``resume``: keep the runs of
    ``out`` that are done and continue the interrupted ones from their checkpoints
    (the settings must be ``out``'s; weightings, seeds and the baselines may differ).
    A continued run's wall time adds the training time its checkpoints record."""
    variants = _variants(config, weightings, formulations)
    baselines = baseline_names(baseline)
    if config.data.survey:
        # Every run sized on the survey's shapes before anything is simulated or
        # written: a refused comparison costs seconds, not the data.
        planned = planned_inputs(config.data, config.source)
        for _, cfg in variants:
            check_memory(cfg, planned, device)
    out = Path(out)
    if resume:
        _check_resume(out, config, variants, seeds, progress)
    else:  # a new comparison: no row of an earlier one may be kept by a later resume
        for stale in out.glob("runs/*/row.json"):
            stale.unlink()
    (out / "runs").mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", dataclasses.asdict(config))
    inputs = prepare_inputs(config.data, config.source, out)
    write_velocity(out / "start.sgy", inputs.start)
    held = holdout_mask(inputs.gathers, config.data.holdout_every)
    illuminated = illuminated_part(inputs) if inputs.true is not None else None
    rows = [_start_row(inputs, held, illuminated)] if inputs.true is not None else []
    models: dict[str, VelocityModel] = {}
    run_dirs: dict[str, Path] = {}
    for seed in seeds:
        for method, variant in variants:
            label = _label(method, seed)
            cfg = _seeded(variant, seed, progress)
            run_dirs[label] = run_dir = out / "runs" / label
            row, models[label] = _pinn_run(
                method, label, cfg, inputs, illuminated, run_dir, resume, device, progress
            )
            rows.append(row)
    for name in baselines:
        run_dirs[name] = run_dir = out / "runs" / name
        row, models[name] = _baseline_run(
            name, inputs, config, held, illuminated, run_dir, resume, progress, device
        )
        rows.append(row)
    report = CompareReport(rows, out, models)
    write_table(rows, out)
    _figures(report, inputs, held, run_dirs)
    _markdown(report, config, run_dirs, variants)
    return report


def _seeded(variant: InvertConfig, seed: int, progress: bool) -> InvertConfig:
    training = dataclasses.replace(variant.training, seed=seed, progress=progress)
    return dataclasses.replace(variant, training=training)


def _pinn_run(
    method: str,
    label: str,
    cfg: InvertConfig,
    inputs: InversionInputs,
    illuminated: np.ndarray | None,
    run_dir: Path,
    resume: bool,
    device: str | None,
    progress: bool,
) -> tuple[dict, VelocityModel]:
    """One PINN row: kept from ``run_dir`` when done before (``resume``), continued
    from its checkpoint when interrupted, else trained; its ``row.json`` written."""
    steps = cfg.training.steps * cfg.physics.rounds
    kept = _done(run_dir, inputs.start, steps) if resume else None
    if kept is not None:
        if progress:
            print(f"[compare] {label}: done before, kept", flush=True)
        return kept
    rounds = cfg.physics.rounds
    again = resume and (resume_folder(run_dir, rounds) / "checkpoint.pt").exists()
    before = _trained_seconds(run_dir, rounds) if again else 0.0
    if progress:
        print(f"[compare] {label}: {steps} steps" + (" (resumed)" if again else ""), flush=True)
    (run_dir / "row.json").unlink(missing_ok=True)  # a stale row must not outlive a rerun
    t0 = time.perf_counter()
    result = invert(inputs, cfg, run_dir, resume=again, device=device, illuminated=illuminated)
    row = _row(method, cfg.training.seed, result.metrics, steps, time.perf_counter() - t0 + before)
    write_text_atomic(run_dir / "row.json", json.dumps(row))
    return row, result.model


def _variants(
    config: InvertConfig, weightings: Sequence[str], formulations: Sequence[str] | None
) -> list[tuple[str, InvertConfig]]:
    """(row label, config) of every PINN run of a comparison, seeds aside."""
    bad = [w for w in weightings if w not in STRATEGIES]
    if bad or not weightings:
        raise ConfigError(f"weightings: unknown {bad[0]!r}" if bad else "weightings: none given")
    forms = list(formulations) if formulations is not None else [config.physics.formulation]
    bad = [f for f in forms if f not in FORMULATIONS]
    if bad or not forms:
        raise ConfigError(
            f"formulations: unknown {bad[0]!r} (known: {', '.join(FORMULATIONS)})"
            if bad
            else "formulations: none given"
        )
    out = []
    for form in forms:
        for name in weightings:
            cfg = dataclasses.replace(
                config,
                weighting=dataclasses.replace(config.weighting, name=name),
                physics=dataclasses.replace(config.physics, formulation=form),
            )
            out.append((f"{form}/{name}" if formulations is not None else name, cfg))
    return out


# ------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if np.isnan(value):
            return "–"
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def write_table(rows: list[dict[str, Any]], out: Path) -> None:
    """``metrics.json`` and ``metrics.csv`` in ``out``."""
    (out / "metrics.json").write_text(json.dumps(rows, indent=1))
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(COLUMNS))
        w.writeheader()
        w.writerows(rows)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The metrics as a Markdown table (columns that are empty everywhere dropped)."""
    cols = [
        c
        for c in COLUMNS
        if any(not (isinstance(r[c], float) and np.isnan(r[c])) and r[c] != "" for r in rows)
    ]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def _figures(
    report: CompareReport, inputs: InversionInputs, held: np.ndarray, run_dirs: dict[str, Path]
) -> None:
    fig_dir = report.out / "figures"
    fig_dir.mkdir(exist_ok=True)
    if inputs.true is not None:
        fig = inversion_figure(inputs.true, inputs.start, report.models)
        fig.savefig(fig_dir / "velocity.png", dpi=110)
    predicted = {k: RunFolder(d).gathers("predicted") for k, d in run_dirs.items()}
    predicted = {k: g for k, g in predicted.items() if g is not None}
    if predicted:
        fig = gather_comparison_figure(inputs.gathers, predicted, 0, held_out=held)
        fig.savefig(fig_dir / "gathers.png", dpi=110)
    pinn = {k: d for k, d in run_dirs.items() if k not in BASELINES}
    histories = {k: RunFolder(d).history() for k, d in pinn.items()}
    loss_curves_figure(histories).savefig(fig_dir / "losses.png", dpi=110)
    curriculum_figure(pinn).savefig(fig_dir / "curriculum.png", dpi=110)
    for label, d in pinn.items():
        gamma_slices_figure(d).savefig(fig_dir / f"gamma_{label}.png", dpi=110)
        residual_gamma_figure(d).savefig(fig_dir / f"residual_gamma_{label}.png", dpi=110)


def _markdown(
    report: CompareReport,
    config: InvertConfig,
    run_dirs: dict[str, Path],
    variants: list[tuple[str, InvertConfig]],
) -> None:
    pinn = [k for k in run_dirs if k not in BASELINES]
    forms = sorted({cfg.physics.formulation for _, cfg in variants})
    names = sorted({cfg.weighting.name for _, cfg in variants})
    lines = [
        "# seispinn comparison report",
        "",
        f"Data: {config.data.survey or config.data.shots}; "
        f"{config.training.steps * config.physics.rounds} PINN steps per run"
        f" ({config.physics.rounds} round(s) of {config.training.steps}); "
        f"PINN formulation(s) {', '.join(forms)}; per-point weightings {', '.join(names)}"
        + "".join(
            f"; {BASELINES[k].title} with Deepwave (runs/{k}/bands.json, runs/{k}/{k}.png)"
            for k in run_dirs
            if k in BASELINES
        )
        + ".",
        "",
        "Velocity errors are relative L2 and RMSE (m/s) against the true model, over the "
        "whole model and over its illuminated part; `heldout_misfit` is the relative L2 "
        "misfit of the model's Deepwave traces at receivers never used in training; "
        "`source_residual_ratio` is the RMS PDE residual near the sources during the "
        "wavelet ÷ elsewhere, `gamma_enrichment` the share of the mask there ÷ the share "
        "of points, `gamma_rank_correlation` the Spearman correlation of γ with |residual| "
        "over the collocation points (an SA mask that does not follow its residual is not "
        "self-adaptive), `gamma_effective_share` the share of the points the "
        "mask effectively keeps the PDE on, (Σγ)²/(N Σγ²): 1 for uniform weights, near 0 "
        "for a mask that balances the source region by switching the PDE off elsewhere.",
        "",
        markdown_table(report.rows),
        "",
        "## Velocity: true, start, inverted, and errors",
        "![velocity](figures/velocity.png)",
        "",
        "## Shot gathers: observed, predicted, difference (held-out receivers ticked)",
        "![gathers](figures/gathers.png)",
        "",
        "## Loss terms",
        "![losses](figures/losses.png)",
        "",
        "## Curriculum: γ enrichment, residual ratio, rank correlation and effective share "
        "over training",
        "![curriculum](figures/curriculum.png)",
        "",
    ]
    for label in pinn:
        c = curriculum(load_gamma_series(run_dirs[label]))
        lines += [
            f"## γ of {label}",
            f"Enrichment over snapshots: {', '.join(_fmt(v) for v in c['enrichment'])}; "
            f"effective share: {', '.join(_fmt(v) for v in c['effective_share'])}.",
            "",
            f"![gamma {label}](figures/gamma_{label}.png)",
            f"![residual and gamma {label}](figures/residual_gamma_{label}.png)",
            "",
        ]
    (report.out / "report.md").write_text("\n".join(lines))
