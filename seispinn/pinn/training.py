"""A PINN training loop: Adam (θ descends, SA's λ ascends), optional L-BFGS with λ
frozen, term balancing, atomic checkpoints, exact resume, divergence stops.

The loop knows nothing about waves: a :class:`seispinn.pinn.problem.Problem`
supplies the loss terms of one step. State travels in one dict of tensors saved
atomically (:mod:`seispinn.io.runfolder`) and read back with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm

from seispinn.errors import ConfigError, TrainingError
from seispinn.io.runfolder import load_checkpoint, save_checkpoint, write_json_atomic
from seispinn.pinn.derivatives import compiled_jets
from seispinn.pinn.distributed import all_reduce_, barrier, is_main, shard
from seispinn.pinn.problem import Problem, StepLosses
from seispinn.pinn.weighting import PointWeighting

__all__ = [
    "TrainOptions",
    "Diverged",
    "Interrupted",
    "train",
]


@dataclass(frozen=True)
class TrainOptions:
    """Optimisation settings.

    Attributes:
        steps: Adam steps.
        lr, lr_final: Adam learning rate, decayed geometrically from lr to lr_final.
        lbfgs_steps: L-BFGS iterations after Adam (λ frozen), 0 for none.
        lr_scale: learning-rate factor per trainable module name (e.g. a velocity
            network that should move slower than the wavefield), 1 by default.
        frozen_until: per trainable module name, the step before which it does not
            move (e.g. the velocity network while the wavefield first fits the data).
        alternate: per trainable module name, its turn in steps, in the order given
            (e.g. ``{"wavefield": 300, "velocity": 100}``): the steps cycle through
            the turns and a named module moves only during its own (the wavefield
            fitted at a fixed velocity, then the velocity at a fixed wavefield, as in
            wavefield-reconstruction inversion); modules not named move at every
            step. Counted from step 0, after ``frozen_until``. Empty: joint updates.
        seed: torch seed for initialisation and batches.
        term_weights: fixed weight per loss term name (missing: 1).
        anneal: gradient-magnitude annealing of the non-PDE terms (Wang et al. 2021):
            ``w_k ← α w_k + (1 − α) max|∇L_pde| / mean|∇L_k|`` every ``anneal_every`` steps.
        checkpoint_every: steps between checkpoints (and at the end).
        log_every: steps between history records.
        snapshot_every: steps between per-point weight snapshots (0: never).
        progress: show a progress bar.
        compile: run the networks' derivative propagation through ``torch.compile``
            (faster steps after a one-off compilation of ~30 s on CPU; see
            :func:`seispinn.pinn.derivatives.compiled_jets`).
        divergence_retries: when a loss term becomes NaN/inf, go back to the last
            good checkpoint this many times, each time with the learning rates (θ's
            and SA's λ ascent) multiplied by ``retry_lr_factor``; 0: stop at once.
        retry_lr_factor: learning-rate factor per retry, in (0, 1).
        tensorboard: also write the history and the γ snapshots as TensorBoard
            events (``RUN_DIR/tensorboard``; see :mod:`seispinn.diagnostics.tensorboard`;
            needs the optional ``tensorboard`` package).
    """

    steps: int = 2000
    lr: float = 1e-3
    lr_final: float = 1e-4
    lbfgs_steps: int = 0
    seed: int = 0
    term_weights: dict[str, float] = field(default_factory=dict)
    lr_scale: dict[str, float] = field(default_factory=dict)
    frozen_until: dict[str, int] = field(default_factory=dict)
    alternate: dict[str, int] = field(default_factory=dict)
    anneal: bool = False
    anneal_every: int = 100
    anneal_alpha: float = 0.9
    checkpoint_every: int = 500
    log_every: int = 50
    snapshot_every: int = 0
    progress: bool = True
    compile: bool = False
    divergence_retries: int = 0
    retry_lr_factor: float = 0.5
    tensorboard: bool = False

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lbfgs_steps < 0:
            raise ConfigError(
                f"steps and lbfgs_steps must be >= 0, got {self.steps}, {self.lbfgs_steps}"
            )
        if self.steps + self.lbfgs_steps == 0:
            raise ConfigError("steps + lbfgs_steps must be positive: nothing would be trained")
        if not (self.lr > 0 and self.lr_final > 0):
            raise ConfigError(f"learning rates must be positive, got {self.lr}, {self.lr_final}")
        if self.checkpoint_every < 1 or self.log_every < 1 or self.snapshot_every < 0:
            raise ConfigError("checkpoint_every and log_every must be >= 1, snapshot_every >= 0")
        if any(int(n) < 1 for n in self.alternate.values()) or len(self.alternate) == 1:
            raise ConfigError(
                f"alternate: needs two or more modules with turns >= 1 step, got {self.alternate}"
            )
        if self.divergence_retries < 0 or not 0 < self.retry_lr_factor < 1:
            raise ConfigError(
                "divergence_retries must be >= 0 and retry_lr_factor in (0, 1), got "
                f"{self.divergence_retries}, {self.retry_lr_factor}"
            )


def _lr_at(options: TrainOptions, step: int) -> float:
    frac = step / max(options.steps - 1, 1)
    return options.lr * (options.lr_final / options.lr) ** frac


def _turn(alternate: dict[str, int], step: int) -> str | None:
    """The module whose turn ``step`` is in an alternating schedule (None: joint)."""
    if not alternate:
        return None
    k = step % sum(alternate.values())
    for name, length in alternate.items():
        if k < length:
            return name
        k -= length
    raise AssertionError("unreachable: k < the cycle's length")


def _total(losses: StepLosses, weights: dict[str, float]) -> Tensor:
    return sum(weights.get(k, 1.0) * v for k, v in losses.terms.items())  # type: ignore[return-value]


def _global_terms(losses: StepLosses) -> dict[str, Tensor]:
    """The loss terms summed over ranks (each rank holds its share), detached."""
    names = list(losses.terms)
    values = torch.stack([losses.terms[k].detach().reshape(()) for k in names])
    all_reduce_([values])
    return dict(zip(names, values, strict=True))


def _sync_grads(params: list[Tensor]) -> None:
    """Sum gradients over ranks (missing ones as zeros, so every rank sends alike)."""
    if shard().world == 1:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    all_reduce_([p.grad for p in params])


class Diverged(TrainingError):
    """A loss term became NaN or inf; ``checkpoint`` is the last good one (or None)."""

    def __init__(self, message: str, step: int, term: str, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step, self.term, self.checkpoint = step, term, checkpoint


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM stopped training at the end of a step; ``checkpoint`` holds
    that step (None without a run folder). ``exit_status`` is 128 + the signal."""

    def __init__(self, message: str, signum: int, step: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        self.exit_status = 128 + signum


class _StopOnSignal:
    """While active (main thread, one process), SIGINT and SIGTERM only set
    ``signum``: the loop finishes its step, checkpoints and stops. A second signal
    stops at once (``KeyboardInterrupt``)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: object) -> None:
        if self.signum is not None:
            self._restore()
            raise KeyboardInterrupt
        self.signum = signum

    def _restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous = {}

    def __enter__(self) -> _StopOnSignal:
        if self.enabled:
            for sig in self.SIGNALS:
                before = signal.getsignal(sig)
                if before is not None:  # None: installed outside Python, leave it
                    self.previous[sig] = before
                    signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        self._restore()


def _check_finite(terms: dict[str, Tensor], step: int, last_good: Path | None) -> None:
    for name, value in terms.items():
        if not torch.isfinite(value):
            where = f"; last good checkpoint: {last_good}" if last_good else ""
            raise Diverged(
                f"loss term '{name}' became {float(value.detach())} at step {step}{where}",
                step,
                name,
                last_good,
            )


def _anneal(
    losses: StepLosses,
    params: list[Tensor],
    weights: dict[str, float],
    alpha: float,
) -> None:
    def grads(term: Tensor) -> Tensor:
        g = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        return torch.cat([x.abs().flatten() for x in g if x is not None])

    g_pde = grads(losses.terms["pde"]).max()
    for name, term in losses.terms.items():
        if name == "pde" or not term.requires_grad:
            continue
        target = float(g_pde / grads(term).mean().clamp_min(1e-12))
        weights[name] = alpha * weights.get(name, 1.0) + (1 - alpha) * target


class _History:
    def __init__(
        self,
        records: list[dict[str, float]] | None = None,
        on_record: Callable[[dict[str, float]], None] | None = None,
    ) -> None:
        self.records = records or []
        self.on_record = on_record

    def add(
        self,
        step: int,
        terms: dict[str, Tensor],
        weights: dict[str, float],
        seconds: float,
        weighting: PointWeighting,
        lrs: dict[str, float] | None = None,
    ) -> dict[str, float]:
        rec = {"step": step, "seconds": seconds}
        rec.update({f"loss_{k}": float(v.detach()) for k, v in terms.items()})
        rec.update({f"weight_{k}": v for k, v in weights.items()})
        rec.update({f"lr_{k}": v for k, v in (lrs or {}).items()})
        rec.update({f"points_{k}": v for k, v in weighting.diagnostics().items()})
        self.records.append(rec)
        if self.on_record is not None:
            self.on_record(rec)
        return rec


def train(
    problem: Problem,
    options: TrainOptions,
    run_dir: Path | None = None,
    *,
    resume: bool = False,
    on_snapshot: Callable[[int], None] | None = None,
    on_record: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``problem``; return the history (one record per ``log_every`` steps).

    With ``run_dir``, checkpoints go to ``run_dir/checkpoint.pt`` (atomically) and
    the history to ``run_dir/history.json``; ``resume`` continues from the
    checkpoint exactly (same batches, same optimiser state). A non-finite loss
    term stops with :class:`TrainingError` naming the step, the term and the
    last good checkpoint (:class:`Diverged`), after ``divergence_retries`` retries
    from it with smaller learning rates. ``on_snapshot(step)`` is called every
    ``snapshot_every`` steps (e.g. to save the γ field), ``on_record(record)`` with
    every history record as it is made (e.g. a TensorBoard log).
    """
    with compiled_jets(options.compile, problem.trainable().values()):
        lr_factor = None  # None: the checkpoint's (1 for a fresh run)
        for retry in range(options.divergence_retries + 1):
            try:
                return _train(
                    problem, options, run_dir, resume, (on_snapshot, on_record), lr_factor
                )
            except Diverged as exc:
                if retry == options.divergence_retries or exc.checkpoint is None:
                    raise
                state = load_checkpoint(exc.checkpoint)
                # Compounded over retries: the checkpoint predates the last one.
                before = float(state.get("lr_factor", 1.0)) if lr_factor is None else lr_factor
                lr_factor = before * options.retry_lr_factor
                resume = True
                if is_main():
                    print(
                        f"seispinn: {exc}; retry {retry + 1} of {options.divergence_retries} "
                        f"from step {int(state['step'])} with the learning rates x{lr_factor:g}",
                        file=sys.stderr,
                    )
    raise AssertionError("unreachable")  # pragma: no cover


def _train(
    problem: Problem,
    options: TrainOptions,
    run_dir: Path | None,
    resume: bool,
    hooks: tuple[Callable[[int], None] | None, Callable[[dict[str, float]], None] | None],
    lr_factor: float | None,
) -> list[dict[str, float]]:
    loop = _Loop(problem, options, run_dir, hooks)
    if resume:
        lr_factor = loop.restore(lr_factor)
    loop.set_lr_factor(1.0 if lr_factor is None else lr_factor)
    loop.run()
    return loop.history.records


def _param_groups(modules: dict[str, torch.nn.Module], options: TrainOptions) -> list[dict]:
    """One optimiser group per trainable module, with its rate factor and first step."""
    named = set(options.lr_scale) | set(options.frozen_until) | set(options.alternate)
    unknown = sorted(named - set(modules))
    if unknown:
        raise ConfigError(
            f"lr_scale/frozen_until/alternate name {unknown[0]!r}, not a trainable module "
            f"({sorted(modules)})"
        )
    return [
        {
            "name": name,
            "params": [p for p in m.parameters() if p.requires_grad],
            "lr_scale": float(options.lr_scale.get(name, 1.0)),
            "frozen_until": int(options.frozen_until.get(name, 0)),
        }
        for name, m in modules.items()
    ]


class _Loop:
    """One training run's state: modules, optimiser, term weights, history, clock,
    and the checkpoint that holds all of them."""

    def __init__(
        self,
        problem: Problem,
        options: TrainOptions,
        run_dir: Path | None,
        hooks: tuple[Callable[[int], None] | None, Callable[[dict[str, float]], None] | None],
    ) -> None:
        self.problem, self.options, self.run_dir = problem, options, run_dir
        self.on_snapshot, self.on_record = hooks
        self.modules = problem.trainable()
        if shard().world > 1 and (not problem.weighting.shardable or options.anneal):
            raise ConfigError(
                f"across processes, per-point weighting {problem.weighting.name!r} and "
                "annealing are not available: they normalise over a batch that each rank "
                "sees only part of (use uniform or sa, anneal off)"
            )
        groups = _param_groups(self.modules, options)
        self.params = [p for g in groups for p in g["params"]]
        self.opt = torch.optim.Adam([g for g in groups if g["params"]], lr=options.lr)
        self.weights = {k: float(v) for k, v in options.term_weights.items()}
        self.history = _History(on_record=self.on_record)
        self.start, self.elapsed, self.lr_factor = 0, 0.0, 1.0
        self.ckpt = run_dir / "checkpoint.pt" if run_dir else None
        self.last_good: Path | None = None

    def restore(self, lr_factor: float | None) -> float | None:
        """Load the run folder's checkpoint; returns the learning-rate factor to use
        (``lr_factor``, or the checkpoint's when None)."""
        if self.ckpt is None:
            raise TrainingError("resume needs a run folder")
        state = load_checkpoint(self.ckpt)
        try:
            for name, module in self.modules.items():
                module.load_state_dict(state["modules"][name])
            self.problem.weighting.load_state_dict(state["weighting"])
            self.opt.load_state_dict(state["optimizer"])
            self.weights = {k: float(v) for k, v in state["term_weights"].items()}
            self.history = _History(json.loads(state["history"]), self.on_record)
            self.start, self.elapsed = int(state["step"]), float(state["seconds"])
        except (KeyError, RuntimeError, ValueError, TypeError) as exc:
            # Another network size, weighting or point count than the run that wrote it.
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainingError(
                f"{self.ckpt}: does not match this run's configuration, cannot resume ({first})"
            ) from None
        return float(state.get("lr_factor", 1.0)) if lr_factor is None else lr_factor

    def set_lr_factor(self, factor: float) -> None:
        self.lr_factor = factor
        self.problem.weighting.set_lr_factor(factor)  # SA's ascent rate, like θ's
        exists = self.ckpt is not None and self.ckpt.exists()
        self.last_good = self.ckpt if exists else None

    def checkpoint(self, step: int) -> None:
        if self.ckpt is None or not is_main():
            return
        save_checkpoint(
            self.ckpt,
            {
                "step": step,
                "seconds": self.elapsed,
                "modules": {k: m.state_dict() for k, m in self.modules.items()},
                "weighting": self.problem.weighting.state_dict(),
                "optimizer": self.opt.state_dict(),
                "term_weights": self.weights,
                "history": json.dumps(self.history.records),
                "options": json.dumps(asdict(self.options)),
                "lr_factor": self.lr_factor,
            },
        )
        assert self.run_dir is not None
        write_json_atomic(self.run_dir / "history.json", self.history.records)
        self.last_good = self.ckpt

    def step(self, step: int) -> None:
        """One Adam step: θ descends, then the weighting updates (SA's λ ascend)."""
        options, problem = self.options, self.problem
        t0 = time.perf_counter()
        turn = _turn(options.alternate, step)
        for group in self.opt.param_groups:
            its_turn = group["name"] not in options.alternate or group["name"] == turn
            moving = step >= group["frozen_until"] and its_turn
            group["lr"] = _lr_at(options, step) * self.lr_factor * group["lr_scale"] * moving
        losses = problem.losses(step)
        terms = _global_terms(losses)
        _check_finite(terms, step, self.last_good)
        if options.anneal and step % options.anneal_every == 0:
            _anneal(losses, self.params, self.weights, options.anneal_alpha)
        total = _total(losses, self.weights)
        self.opt.zero_grad(set_to_none=True)
        total.backward()
        _sync_grads(self.params)
        self.opt.step()
        problem.weighting.update(
            step, losses.pde_ids, losses.pde_sq, losses.point_loss, residual=losses.pde_residual
        )
        self.elapsed += time.perf_counter() - t0
        if step % options.log_every == 0 or step + 1 == options.steps:
            lrs = {g.get("name", f"group{i}"): g["lr"] for i, g in enumerate(self.opt.param_groups)}
            rec = self.history.add(step, terms, self.weights, self.elapsed, problem.weighting, lrs)
            self.bar.set_postfix(
                {k[5:]: f"{v:.3g}" for k, v in rec.items() if k.startswith("loss_")}
            )

    def run(self) -> None:
        options = self.options
        self.bar = tqdm(
            total=options.steps,
            initial=self.start,
            disable=not options.progress or not is_main(),
            desc="adam",
            dynamic_ncols=True,
            mininterval=1.0,
        )
        # Ctrl-C / SIGTERM: finish the step, checkpoint it, stop (one process only:
        # ranks would have to agree on the step).
        stop = _StopOnSignal(enabled=shard().world == 1)
        with stop:
            for step in range(self.start, options.steps):
                self.step(step)
                done = step + 1
                if (
                    self.on_snapshot is not None
                    and is_main()
                    and options.snapshot_every
                    and step % options.snapshot_every == 0
                ):
                    self.on_snapshot(step)
                saved = done % options.checkpoint_every == 0 or done == options.steps
                if saved:
                    self.checkpoint(done)
                self.bar.update(1)
                if stop.signum is not None:
                    self.bar.close()
                    _stop(
                        stop.signum,
                        done,
                        options,
                        self.ckpt,
                        saved=saved,
                        checkpoint=self.checkpoint,
                    )
        self.bar.close()
        if stop.signum is not None:  # arrived after the last step's check
            _stop(
                stop.signum,
                options.steps,
                options,
                self.ckpt,
                saved=True,
                checkpoint=self.checkpoint,
            )
        if options.lbfgs_steps and self.start <= options.steps:
            self.elapsed = _lbfgs(
                self.problem, self.params, options, self.weights, self.history, self.elapsed
            )
            self.checkpoint(options.steps)
        # Ranks leave together: rank 0's last checkpoint is on disk before any rank
        # goes on, and no rank tears its process group down under a peer still writing
        # (gloo aborted the early rank when it did).
        barrier()


def _stop(
    signum: int,
    done: int,
    options: TrainOptions,
    ckpt: Path | None,
    *,
    saved: bool,
    checkpoint: Callable[[int], None],
) -> None:
    """Checkpoint step ``done`` (unless just saved) and raise :class:`Interrupted`."""
    name = signal.Signals(signum).name
    if ckpt is None:
        where = "no run folder, nothing saved"
    else:
        if not saved:
            checkpoint(done)
        where = f"checkpoint: {ckpt}"
    raise Interrupted(
        f"interrupted by {name} after step {done} of {options.steps}; {where}", signum, done, ckpt
    )


def _lbfgs(
    problem: Problem,
    params: list[Tensor],
    options: TrainOptions,
    weights: dict[str, float],
    history: _History,
    elapsed: float,
) -> float:
    """L-BFGS on the full-batch loss with the per-point weights frozen."""
    problem.weighting.freeze()
    opt = torch.optim.LBFGS(
        params,
        lr=1.0,
        max_iter=options.lbfgs_steps,
        history_size=50,
        line_search_fn="strong_wolfe",
    )
    last: list[dict[str, Tensor]] = []

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        losses = problem.losses(options.steps)
        terms = _global_terms(losses)
        _check_finite(terms, options.steps, None)
        total = _total(losses, weights)
        total.backward()
        _sync_grads(params)
        last[:] = [terms]
        # The line search must see the global loss, the same on every rank.
        return sum(weights.get(k, 1.0) * v for k, v in terms.items())

    t0 = time.perf_counter()
    opt.step(closure)
    elapsed += time.perf_counter() - t0
    if last:
        history.add(options.steps, last[0], weights, elapsed, problem.weighting)
    problem.weighting.unfreeze()
    if not all(math.isfinite(float(v)) for v in last[0].values()):
        raise TrainingError("L-BFGS diverged")
    return elapsed
