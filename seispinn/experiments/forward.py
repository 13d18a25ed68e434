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
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from seispinn.acquisition import Acquisition
from seispinn.config import load_sections
from seispinn.diagnostics.gamma import GammaSnapshot, source_measures
from seispinn.errors import ConfigError
from seispinn.memory import MemoryEstimate, check_fits, point_parts, step_parts
from seispinn.modelling.analytic import peak_amplitude
from seispinn.modelling.simulate import ModellingOptions, wavefield_snapshots
from seispinn.models import VelocityModel
from seispinn.pinn.collocation import Box, CollocationSet, batch_ids, sample_collocation
from seispinn.pinn.distributed import all_reduce_, is_main, shard
from seispinn.pinn.training import StepLosses, TrainOptions, train
from seispinn.pinn.wave import GridVelocity, Scales, WavefieldNet, WaveSource, wave_residual
from seispinn.pinn.weighting import (
    GradNormOptions,
    PointLoss,
    PointWeighting,
    RBAOptions,
    SAOptions,
    make_weighting,
)
from seispinn.survey import ModelSpec

__all__ = [
    "SourceConfig",
    "DomainConfig",
    "NetworkConfig",
    "CollocationConfig",
    "WeightingConfig",
    "ReferenceConfig",
    "ForwardConfig",
    "load_forward_config",
    "WaveForwardProblem",
    "run_forward",
    "causal_weights",
    "cached_reference_snapshots",
]


@dataclass(frozen=True)
class SourceConfig:
    """Source position (m), Gaussian width σ (m), Ricker peak frequency (Hz) and delay (s)."""

    x: float = 0.0
    z: float = 0.0
    sigma: float = 35.0
    freq: float = 10.0
    delay: float = 0.15

    def __post_init__(self) -> None:
        if self.sigma <= 0 or self.freq <= 0 or self.delay < 0:
            raise ValueError("sigma and freq must be positive, delay non-negative")


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
class NetworkConfig:
    """Wavefield network: see :class:`seispinn.pinn.wave.WavefieldNet`."""

    width: int = 128
    depth: int = 4
    activation: str = "tanh"
    fourier_features: int | None = None
    fourier_scale: float = 1.0
    exact_ic: bool = True


@dataclass(frozen=True)
class CollocationConfig:
    """Collocation set size, near-source share, batch size; soft-IC points and weight."""

    n_points: int = 36000
    near_source_fraction: float = 0.17
    near_source_radius: float = 70.0
    batch_size: int = 4096
    n_ic: int = 4000
    ic_weight: float = 10.0

    def __post_init__(self) -> None:
        if self.n_points < 1 or self.batch_size < 1 or self.n_ic < 1:
            raise ValueError("n_points, batch_size and n_ic must be >= 1")


@dataclass(frozen=True)
class WeightingConfig:
    """Per-point weighting of the PDE term and its options (see docs/weighting.md).

    ``causal_eps`` > 0 adds causal weighting (Wang, Sankaran & Perdikaris 2024) on
    top: the window is cut into ``causal_bins`` time bins and points in bin i are
    multiplied by ``exp(−ε Σ_{k<i} L_k)``, L_k the batch's mean squared residual
    in bin k, so late times train only once earlier ones are fitted.
    """

    name: str = "sa"
    sa_mask: str = "square"
    sa_init: float = 1.0
    sa_optimizer: str = "adam"
    sa_lr: float = 5e-3
    sa_normalise: bool = False
    causal_eps: float = 0.0
    causal_bins: int = 16
    gradnorm_every: int = 50
    gradnorm_alpha: float = 0.9
    gradnorm_eps: float = 1e-8
    rba_gamma: float = 0.999
    rba_eta: float = 0.01

    def __post_init__(self) -> None:
        if self.causal_eps < 0 or self.causal_bins < 1:
            raise ValueError("causal_eps must be >= 0 and causal_bins >= 1")

    def options(self) -> object | None:
        if self.name == "sa":
            return SAOptions(
                self.sa_mask, self.sa_init, self.sa_optimizer, self.sa_lr, self.sa_normalise
            )
        if self.name == "gradnorm":
            return GradNormOptions(
                eps=self.gradnorm_eps,
                alpha=self.gradnorm_alpha,
                every=self.gradnorm_every,
            )
        if self.name == "rba":
            return RBAOptions(gamma=self.rba_gamma, eta=self.rba_eta)
        return None


@dataclass(frozen=True)
class ReferenceConfig:
    """Deepwave reference: grid spacing (m), time step (s), snapshot times (s), and the
    radius (m) of the source region for the residual measures (METHOD §4)."""

    dx: float = 5.0
    dt: float = 0.0005
    snapshot_times: tuple[float, ...] = (0.10, 0.15, 0.20, 0.25, 0.30, 0.35)
    source_radius: float = 100.0
    padding: float = 600.0


@dataclass(frozen=True)
class ForwardConfig:
    model: ModelSpec = field(default_factory=lambda: ModelSpec(generator="homogeneous"))
    source: SourceConfig = field(default_factory=SourceConfig)
    domain: DomainConfig = field(default_factory=DomainConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    collocation: CollocationConfig = field(default_factory=CollocationConfig)
    weighting: WeightingConfig = field(default_factory=WeightingConfig)
    training: TrainOptions = field(
        default_factory=lambda: TrainOptions(steps=4000, snapshot_every=1000)
    )
    reference: ReferenceConfig = field(default_factory=ReferenceConfig)


_SECTIONS: dict[str, type] = {
    "model": ModelSpec,
    "source": SourceConfig,
    "domain": DomainConfig,
    "network": NetworkConfig,
    "collocation": CollocationConfig,
    "weighting": WeightingConfig,
    "training": TrainOptions,
    "reference": ReferenceConfig,
}


def load_forward_config(
    path: str | Path | None = None, overrides: dict[str, dict[str, Any]] | None = None
) -> ForwardConfig:
    """A :class:`ForwardConfig` from a TOML file (None: defaults) with section overrides."""
    config = load_sections(ForwardConfig(), _SECTIONS, path, overrides)
    where = str(path) if path is not None else "config"
    _check(config, where)
    return config


def _check(config: ForwardConfig, where: str) -> None:
    d, m, s = config.domain, config.model, config.source
    if not (d.x_min <= s.x <= d.x_max and d.z_min <= s.z <= d.z_max):
        raise ConfigError(f"{where} [source]: ({s.x}, {s.z}) m lies outside the scored region")
    if config.weighting.name not in ("uniform", "gradnorm", "sa", "rba"):
        raise ConfigError(
            f"{where} [weighting] name: unknown strategy {config.weighting.name!r} "
            "(uniform, gradnorm, sa, rba)"
        )
    config.weighting.options()  # validates the strategy's own options
    if any(t < 0 or t > d.t_max for t in config.reference.snapshot_times):
        raise ConfigError(f"{where} [reference] snapshot_times must lie in [0, t_max]")
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


FORWARD_KNOBS = ("[collocation] batch_size", "n_points", "[network] width/depth")


class WaveForwardProblem:
    """Loss terms of the forward wave PINN at a step (implements ``training.Problem``)."""

    def __init__(self, config: ForwardConfig, model: VelocityModel, device: torch.device) -> None:
        self.config = config
        d, s, c = config.domain, config.source, config.collocation
        self.box = d.scored.grown(d.margin)
        self.velocity = GridVelocity(model).to(device)
        c_src = float(
            self.velocity(torch.tensor([s.x], device=device), torch.tensor([s.z], device=device))
        )
        self.scales = Scales(
            xc=(self.box.x_min + self.box.x_max) / 2,
            zc=(self.box.z_min + self.box.z_max) / 2,
            lx=(self.box.x_max - self.box.x_min) / 2,
            lz=(self.box.z_max - self.box.z_min) / 2,
            t_max=d.t_max,
            u_scale=peak_amplitude(s.sigma, s.freq, s.delay, c_src, d.t_max),
        )
        torch.manual_seed(config.training.seed)
        net = config.network
        self.net = WavefieldNet(
            self.scales,
            width=net.width,
            depth=net.depth,
            activation=net.activation,
            fourier_features=net.fourier_features,
            fourier_scale=net.fourier_scale,
            exact_ic=net.exact_ic,
        ).to(device)
        self.source = WaveSource(s.x, s.z, s.sigma, s.freq, s.delay)
        self.points: CollocationSet = sample_collocation(
            self.box,
            c.n_points,
            sources=[(s.x, s.z)],
            near_source_fraction=c.near_source_fraction,
            near_source_radius=c.near_source_radius,
            seed=config.training.seed,
        ).to(device)
        self.weighting: PointWeighting = make_weighting(
            config.weighting.name, c.n_points, config.weighting.options()
        ).to(device)
        gen = torch.Generator().manual_seed(config.training.seed + 1)
        ic = torch.rand(c.n_ic, 3, generator=gen)
        lo = torch.tensor([self.box.x_min, self.box.z_min, 0.0])
        hi = torch.tensor([self.box.x_max, self.box.z_max, 0.0])
        self.ic_points = (lo + (hi - lo) * ic).to(device)
        self.device = device
        self._squared_residual = _SquaredResidual(self)

    def trainable(self) -> dict[str, torch.nn.Module]:
        return {"wavefield": self.net}

    def residual(self, points: Tensor) -> Tensor:
        """PDE residual ``[N]`` at physical points, in units of U/T² (O(1))."""
        der = self.net.derivatives(points)
        c = self.velocity(points[:, 0], points[:, 1])
        r = wave_residual(der.u_tt, der.laplacian, c, self.source.density(points))
        return r * (self.scales.t_max**2 / self.scales.u_scale)

    def memory_estimate(self) -> MemoryEstimate:
        """Estimated peak memory of a training step (see :mod:`seispinn.memory`)."""
        c, pts = self.config.collocation, self.points.points
        parts = step_parts(
            [self.net],
            lambda n: self.residual(pts[:n]).square().sum(),
            min(c.batch_size, c.n_points),
            gradnorm=self.config.weighting.name == "gradnorm",
            world=shard().world,
        )
        parts.update(point_parts(c.n_points, self.config.weighting.name))
        return MemoryEstimate(parts, knobs=FORWARD_KNOBS)

    def _point_loss(self, params: dict[str, Tensor], points: Tensor) -> Tensor:
        # functional_call swaps the parameters inside self.net, which residual() uses.
        return torch.func.functional_call(self._squared_residual, params, (points,))

    def losses(self, step: int) -> StepLosses:
        c = self.config.collocation
        batch = batch_ids(step, len(self.points), c.batch_size, self.config.training.seed).to(
            self.device
        )
        sh = shard()
        ids = batch[sh.owns(batch)]  # this rank's share of the global batch
        pts = self.points.points[ids]
        sq = self.residual(pts) ** 2
        w = self.config.weighting
        causal = causal_weights(sq, pts[:, 2], self.scales.t_max, w.causal_bins, w.causal_eps)
        terms = {"pde": self.weighting.weighted_loss(sq * causal, ids, len(batch))}
        if not self.config.network.exact_ic:
            u0, ut0 = self.net.value_and_time_derivative(self.ic_points)
            u0 = u0 / self.scales.u_scale
            ut0 = ut0 * self.scales.t_max / self.scales.u_scale
            # Every rank evaluates the whole IC term: its share is 1/K of it.
            terms["ic"] = c.ic_weight * ((u0**2).mean() + (ut0**2).mean()) / sh.world
        point_loss = None
        if self.config.weighting.name == "gradnorm":
            point_loss = PointLoss(self._squared_residual, self._point_loss, pts)
        return StepLosses(terms, ids, sq.detach(), point_loss)

    # ---------------------------------------------------------------- evaluation

    @torch.no_grad()
    def predict(self, xs: np.ndarray, zs: np.ndarray, times: np.ndarray) -> np.ndarray:
        """u ``[time, nz, nx]`` on the grid ``zs × xs`` (m) at ``times`` (s)."""
        zz, xx = np.meshgrid(zs, xs, indexing="ij")
        out = np.zeros((len(times), len(zs), len(xs)), dtype=np.float32)
        for k, t in enumerate(times):
            pts = np.stack([xx.ravel(), zz.ravel(), np.full(xx.size, t)], axis=1)
            u = self.net(torch.tensor(pts, dtype=torch.float32, device=self.device))
            out[k] = u.cpu().numpy().reshape(zz.shape)
        return out

    def gamma_snapshot(self, step: int, chunk: int = 8192) -> GammaSnapshot:
        """γ and |r| over all collocation points now (see :class:`GammaSnapshot`)."""
        with torch.no_grad():  # the jets carry the input derivatives forward
            res = torch.cat([self.residual(p) for p in self.points.points.split(chunk)])
        return gamma_snapshot(
            step,
            self.points,
            self.weighting,
            res,
            sources=np.array([[self.source.x, self.source.z]]),
            receivers=None,
            source_radius=self.config.reference.source_radius,
            active_until=self.source.active_until(),
        )


def causal_weights(sq: Tensor, t: Tensor, t_max: float, bins: int, eps: float) -> Tensor:
    """Causal multipliers ``[N]`` (detached): ``exp(−ε Σ_{k<i} L_k)`` for a point in
    time bin i, L_k the mean of ``sq`` over the batch's points in bin k; all ones
    when ``eps`` is 0. ``t`` in seconds, ``[N]``."""
    if eps == 0:
        return torch.ones_like(sq)
    k = (t / t_max * bins).long().clamp(0, bins - 1)
    sums = torch.zeros(bins, dtype=sq.dtype, device=sq.device).index_add_(0, k, sq.detach())
    counts = torch.zeros_like(sums).index_add_(0, k, torch.ones_like(sq))
    all_reduce_([sums, counts])  # the bins' means over the global batch
    mean = sums / counts.clamp_min(1)
    before = torch.cumsum(mean, 0) - mean
    return torch.exp(-eps * before)[k]


class _SquaredResidual(torch.nn.Module):
    """r² ``[N]`` as a module whose parameters are the wavefield network's (grad-norm)."""

    def __init__(self, problem: WaveForwardProblem) -> None:
        super().__init__()
        self.net = problem.net
        self._problem = [problem]  # a list: not a submodule, so no parameter duplicates

    def forward(self, points: Tensor) -> Tensor:
        return self._problem[0].residual(points) ** 2


def _relative_l2(pred: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(pred - ref) / max(np.linalg.norm(ref), 1e-30))


def score(
    problem: WaveForwardProblem, model: VelocityModel, ref: np.ndarray, times: np.ndarray
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Wavefield relative L2 over the scored region, overall and per snapshot."""
    d = problem.config.domain
    ix = (model.x >= d.x_min - 1e-6) & (model.x <= d.x_max + 1e-6)
    iz = (model.z >= d.z_min - 1e-6) & (model.z <= d.z_max + 1e-6)
    ref_in = ref[:, iz][:, :, ix]
    pred = problem.predict(model.x[ix], model.z[iz], times)
    per = [_relative_l2(p, r) for p, r in zip(pred, ref_in, strict=True)]
    return (
        {
            "wavefield_error": _relative_l2(pred, ref_in),
            "per_snapshot": per,
            "snapshot_times": [float(t) for t in times],
        },
        pred,
        ref_in,
    )


def gamma_snapshot(
    step: int,
    points: CollocationSet,
    weighting: PointWeighting,
    residual: Tensor,
    *,
    sources: np.ndarray,
    receivers: np.ndarray | None,
    source_radius: float,
    active_until: float,
) -> GammaSnapshot:
    """The live γ field at ``step``: relative weights, |residual| ``[N]`` and the
    geometry (sources ``[shot, 2]``, receivers ``[M, 2]`` in m) as a snapshot."""
    assert points.shot is not None
    return GammaSnapshot(
        step=step,
        points=points.points.detach().cpu().numpy(),
        ids=points.ids.cpu().numpy(),
        shot=points.shot.cpu().numpy(),
        gamma=weighting.relative_weights().detach().cpu().numpy(),
        residual=residual.detach().abs().cpu().numpy(),
        sources=np.asarray(sources, dtype=np.float64).reshape(-1, 2),
        receivers=np.zeros((0, 2)) if receivers is None else np.asarray(receivers).reshape(-1, 2),
        source_radius=float(source_radius),
        active_until=float(active_until),
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
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = reference_model(config)
    c = config.collocation
    points = MemoryEstimate(point_parts(c.n_points, config.weighting.name), FORWARD_KNOBS)
    check_fits(points, dev, "the run")  # before the points are allocated
    problem = WaveForwardProblem(config, model, dev)
    show = config.training.progress and is_main()
    check_fits(problem.memory_estimate(), dev, "the run", show=show)
    ref, times = cached_reference_snapshots(config, model, reference_cache)
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "gamma").mkdir(exist_ok=True)
        if config_path is not None and not resume:
            shutil.copyfile(config_path, run_dir / "config.toml")
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=1))

    def snapshot(step: int) -> None:
        if run_dir is not None:
            problem.gamma_snapshot(step).save(run_dir / "gamma" / f"step_{step:06d}.npz")

    t0 = time.perf_counter()
    history = train(problem, config.training, run_dir, resume=resume, on_snapshot=snapshot)
    seconds = time.perf_counter() - t0
    final = problem.gamma_snapshot(config.training.steps)
    if run_dir is not None:
        final.save(run_dir / "gamma" / f"step_{config.training.steps:06d}.npz")
    scores, pred, ref_in = score(problem, model, ref, times)
    metrics: dict[str, Any] = {
        "weighting": config.weighting.name,
        "seed": config.training.seed,
        "steps": config.training.steps,
        "train_seconds": history[-1]["seconds"] if history else seconds,
        **scores,
        **source_measures(final),
    }
    if run_dir is not None:
        (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        np.savez_compressed(run_dir / "snapshots.npz", pinn=pred, reference=ref_in, times=times)
    return metrics
