"""The forward wave-equation PINN: one source, a given velocity, scored against Deepwave.

A run is described by a TOML config (see ``examples/forward_homogeneous.toml``)
and writes a run folder: ``config.toml`` (a copy), ``checkpoint.pt``,
``history.json``, ``gamma/step_XXXXXX.npz`` (per-point weights with their points),
``metrics.json`` (scores) and ``snapshots.npz`` (PINN and reference fields).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seispinn.acquisition import Acquisition, Source
from seispinn.config import load_sections
from seispinn.diagnostics.measures import relative_l2
from seispinn.errors import ConfigError
from seispinn.experiments.run import check_training, run_problem
from seispinn.memory import PINN_KNOBS, MemoryEstimate, point_parts
from seispinn.modelling.simulate import ModellingOptions, wavefield_snapshots
from seispinn.models import VelocityModel
from seispinn.pinn.collocation import Box, CollocationOptions, CollocationSet, sample_collocation
from seispinn.pinn.formulations import PhysicsOptions, TotalField
from seispinn.pinn.problem import Shots, WaveProblem
from seispinn.pinn.training import TrainOptions
from seispinn.pinn.velocity import GridVelocity
from seispinn.pinn.wave import NetworkOptions
from seispinn.pinn.weighting import GradNormOptions, SAOptions, WeightingOptions
from seispinn.survey import ModelSpec

__all__ = [
    "SourceConfig",
    "DomainConfig",
    "ReferenceConfig",
    "FORWARD_RECIPE",
    "ForwardConfig",
    "load_forward_config",
    "reference_model",
    "forward_problem",
    "predict",
    "run_forward",
    "cached_reference_snapshots",
]


@dataclass(frozen=True)
class SourceConfig:
    """The ``[source]`` section of a forward run: the position (m) of the one source
    and its :class:`Source` (Gaussian width σ in m, Ricker peak frequency in Hz,
    delay in s)."""

    x: float = 0.0
    z: float = 0.0
    sigma: float = 35.0
    freq: float = 10.0
    delay: float = 0.15

    def __post_init__(self) -> None:
        if self.sigma <= 0 or self.freq <= 0 or self.delay < 0:
            raise ValueError("sigma and freq must be positive, delay non-negative")

    @property
    def source(self) -> Source:
        return Source(self.sigma, self.freq, self.delay)


@dataclass(frozen=True)
class DomainConfig:
    """The scored region (m), the window T (s), and the collocation margin (m) around it."""

    x_min: float = -500.0
    x_max: float = 500.0
    z_min: float = -500.0
    z_max: float = 500.0
    t_max: float = 0.35
    margin: float = 0.0

    def __post_init__(self) -> None:
        if not (self.x_max > self.x_min and self.z_max > self.z_min):
            raise ValueError("the scored region is empty (need x_max > x_min, z_max > z_min)")
        if self.t_max <= 0 or self.margin < 0:
            raise ValueError("t_max must be positive and margin non-negative")

    @property
    def scored(self) -> Box:
        return Box(self.x_min, self.x_max, self.z_min, self.z_max, self.t_max)


@dataclass(frozen=True)
class ReferenceConfig:
    """Deepwave reference: grid spacing (m), time step (s), snapshot times (s), and the
    radius (m) of the source region for the residual measures (docs/method.md, Measures)."""

    dx: float = 5.0
    dt: float = 0.0005
    snapshot_times: tuple[float, ...] = (0.10, 0.15, 0.20, 0.25, 0.30, 0.35)
    source_radius: float = 100.0
    padding: float = 600.0


@dataclass(frozen=True)
class ForwardRecipe:
    """Where the forward PINN's measured recipe differs from the inversion's defaults,
    in one place: a larger network per shot (128×4) on 36,000 points in batches of
    4,096 (70 m around the source) — a whole wavefield from the source out, not a
    scattered field; the total field in the velocity form with open edges (the
    velocity is fixed, and the scored region lies inside the box); 4,000 Adam steps
    at 1e-3 → 1e-4; and SA with Adam ascent, unnormalised. With no data term every
    mask that follows its residual loses here (the inversion's bounded ascent
    included), and the unnormalised mask's growth acts as a rising step for the
    network's Adam, which is most of what this recipe wins by (docs/forward-pinn.md).
    """

    network: NetworkOptions = NetworkOptions(width=128, depth=4, shots="per_shot")
    collocation: CollocationOptions = CollocationOptions(
        n_points=36000, near_source_radius=70.0, batch_size=4096, data_batch=4096
    )
    weighting: WeightingOptions = WeightingOptions(
        sa=SAOptions(optimizer="adam", normalise=False), gradnorm=GradNormOptions(every=50)
    )
    physics: PhysicsOptions = PhysicsOptions(
        residual="velocity", formulation="total", edges="open", edge_points=1024, rounds=1
    )
    training: TrainOptions = TrainOptions(steps=4000, snapshot_every=1000)


#: The forward PINN's defaults (see :class:`ForwardRecipe`).
FORWARD_RECIPE = ForwardRecipe()


@dataclass(frozen=True)
class ForwardConfig:
    """All sections of a forward run; the network, collocation, weighting and physics
    sections are the wave PINN's own option classes, with the forward recipe's
    values (:data:`FORWARD_RECIPE`) as defaults."""

    model: ModelSpec = field(default_factory=lambda: ModelSpec(generator="homogeneous"))
    source: SourceConfig = field(default_factory=SourceConfig)
    domain: DomainConfig = field(default_factory=DomainConfig)
    network: NetworkOptions = FORWARD_RECIPE.network
    collocation: CollocationOptions = FORWARD_RECIPE.collocation
    weighting: WeightingOptions = FORWARD_RECIPE.weighting
    physics: PhysicsOptions = FORWARD_RECIPE.physics
    training: TrainOptions = FORWARD_RECIPE.training
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)


_SECTIONS: dict[str, type] = {
    "model": ModelSpec,
    "source": SourceConfig,
    "domain": DomainConfig,
    "network": NetworkOptions,
    "collocation": CollocationOptions,
    "weighting": WeightingOptions,
    "physics": PhysicsOptions,
    "training": TrainOptions,
    "reference": ReferenceConfig,
}


def load_forward_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> ForwardConfig:
    """A :class:`ForwardConfig` from a TOML file (None: defaults) with nested overrides
    (``{"weighting": {"sa": {"lr": 1e-3}}}``, see :func:`seispinn.config.parse_overrides`)."""
    config = load_sections(ForwardConfig(), _SECTIONS, path, overrides)
    where = str(path) if path is not None else "config"
    check_training(config.training, ("wavefield",), where)
    _check(config, where)
    return config


def _check(config: ForwardConfig, where: str) -> None:
    d, m, s = config.domain, config.model, config.source
    if not (d.x_min <= s.x <= d.x_max and d.z_min <= s.z <= d.z_max):
        raise ConfigError(f"{where} [source]: ({s.x}, {s.z}) m lies outside the scored region")
    if any(t < 0 or t > d.t_max for t in config.reference.snapshot_times):
        raise ConfigError(f"{where} [reference] snapshot_times must lie in [0, t_max]")
    if config.physics.formulation != TotalField.name:
        raise ConfigError(
            f"{where} [physics] formulation: a forward run models the total field "
            f"(got {config.physics.formulation!r})"
        )
    if m.generator == "layered" and not m.interfaces:
        raise ConfigError(f"{where} [model]: a layered model needs interfaces and velocities")


# ------------------------------------------------------------------------------------
# The model on the reference grid: coordinates are centred on the scored region's
# frame, so a config's positions are plain metres in that frame.
# ------------------------------------------------------------------------------------


def reference_model(config: ForwardConfig) -> VelocityModel:
    """The velocity model on the Deepwave grid, covering the collocation box plus padding."""
    d, r = config.domain, config.reference
    pad = d.margin + r.padding
    x0, z0 = d.x_min - pad, d.z_min - pad
    nx = int(math.ceil((d.x_max + pad - x0) / r.dx)) + 1
    nz = int(math.ceil((d.z_max + pad - z0) / r.dx)) + 1
    spec = dataclasses.replace(config.model, nx=nx, nz=nz, dx=r.dx)
    # Layer depths and anomaly centres in the config are in the run's frame; the
    # generators count from the grid's corner.
    if spec.generator in ("layered", "gaussian_anomaly"):
        spec = dataclasses.replace(
            spec,
            interfaces=tuple(z - z0 for z in spec.interfaces),
            centre=tuple(np.subtract(spec.centre, (x0, z0))) if spec.centre else (),
        )
    base = spec.build()
    return VelocityModel(base.values, r.dx, r.dx, x0=x0, z0=z0)


def reference_snapshots(
    config: ForwardConfig, model: VelocityModel
) -> tuple[np.ndarray, np.ndarray]:
    """Deepwave snapshots ``[time, nz, nx]`` of the configured source, and their times."""
    s, r = config.source, config.reference
    nt = int(round(max(r.snapshot_times) / r.dt)) + 2
    acq = Acquisition([s.x], [s.z], [s.x], [s.z], r.dt, nt, s.freq, s.delay)
    snaps = wavefield_snapshots(
        model, acq, list(r.snapshot_times), ModellingOptions(source_sigma=s.sigma, accuracy=8)
    )
    return snaps.values, snaps.times


def cached_reference_snapshots(
    config: ForwardConfig, model: VelocityModel, cache: Path | None
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`reference_snapshots`, read from / written to ``cache`` (a folder) under
    a hash of everything the reference depends on, so a study over seeds and
    weightings models each case once (and a machine without Deepwave can score)."""
    if cache is None:
        return reference_snapshots(config, model)
    key = {k: dataclasses.asdict(getattr(config, k)) for k in ("model", "source", "domain")}
    key["reference"] = dataclasses.asdict(config.reference)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = cache / f"reference_{digest}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["values"], f["times"]
    values, times = reference_snapshots(config, model)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, values=values, times=times)
    os.replace(tmp, path)  # atomic: parallel runs of one case may race to write it
    return values, times


def forward_problem(
    config: ForwardConfig, model: VelocityModel, device: torch.device
) -> WaveProblem:
    """The forward PINN as a :class:`WaveProblem`: one shot, the given velocity, no data."""
    d, s, c = config.domain, config.source, config.collocation
    box = d.scored.grown(d.margin)
    velocity = GridVelocity(model)
    c_src = float(velocity(torch.tensor([s.x]), torch.tensor([s.z])))

    def sampler(seed: int) -> CollocationSet:
        return sample_collocation(
            box,
            c.n_points,
            sources=[(s.x, s.z)],
            near_source_fraction=c.near_source_fraction,
            near_source_radius=c.near_source_radius,
            seed=seed,
        )

    return WaveProblem(
        box=box,
        shots=Shots((s.x,), (s.z,), s.source),
        make_velocity=lambda scales: velocity,
        formulation=TotalField([s.x], [s.z], s.source),
        network=config.network,
        collocation=c,
        weighting=config.weighting,
        physics=config.physics,
        seed=config.training.seed,
        device=device,
        c_ref=c_src,
        sampler=sampler,
        source_radius=config.reference.source_radius,
    )


@torch.no_grad()
def predict(problem: WaveProblem, xs: np.ndarray, zs: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Shot 0's u ``[time, nz, nx]`` on the grid ``zs × xs`` (m) at ``times`` (s)."""
    zz, xx = np.meshgrid(zs, xs, indexing="ij")
    out = np.zeros((len(times), len(zs), len(xs)), dtype=np.float32)
    shot = torch.zeros(xx.size, dtype=torch.long, device=problem.device)
    for k, t in enumerate(times):
        pts = np.stack([xx.ravel(), zz.ravel(), np.full(xx.size, t)], axis=1)
        u = problem.wavefield(torch.tensor(pts, dtype=torch.float32, device=problem.device), shot)
        out[k] = u.cpu().numpy().reshape(zz.shape)
    return out


def score(
    config: ForwardConfig,
    problem: WaveProblem,
    model: VelocityModel,
    ref: np.ndarray,
    times: np.ndarray,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Wavefield relative L2 over the scored region, overall and per snapshot."""
    d = config.domain
    ix = (model.x >= d.x_min - 1e-6) & (model.x <= d.x_max + 1e-6)
    iz = (model.z >= d.z_min - 1e-6) & (model.z <= d.z_max + 1e-6)
    ref_in = ref[:, iz][:, :, ix]
    pred = predict(problem, model.x[ix], model.z[iz], times)
    per = [relative_l2(p, r) for p, r in zip(pred, ref_in, strict=True)]
    return (
        {
            "wavefield_error": relative_l2(pred, ref_in),
            "per_snapshot": per,
            "snapshot_times": [float(t) for t in times],
        },
        pred,
        ref_in,
    )


def run_forward(
    config: ForwardConfig,
    run_dir: Path | None = None,
    *,
    resume: bool = False,
    config_path: Path | None = None,
    device: str | None = None,
    reference_cache: Path | None = None,
) -> dict[str, Any]:
    """Train the forward PINN and score it against Deepwave; return the metrics.

    With ``run_dir`` the run folder described in the module docstring is written;
    with ``reference_cache`` the Deepwave snapshots are reused across runs.
    """
    model = reference_model(config)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if config_path is not None and not resume:
            shutil.copyfile(config_path, run_dir / "config.toml")
    stored = MemoryEstimate(
        point_parts(config.collocation.n_points, config.weighting.name), PINN_KNOBS
    )
    run = run_problem(
        lambda dev: forward_problem(config, model, dev),
        config.training,
        config.weighting.name,
        stored=stored,
        config=config,
        run_dir=run_dir,
        resume=resume,
        device=device,
    )
    ref, times = cached_reference_snapshots(config, model, reference_cache)
    scores, pred, ref_in = score(config, run.problem, model, ref, times)
    metrics: dict[str, Any] = {**run.metrics, **scores}
    if run_dir is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        np.savez_compressed(run_dir / "snapshots.npz", pinn=pred, reference=ref_in, times=times)
    return metrics
