"""PINN full-waveform inversion: a wavefield network and a velocity trained on the wave
equation and the recorded traces, scored on held-out receivers.

A run is described by a TOML config whose defaults are the measured recipe
(:class:`InvertConfig`: the scattered field on a finite-difference background,
absorbing edges, a velocity on a 40 m grid, 4 rounds, SA masks), so a config that
names only its ``[data]`` and ``[source]`` inverts that way. It writes a run folder:
``config.toml`` (a copy), ``config.json`` (resolved), ``observed.sgy`` / ``true.sgy``
(when the data are synthesised from a survey), ``round{k}/`` (each round's checkpoint
and history), ``history.json``, ``gamma/step_XXXXXX.npz``, ``inverted.sgy``,
``start.sgy``, ``predicted.sgy``, ``heldout.npy`` and ``metrics.json``.

In Python::

    from seispinn.experiments.invert import InvertConfig, invert
    from seispinn.inputs import prepare_inputs
    config = InvertConfig()                    # the shipped demo crop, the recipe
    inputs = prepare_inputs(config.data, config.source)
    result = invert(inputs, config, run_dir="runs/inv")
    write_velocity("inverted.sgy", result.model)
"""

from __future__ import annotations

import dataclasses
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seispinn.acquisition import Source
from seispinn.config import load_sections
from seispinn.diagnostics.measures import velocity_scores
from seispinn.diagnostics.scoring import illuminated_part, model_scores
from seispinn.errors import ConfigError
from seispinn.experiments.run import (
    SnapshotExtras,
    check_training,
    resolve_device,
    run_rounds,
)
from seispinn.gathers import ShotGathers
from seispinn.inputs import (
    DataConfig,
    InversionInputs,
    holdout_mask,
    planned_inputs,
    prepare_inputs,
    resolve_data_paths,
    trace_samples,
)
from seispinn.io.runfolder import write_run_outputs
from seispinn.memory import PINN_KNOBS, MemoryEstimate, check_fits, point_parts, problem_memory
from seispinn.modelling.fwi import FWIOptions
from seispinn.modelling.wri import WRIOptions
from seispinn.models import VelocityModel
from seispinn.pinn.closed_form import ClosedFormUpdate
from seispinn.pinn.collocation import Box, CollocationOptions
from seispinn.pinn.distributed import barrier, is_main
from seispinn.pinn.formulations import PhysicsOptions
from seispinn.pinn.gate import CausalGate
from seispinn.pinn.problem import Shots, TraceSamples, WaveProblem
from seispinn.pinn.seeding import reconstructed_samples
from seispinn.pinn.training import TrainOptions
from seispinn.pinn.velocity import GridVelocity, VelocityNet, VelocityNetOptions
from seispinn.pinn.wave import NetworkOptions
from seispinn.pinn.weighting import WeightingOptions

__all__ = [
    "InvertConfig",
    "load_invert_config",
    "inversion_problem",
    "stored_estimate",
    "check_memory",
    "InversionResult",
    "invert",
    "run_inversion",
]

#: The shipped examples (the default survey lives there).
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _demo_data() -> DataConfig:
    """The shipped demo crop: x 800–1400 m, z 0–400 m of the Marmousi-style model, two
    surface shots, surface and well receivers, the truth smoothed over 60 m as the
    start, its 40 m of water known."""
    return DataConfig(
        survey=str(EXAMPLES / "surveys" / "marmousi_crop_wells.toml"),
        crop_x=(800.0, 1400.0),
        crop_z=(0.0, 400.0),
        start_smoothing=60.0,
        water_depth=45.0,
        water_velocity=1500.0,
    )


@dataclass(frozen=True)
class InvertConfig:
    """All sections of an inversion. Every default is the recipe measured on the demo
    (docs/inversion.md): the scattered field on a Deepwave background in the current
    velocity, absorbing edges, the squared-slowness residual, a shared 64×3 wavefield
    network, a velocity on a 40 m grid within ±30 % of the start, 8,000 points in
    batches of 1,024, SA masks by the bounded ascent at 1e-3, 4 rounds of 3,000 Adam
    steps (2e-3 → 1e-4) with the velocity frozen for each round's first 1,000 and the
    data term ×10⁵. ``data`` defaults to the shipped demo crop; ``fwi`` and ``wri``
    hold the finite-difference baselines' settings (``seispinn fwi``, ``seispinn wri``,
    ``compare --baseline fwi,wri``)."""

    data: DataConfig = field(default_factory=_demo_data)
    source: Source = field(default_factory=lambda: Source(40.0, 5.0, 0.24))
    physics: PhysicsOptions = field(default_factory=PhysicsOptions)
    network: NetworkOptions = field(default_factory=NetworkOptions)
    velocity: VelocityNetOptions = field(default_factory=VelocityNetOptions)
    collocation: CollocationOptions = field(default_factory=CollocationOptions)
    weighting: WeightingOptions = field(default_factory=WeightingOptions)
    fwi: FWIOptions = field(default_factory=FWIOptions)
    wri: WRIOptions = field(default_factory=WRIOptions)
    training: TrainOptions = field(
        default_factory=lambda: TrainOptions(
            steps=3000,
            lr=2e-3,
            lr_final=1e-4,
            checkpoint_every=500,
            snapshot_every=500,
            term_weights={"data": 1e5},
            frozen_until={"velocity": 1000},
        )
    )


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "source": Source,
    "physics": PhysicsOptions,
    "network": NetworkOptions,
    "velocity": VelocityNetOptions,
    "collocation": CollocationOptions,
    "weighting": WeightingOptions,
    "fwi": FWIOptions,
    "wri": WRIOptions,
    "training": TrainOptions,
}


def load_invert_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> InvertConfig:
    """An :class:`InvertConfig` from a TOML file (None: defaults) with section overrides.

    A file's ``[data]`` starts afresh from :class:`DataConfig`'s defaults (a file
    naming its shots must not inherit the default survey). Relative paths in the
    file's ``[data]`` are taken relative to the file's folder; relative paths given as
    overrides (``--set data.shots=...``), relative to the current folder."""
    config = load_sections(InvertConfig(), _SECTIONS, path, overrides, fresh=frozenset({"data"}))
    where = str(path or "config")
    check_training(config.training, ("wavefield", "velocity"), where)
    formulation = config.physics.formulation_class
    p = config.physics
    if (p.seed_steps or p.causal or config.velocity.update == "closed_form") and (
        formulation.name != "scattered"
    ):
        raise ConfigError(
            f"{where}: [physics] seed_steps and causal, and [velocity] update = "
            "'closed_form', work on the scattered field's background: they need "
            "[physics] formulation = 'scattered'"
        )
    if config.collocation.wavefront_fraction and not formulation.has_wavefronts:
        raise ConfigError(
            f"{where}: [collocation] wavefront_fraction draws points along a background "
            f"wavefield, which the {formulation.name!r} formulation has none of (use "
            "[physics] formulation = 'scattered')"
        )
    data = resolve_data_paths(config.data, path, overrides or {}, EXAMPLES)
    return dataclasses.replace(config, data=data)


# ------------------------------------------------------------------------------------
# The problem and its memory
# ------------------------------------------------------------------------------------


def _t_max(config: InvertConfig, gathers: ShotGathers) -> float:
    return float(gathers.times[-1]) if not config.data.max_time else config.data.max_time


def stored_estimate(
    config: InvertConfig, gathers: ShotGathers, start: VelocityModel
) -> MemoryEstimate:
    """Memory an inversion holds whatever the batch (points, weights, data samples,
    torch's runtime, what the formulation holds on ``start``'s grid): known before
    anything is allocated."""
    # Every sample of the gathers: an upper bound, as held-out receivers are left out.
    parts = point_parts(config.collocation.n_points, config.weighting.name, gathers.data.size)
    nt = min(int(np.ceil(_t_max(config, gathers) / gathers.dt - 1e-9)) + 1, gathers.nt)
    formulation = config.physics.formulation_class
    parts.update(formulation.stored_bytes(gathers.n_shots, nt, start, config.physics))
    return MemoryEstimate(parts, knobs=PINN_KNOBS + ("[physics] background_stride",))


def check_memory(config: InvertConfig, inputs: InversionInputs, device: str | None) -> None:
    """The run's memory checks (what it holds, then a step's, as :func:`invert` makes
    them) on ``inputs``' shapes; raises when the run would not fit. Nothing is
    simulated: the step is measured on the formulation's stand-in."""
    dev = resolve_device(device)
    check_fits(stored_estimate(config, inputs.gathers, inputs.start), dev, "the run")
    problem = inversion_problem(config, inputs, dev, sizing=True)
    check_fits(problem_memory(problem), dev, "the run")


def inversion_problem(
    config: InvertConfig,
    inputs: InversionInputs,
    device: torch.device,
    *,
    bounds: tuple[float, float] | None = None,
    sizing: bool = False,
) -> WaveProblem:
    """The inversion as a :class:`WaveProblem`: a wavefield for every shot, a velocity
    around the starting model (its water layer fixed, within ``bounds``, m/s; default
    the inputs' velocity range), and the traces of the receivers not held out
    (:func:`holdout_mask`) as the data term, less what the formulation's fixed part
    predicts. ``sizing``: the formulation's stand-in, for a memory estimate."""
    g, src = inputs.gathers, inputs.source
    prior = inputs.prior
    start = prior.applied(inputs.start)
    t_max = _t_max(config, g)
    box = Box(float(start.x[0]), float(start.x[-1]), float(start.z[0]), float(start.z[-1]), t_max)
    use = ~holdout_mask(g, config.data.holdout_every) & g.receiver_mask
    stride = config.data.time_stride
    pts, shot, observed = trace_samples(g, use, t_max, stride)
    kind = config.physics.formulation_class
    if sizing:
        formulation = kind.sizing(start, g, src)
    else:
        formulation = kind.for_inversion(start, g, src, t_max, config.physics)
    fitted, ratio = observed, 1.0
    if formulation.fixed_traces is not None:
        fixed = dataclasses.replace(g, data=formulation.fixed_traces)
        fitted = observed - trace_samples(fixed, use, t_max, stride)[2]
        ratio = _rms(fitted) / (_rms(observed) or 1.0)
    data = TraceSamples(
        torch.tensor(pts, dtype=torch.float32),
        torch.tensor(shot, dtype=torch.long),
        torch.tensor(fitted, dtype=torch.float32),
    )
    bounds = inputs.bounds if bounds is None else bounds
    real = g.receiver_mask
    seed_field = None
    if config.physics.seed_steps and not sizing:
        seed_field = reconstructed_samples(start, inputs, use, t_max, config.wri)

    def make_velocity(scales):
        if config.velocity.update == "closed_form":  # fixed in the round: a reconstruction
            return GridVelocity(start)
        return VelocityNet(
            scales, start, config.velocity, bounds=bounds, water_depth=prior.water_depth
        )

    return WaveProblem(
        box=box,
        shots=Shots(tuple(g.source_x.tolist()), tuple(g.source_z.tolist()), src),
        make_velocity=make_velocity,
        formulation=formulation,
        network=config.network,
        collocation=config.collocation,
        weighting=config.weighting,
        physics=config.physics,
        seed=config.training.seed,
        device=device,
        c_ref=float(np.median(start.at(g.source_x, g.source_z))),
        amplitude_samples=400,
        data=data,
        receivers=np.unique(np.stack([g.receiver_x[real], g.receiver_z[real]], 1), axis=0),
        data_reference=float(np.mean(observed.astype(np.float64) ** 2)),
        amplitude_ratio=max(ratio, MIN_AMPLITUDE_RATIO),
        seed_field=seed_field,
        seed_steps=config.physics.seed_steps,
        gate=CausalGate(g.source_x.tolist(), g.source_z.tolist(), src, bounds[1])
        if config.physics.causal
        else None,
    )


#: The smallest scattered-field amplitude relative to the total's: a start that
#: explains nearly all the data must not shrink the network's output to nothing.
MIN_AMPLITUDE_RATIO = 0.05


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values, dtype=np.float64)))) if values.size else 0.0


# ------------------------------------------------------------------------------------
# The run
# ------------------------------------------------------------------------------------


@dataclass
class InversionResult:
    """The inverted model ``[nz, nx]`` (m/s) on the start's grid, the metrics, the
    training history, the trained problem and the held-out receivers ``[shot,
    receiver]``."""

    model: VelocityModel
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    problem: WaveProblem
    held_out: np.ndarray


def _velocity_extras(inputs: InversionInputs) -> SnapshotExtras:
    """The velocity ``[nz, nx]`` as an image and, with a known truth, its error."""

    def extras(problem: WaveProblem) -> tuple[dict[str, np.ndarray], dict[str, float]]:
        values = problem.velocity.to_model(inputs.start).values
        scalars = {}
        if inputs.true is not None:
            scores = velocity_scores(values, inputs.start.values, inputs.true.values)
            scalars["velocity/error"] = scores["velocity_error"]
        return {"velocity/model": values}, scalars

    return extras


def _round_training(config: InvertConfig) -> TrainOptions:
    """The training of a round: with a closed-form velocity only the wavefield trains,
    so the velocity's entries of ``frozen_until``, ``lr_scale`` and ``alternate`` go."""
    t = config.training
    if config.velocity.update != "closed_form":
        return t
    keep = {
        key: {k: v for k, v in getattr(t, key).items() if k != "velocity"}
        for key in ("frozen_until", "lr_scale")
    }
    return dataclasses.replace(t, alternate={}, **keep)


def _closed_form_update(config: InvertConfig, inputs: InversionInputs) -> ClosedFormUpdate | None:
    """The round-to-round velocity update of a closed-form inversion (None: joint)."""
    if config.velocity.update != "closed_form":
        return None
    use = ~holdout_mask(inputs.gathers, config.data.holdout_every) & inputs.gathers.receiver_mask
    return ClosedFormUpdate(inputs, use, config.velocity.closed_form)


#: The comparison table's names for the run header's source-region measures.
_REPORTED = {
    "gamma_enrichment": "enrichment",
    "source_residual_ratio": "source_to_other",
    "gamma_rank_correlation": "rank_correlation",
    "gamma_effective_share": "effective_share",
}


def invert(
    inputs: InversionInputs,
    config: InvertConfig | None = None,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    device: str | None = None,
    score_heldout: bool = True,
    illuminated: np.ndarray | None = None,
) -> InversionResult:
    """Train the wavefield and velocity over ``config.physics.rounds`` rounds; return
    the inverted model and its scores.

    With ``run_dir`` it writes the run folder of the module docstring; ``resume``
    continues from its checkpoint. ``illuminated`` ``[nz, nx]`` (computed when None)
    restricts the second set of velocity scores.
    """
    config = config or InvertConfig()
    run_dir = Path(run_dir) if run_dir is not None else None
    bounds = inputs.bounds  # of the first start: every round keeps the same range

    def build(start: VelocityModel, dev: torch.device) -> WaveProblem:
        here = dataclasses.replace(inputs, start=start)
        return inversion_problem(config, here, dev, bounds=bounds)

    update = _closed_form_update(config, inputs)
    run, model = run_rounds(
        build,
        inputs.start,
        _round_training(config),
        config.physics.rounds,
        config.weighting.name,
        stored=stored_estimate(config, inputs.gathers, inputs.start),
        config=config,
        run_dir=run_dir,
        resume=resume,
        device=device,
        snapshot_extras=_velocity_extras(inputs),
        next_model=update,
    )
    held = holdout_mask(inputs.gathers, config.data.holdout_every)
    if run.final is None:  # not rank 0: rank 0 scores and writes
        return InversionResult(model, {}, run.history, run.problem, held)
    metrics = dict(run.metrics)
    metrics.update({name: metrics[key] for name, key in _REPORTED.items()})
    if update is not None:
        metrics["velocity_updates"] = update.history
    predicted = None
    if score_heldout:
        if illuminated is None and inputs.true is not None:
            illuminated = illuminated_part(inputs)
        scores, predicted = model_scores(model, inputs, held, illuminated)
        metrics.update(scores)
    elif inputs.true is not None:
        metrics.update(velocity_scores(model.values, inputs.start.values, inputs.true.values))
    if run_dir is not None:
        write_run_outputs(run_dir, model, inputs, held, predicted, metrics)
    return InversionResult(model, metrics, run.history, run.problem, held)


def run_inversion(
    config: InvertConfig,
    run_dir: Path,
    *,
    resume: bool = False,
    config_path: Path | None = None,
    device: str | None = None,
) -> InversionResult:
    """The CLI's run: prepare the inputs (from SEG-Y or a survey), invert, write.
    Under ``torchrun`` rank 0 prepares and writes the data, the others read them."""
    if is_main():
        # The inputs' own checks come first: a refused run leaves no folder behind;
        # a survey's run is sized on zero traces before its data are simulated.
        if config.data.survey:
            check_memory(config, planned_inputs(config.data, config.source), device)
        inputs = prepare_inputs(config.data, config.source, run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if config_path is not None and not resume:
            shutil.copyfile(config_path, run_dir / "config.toml")
        barrier()
    else:
        barrier()
        inputs = prepare_inputs(config.data, config.source, run_dir, write=False)
    return invert(inputs, config, run_dir, resume=resume, device=device)
