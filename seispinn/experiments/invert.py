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
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seispinn.config import load_sections
from seispinn.diagnostics.gamma import GammaSnapshot, source_measures
from seispinn.errors import ConfigError, ModelError
from seispinn.experiments.forward import WeightingConfig, causal_weights, gamma_snapshot
from seispinn.gathers import ShotGathers
from seispinn.io import read_shots, read_velocity, write_shots, write_velocity
from seispinn.memory import MemoryEstimate, check_fits, point_parts, step_parts
from seispinn.modelling.analytic import peak_amplitude
from seispinn.modelling.fwi import FWIOptions, acquisition_from_gathers
from seispinn.modelling.illumination import illuminated_mask, illumination
from seispinn.modelling.simulate import ModellingOptions, simulate
from seispinn.models import VelocityModel, homogeneous
from seispinn.pinn.collocation import Box, CollocationSet, batch_ids, sample_shot_collocation
from seispinn.pinn.distributed import barrier, is_main, shard
from seispinn.pinn.training import StepLosses, TrainOptions, train
from seispinn.pinn.velocity import VelocityNet, VelocityNetOptions
from seispinn.pinn.wave import (
    MultiShotWavefield,
    Scales,
    WaveSource,
    gaussian_source_density,
    wave_residual,
)
from seispinn.pinn.weighting import PointLoss, PointWeighting, make_weighting
from seispinn.survey import load_survey

__all__ = [
    "DataConfig",
    "SourceConfig",
    "PhysicsConfig",
    "NetworkConfig",
    "CollocationConfig",
    "InvertConfig",
    "load_invert_config",
    "InversionInputs",
    "prepare_inputs",
    "InversionProblem",
    "InversionResult",
    "invert",
    "run_inversion",
    "anomaly_region",
    "implied_velocity",
    "velocity_scores",
    "predicted_gathers",
    "heldout_misfit",
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
class SourceConfig:
    """The source the data were made with: Gaussian width σ (m), Ricker peak frequency
    (Hz) and delay (s); 0 takes the survey's frequency and a delay of 1.5/freq."""

    sigma: float = 20.0
    freq: float = 0.0
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.sigma <= 0 or self.freq < 0 or self.delay < 0:
            raise ValueError("sigma must be positive, freq and delay non-negative")


@dataclass(frozen=True)
class NetworkConfig:
    """Wavefield network (exact initial condition); ``shots``: ``'shared'`` (the
    source x as an input) or ``'per_shot'`` (one network per shot)."""

    width: int = 128
    depth: int = 4
    activation: str = "tanh"
    fourier_features: int | None = None
    fourier_scale: float = 1.0
    shots: str = "shared"

    def __post_init__(self) -> None:
        if self.shots not in ("shared", "per_shot"):
            raise ValueError(f"shots must be 'shared' or 'per_shot', got {self.shots!r}")


@dataclass(frozen=True)
class CollocationConfig:
    """PDE points (shared equally by the shots), their near-source share and radius
    (m), the PDE batch and the data batch (trace samples per step)."""

    n_points: int = 40000
    near_source_fraction: float = 0.17
    near_source_radius: float = 50.0
    batch_size: int = 4096
    data_batch: int = 4096

    def __post_init__(self) -> None:
        if min(self.n_points, self.batch_size, self.data_batch) < 1:
            raise ValueError("n_points, batch_size and data_batch must be >= 1")


@dataclass(frozen=True)
class PhysicsConfig:
    """How the PDE residual is written. ``'velocity'``: r = u_tt − c²(∇²u − s);
    ``'slowness'``: the same divided by (c/c₀)², c₀ the starting velocity at the
    sources, so the source term no longer scales with c and cannot pull the
    velocity network to shrink the residual where the source acts;
    ``'symmetric'``: divided by c/c₀, i.e. c₀(u_tt/c − c(∇²u − s)). Errors in the
    network's u_tt bias a least-squares c upward in the slowness form, errors
    in ∇²u bias it downward in the velocity form; the symmetric form sits between."""

    residual: str = "slowness"

    def __post_init__(self) -> None:
        if self.residual not in ("velocity", "slowness", "symmetric"):
            raise ValueError(
                f"residual must be 'velocity', 'slowness' or 'symmetric', got {self.residual!r}"
            )


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
    source: SourceConfig = field(default_factory=lambda: SourceConfig(40.0, 5.0, 0.24))
    physics: PhysicsConfig = field(default_factory=PhysicsConfig)
    network: NetworkConfig = field(default_factory=lambda: NetworkConfig(width=64, depth=3))
    velocity: VelocityNetOptions = field(
        default_factory=lambda: VelocityNetOptions(width=24, depth=2)
    )
    collocation: CollocationConfig = field(
        default_factory=lambda: CollocationConfig(n_points=8000, batch_size=1024, data_batch=1024)
    )
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
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
    "source": SourceConfig,
    "physics": PhysicsConfig,
    "network": NetworkConfig,
    "velocity": VelocityNetOptions,
    "collocation": CollocationConfig,
    "weighting": WeightingConfig,
    "fwi": FWIOptions,
    "training": TrainOptions,
}


def load_invert_config(
    path: str | Path | None = None, overrides: dict[str, dict[str, Any]] | None = None
) -> InvertConfig:
    """An :class:`InvertConfig` from a TOML file (None: defaults) with section overrides.
    Relative paths in ``[data]`` are taken relative to the config file."""
    # [data] starts afresh: a file naming its shots must not inherit the default survey.
    config = load_sections(InvertConfig(), _SECTIONS, path, overrides, fresh=frozenset({"data"}))
    if config.weighting.name not in ("uniform", "gradnorm", "sa", "rba"):
        raise ConfigError(f"{path or 'config'} [weighting] name: unknown {config.weighting.name!r}")
    if path is None:
        return config
    base = Path(path).parent
    d = config.data
    fixed = {
        k: str(base / v) if v and not Path(v).is_absolute() and not Path(v).exists() else v
        for k, v in (
            ("survey", d.survey),
            ("shots", d.shots),
            ("start", d.start),
            ("true_model", d.true_model),
        )
    }
    return dataclasses.replace(config, data=dataclasses.replace(d, **fixed))


# ------------------------------------------------------------------------------------
# Inputs: observed gathers, starting model, optional truth
# ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class InversionInputs:
    """What an inversion starts from.

    Attributes:
        gathers: observed traces ``[shot, receiver, time]``.
        start: starting velocity ``[nz, nx]`` (m/s); its grid is the output grid.
        source: the source (σ, freq, delay all set).
        true: the true model for scoring, if known.
    """

    gathers: ShotGathers
    start: VelocityModel
    source: SourceConfig
    true: VelocityModel | None = None


def prepare_inputs(
    config: InvertConfig, run_dir: Path | None = None, *, write: bool = True
) -> InversionInputs:
    """Read (or synthesise, write and read back) the observed data and the models.
    ``write=False`` reads synthetic data another process wrote to ``run_dir``."""
    d, src = config.data, config.source
    true = read_velocity(d.true_model, dx=d.dx, dz=d.dz) if d.true_model else None
    if d.survey:
        survey = load_survey(d.survey)
        true = survey.model.build()
        if d.crop_x or d.crop_z:
            true = true.crop(tuple(d.crop_x) or None, tuple(d.crop_z) or None)  # type: ignore[arg-type]
        acq = survey.acquisition.build(true)
        freq = src.freq or acq.freq
        delay = src.delay or 1.5 / freq
        acq = dataclasses.replace(acq, freq=freq, delay=delay)
        options = dataclasses.replace(survey.modelling, source_sigma=src.sigma)
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
    else:
        gathers = read_shots(d.shots)
        if not src.freq:
            raise ConfigError(
                "[source] freq is needed with SEG-Y shots (the wavelet is not stored)"
            )
        freq, delay = src.freq, src.delay or 1.5 / src.freq
    if d.start:
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
    try:  # a receiver off the grid would train the wavefield where c is undefined
        acquisition_from_gathers(gathers, freq, delay).check_inside(start)
    except ModelError as exc:
        shots = d.shots or f"{d.survey} [acquisition]"
        raise ConfigError(f"[data] {shots}: {exc} (the starting model's grid)") from None
    source = SourceConfig(src.sigma, freq, delay)
    return InversionInputs(gathers, start, source, true)


def _holdout_mask(gathers: ShotGathers, every: int) -> np.ndarray:
    """``[shot, receiver]`` bool: True for held-out receivers (every k-th, offset k//2)."""
    r = np.arange(gathers.data.shape[1])[None, :]
    held = (r % every == every // 2) if every else np.zeros_like(r, dtype=bool)
    return np.broadcast_to(held, gathers.receiver_mask.shape) & gathers.receiver_mask


MEMORY_KNOBS = ("[collocation] batch_size", "data_batch", "n_points", "[network] width/depth")


def stored_estimate(config: InvertConfig, gathers: ShotGathers) -> MemoryEstimate:
    """Memory an inversion holds whatever the batch (points, weights, data samples,
    torch's runtime): known before anything is allocated."""
    parts = point_parts(config.collocation.n_points, config.weighting.name)
    # x, z, t, an int64 shot and the observed value per sample; an upper bound, as
    # held-out receivers are left out.
    parts["data samples"] = gathers.data.size * (3 * 4 + 8 + 4)
    return MemoryEstimate(parts, knobs=MEMORY_KNOBS)


# ------------------------------------------------------------------------------------
# The problem
# ------------------------------------------------------------------------------------


class InversionProblem:
    """Loss terms of the PINN inversion at a step (implements ``training.Problem``).

    Terms: ``pde`` (per-point weighted, residual in units of U/T²) and ``data``
    (mean squared misfit at the used receivers, divided by the observed traces'
    mean square, so 1 means "predicts zero").
    """

    def __init__(self, config: InvertConfig, inputs: InversionInputs, device: torch.device):
        self.config, self.inputs, self.device = config, inputs, device
        g, start, src = inputs.gathers, inputs.start, inputs.source
        x_min, x_max = float(start.x[0]), float(start.x[-1])
        z_min, z_max = float(start.z[0]), float(start.z[-1])
        t_max = float(g.times[-1]) if not config.data.max_time else config.data.max_time
        self.box = Box(x_min, x_max, z_min, z_max, t_max)
        c_src = float(np.median(start.at(g.source_x, g.source_z)))
        self.c_ref = c_src
        self.scales = Scales(
            xc=(x_min + x_max) / 2,
            zc=(z_min + z_max) / 2,
            lx=(x_max - x_min) / 2,
            lz=(z_max - z_min) / 2,
            t_max=t_max,
            u_scale=peak_amplitude(src.sigma, src.freq, src.delay, c_src, t_max, 400),
        )
        torch.manual_seed(config.training.seed)
        n = config.network
        self.wavefield = MultiShotWavefield(
            self.scales,
            [float(x) for x in g.source_x],
            n.shots,
            width=n.width,
            depth=n.depth,
            activation=n.activation,
            fourier_features=n.fourier_features,
            fourier_scale=n.fourier_scale,
        ).to(device)
        self.velocity = VelocityNet(self.scales, start, config.velocity).to(device)
        c = config.collocation
        self.points: CollocationSet = sample_shot_collocation(
            self.box,
            c.n_points,
            sources=list(zip(g.source_x.tolist(), g.source_z.tolist(), strict=True)),
            near_source_fraction=c.near_source_fraction,
            near_source_radius=c.near_source_radius,
            seed=config.training.seed,
        ).to(device)
        self.source_x = torch.tensor(g.source_x, dtype=torch.float32, device=device)
        self.source_z = torch.tensor(g.source_z, dtype=torch.float32, device=device)
        self.weighting: PointWeighting = make_weighting(
            config.weighting.name, c.n_points, config.weighting.options()
        ).to(device)
        self.held_out = _holdout_mask(g, config.data.holdout_every)
        pts, shot, obs = _data_samples(
            g, ~self.held_out & g.receiver_mask, t_max, config.data.time_stride
        )
        self.data_points = torch.tensor(pts, dtype=torch.float32, device=device)
        self.data_shot = torch.tensor(shot, dtype=torch.long, device=device)
        self.data_obs = torch.tensor(obs, dtype=torch.float32, device=device)
        self.data_ms = float(np.mean(obs.astype(np.float64) ** 2)) or 1.0
        self._point_residual = _PointResidual(self)

    def trainable(self) -> dict[str, torch.nn.Module]:
        return {"wavefield": self.wavefield, "velocity": self.velocity}

    def residual(self, points: Tensor, shot: Tensor) -> Tensor:
        """PDE residual ``[N]`` at physical points ``[N, 3]`` of shots ``[N]`` (U/T²)."""
        s = self.inputs.source
        der = self.wavefield.derivatives(points, shot)
        c = self.velocity(points[:, 0], points[:, 1])
        dens = gaussian_source_density(
            points, self.source_x[shot], self.source_z[shot], s.sigma, s.freq, s.delay
        )
        r = wave_residual(der.u_tt, der.laplacian, c, dens)
        if self.config.physics.residual == "slowness":
            r = r * (self.c_ref / c) ** 2
        elif self.config.physics.residual == "symmetric":
            r = r * (self.c_ref / c)
        return r * (self.scales.t_max**2 / self.scales.u_scale)

    def data_misfit(self, ids: Tensor, denominator: int | None = None) -> Tensor:
        """Mean squared trace misfit over data samples ``ids``, over the observed
        mean square (dimensionless); with ``denominator``, the sum over ``ids`` ÷ it
        (a rank's share of a global batch)."""
        u = self.wavefield(self.data_points[ids], self.data_shot[ids])
        sq = (u - self.data_obs[ids]) ** 2
        return (sq.mean() if denominator is None else sq.sum() / denominator) / self.data_ms

    def _owner(self, ids: Tensor, shot: Tensor) -> Tensor:
        """Owner keys of items ``ids``: the shot when there are at least as many shots
        as ranks (shots are independent, so each rank takes whole shots), else the id."""
        return shot[ids] if len(self.source_x) >= shard().world else ids

    def losses(self, step: int) -> StepLosses:
        c, seed = self.config.collocation, self.config.training.seed
        assert self.points.shot is not None
        sh = shard()
        batch = batch_ids(step, len(self.points), c.batch_size, seed).to(self.device)
        ids = batch[sh.owns(self._owner(batch, self.points.shot))]  # this rank's share
        pts = self.points.points[ids]
        shot = self.points.shot[ids]
        sq = self.residual(pts, shot) ** 2
        w = self.config.weighting
        causal = causal_weights(sq, pts[:, 2], self.scales.t_max, w.causal_bins, w.causal_eps)
        dbatch = batch_ids(step, len(self.data_obs), c.data_batch, seed + 1).to(self.device)
        dids = dbatch[sh.owns(self._owner(dbatch, self.data_shot))]
        terms = {
            "pde": self.weighting.weighted_loss(sq * causal, ids, len(batch)),
            "data": self.data_misfit(dids, len(dbatch)),
        }
        point_loss = None
        if w.name == "gradnorm":
            packed = torch.cat([pts, shot[:, None].float()], dim=1)
            point_loss = PointLoss(self._point_residual, self._point_loss, packed)
        return StepLosses(terms, ids, sq.detach(), point_loss)

    def _point_loss(self, params: dict[str, Tensor], packed: Tensor) -> Tensor:
        return torch.func.functional_call(self._point_residual, params, (packed,))

    @property
    def source_radius(self) -> float:
        """Radius (m) of the source region of METHOD §4: the near-source sampling
        radius, at least 2σ of the Gaussian source."""
        return max(self.config.collocation.near_source_radius, 2 * self.inputs.source.sigma)

    @property
    def active_until(self) -> float:
        """End (s) of the wavelet's active window (as :meth:`WaveSource.active_until`)."""
        s = self.inputs.source
        return WaveSource(0.0, 0.0, s.sigma, s.freq, s.delay).active_until()

    @torch.no_grad()  # the jets carry the input derivatives forward: no graph needed
    def all_residuals(self, chunk: int = 8192) -> Tensor:
        """PDE residual ``[N]`` over the whole collocation set (detached)."""
        assert self.points.shot is not None
        return torch.cat(
            [
                self.residual(p, s)
                for p, s in zip(
                    self.points.points.split(chunk), self.points.shot.split(chunk), strict=True
                )
            ]
        )

    def memory_estimate(self) -> MemoryEstimate:
        """Estimated peak memory of a training step (see :mod:`seispinn.memory`):
        the batches' autograd bytes measured on probe batches, the rest by size."""
        assert self.points.shot is not None
        c = self.config.collocation
        pts, shot = self.points.points, self.points.shot
        parts = step_parts(
            list(self.trainable().values()),
            lambda n: self.residual(pts[:n], shot[:n]).square().sum(),
            min(c.batch_size, c.n_points),
            gradnorm=self.config.weighting.name == "gradnorm",
            data=lambda n: self.data_misfit(torch.arange(n, device=self.device)),
            data_batch=c.data_batch,
            world=shard().world,
        )
        stored = stored_estimate(self.config, self.inputs.gathers)
        return MemoryEstimate({**parts, **stored.parts}, knobs=MEMORY_KNOBS)

    def gamma_snapshot(self, step: int) -> GammaSnapshot:
        """γ and |r| over all collocation points now (see :class:`GammaSnapshot`)."""
        g = self.inputs.gathers
        real = g.receiver_mask
        return gamma_snapshot(
            step,
            self.points,
            self.weighting,
            self.all_residuals(),
            sources=np.stack([g.source_x, g.source_z], 1),
            receivers=np.unique(np.stack([g.receiver_x[real], g.receiver_z[real]], 1), axis=0),
            source_radius=self.source_radius,
            active_until=self.active_until,
        )


class _PointResidual(torch.nn.Module):
    """r² ``[N]`` of packed points ``[N, 4]`` (x, z, t, shot) as a module whose
    parameters are both networks' (for grad-norm's per-point gradients)."""

    def __init__(self, problem: InversionProblem) -> None:
        super().__init__()
        self.wavefield = problem.wavefield
        self.velocity = problem.velocity
        self._problem = [problem]  # a list: not a submodule

    def forward(self, packed: Tensor) -> Tensor:
        return self._problem[0].residual(packed[:, :3], packed[:, 3].long()) ** 2


@torch.no_grad()
def implied_velocity(problem: InversionProblem, mask: Tensor | None = None) -> dict[str, float]:
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
    s = problem.inputs.source
    utt, lap = [], []
    for p_, s_ in zip(pts.split(8192), shot.split(8192), strict=True):
        with torch.enable_grad():
            der = problem.wavefield.derivatives(p_, s_)
        dens = gaussian_source_density(
            p_, problem.source_x[s_], problem.source_z[s_], s.sigma, s.freq, s.delay
        )
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


def anomaly_region(true: VelocityModel, start: VelocityModel, fraction: float = 0.2) -> np.ndarray:
    """``[nz, nx]`` bool: where the truth differs from the start by more than
    ``fraction`` of the largest difference (the anomaly, for an anomaly test)."""
    diff = np.abs(true.values - start.values)
    return diff > fraction * diff.max() if diff.max() > 0 else np.zeros_like(diff, dtype=bool)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def velocity_scores(
    inverted: VelocityModel,
    start: VelocityModel,
    true: VelocityModel,
    illuminated: np.ndarray | None = None,
) -> dict[str, float]:
    """METHOD §4 velocity errors of the inverted and starting models: relative L2
    and RMSE (m/s) over the whole model and, given ``illuminated`` ``[nz, nx]``,
    over that part; inside :func:`anomaly_region`, the error ratio and reduction."""
    out: dict[str, float] = {}
    parts = {"": np.ones(true.shape, dtype=bool)}
    if illuminated is not None:
        parts["_illuminated"] = illuminated
    for tag, mask in parts.items():
        for name, m in (("", inverted), ("start_", start)):
            diff = (m.values - true.values)[mask]
            out[f"{name}velocity_error{tag}"] = _rel(m.values[mask], true.values[mask])
            out[f"{name}velocity_rmse{tag}"] = float(np.sqrt(np.mean(diff.astype(np.float64) ** 2)))
    region = anomaly_region(true, start)
    if region.any():
        err_in = np.linalg.norm((inverted.values - true.values)[region])
        err_start = np.linalg.norm((start.values - true.values)[region])
        out["anomaly_error_ratio"] = float(err_in / max(err_start, 1e-30))
        out["anomaly_error_reduction"] = 1.0 - out["anomaly_error_ratio"]
    return out


def predicted_gathers(model: VelocityModel, inputs: InversionInputs) -> ShotGathers:
    """Deepwave traces of ``model`` at every receiver of the observed gathers, with
    the inversion's source (zero at padded receivers)."""
    g, s = inputs.gathers, inputs.source
    acq = acquisition_from_gathers(g, s.freq, s.delay)
    sim = simulate(model, acq, ModellingOptions(source_sigma=s.sigma))
    data = np.where(g.receiver_mask[..., None], sim.data, 0.0)
    return dataclasses.replace(g, data=data)


def heldout_misfit(predicted: ShotGathers, observed: ShotGathers, held_out: np.ndarray) -> float:
    """Relative L2 misfit of ``predicted`` to ``observed`` traces at the receivers
    where ``held_out`` ``[shot, receiver]`` holds (NaN when there are none)."""
    if not held_out.any():
        return float("nan")
    return _rel(predicted.data[held_out], observed.data[held_out])


def illuminated_part(inputs: InversionInputs, fraction: float = 0.25) -> np.ndarray:
    """``[nz, nx]`` bool: the illuminated part of the starting model's grid (see
    :mod:`seispinn.modelling.illumination`) for the observed acquisition."""
    g, s = inputs.gathers, inputs.source
    acq = acquisition_from_gathers(g, s.freq, s.delay)
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
        out.update(velocity_scores(model, inputs.start, inputs.true, illuminated))
    predicted = predicted_gathers(model, inputs)
    if held_out.any():
        out["heldout_misfit"] = heldout_misfit(predicted, inputs.gathers, held_out)
        start_pred = predicted_gathers(inputs.start, inputs)
        out["start_heldout_misfit"] = heldout_misfit(start_pred, inputs.gathers, held_out)
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
    """The inverted model ``[nz, nx]`` (m/s) on the start's grid, the metrics and
    the training history."""

    model: VelocityModel
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    problem: InversionProblem


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
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    check_fits(stored_estimate(config, inputs.gathers), dev, "the run")  # before allocating
    problem = InversionProblem(config, inputs, dev)
    main = is_main()
    check_fits(problem.memory_estimate(), dev, "the run", show=main and config.training.progress)
    if run_dir is not None and main:
        (run_dir / "gamma").mkdir(parents=True, exist_ok=True)
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=1))

    def snapshot(step: int) -> None:
        if run_dir is not None:
            problem.gamma_snapshot(step).save(run_dir / "gamma" / f"step_{step:06d}.npz")

    t0 = time.perf_counter()
    history = train(problem, config.training, run_dir, resume=resume, on_snapshot=snapshot)
    train_seconds = time.perf_counter() - t0
    model = problem.velocity.to_model(inputs.start)
    if not main:  # rank 0 scores and writes
        return InversionResult(model, {}, history, problem)
    metrics: dict[str, Any] = {
        "weighting": config.weighting.name,
        "seed": config.training.seed,
        "steps": config.training.steps,
        "train_seconds": history[-1]["seconds"] if history else train_seconds,
        "final_losses": {
            k[5:]: v for k, v in (history[-1] if history else {}).items() if k.startswith("loss_")
        },
    }
    final = problem.gamma_snapshot(config.training.steps)
    if run_dir is not None:
        final.save(run_dir / "gamma" / f"step_{config.training.steps:06d}.npz")
    measures = source_measures(final)
    metrics["gamma_enrichment"] = measures["enrichment"]
    metrics["source_residual_ratio"] = measures["source_to_other"]
    predicted = None
    if score_heldout:
        if illuminated is None and inputs.true is not None:
            illuminated = illuminated_part(inputs)
        scores, predicted = model_scores(model, inputs, problem.held_out, illuminated)
        metrics.update(scores)
    elif inputs.true is not None:
        metrics.update(velocity_scores(model, inputs.start, inputs.true))
    if run_dir is not None:
        write_run_outputs(run_dir, model, inputs, problem.held_out, predicted, metrics)
    return InversionResult(model, metrics, history, problem)


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
        run_dir.mkdir(parents=True, exist_ok=True)
        if config_path is not None and not resume:
            shutil.copyfile(config_path, run_dir / "config.toml")
        inputs = prepare_inputs(config, run_dir)
        barrier()
    else:
        barrier()
        inputs = prepare_inputs(config, run_dir, write=False)
    return invert(inputs, config, run_dir, resume=resume, device=device)
