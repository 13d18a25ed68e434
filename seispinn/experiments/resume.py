"""Resuming a run safely: a run folder's ``config.json`` says which settings made it,
and a resume under other settings is refused in one line naming the keys, before any
data are simulated (only how long a run trains, what it prints and how often it
saves may change)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from seispinn.errors import ConfigError
from seispinn.io.runfolder import load_checkpoint

__all__ = [
    "RESUMABLE_CHANGES",
    "check_resumable",
    "check_same_settings",
    "settings_changes",
]


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
    load_checkpoint(folder / "checkpoint.pt")
    path = folder / "config.json"
    return check_same_settings(path, config) if path.exists() else []
