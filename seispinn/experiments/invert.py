"""PINN full-waveform inversion: a wavefield network and a velocity network trained on
the wave equation and the recorded traces, scored on held-out receivers.

A run is described by a TOML config (see ``examples/invert_anomaly.toml``) and
writes a run folder: ``config.toml`` (a copy), ``config.json`` (resolved),
``observed.sgy`` / ``true.sgy`` (when the data are synthesised from a survey),
``checkpoint.pt``, ``history.json``, ``gamma/step_XXXXXX.npz``, ``inverted.sgy``
(the velocity network on the starting model's grid), ``start.sgy``, ``metrics.json``.

In Python::

    from seispinn.experiments.invert import InvertConfig, invert
    result = invert(gathers, start, InvertConfig(), run_dir="runs/inv", true=model)
    write_velocity("inverted.sgy", result.model)
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seispinn.acquisition import Acquisition, Source
from seispinn.config import load_sections, read_toml
from seispinn.diagnostics.measures import heldout_misfit, velocity_scores
from seispinn.errors import ConfigError, ModelError
from seispinn.experiments.run import (
    WAVE_WEIGHTING,
    PINNRun,
    SnapshotExtras,
    check_training,
    resolve_device,
    run_problem,
)
from seispinn.gathers import ShotGathers
from seispinn.io import read_shots, read_velocity, summarise, write_shots, write_velocity
from seispinn.memory import MemoryEstimate, check_fits, point_parts
from seispinn.modelling.fwi import FWIOptions, acquisition_from_gathers
from seispinn.modelling.illumination import illuminated_mask, illumination
from seispinn.modelling.simulate import ModellingOptions, simulate, wavefield_snapshots
from seispinn.models import VelocityModel, homogeneous
from seispinn.pinn.background import Background, second_time_derivative
from seispinn.pinn.collocation import Box
from seispinn.pinn.distributed import barrier, is_main
from seispinn.pinn.problem import (
    MEMORY_KNOBS,
    POINT_SOURCE_REFUSED,
    CollocationOptions,
    NetworkOptions,
    PhysicsOptions,
    Shots,
    TraceSamples,
    WaveProblem,
)
from seispinn.pinn.training import TrainOptions, write_text_atomic
from seispinn.pinn.velocity import VelocityNet, VelocityNetOptions, with_water
from seispinn.pinn.wave import gaussian_source_density
from seispinn.pinn.weighting import WeightingOptions
from seispinn.survey import load_survey

__all__ = [
    "DataConfig",
    "InvertConfig",
    "load_invert_config",
    "InversionInputs",
    "prepare_inputs",
    "holdout_mask",
    "inversion_problem",
    "InversionResult",
    "invert",
    "resume_folder",
    "round_folder",
    "run_inversion",
    "implied_velocity",
    "background_wavefield",
    "predicted_gathers",
    "illuminated_part",
    "model_scores",
    "write_run_outputs",
]


@dataclass(frozen=True)
class DataConfig:
    """Where the observed traces and the starting model come from.

    Attributes:
        survey: a survey TOML (``data/survey.toml`` form): its model is the truth,
            its shots are simulated with the configured source and written to the
            run folder as ``observed.sgy`` / ``true.sgy``, then read back.
        crop_x, crop_z: ``[min, max]`` (m) to cut the survey's model to before
            the acquisition is laid out on it (a small crop of a large model).
        shots: observed shot gathers (SEG-Y), when there is no ``survey``.
        start: starting model (SEG-Y); else ``start_velocity`` (homogeneous, m/s)
            or the true model smoothed by ``start_smoothing`` metres.
        true_model: a SEG-Y true model for scoring (a survey provides its own).
        dx, dz: spacing (m) for SEG-Y models whose headers do not carry it.
        holdout_every: every k-th receiver of each shot is held out of the data
            term and used for scoring (0: none).
        max_time: use traces up to this time (s); 0: the whole record.
        time_stride: use every k-th sample of the traces.
    """

    survey: str = ""
    crop_x: tuple[float, ...] = ()
    crop_z: tuple[float, ...] = ()
    shots: str = ""
    start: str = ""
    start_velocity: float = 0.0
    start_smoothing: float = 0.0
    true_model: str = ""
    dx: float | None = None
    dz: float | None = None
    holdout_every: int = 4
    max_time: float = 0.0
    time_stride: int = 1

    def __post_init__(self) -> None:
        if bool(self.survey) == bool(self.shots):
            raise ValueError("give exactly one of survey (synthetic data) and shots (SEG-Y)")
        if self.holdout_every < 0 or self.time_stride < 1 or self.max_time < 0:
            raise ValueError("holdout_every >= 0, time_stride >= 1 and max_time >= 0 required")
        for name, crop in (("crop_x", self.crop_x), ("crop_z", self.crop_z)):
            if len(crop) not in (0, 2) or (crop and crop[0] >= crop[1]):
                raise ValueError(f"{name} must be [min, max] with min < max (m), got {crop}")
        for name, h in (("dx", self.dx), ("dz", self.dz)):
            if h is not None and not h > 0:
                raise ValueError(f"{name} must be positive (m), got {h}")
        if self.start_velocity < 0 or self.start_smoothing < 0:
            raise ValueError("start_velocity and start_smoothing must be >= 0")
        if not (self.start or self.start_velocity > 0 or self.start_smoothing > 0):
            raise ValueError("give a starting model: start, start_velocity or start_smoothing")


@dataclass(frozen=True)
class InvertConfig:
    """All sections; the defaults are ``examples/invert_anomaly.toml``'s recipe (the
    measured one: wavefield 64×3, velocity 24×2 frozen for the first 1,500 of
    4,000 steps, data term ×1000, SA), on that example's survey. ``fwi`` holds the
    conventional-FWI baseline's settings (``seispinn compare --baseline fwi``)."""

    data: DataConfig = field(
        default_factory=lambda: DataConfig(
            survey="examples/anomaly_survey.toml", start_velocity=2000.0
        )
    )
    source: Source = field(default_factory=lambda: Source(40.0, 5.0, 0.24))
    physics: PhysicsOptions = field(default_factory=lambda: PhysicsOptions("slowness"))
    network: NetworkOptions = field(default_factory=lambda: NetworkOptions(width=64, depth=3))
    velocity: VelocityNetOptions = field(
        default_factory=lambda: VelocityNetOptions(width=24, depth=2)
    )
    collocation: CollocationOptions = field(
        default_factory=lambda: CollocationOptions(
            n_points=8000, near_source_radius=50.0, batch_size=1024, data_batch=1024
        )
    )
    weighting: WeightingOptions = WAVE_WEIGHTING
    fwi: FWIOptions = field(default_factory=FWIOptions)
    training: TrainOptions = field(
        default_factory=lambda: TrainOptions(
            steps=4000,
            lr=2e-3,
            snapshot_every=500,
            term_weights={"data": 1000.0},
            frozen_until={"velocity": 1500},
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
    "training": TrainOptions,
}


def load_invert_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> InvertConfig:
    """An :class:`InvertConfig` from a TOML file (None: defaults) with section overrides.

    Relative paths in the file's ``[data]`` are taken relative to the file's folder;
    relative paths given as overrides (``--set data.shots=...``), relative to the
    current folder; the default survey, relative to the checkout's ``examples``."""
    # [data] starts afresh: a file naming its shots must not inherit the default survey.
    config = load_sections(InvertConfig(), _SECTIONS, path, overrides, fresh=frozenset({"data"}))
    check_training(config.training, ("wavefield", "velocity"), str(path or "config"))
    if config.collocation.wavefront_fraction and config.physics.formulation != "scattered":
        raise ConfigError(
            f"{path or 'config'}: [collocation] wavefront_fraction draws points along the "
            "background wavefield: it needs [physics] formulation = 'scattered'"
        )
    given = read_toml(path).get("data", {}) if path is not None else {}
    overridden = (overrides or {}).get("data", {})
    d = config.data
    fixed = {}
    for key in DATA_FILES:
        value = getattr(d, key)
        if not value or Path(value).is_absolute() or key in overridden:
            continue  # an override is relative to where the command runs
        base = Path(path).parent if key in given else _CHECKOUT  # type: ignore[arg-type]
        fixed[key] = str(base / value)
    return dataclasses.replace(config, data=dataclasses.replace(d, **fixed))


#: The ``[data]`` keys that name files.
DATA_FILES = ("survey", "shots", "start", "true_model")
#: The source checkout (where the default survey's ``examples/`` live).
_CHECKOUT = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------------------------
# Inputs: observed gathers, starting model, optional truth
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InversionInputs:
    """What an inversion starts from.

    Attributes:
        gathers: observed traces ``[shot, receiver, time]``.
        start: starting velocity ``[nz, nx]`` (m/s); its grid is the output grid.
        source: the source, resolved (σ, freq, delay all set).
        true: the true model for scoring, if known.
    """

    gathers: ShotGathers
    start: VelocityModel
    source: Source
    true: VelocityModel | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", self.source.resolved())


def prepare_inputs(
    config: InvertConfig, run_dir: Path | None = None, *, write: bool = True
) -> InversionInputs:
    """Read (or synthesise, write and read back) the observed data and the models.
    ``write=False`` reads synthetic data another process wrote to ``run_dir``."""
    d, src = config.data, config.source
    if not src.sigma > 0:
        raise ConfigError(POINT_SOURCE_REFUSED)
    if d.true_model:
        _check_kind(d.true_model, "true_model", "velocity model")
    true = read_velocity(d.true_model, dx=d.dx, dz=d.dz) if d.true_model else None
    if d.survey:
        true, acq, options, source, start = _survey(config)
        if run_dir is not None and not write:
            gathers = read_shots(run_dir / "observed.sgy")
            true = read_velocity(run_dir / "true.sgy")
        else:
            gathers = simulate(true, acq, options)
        if run_dir is not None and write:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_shots(run_dir / "observed.sgy", gathers)
            write_velocity(run_dir / "true.sgy", true)
            gathers = read_shots(run_dir / "observed.sgy")
            true = read_velocity(run_dir / "true.sgy")
        start = _start_model(d, true)  # from the truth as stored, like the other ranks
    else:
        _check_kind(d.shots, "shots", "shot gathers")
        if not src.freq:
            raise ConfigError(
                "[source] freq is needed with SEG-Y shots (the wavelet is not stored)"
            )
        gathers = read_shots(d.shots)
        source = src.resolved()
        start = _start_model(d, true)
    where = d.shots or f"{d.survey} [acquisition]"
    _check_inside(acquisition_from_gathers(gathers, source), start, where)
    return InversionInputs(gathers, start, source, true)


def _survey(config: InvertConfig):
    """The ``[data] survey``'s truth (cropped), acquisition, modelling options,
    resolved source and starting model, its geometry checked: everything but the
    simulation."""
    d = config.data
    if not Path(d.survey).is_file():
        raise ConfigError(f"[data] survey {d.survey}: no such file")
    try:
        survey = load_survey(d.survey)
    except ConfigError as exc:  # named by its own file; say where it came from
        raise ConfigError(f"[data] survey: {exc}") from None
    true = survey.model.build()
    if d.crop_x or d.crop_z:
        true = true.crop(tuple(d.crop_x) or None, tuple(d.crop_z) or None)  # type: ignore[arg-type]
    acq = survey.acquisition.build(true)
    source = config.source.resolved(acq.freq)
    acq = dataclasses.replace(acq, freq=source.freq, delay=source.delay)
    options = dataclasses.replace(survey.modelling, source_sigma=config.source.sigma)
    start = _start_model(d, true)
    _check_inside(acq, start, f"{d.survey} [acquisition]")  # before simulating
    return true, acq, options, source, start


def planned_inputs(config: InvertConfig) -> InversionInputs:
    """The inputs a ``[data] survey`` config will have, with zero traces in place of
    the simulated ones: their shapes size the run before anything is simulated."""
    true, acq, _, source, start = _survey(config)
    shape = (acq.n_shots, acq.n_receivers, acq.nt)
    gathers = ShotGathers(
        data=np.zeros(shape, dtype=np.float32),
        source_x=acq.source_x,
        source_z=acq.source_z,
        receiver_x=acq.receiver_x,
        receiver_z=acq.receiver_z,
        dt=acq.dt,
    )
    return InversionInputs(gathers, start, source, true)


def check_memory(config: InvertConfig, inputs: InversionInputs, device: str | None) -> None:
    """The run's memory checks (what it holds, then a step's, as :func:`invert` makes
    them) on ``inputs``' shapes; raises when the run would not fit."""
    dev = resolve_device(device)
    check_fits(stored_estimate(config, inputs.gathers, inputs.start), dev, "the run")
    # A step of the scattered form is the total form's plus an interpolation per
    # point; its background is in the stored estimate. Sizing it as the total form
    # spares computing the background with Deepwave just to throw it away.
    physics = dataclasses.replace(config.physics, formulation="total")
    sizing = dataclasses.replace(config, physics=physics)
    check_fits(inversion_problem(sizing, inputs, dev).memory_estimate(), dev, "the run")


def _start_model(d: DataConfig, true: VelocityModel | None) -> VelocityModel:
    """The starting model ``[nz, nx]`` (m/s) the ``[data]`` section asks for."""
    if d.start:
        _check_kind(d.start, "start", "velocity model")
        start = read_velocity(d.start, dx=d.dx, dz=d.dz)
    elif d.start_velocity > 0:
        if true is None:
            raise ConfigError("start_velocity needs a grid: give a survey or a true_model")
        start = homogeneous(true.nx, true.nz, true.dx, d.start_velocity, dz=true.dz)
        start = dataclasses.replace(start, x0=true.x0, z0=true.z0)
    else:
        if true is None:
            raise ConfigError("start_smoothing needs a true model: give a survey or a true_model")
        start = true.smoothed(d.start_smoothing)
    return start


def _check_inside(acq: Acquisition, start: VelocityModel, what: str) -> None:
    """Every source and receiver on the starting model's grid: a receiver off it
    would train the wavefield where c is undefined."""
    try:
        acq.check_inside(start)
    except ModelError as exc:
        raise ConfigError(f"[data] {what}: {exc} (the starting model's grid)") from None


def _check_kind(path: str, key: str, want: str) -> None:
    """Refuse a SEG-Y file of the other kind (a velocity model given as shot gathers,
    or the reverse), recognised from its headers and values."""
    kind = summarise(path).kind
    if kind != want and kind in ("velocity model", "shot gathers"):
        raise ConfigError(f"[data] {key} {path}: looks like a {kind} file, not {want}")


def holdout_mask(gathers: ShotGathers, every: int) -> np.ndarray:
    """``[shot, receiver]`` bool: True for held-out receivers (every k-th, offset k//2)."""
    r = np.arange(gathers.data.shape[1])[None, :]
    held = (r % every == every // 2) if every else np.zeros_like(r, dtype=bool)
    return np.broadcast_to(held, gathers.receiver_mask.shape) & gathers.receiver_mask


def stored_estimate(
    config: InvertConfig, gathers: ShotGathers, start: VelocityModel | None = None
) -> MemoryEstimate:
    """Memory an inversion holds whatever the batch (points, weights, data samples,
    torch's runtime; the background on ``start``'s grid when scattered): known before
    anything is allocated."""
    # Every sample of the gathers: an upper bound, as held-out receivers are left out.
    parts = point_parts(config.collocation.n_points, config.weighting.name, gathers.data.size)
    if config.physics.formulation == "scattered" and start is not None:
        # u0_tt of every shot on the grid (float32), built from snapshots of the same size.
        t_max = config.data.max_time or float(gathers.times[-1])
        nt = min(int(np.ceil(t_max / gathers.dt - 1e-9)) + 1, gathers.nt)
        frames = gathers.n_shots * nt * start.nz * start.nx * 4
        parts["background"] = frames * (1 + 1 / config.physics.background_stride)
    return MemoryEstimate(parts, knobs=MEMORY_KNOBS + ("[physics] background_stride",))


# ------------------------------------------------------------------------------------
# The problem
# ------------------------------------------------------------------------------------


def inversion_problem(
    config: InvertConfig, inputs: InversionInputs, device: torch.device
) -> WaveProblem:
    """The inversion as a :class:`WaveProblem`: a wavefield per shot, a velocity
    network around the starting model, and the traces of the receivers not held
    out (:func:`holdout_mask`) as the data term."""
    g, src = inputs.gathers, inputs.source
    start = with_water(inputs.start, config.velocity)
    t_max = float(g.times[-1]) if not config.data.max_time else config.data.max_time
    box = Box(float(start.x[0]), float(start.x[-1]), float(start.z[0]), float(start.z[-1]), t_max)
    held = holdout_mask(g, config.data.holdout_every)
    use = ~held & g.receiver_mask
    pts, shot, observed = _data_samples(g, use, t_max, config.data.time_stride)
    background, fitted, ratio = None, observed, 1.0
    if config.physics.formulation == "scattered":
        background, d0 = background_wavefield(start, inputs, t_max, config.physics)
        d0 = dataclasses.replace(g, data=d0)
        fitted = observed - _data_samples(d0, use, t_max, config.data.time_stride)[2]
        ratio = _rms(fitted) / (_rms(observed) or 1.0)
    data = TraceSamples(
        torch.tensor(pts, dtype=torch.float32),
        torch.tensor(shot, dtype=torch.long),
        torch.tensor(fitted, dtype=torch.float32),
    )
    real = g.receiver_mask
    return WaveProblem(
        box=box,
        shots=Shots(tuple(g.source_x.tolist()), tuple(g.source_z.tolist()), src),
        make_velocity=lambda scales: VelocityNet(scales, start, config.velocity),
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
        background=background,
        data_reference=float(np.mean(observed.astype(np.float64) ** 2)),
        amplitude_ratio=max(ratio, MIN_AMPLITUDE_RATIO),
    )


#: The smallest scattered-field amplitude relative to the total's: a start that
#: explains nearly all the data must not shrink the network's output to nothing.
MIN_AMPLITUDE_RATIO = 0.05


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values, dtype=np.float64)))) if values.size else 0.0


def background_wavefield(
    start: VelocityModel, inputs: InversionInputs, t_max: float, physics: PhysicsOptions
) -> tuple[Background, np.ndarray]:
    """The scattered formulation's background: u0_tt of every shot in ``start`` on its
    grid at every ``physics.background_stride``-th sample up to ``t_max`` (s), and
    the start's traces d0 ``[shot, receiver, time]`` at the observed receivers."""
    g, s = inputs.gathers, inputs.source
    acq = acquisition_from_gathers(g, s)
    options = ModellingOptions(source_sigma=s.sigma)
    n = min(int(np.ceil(t_max / g.dt - 1e-9)) + 1, g.nt)
    times = np.arange(n) * g.dt
    u_tt = np.stack(
        [
            second_time_derivative(
                wavefield_snapshots(start, acq, times, options, shot=k).values, g.dt
            )
            for k in range(g.n_shots)
        ]
    )
    d0 = predicted_gathers(start, inputs).data
    k = physics.background_stride
    return Background(start, u_tt[:, ::k], g.dt * k), d0


@torch.no_grad()
def implied_velocity(problem: WaveProblem, mask: Tensor | None = None) -> dict[str, float]:
    """The constant velocity (m/s) that the current wavefield implies over the
    collocation points in ``mask`` ``[N]`` (all by default), by least squares in
    each residual form, with L = ∇²u − s: ``c² = Σ u_tt L / Σ L²`` (velocity form)
    and ``c² = Σ u_tt² / Σ u_tt L`` (slowness form). On a region of known
    velocity, a gap between the two, or to the truth, measures how far the
    wavefield is from letting the velocity network move without bias."""
    pts = problem.points.points
    assert problem.points.shot is not None
    shot = problem.points.shot
    if mask is not None:
        pts, shot = pts[mask], shot[mask]
    s = problem.shots.source
    utt, lap = [], []
    for p_, s_ in zip(pts.split(8192), shot.split(8192), strict=True):
        with torch.enable_grad():
            der = problem.wavefield.derivatives(p_, s_)
        dens = gaussian_source_density(p_, problem.source_x[s_], problem.source_z[s_], s)
        utt.append(der.u_tt.detach().double())
        lap.append((der.laplacian.detach() - dens).double())
    u, ell = torch.cat(utt), torch.cat(lap)
    cross = float((u * ell).sum())
    return {
        "velocity_form": float(np.sqrt(max(cross / float((ell * ell).sum()), 0.0))),
        "slowness_form": float(np.sqrt(max(float((u * u).sum()) / cross, 0.0)))
        if cross > 0
        else float("nan"),
    }


def _data_samples(
    gathers: ShotGathers, use: np.ndarray, t_max: float, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trace samples as points ``[M, 3]`` (x, z, t), shots ``[M]`` and values ``[M]``
    for receivers where ``use`` ``[shot, receiver]`` holds, times ≤ t_max."""
    times = gathers.times
    k = np.nonzero(times <= t_max + 1e-9)[0][::stride]
    s_idx, r_idx = np.nonzero(use)
    rx = gathers.receiver_x[s_idx, r_idx]
    rz = gathers.receiver_z[s_idx, r_idx]
    n_t = len(k)
    pts = np.stack([np.repeat(rx, n_t), np.repeat(rz, n_t), np.tile(times[k], len(s_idx))], axis=1)
    obs = gathers.data[s_idx[:, None], r_idx[:, None], k[None, :]].reshape(-1)
    return pts, np.repeat(s_idx, n_t), obs


# ------------------------------------------------------------------------------------
# Scoring and the run
# ------------------------------------------------------------------------------------


def predicted_gathers(model: VelocityModel, inputs: InversionInputs) -> ShotGathers:
    """Deepwave traces of ``model`` at every receiver of the observed gathers, with
    the inversion's source (zero at padded receivers)."""
    g, s = inputs.gathers, inputs.source
    acq = acquisition_from_gathers(g, s)
    sim = simulate(model, acq, ModellingOptions(source_sigma=s.sigma))
    data = np.where(g.receiver_mask[..., None], sim.data, 0.0)
    return dataclasses.replace(g, data=data)


def illuminated_part(inputs: InversionInputs, fraction: float = 0.25) -> np.ndarray:
    """``[nz, nx]`` bool: the illuminated part of the starting model's grid (see
    :mod:`seispinn.modelling.illumination`) for the observed acquisition."""
    g, s = inputs.gathers, inputs.source
    acq = acquisition_from_gathers(g, s)
    values = illumination(inputs.start, acq, ModellingOptions(source_sigma=s.sigma))
    return illuminated_mask(values, fraction)


def model_scores(
    model: VelocityModel,
    inputs: InversionInputs,
    held_out: np.ndarray,
    illuminated: np.ndarray | None = None,
) -> tuple[dict[str, float], ShotGathers]:
    """Velocity scores (when the truth is known) and held-out data misfits of
    ``model`` and of the start; also returns ``model``'s predicted gathers."""
    out: dict[str, float] = {}
    if inputs.true is not None:
        out.update(
            velocity_scores(model.values, inputs.start.values, inputs.true.values, illuminated)
        )
    predicted = predicted_gathers(model, inputs)
    if held_out.any():
        observed = inputs.gathers.data
        out["heldout_misfit"] = heldout_misfit(predicted.data, observed, held_out)
        start_pred = predicted_gathers(inputs.start, inputs)
        out["start_heldout_misfit"] = heldout_misfit(start_pred.data, observed, held_out)
    return out, predicted


def write_run_outputs(
    run_dir: Path,
    model: VelocityModel,
    inputs: InversionInputs,
    held_out: np.ndarray,
    predicted: ShotGathers | None,
    metrics: dict[str, Any],
) -> None:
    """What every inversion run folder holds besides its training state:
    ``inverted.sgy``, ``start.sgy``, ``observed.sgy`` and ``true.sgy`` (unless already
    there: `seispinn plot run` needs them), ``heldout.npy``, ``predicted.sgy`` and
    ``metrics.json``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_velocity(run_dir / "inverted.sgy", model)
    write_velocity(run_dir / "start.sgy", inputs.start)
    if not (run_dir / "observed.sgy").exists():
        write_shots(run_dir / "observed.sgy", inputs.gathers)
    if inputs.true is not None and not (run_dir / "true.sgy").exists():
        write_velocity(run_dir / "true.sgy", inputs.true)
    np.save(run_dir / "heldout.npy", held_out)
    if predicted is not None:
        write_shots(run_dir / "predicted.sgy", predicted)
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))


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
    """Train the wavefield and velocity networks; return the inverted model and scores.

    With ``run_dir`` it writes checkpoints, ``history.json``, γ snapshots,
    ``inverted.sgy``, ``predicted.sgy`` (Deepwave traces of the inverted model),
    ``heldout.npy`` and ``metrics.json``; ``resume`` continues from the checkpoint.
    ``illuminated`` ``[nz, nx]`` (computed when None) restricts the second set of
    velocity scores.
    """
    config = config or InvertConfig()
    run_dir = Path(run_dir) if run_dir is not None else None
    run, model = _rounds(inputs, config, run_dir, resume, device)
    held = holdout_mask(inputs.gathers, config.data.holdout_every)
    if run.final is None:  # not rank 0: rank 0 scores and writes
        return InversionResult(model, {}, run.history, run.problem, held)
    metrics = dict(run.metrics)
    # The comparison table's names for the METHOD §4 source measures.
    metrics["gamma_enrichment"] = metrics["enrichment"]
    metrics["source_residual_ratio"] = metrics["source_to_other"]
    metrics["gamma_rank_correlation"] = metrics["rank_correlation"]
    metrics["gamma_effective_share"] = metrics["effective_share"]
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


def round_folder(run_dir: Path, k: int, rounds: int) -> Path:
    """Where round ``k`` of ``rounds`` trains: ``run_dir/round{k}``, or ``run_dir``
    itself for a one-round inversion."""
    return run_dir / f"round{k}" if rounds > 1 else run_dir


def resume_folder(run_dir: Path, rounds: int) -> Path:
    """The folder whose checkpoint a resumed inversion continues from: the last round
    that has one (round 0's when none has, so that a refusal names it)."""
    started = [
        k for k in range(rounds) if (round_folder(run_dir, k, rounds) / "checkpoint.pt").exists()
    ]
    return round_folder(run_dir, max(started, default=0), rounds)


def _clear_rounds(run_dir: Path) -> None:
    """Remove the round folders an earlier run left in ``run_dir``: a later resume
    would take their checkpoints and finished rounds for this run's."""
    if is_main():
        for old in run_dir.glob("round*"):
            if old.is_dir():
                shutil.rmtree(old)
    barrier()


def _rounds(
    inputs: InversionInputs,
    config: InvertConfig,
    run_dir: Path | None,
    resume: bool,
    device: str | None,
) -> tuple[PINNRun, VelocityModel]:
    """Train ``config.physics.rounds`` rounds, each from the previous round's velocity
    (a fresh background and fresh networks); return the last round's run, with the
    rounds' histories and train times joined, and the final model.

    With several rounds, round k trains in ``run_dir/round{k}`` (its checkpoint and
    history) and marks itself done with ``velocity.npy``; γ snapshots of every round
    go to ``run_dir/gamma`` numbered by the global step. ``resume`` skips the rounds
    that are done and resumes the one that is not."""
    rounds, steps = config.physics.rounds, config.training.steps
    if run_dir is not None and rounds > 1 and not resume:
        _clear_rounds(run_dir)
    current, history, seconds = inputs, [], 0.0
    run: PINNRun | None = None
    model = inputs.start
    for k in range(rounds):
        sub = round_folder(run_dir, k, rounds) if run_dir is not None else None
        done = sub / "velocity.npy" if (sub is not None and rounds > 1) else None
        if resume and done is not None and done.exists() and k < rounds - 1:
            model = dataclasses.replace(inputs.start, values=np.load(done))
            current = dataclasses.replace(inputs, start=model)
            done_history = json.loads((sub / "history.json").read_text())  # type: ignore[operator]
            history += done_history
            seconds += done_history[-1]["seconds"] if done_history else 0.0
            continue
        here = current
        run = run_problem(
            lambda dev, here=here: inversion_problem(config, here, dev),
            config.training,
            config.weighting.name,
            stored=stored_estimate(config, inputs.gathers, inputs.start),
            config=config,
            run_dir=sub,
            resume=resume and sub is not None and (sub / "checkpoint.pt").exists(),
            device=device,
            gamma_dir=run_dir / "gamma" if run_dir is not None else None,
            step_offset=k * steps,
            tensorboard_dir=run_dir / "tensorboard" if run_dir is not None else None,
            snapshot_extras=_velocity_extras(inputs),
        )
        model = run.problem.velocity.to_model(inputs.start)
        offset = [dict(h, step=h["step"] + k * steps, round=k) for h in run.history]
        if done is not None and is_main():
            write_text_atomic(sub / "history.json", json.dumps(offset))  # type: ignore[operator]
            _save_npy_atomic(done, model.values)
        history += offset
        seconds += offset[-1]["seconds"] if offset else 0.0  # every rank has its history
        current = dataclasses.replace(inputs, start=model)
    assert run is not None
    if rounds > 1:
        run.history = history
        run.metrics.update(steps=steps * rounds, train_seconds=seconds, rounds=rounds)
        if run_dir is not None and is_main():
            write_text_atomic(run_dir / "history.json", json.dumps(history, indent=1))
    return run, model


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


def _save_npy_atomic(path: Path, values: np.ndarray) -> None:
    """Write, flush to disk, then rename: a kill leaves the old file or the new one."""
    tmp = path.with_suffix(".tmp.npy")
    with open(tmp, "wb") as f:
        np.save(f, values)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


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
            check_memory(config, planned_inputs(config), device)
        inputs = prepare_inputs(config, run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        if config_path is not None and not resume:
            shutil.copyfile(config_path, run_dir / "config.toml")
        barrier()
    else:
        barrier()
        inputs = prepare_inputs(config, run_dir, write=False)
    return invert(inputs, config, run_dir, resume=resume, device=device)
