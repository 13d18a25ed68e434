"""The one run driver of the wave PINN: used by ``forward``, ``invert`` and ``compare``.

A run: pick the device, check the memory before anything large is allocated,
build the problem, check the memory of a step, prepare the run folder, train
with γ snapshots, take the final γ snapshot, and return the metrics header every
run reports (strategy, seed, steps, train time, final losses, METHOD §4 source
measures). What a run scores beyond that is its driver's business.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seispinn.diagnostics.gamma import GammaSnapshot, source_measures
from seispinn.diagnostics.tensorboard import TensorBoardLog, check_available, open_log
from seispinn.errors import ConfigError
from seispinn.memory import MemoryEstimate, check_fits
from seispinn.pinn.distributed import is_main
from seispinn.pinn.problem import WaveProblem
from seispinn.pinn.training import TrainOptions, train, write_text_atomic
from seispinn.pinn.weighting import GradNormOptions, WeightingOptions

__all__ = [
    "RESUMABLE_CHANGES",
    "WAVE_WEIGHTING",
    "PINNRun",
    "SnapshotExtras",
    "check_resumable",
    "check_same_settings",
    "check_training",
    "resolve_device",
    "run_problem",
    "settings_changes",
]

#: The wave recipes' weighting (forward and inversion): the strategy defaults, but
#: grad-norm refreshed every 50 steps, as the recipes were measured; the strategy's
#: own default (every 10) serves the 1D race.
WAVE_WEIGHTING = WeightingOptions(gradnorm=GradNormOptions(every=50))


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


#: The settings a resumed run may change: how long it trains (extending a run), what it
#: prints and how often it saves. Any other change would continue a run under settings
#: it was not made with, and the run folder would no longer say how its result was made.
RESUMABLE_CHANGES = frozenset(
    {
        "training.steps",
        "training.progress",
        "training.tensorboard",
        "training.checkpoint_every",
        "training.snapshot_every",
        "training.log_every",
    }
)


def _leaves(obj: object, prefix: str = "") -> list[tuple[str, Any]]:
    """The dataclass ``obj``'s fields as (dotted key, value), nested dataclasses
    walked; a dict-valued field is one leaf."""
    out: list[tuple[str, Any]] = []
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value, key = getattr(obj, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            out += _leaves(value, key + ".")
        else:
            out.append((key, value))
    return out


def _as_json(value: Any) -> str:
    plain = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
    return json.dumps(plain, sort_keys=True)


def _same(old: Any, new: Any) -> bool:
    """Equal settings; two spellings of one file (a relative and an absolute path,
    say, from another working folder) are the same setting."""
    if _as_json(old) == _as_json(new):
        return True
    if isinstance(old, str) and isinstance(new, str) and old and new:
        try:
            return os.path.samefile(old, new)
        except OSError:
            return False
    return False


def _resumable(key: str, config: object) -> bool:
    """Whether ``key`` may change on a resume. More steps extend a one-round run; with
    several rounds the finished rounds keep their length, so the step count may not
    change there."""
    rounds = getattr(getattr(config, "physics", None), "rounds", 1)
    return key in RESUMABLE_CHANGES and not (key == "training.steps" and rounds > 1)


def settings_changes(stored: dict[str, Any], config: object) -> tuple[list[str], list[str]]:
    """Compare ``config`` (a config dataclass) with a run folder's ``config.json``.

    Returns:
        (changed, added): ``"key old -> new"`` for each setting whose value differs
        and may not change on a resume (:data:`RESUMABLE_CHANGES`; the step count of
        a multi-round run may not); and ``"key = new"`` for each setting the stored
        config lacks (an option added to seispinn after the run was made).
    """
    changed, added = [], []
    for key, value in _leaves(config):
        node: Any = stored
        for part in key.split("."):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is KeyError:
            added.append(f"{key} = {_as_json(value)}")
        elif not _same(node, value) and not _resumable(key, config):
            changed.append(f"{key} {_as_json(node)} -> {_as_json(value)}")
    return changed, added


def check_same_settings(path: Path, config: object, what: str = "run") -> list[str]:
    """Refuse, in one line naming ``path`` and the keys, a ``config`` whose settings
    differ from those ``path`` (a ``config.json``) holds (see
    :func:`settings_changes`). Returns the settings ``path`` predates."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: unreadable ({exc}), cannot check the {what}'s settings"
        ) from None
    if not isinstance(stored, dict):
        raise ConfigError(f"{path}: not a seispinn config (no sections), cannot resume")
    changed, added = settings_changes(stored, config)
    if changed:
        raise ConfigError(
            f"{path}: the {what} was made with other settings, cannot resume "
            f"({'; '.join(changed)}); resume with its settings or start a new folder"
        )
    return added


def check_resumable(folder: Path, config: object) -> list[str]:
    """Before a resume: ``folder/checkpoint.pt`` loads, and ``config`` has the settings
    of ``folder/config.json`` (:func:`check_same_settings`). Returns the settings
    added since the run was made, which the resumed run takes at their defaults."""
    from seispinn.pinn.training import load_checkpoint

    load_checkpoint(folder / "checkpoint.pt")
    path = folder / "config.json"
    return check_same_settings(path, config) if path.exists() else []


def resolve_device(device: str | None) -> torch.device:
    """``device`` or, when None, CUDA when available, else the CPU."""
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


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
    stored_settings = run_dir / "config.json" if run_dir is not None else None
    if resume and stored_settings is not None and stored_settings.exists():
        # Before anything is built or overwritten; train() loads the checkpoint.
        added = check_same_settings(stored_settings, config)
        if added and is_main():
            more = f" and {len(added) - 5} more" if len(added) > 5 else ""
            print(
                f"{stored_settings}: made before these settings existed; the "
                f"resumed run uses {', '.join(added[:5])}{more}",
                file=sys.stderr,
            )
    check_fits(stored, dev, "the run")  # before the points are allocated
    problem = build(dev)
    main = is_main()
    check_fits(problem.memory_estimate(), dev, "the run", show=main and training.progress)
    gammas = gamma_dir if gamma_dir is not None else (run_dir / "gamma" if run_dir else None)
    if run_dir is not None and main:
        assert gammas is not None
        gammas.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir(parents=True, exist_ok=True)
        # Atomic: under torchrun the other ranks read it for their resume check.
        write_text_atomic(run_dir / "config.json", json.dumps(dataclasses.asdict(config), indent=1))

    log = _open_log(training, run_dir, tensorboard_dir, step_offset) if main else None

    def snapshot(step: int) -> GammaSnapshot:
        k = step + step_offset
        snap = problem.gamma_snapshot(k)
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
    last = history[-1] if history else {}
    metrics: dict[str, Any] = {
        "weighting": weighting,
        "seed": training.seed,
        "steps": training.steps,
        "train_seconds": last["seconds"] if history else seconds,
        "final_losses": {k[5:]: v for k, v in last.items() if k.startswith("loss_")},
        **source_measures(final),
    }
    return PINNRun(problem, history, final, metrics)
