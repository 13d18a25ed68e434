"""The one run driver of the wave PINN: used by ``forward``, ``invert`` and ``compare``.

A run: pick the device, check the memory before anything large is allocated,
build the problem, check the memory of a step, prepare the run folder, train
with γ snapshots, take the final γ snapshot, and return the metrics header every
run reports (strategy, seed, steps, train time, final losses, the source-region
measures). :func:`run_rounds` repeats a run in outer rounds, each from the last
round's velocity (an inversion's rounds). What a run scores beyond that is its
driver's business.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seispinn.diagnostics.gamma import GammaSnapshot, gamma_snapshot, source_measures
from seispinn.diagnostics.tensorboard import TensorBoardLog, check_available, open_log
from seispinn.errors import ConfigError
from seispinn.experiments.resume import check_same_settings
from seispinn.io.runfolder import save_npy_atomic, write_json_atomic
from seispinn.memory import MemoryEstimate, check_fits, problem_memory
from seispinn.models import VelocityModel
from seispinn.pinn.distributed import barrier, is_main
from seispinn.pinn.problem import WaveProblem
from seispinn.pinn.training import TrainOptions, train

__all__ = [
    "PINNRun",
    "SnapshotExtras",
    "check_training",
    "resolve_device",
    "run_problem",
    "run_rounds",
    "round_folder",
    "resume_folder",
]


@dataclass
class PINNRun:
    """A trained problem, its history, the final γ snapshot (None off rank 0) and
    the metrics header."""

    problem: WaveProblem
    history: list[dict[str, float]]
    final: GammaSnapshot | None
    metrics: dict[str, Any]


#: ``problem -> (images {tag: [H, W]}, scalars {tag: value})`` at a γ snapshot.
SnapshotExtras = Callable[[WaveProblem], tuple[dict[str, np.ndarray], dict[str, float]]]


def _open_log(
    training: TrainOptions, run_dir: Path | None, folder: Path | None, step_offset: int
) -> TensorBoardLog | None:
    if not training.tensorboard:
        return None
    folder = folder if folder is not None else (run_dir / "tensorboard" if run_dir else None)
    if folder is None:
        raise ConfigError("[training] tensorboard = true needs a run folder for its events")
    return open_log(folder, step_offset)


def check_training(training: TrainOptions, networks: tuple[str, ...], where: str) -> None:
    """Checked when the config is read, before any data are simulated: ``[training]
    frozen_until``, ``lr_scale`` and ``alternate`` name only the run's trained networks, and
    ``tensorboard = true`` has its package."""
    if training.tensorboard:
        check_available()
    for key in ("frozen_until", "lr_scale", "alternate"):
        unknown = sorted(set(getattr(training, key)) - set(networks))
        if unknown:
            raise ConfigError(
                f"{where} [training] {key}: {unknown[0]!r} is not a trained network "
                f"(this run trains {', '.join(networks)})"
            )


def resolve_device(device: str | None) -> torch.device:
    """``device`` or, when None, CUDA when available, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _check_resume_settings(run_dir: Path | None, config: object) -> None:
    """A resume under the run folder's own settings only (before anything is built or
    overwritten; :func:`train` loads the checkpoint). Settings the folder predates
    are named on stderr with the value the resumed run takes."""
    stored = run_dir / "config.json" if run_dir is not None else None
    if stored is None or not stored.exists():
        return
    added = check_same_settings(stored, config)
    if added and is_main():
        more = f" and {len(added) - 5} more" if len(added) > 5 else ""
        print(
            f"{stored}: made before these settings existed; the "
            f"resumed run uses {', '.join(added[:5])}{more}",
            file=sys.stderr,
        )


def _header(
    weighting: str,
    training: TrainOptions,
    history: list[dict[str, float]],
    seconds: float,
    final: GammaSnapshot,
) -> dict[str, Any]:
    """The metrics every run reports."""
    last = history[-1] if history else {}
    return {
        "weighting": weighting,
        "seed": training.seed,
        "steps": training.steps,
        "train_seconds": last["seconds"] if history else seconds,
        "final_losses": {k[5:]: v for k, v in last.items() if k.startswith("loss_")},
        **source_measures(final),
    }


def run_problem(
    build: Callable[[torch.device], WaveProblem],
    training: TrainOptions,
    weighting: str,
    *,
    stored: MemoryEstimate,
    config: object,
    run_dir: Path | None = None,
    resume: bool = False,
    device: str | None = None,
    gamma_dir: Path | None = None,
    step_offset: int = 0,
    tensorboard_dir: Path | None = None,
    snapshot_extras: SnapshotExtras | None = None,
) -> PINNRun:
    """Build the problem with ``build(device)`` and train it.

    Args:
        build: makes the problem on a device.
        training: the optimisation settings.
        weighting: the PDE term's strategy name (reported).
        stored: memory held whatever the batch, checked before ``build`` allocates.
        config: the resolved configuration dataclass, written to ``config.json``.
        run_dir: checkpoints, ``history.json``, ``config.json`` and ``gamma/``.
        resume: continue from the run folder's checkpoint.
        device: ``"cpu"``, ``"cuda"``, ... (None: CUDA when available).
        gamma_dir: where γ snapshots go (default ``run_dir/gamma``).
        step_offset: added to the step of every γ snapshot (a later round of a
            multi-round inversion continues the first round's step count).
        tensorboard_dir: where ``training.tensorboard`` events go (default
            ``run_dir/tensorboard``).
        snapshot_extras: ``problem -> (images, scalars)`` logged with every γ
            snapshot to TensorBoard (an inversion's velocity and its error).
    """
    dev = resolve_device(device)
    if resume:
        _check_resume_settings(run_dir, config)
    check_fits(stored, dev, "the run")  # before the points are allocated
    problem = build(dev)
    main = is_main()
    check_fits(problem_memory(problem), dev, "the run", show=main and training.progress)
    gammas = gamma_dir if gamma_dir is not None else (run_dir / "gamma" if run_dir else None)
    if run_dir is not None and main:
        assert gammas is not None
        gammas.mkdir(parents=True, exist_ok=True)
        # Atomic: under torchrun the other ranks read it for their resume check.
        write_json_atomic(run_dir / "config.json", dataclasses.asdict(config))
    log = _open_log(training, run_dir, tensorboard_dir, step_offset) if main else None

    def snapshot(step: int) -> GammaSnapshot:
        k = step + step_offset
        snap = gamma_snapshot(problem, k)
        if gammas is not None:
            snap.save(gammas / f"step_{k:06d}.npz")
        if log is not None:
            log.snapshot(snap, *(snapshot_extras(problem) if snapshot_extras else ({}, {})))
        return snap

    t0 = time.perf_counter()
    try:
        history = train(
            problem,
            training,
            run_dir,
            resume=resume,
            on_snapshot=snapshot if (gammas is not None or log is not None) else None,
            on_record=log.record if log is not None else None,
        )
        seconds = time.perf_counter() - t0
        if not main:  # rank 0 scores and writes
            return PINNRun(problem, history, None, {})
        final = snapshot(training.steps)
    finally:
        if log is not None:
            log.close()
    return PINNRun(problem, history, final, _header(weighting, training, history, seconds, final))


# ------------------------------------------------------------------------------------
# Outer rounds
# ------------------------------------------------------------------------------------


def round_folder(run_dir: Path, k: int, rounds: int) -> Path:
    """Where round ``k`` of ``rounds`` trains: ``run_dir/round{k}``, or ``run_dir``
    itself for a one-round run."""
    return run_dir / f"round{k}" if rounds > 1 else run_dir


def resume_folder(run_dir: Path, rounds: int) -> Path:
    """The folder whose checkpoint a resumed run continues from: the last round that
    has one (round 0's when none has, so that a refusal names it)."""
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


def _finished_round(
    sub: Path, start: VelocityModel
) -> tuple[VelocityModel, list[dict[str, float]]]:
    """A finished round's velocity (its ``velocity.npy``) and history."""
    model = dataclasses.replace(start, values=np.load(sub / "velocity.npy"))
    return model, json.loads((sub / "history.json").read_text())


def run_rounds(
    build: Callable[[VelocityModel, torch.device], WaveProblem],
    start: VelocityModel,
    training: TrainOptions,
    rounds: int,
    weighting: str,
    *,
    stored: MemoryEstimate,
    config: object,
    run_dir: Path | None = None,
    resume: bool = False,
    device: str | None = None,
    snapshot_extras: SnapshotExtras | None = None,
    next_model: Callable[[WaveProblem], VelocityModel] | None = None,
) -> tuple[PINNRun, VelocityModel]:
    """Train ``rounds`` rounds of ``training.steps`` steps, round k's problem built by
    ``build(model, device)`` from the velocity ``[nz, nx]`` (m/s, on ``start``'s grid)
    the round before ended at (round 0: ``start``); return the last round's run, with
    the rounds' histories and train times joined, and the final model. A round ends at
    ``next_model(problem)`` (default: the problem's velocity on ``start``'s grid).

    With several rounds, round k trains in ``run_dir/round{k}`` (its checkpoint and
    history) and marks itself done with ``velocity.npy``; γ snapshots of every round
    go to ``run_dir/gamma`` numbered by the global step. ``resume`` skips the rounds
    that are done and resumes the one that is not. The other arguments are
    :func:`run_problem`'s."""
    steps = training.steps
    if run_dir is not None and rounds > 1 and not resume:
        _clear_rounds(run_dir)
    history: list[dict[str, float]] = []
    seconds, model, run = 0.0, start, None
    for k in range(rounds):
        sub = round_folder(run_dir, k, rounds) if run_dir is not None else None
        done = sub / "velocity.npy" if (sub is not None and rounds > 1) else None
        if resume and done is not None and done.exists() and k < rounds - 1:
            assert sub is not None
            model, finished = _finished_round(sub, start)
            history += finished
            seconds += finished[-1]["seconds"] if finished else 0.0
            continue
        run = run_problem(
            lambda dev, here=model: build(here, dev),
            training,
            weighting,
            stored=stored,
            config=config,
            run_dir=sub,
            resume=resume and sub is not None and (sub / "checkpoint.pt").exists(),
            device=device,
            gamma_dir=run_dir / "gamma" if run_dir is not None else None,
            step_offset=k * steps,
            tensorboard_dir=run_dir / "tensorboard" if run_dir is not None else None,
            snapshot_extras=snapshot_extras,
        )
        model = (
            run.problem.velocity.to_model(start) if next_model is None else next_model(run.problem)
        )
        offset = [dict(h, step=h["step"] + k * steps, round=k) for h in run.history]
        if done is not None and is_main():
            assert sub is not None
            write_json_atomic(sub / "history.json", offset, indent=None)
            save_npy_atomic(done, model.values)
        history += offset
        seconds += offset[-1]["seconds"] if offset else 0.0  # every rank has its history
    assert run is not None
    if rounds > 1:
        run.history = history
        run.metrics.update(steps=steps * rounds, train_seconds=seconds, rounds=rounds)
        if run_dir is not None and is_main():
            write_json_atomic(run_dir / "history.json", history)
    return run, model
