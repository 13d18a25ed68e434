"""The conventional FWI baseline on the shipped data: velocity error from each start,
misfit and error per frequency band, wall time, and a figure per case.

    python benchmarks/fwi_baseline.py [--cases whole60,whole150,crop_surface,crop_wells]
                                      [--set fwi.KEY=VALUE ...] [--out runs/fwi_baseline]

Cases:
- ``whole60`` / ``whole150``: the whole shipped model (``data/model_vp.sgy``) and its
  own survey (``data/shots.sgy``: 5 surface shots, 99 receivers, 1.5 s, 8 Hz point
  source), from the truth smoothed over 60 m / 150 m, water layer (50 m) fixed;
- ``crop_surface``: the demo crop (x 800-1400 m, z 0-400 m) with 4 surface shots and
  30 surface receivers, 0.7 s, 5 Hz, σ 40 m, from the 60 m smoothed truth, with
  the demo's water layer (40 m, fixed at 1,500 m/s; ``examples/demo_surface.toml``);
- ``crop_wells``: the demo's own data (``examples/demo.toml``: 2 shots,
  20 surface and 64 well receivers, 0.4 s), every 4th receiver held out.

``--set`` overrides the ``[fwi]`` options of every case (the ablation table in
docs/fwi.md was made with it). Prints one row per case and writes
``OUT/CASE/{history.json, bands.json, fwi.png}`` and ``OUT/summary.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from seispinn.acquisition import Source
from seispinn.config import apply_overrides, parse_overrides
from seispinn.experiments.invert import load_invert_config
from seispinn.inputs import holdout_mask, prepare_inputs
from seispinn.io import read_shots, read_velocity
from seispinn.modelling.fwi import FWIOptions, fwi
from seispinn.models import ModelPrior
from seispinn.plots.inversion import fwi_figure

ROOT = Path(__file__).resolve().parents[1]

#: What is known of the whole model: the water layer (the shipped model's top 50 m
#: are 1,500 m/s water) and the expected range.
WHOLE = ModelPrior(water_depth=50.0, water_velocity=1500.0, c_min=1400.0, c_max=5000.0)


def whole(smoothing: float):
    """The whole model's case: its data, start, source, truth, receivers used, and
    the FWI options (the defaults) and what is known of the model."""
    true = read_velocity(ROOT / "data" / "model_vp.sgy")
    gathers = read_shots(ROOT / "data" / "shots.sgy")
    source = Source(0.0, 8.0, 1.5 / 8.0)  # data/survey.toml: point source, default delay
    use = np.ones(gathers.receiver_mask.shape, dtype=bool)
    return gathers, true.smoothed(smoothing), source, true, use, FWIOptions(), WHOLE


def crop(config: str, overrides: dict | None = None):
    """A demo-crop case: the inputs and the ``[fwi]`` options of ``config``."""
    cfg = load_invert_config(ROOT / "examples" / config, overrides)
    i = prepare_inputs(cfg.data, cfg.source, None)
    use = ~holdout_mask(i.gathers, cfg.data.holdout_every)
    return i.gathers, i.start, i.source, i.true, use, cfg.fwi, i.prior


CASES = {
    "whole60": lambda: whole(60.0),
    "whole150": lambda: whole(150.0),
    "crop_surface": lambda: crop("demo_surface.toml"),
    "crop_wells": lambda: crop("demo.toml"),
}


def error(values: np.ndarray, true: np.ndarray) -> float:
    return float(np.linalg.norm(values - true) / np.linalg.norm(true))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--set", action="append", default=[], metavar="fwi.KEY=VALUE")
    p.add_argument("--out", default="runs/fwi_baseline")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set).get("fwi", {})
    out = Path(args.out)
    summary = {}
    print(
        "| case | start | FWI | change | evaluations | s | s/evaluation "
        "| bands: misfit start→end (error) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name in args.cases.split(","):
        gathers, start, source, true, use, base, prior = CASES[name]()
        options = apply_overrides(base, overrides, "fwi")
        t0 = time.perf_counter()
        result = fwi(
            gathers,
            start,
            source,
            options=options,
            use=use,
            true=true,
            progress=False,
            prior=prior,
        )
        seconds = time.perf_counter() - t0
        e0, e1 = error(start.values, true.values), error(result.model.values, true.values)
        n = len(result.history)
        bands = "; ".join(
            f"{b['corner']:g} Hz {b['misfit_start']:.3g}→{b['misfit_end']:.3g} ({b['error']:.4f})"
            for b in result.bands
        )
        print(
            f"| {name} | {e0:.4f} | {e1:.4f} | {100 * (e1 / e0 - 1):+.1f} % | {n} | "
            f"{seconds:.0f} | {seconds / n:.2f} | {bands} |",
            flush=True,
        )
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "history.json").write_text(json.dumps(result.history, indent=1))
        (folder / "bands.json").write_text(json.dumps(result.bands, indent=1))
        fig = fwi_figure(true, start, result.model, result.first_direction, result.bands)
        fig.suptitle(f"{name}: start {e0:.3f}, FWI {e1:.3f}")
        fig.savefig(folder / "fwi.png", dpi=90)
        summary[name] = {
            "start_error": e0,
            "fwi_error": e1,
            "evaluations": n,
            "seconds": seconds,
            "shots": gathers.n_shots,
            "bands": result.bands,
            "options": dataclasses.asdict(options),
        }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
