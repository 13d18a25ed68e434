"""All figures of a run folder, as PNGs (``seispinn plot run`` / ``plot gamma``).

Reads the folder through :class:`~seispinn.diagnostics.results.RunFolder`;
parts a run does not have (models for a forward run, γ for FWI) are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from seispinn.diagnostics.results import RunFolder
from seispinn.errors import SeispinnError
from seispinn.plots.curriculum import (
    curriculum_figure,
    gamma_animation,
    gamma_evolution_figure,
    gamma_histogram_figure,
    gamma_sections_figure,
    gamma_slices_figure,
    residual_gamma_figure,
)
from seispinn.plots.inversion import gather_comparison_figure, inversion_figure, loss_curves_figure

__all__ = ["gamma_figures", "run_figures"]


def _save(fig: Figure, path: Path, written: list[Path]) -> None:
    fig.savefig(path, dpi=110)
    written.append(path)


def gamma_figures(
    run_dir: str | Path,
    out: str | Path | None = None,
    *,
    times: Sequence[float] | None = None,
    animate: str | None = None,
) -> list[Path]:
    """γ figures of a run (last snapshot: slices, sections, residual beside γ;
    all snapshots: histogram, evolution, curriculum curves; ``animate`` = ``'gif'``
    or ``'mp4'`` adds an animation) into ``out`` (default ``RUN_DIR/figures``)."""
    run = RunFolder(Path(run_dir))
    out = Path(out) if out is not None else run.path / "figures"
    out.mkdir(parents=True, exist_ok=True)
    series = run.gamma_series()
    last = series[-1]
    written: list[Path] = []
    _save(gamma_slices_figure(last, times), out / "gamma_slices.png", written)
    _save(gamma_sections_figure(last), out / "gamma_sections.png", written)
    _save(residual_gamma_figure(last, times), out / "residual_gamma.png", written)
    _save(
        gamma_histogram_figure([series[0], series[len(series) // 2], last]),
        out / "gamma_histogram.png",
        written,
    )
    _save(gamma_evolution_figure(series), out / "gamma_evolution.png", written)
    _save(curriculum_figure(series), out / "curriculum.png", written)
    if animate:
        written.append(gamma_animation(series, out / f"gamma.{animate}"))
    return written


def run_figures(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """Every figure a run folder supports: velocity panels (true / start / inverted
    / errors), observed vs predicted gathers, loss curves, and the γ figures."""
    run = RunFolder(Path(run_dir))
    p = run.path
    models = all((p / f"{n}.sgy").exists() for n in ("true", "start", "inverted"))
    gathers = all((p / f"{n}.sgy").exists() for n in ("observed", "predicted"))
    history = run.history()
    if not (models or gathers or history or run.has_gamma()):
        raise SeispinnError(
            f"{p}: nothing to plot: no history.json records, no gamma/*.npz snapshots, "
            "no true/start/inverted.sgy, no observed/predicted.sgy (not a run folder?)"
        )
    out = Path(out) if out is not None else p / "figures"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if models:
        true, start, inverted = run.model("true"), run.model("start"), run.model("inverted")
        _save(inversion_figure(true, start, {"inverted": inverted}), out / "velocity.png", written)
    if gathers:
        observed, predicted = run.gathers("observed"), run.gathers("predicted")
        fig = gather_comparison_figure(observed, predicted, 0, held_out=run.held_out())
        _save(fig, out / "gathers.png", written)
    if history:
        _save(loss_curves_figure(history), out / "losses.png", written)
    if run.has_gamma():
        written += gamma_figures(run.path, out)
    return written
