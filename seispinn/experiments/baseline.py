"""A finite-difference baseline by itself on an inversion config's data — conventional
FWI or wavefield-reconstruction inversion (:data:`seispinn.modelling.baselines.BASELINES`)
— as every comparison reports it (``seispinn compare --baseline fwi,wri``) or alone
(``seispinn fwi``, ``seispinn wri``).

It takes the same ``[data]`` and ``[source]`` as ``seispinn invert`` (and the baseline's
own section, ``[fwi]`` or ``[wri]``), holds out the same receivers,
starts from the same model with the same water layer and velocity range, and writes a
run folder::

    config.toml          a copy of the config (from the CLI)
    inverted.sgy         the inverted velocity [nz, nx] (m/s)
    start.sgy observed.sgy true.sgy (synthetic data)  heldout.npy  predicted.sgy
    metrics.json         velocity error and RMSE (with a known truth), held-out
                         misfit, evaluations, seconds, the baseline's options
    history.json         one record per misfit evaluation
    bands.json           misfit (and error) at the start and end of each band
    <name>.png           true, start, inverted, first update direction, bands

In Python::

    from seispinn.experiments.baseline import run_baseline_inversion
    from seispinn.experiments.invert import load_invert_config
    config = load_invert_config("examples/anomaly_wells.toml")
    metrics = run_baseline_inversion("fwi", config.data, config.source, config.fwi, "runs/fwi")
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from seispinn.acquisition import Source
from seispinn.diagnostics.scoring import illuminated_part, model_scores
from seispinn.inputs import DataConfig, InversionInputs, holdout_mask, prepare_inputs
from seispinn.io.runfolder import write_json_atomic, write_run_outputs
from seispinn.modelling.baselines import BASELINES
from seispinn.modelling.simulate import ModellingOptions
from seispinn.models import VelocityModel
from seispinn.plots.inversion import fwi_figure

__all__ = ["AT_BOUNDS_NOTE", "run_baseline", "run_baseline_inversion"]

#: Above this share of the updated cells on the velocity bounds, a run says so: the
#: default bounds (the start's range ± 10 %) cap a strong anomaly in a homogeneous
#: start (47 % of the updated cells of the anomaly examples without their [data]
#: c_min / c_max; the shipped demo 2 %, deep cells that overshoot the truth).
AT_BOUNDS_NOTE = 0.05


def run_baseline(
    name: str,
    inputs: InversionInputs,
    options: Any,
    held: np.ndarray,
    illuminated: np.ndarray | None,
    run_dir: Path,
    *,
    progress: bool = True,
    device: str | None = None,
) -> tuple[dict[str, Any], VelocityModel]:
    """Baseline ``name`` of ``inputs`` with ``options`` (its section), the ``held``
    receivers ``[shot, receiver]`` left out of the misfit; writes ``run_dir`` (module
    docstring) and returns its metrics and the inverted model ``[nz, nx]`` (m/s)."""
    baseline = BASELINES[name]
    result = baseline.run(
        inputs.gathers,
        inputs.start,
        inputs.source,
        options=options,
        use=~held,
        modelling=ModellingOptions(device=device) if device else None,
        true=inputs.true,
        progress=progress,
        prior=inputs.prior,
    )
    metrics, predicted = model_scores(result.model, inputs, held, illuminated)
    metrics.update(
        evaluations=len(result.history),
        train_seconds=result.seconds,
        bounds=list(result.bounds),
        at_bounds=result.at_bounds,
        options=dataclasses.asdict(options),
    )
    if result.at_bounds > AT_BOUNDS_NOTE:
        lo, hi = result.bounds
        print(
            f"{baseline.title}: {100 * result.at_bounds:.1f} % of the inverted cells ended "
            f"on the velocity bounds ({lo:.0f}-{hi:.0f} m/s), which may have shaped the "
            "model: set [data] c_min / c_max to the expected range",
            file=sys.stderr,
        )
    write_run_outputs(run_dir, result.model, inputs, held, predicted, metrics)
    write_json_atomic(run_dir / "history.json", result.history)
    write_json_atomic(run_dir / "bands.json", result.bands)
    if inputs.true is not None:
        fig = fwi_figure(
            inputs.true, inputs.start, result.model, result.first_direction, result.bands
        )
        fig.savefig(run_dir / f"{name}.png", dpi=100)
    return metrics, result.model


def run_baseline_inversion(
    name: str,
    data: DataConfig,
    source: Source,
    options: Any,
    run_dir: str | Path,
    *,
    config_path: Path | None = None,
    device: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The CLI's run: prepare the inputs of ``data`` and ``source`` as ``seispinn
    invert`` does (SEG-Y or a survey's synthetic data), hold out every
    ``holdout_every``-th receiver, invert, write ``run_dir``; return the metrics."""
    run_dir = Path(run_dir)
    inputs = prepare_inputs(data, source, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if config_path is not None:
        shutil.copyfile(config_path, run_dir / "config.toml")
    held = holdout_mask(inputs.gathers, data.holdout_every)
    illuminated = illuminated_part(inputs) if inputs.true is not None else None
    metrics, _ = run_baseline(
        name, inputs, options, held, illuminated, run_dir, progress=progress, device=device
    )
    return metrics
