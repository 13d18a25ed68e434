"""A synthetic survey described by a TOML file: model, acquisition, modelling.

Example (``data/survey.toml``)::

    [model]
    generator = "marmousi_style"   # or "homogeneous", "layered", "gaussian_anomaly"
    nx = 201
    nz = 61
    dx = 10.0
    seed = 7

    [acquisition]
    n_shots = 5
    n_receivers = 99
    freq = 8.0        # Ricker peak frequency, Hz
    dt = 0.002        # s
    duration = 1.5    # s

    [modelling]
    accuracy = 8
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from seispinn import models as models_mod
from seispinn.acquisition import Acquisition, surface_line, with_well_receivers
from seispinn.config import build_section, read_toml
from seispinn.errors import ConfigError
from seispinn.modelling.simulate import ModellingOptions

__all__ = ["ModelSpec", "AcquisitionSpec", "Survey", "load_survey"]


_GENERATORS = ("marmousi_style", "homogeneous", "layered", "gaussian_anomaly")


@dataclass(frozen=True)
class ModelSpec:
    """How to build a synthetic model (sizes in cells, spacing in metres, velocities in m/s)."""

    generator: str = "marmousi_style"
    nx: int = 201
    nz: int = 61
    dx: float = 10.0
    seed: int = 0
    velocity: float = 2000.0
    interfaces: tuple[float, ...] = ()
    velocities: tuple[float, ...] = ()
    amplitude: float = 300.0
    centre: tuple[float, ...] = ()
    radius: float = 100.0

    def __post_init__(self) -> None:
        if self.nx < 2 or self.nz < 2:
            raise ValueError(f"nx and nz must be at least 2 (got {self.nx}, {self.nz})")
        if self.dx <= 0:
            raise ValueError(f"dx must be positive (got {self.dx})")
        if self.generator not in _GENERATORS:
            raise ValueError(
                f"unknown generator {self.generator!r} (choose from {', '.join(_GENERATORS)})"
            )
        if self.centre and len(self.centre) != 2:
            raise ValueError(f"centre must be [x, z] in metres, got {list(self.centre)}")

    def build(self) -> models_mod.VelocityModel:
        """The velocity model ``[nz, nx]`` (m/s)."""
        if self.generator == "marmousi_style":
            return models_mod.marmousi_style(self.nx, self.nz, self.dx, seed=self.seed)
        if self.generator == "homogeneous":
            return models_mod.homogeneous(self.nx, self.nz, self.dx, self.velocity)
        if self.generator == "layered":
            return models_mod.layered(
                self.nx, self.nz, self.dx, list(self.interfaces), list(self.velocities)
            )
        if self.generator == "gaussian_anomaly":
            centre = self.centre or (self.dx * (self.nx - 1) / 2, self.dx * (self.nz - 1) / 2)
            return models_mod.gaussian_anomaly(
                self.nx, self.nz, self.dx, self.velocity, self.amplitude, tuple(centre), self.radius
            )
        raise AssertionError(self.generator)  # unreachable: checked in __post_init__


@dataclass(frozen=True)
class AcquisitionSpec:
    """A surface line: counts, Ricker peak frequency (Hz), dt and duration (s), depths (m);
    optionally ``well_receivers`` receivers in each vertical well at ``well_x`` (m)."""

    n_shots: int = 5
    n_receivers: int = 99
    freq: float = 8.0
    dt: float = 0.002
    duration: float = 1.5
    source_depth: float | None = None
    receiver_depth: float | None = None
    well_x: tuple[float, ...] = ()
    well_receivers: int = 0

    def __post_init__(self) -> None:
        if self.well_receivers < 0 or (self.well_x and self.well_receivers == 0):
            raise ValueError("wells need well_receivers >= 1 (receivers per well)")
        if self.n_shots < 1 or self.n_receivers < 1:
            raise ValueError("n_shots and n_receivers must be at least 1")
        if self.freq <= 0 or self.dt <= 0 or self.duration <= 0:
            raise ValueError("freq, dt and duration must be positive")

    def build(self, model: models_mod.VelocityModel) -> Acquisition:
        acq = surface_line(
            model,
            n_shots=self.n_shots,
            n_receivers=self.n_receivers,
            freq=self.freq,
            dt=self.dt,
            duration=self.duration,
            source_depth=self.source_depth,
            receiver_depth=self.receiver_depth,
        )
        return with_well_receivers(acq, model, list(self.well_x), self.well_receivers)


@dataclass(frozen=True)
class Survey:
    model: ModelSpec = field(default_factory=ModelSpec)
    acquisition: AcquisitionSpec = field(default_factory=AcquisitionSpec)
    modelling: ModellingOptions = field(default_factory=ModellingOptions)


def load_survey(path: str | Path) -> Survey:
    """Read a survey TOML (sections ``model``, ``acquisition``, ``modelling``)."""
    raw = read_toml(path)
    known = {"model", "acquisition", "modelling"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{path}: unknown section [{unknown[0]}] (known: {', '.join(sorted(known))})"
        )
    survey = Survey(
        model=build_section(ModelSpec, raw.get("model"), f"{path} [model]"),
        acquisition=build_section(AcquisitionSpec, raw.get("acquisition"), f"{path} [acquisition]"),
        modelling=build_section(ModellingOptions, raw.get("modelling"), f"{path} [modelling]"),
    )
    _check_inside(survey, f"{path} [acquisition]")
    return survey


def _check_inside(survey: Survey, where: str) -> None:
    """Sources, receivers and wells inside the [model] grid, or the key that is not."""
    m, a = survey.model, survey.acquisition
    x_max, z_max = (m.nx - 1) * m.dx, (m.nz - 1) * m.dx
    for key, depth in (("source_depth", a.source_depth), ("receiver_depth", a.receiver_depth)):
        if depth is not None and not 0 <= depth <= z_max:
            raise ConfigError(f"{where} {key}: {depth} m lies outside the model (z 0..{z_max} m)")
    for x in a.well_x:
        if not 0 <= x <= x_max:
            raise ConfigError(f"{where} well_x: {x} m lies outside the model (x 0..{x_max} m)")
