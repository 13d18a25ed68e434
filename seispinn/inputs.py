"""What an inversion starts from, for every method alike: the observed traces, the
starting model, the source, the truth when it is known, what is known of the model
beforehand, and which receivers are held out for scoring.

The ``[data]`` section (:class:`DataConfig`) names them: SEG-Y shots and a starting
model, or a survey TOML whose shots are simulated (and written to the run folder). The
PINN inversion and the finite-difference baselines read the same inputs through
:func:`prepare_inputs`, hold out the same receivers (:func:`holdout_mask`) and are
scored the same way (:mod:`seispinn.diagnostics.scoring`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seispinn.acquisition import Acquisition, Source
from seispinn.errors import ConfigError, ModelError
from seispinn.gathers import ShotGathers
from seispinn.io import read_shots, read_velocity, summarise, write_shots, write_velocity
from seispinn.modelling.simulate import acquisition_from_gathers, simulate
from seispinn.models import ModelPrior, VelocityModel, homogeneous
from seispinn.survey import load_survey

__all__ = [
    "DataConfig",
    "DATA_FILES",
    "InversionInputs",
    "prepare_inputs",
    "planned_inputs",
    "holdout_mask",
    "trace_samples",
    "resolve_data_paths",
    "POINT_SOURCE_REFUSED",
]

#: The ``[data]`` keys that name files.
DATA_FILES = ("survey", "shots", "start", "true_model")

POINT_SOURCE_REFUSED = (
    "[source] sigma = 0 (a point source) is for finite differences only: "
    "the PINN's source term needs a width sigma > 0 (m)"
)


@dataclass(frozen=True)
class DataConfig:
    """Where the observed traces and the starting model come from (``[data]``).

    A config's ``[data]`` section starts from these defaults, not from the default
    inversion's data (the shipped demo crop, :class:`seispinn.experiments.invert.InvertConfig`):
    a file that names its own shots inherits no survey.

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
        holdout_every: every k-th receiver of each shot is held out of every
            method's misfit and used for scoring (0: none).
        max_time: use traces up to this time (s); 0: the whole record.
        time_stride: use every k-th sample of the traces.
        water_depth, water_velocity, c_min, c_max: what is known of the model
            (:class:`seispinn.models.ModelPrior`): a water layer that no method
            inverts, and the velocity range every method stays in.
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
    water_depth: float = 0.0
    water_velocity: float = 0.0
    c_min: float = 0.0
    c_max: float = 0.0

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
        try:
            _ = self.prior
        except ModelError as exc:
            raise ValueError(str(exc)) from None

    @property
    def prior(self) -> ModelPrior:
        """The water layer and the velocity range, as every method reads them."""
        return ModelPrior(self.water_depth, self.water_velocity, self.c_min, self.c_max)


def resolve_data_paths(
    data: DataConfig, config_path: str | Path | None, overrides: dict[str, Any], default: Path
) -> DataConfig:
    """``data`` with its relative file names made usable: relative to the config
    file's folder when the file gave them, as given (relative to the current folder)
    when a command-line override did, and relative to ``default`` (a folder) when
    they are the defaults."""
    from seispinn.config import read_toml

    given = read_toml(config_path).get("data", {}) if config_path is not None else {}
    overridden = overrides.get("data", {})
    fixed = {}
    for key in DATA_FILES:
        value = getattr(data, key)
        if not value or Path(value).is_absolute() or key in overridden:
            continue  # an override is relative to where the command runs
        base = Path(config_path).parent if key in given else default  # type: ignore[arg-type]
        fixed[key] = str(base / value)
    return dataclasses.replace(data, **fixed)


@dataclass(frozen=True)
class InversionInputs:
    """What an inversion starts from.

    Attributes:
        gathers: observed traces ``[shot, receiver, time]``.
        start: starting velocity ``[nz, nx]`` (m/s); its grid is the output grid.
        source: the source, resolved (σ, freq, delay all set).
        true: the true model for scoring, if known.
        prior: the known water layer and velocity range.
    """

    gathers: ShotGathers
    start: VelocityModel
    source: Source
    true: VelocityModel | None = None
    prior: ModelPrior = ModelPrior()

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", self.source.resolved())

    @property
    def bounds(self) -> tuple[float, float]:
        """The velocity range (m/s) every method keeps the model in."""
        return self.prior.bounds(self.start)


def prepare_inputs(
    data: DataConfig, source: Source, run_dir: Path | None = None, *, write: bool = True
) -> InversionInputs:
    """Read (or synthesise, write and read back) the observed data and the models.
    ``write=False`` reads synthetic data another process wrote to ``run_dir``."""
    d, src = data, source
    if not src.sigma > 0:
        raise ConfigError(POINT_SOURCE_REFUSED)
    if d.true_model:
        _check_kind(d.true_model, "true_model", "velocity model")
    true = read_velocity(d.true_model, dx=d.dx, dz=d.dz) if d.true_model else None
    if d.survey:
        true, acq, options, resolved, start = _survey(d, src)
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
        resolved = src.resolved()
        start = _start_model(d, true)
    where = d.shots or f"{d.survey} [acquisition]"
    _check_inside(acquisition_from_gathers(gathers, resolved), start, where)
    _check_bounds(d, start)
    return InversionInputs(gathers, start, resolved, true, d.prior)


def _survey(d: DataConfig, src: Source):
    """The ``[data] survey``'s truth (cropped), acquisition, modelling options,
    resolved source and starting model, its geometry checked: everything but the
    simulation."""
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
    source = src.resolved(acq.freq)
    acq = dataclasses.replace(acq, freq=source.freq, delay=source.delay)
    options = dataclasses.replace(survey.modelling, source_sigma=src.sigma)
    start = _start_model(d, true)
    _check_inside(acq, start, f"{d.survey} [acquisition]")  # before simulating
    _check_bounds(d, start)
    return true, acq, options, source, start


def planned_inputs(data: DataConfig, source: Source) -> InversionInputs:
    """The inputs a ``[data] survey`` config will have, with zero traces in place of
    the simulated ones: their shapes size the run before anything is simulated."""
    true, acq, _, resolved, start = _survey(data, source)
    shape = (acq.n_shots, acq.n_receivers, acq.nt)
    gathers = ShotGathers(
        data=np.zeros(shape, dtype=np.float32),
        source_x=acq.source_x,
        source_z=acq.source_z,
        receiver_x=acq.receiver_x,
        receiver_z=acq.receiver_z,
        dt=acq.dt,
    )
    return InversionInputs(gathers, start, resolved, true, data.prior)


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


def _check_bounds(d: DataConfig, start: VelocityModel) -> None:
    """The starting model lies inside the velocity range every method keeps."""
    try:
        d.prior.bounds(start)
    except ModelError as exc:
        raise ConfigError(f"[data] {exc}") from None


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


def trace_samples(
    gathers: ShotGathers, use: np.ndarray, t_max: float, stride: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trace samples as points ``[M, 3]`` (x, z, t), shots ``[M]`` and values ``[M]``
    for receivers where ``use`` ``[shot, receiver]`` holds, every ``stride``-th
    sample with t ≤ ``t_max`` (s)."""
    times = gathers.times
    k = np.nonzero(times <= t_max + 1e-9)[0][::stride]
    s_idx, r_idx = np.nonzero(use)
    rx = gathers.receiver_x[s_idx, r_idx]
    rz = gathers.receiver_z[s_idx, r_idx]
    n_t = len(k)
    pts = np.stack([np.repeat(rx, n_t), np.repeat(rz, n_t), np.tile(times[k], len(s_idx))], axis=1)
    obs = gathers.data[s_idx[:, None], r_idx[:, None], k[None, :]].reshape(-1)
    return pts, np.repeat(s_idx, n_t), obs
