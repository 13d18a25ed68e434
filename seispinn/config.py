"""Strict TOML configuration: every section maps onto a frozen dataclass.

An unknown key, a value of the wrong type or a missing required key raises
:class:`ConfigError` naming the file, the key and the reason, before any work starts.

A field whose type is itself a dataclass is a nested table: ``[weighting.sa]`` in a
file and ``--set weighting.sa.lr=0.01`` on a command line both reach it, and keys
they do not set keep the base's values. One override language serves every entry
point: :func:`parse_overrides` turns ``dotted.key=value`` items into nested dicts,
:func:`load_sections` merges them into a file's tables, :func:`apply_overrides`
applies them to a dataclass instance.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

from seispinn.errors import ConfigError, SeispinnError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "read_toml",
    "build_section",
    "load_sections",
    "parse_overrides",
    "merge_overrides",
    "apply_overrides",
]

T = TypeVar("T")


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML file, or :class:`ConfigError` naming the file and the problem."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a TOML config file") from None
    except UnicodeDecodeError:  # a binary file (a SEG-Y, a checkpoint) given as a config
        raise ConfigError(f"{path}: not a text TOML file (not UTF-8 text)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["weighting.sa.optimizer=sgd", "training.steps=5", "steps=3"]`` ->
    ``{"weighting": {"sa": {"optimizer": "sgd"}}, "training": {"steps": 5}, "steps": 3}``.

    Each dot in a key opens one more level of nesting. Values are TOML (numbers,
    booleans, quoted strings, lists, inline tables); text that is not TOML is kept
    as a string, so ``weighting.name=sa`` and ``seeds=0,1,2`` work from a shell
    without quoting. A later item replaces an earlier one with the same key.
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        parts = [p.strip() for p in key.split(".")]
        if not sep or not all(parts):
            raise ConfigError(f"override {item!r}: expected key=value or section.key=value")
        node = out
        for depth, part in enumerate(parts[:-1]):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                set_at = ".".join(parts[: depth + 1])
                raise ConfigError(f"override {item!r}: {set_at!r} is already set to a value")
        node[parts[-1]] = _toml_value(text)
    return out


def merge_overrides(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``new`` merged in, table by table: a nested key of ``new``
    replaces only that key, never its siblings. Neither argument is modified."""
    out = dict(base)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_overrides(out[key], value)
        else:
            out[key] = value
    return out


def apply_overrides(obj: T, overrides: dict[str, Any], where: str) -> T:
    """A copy of dataclass instance ``obj`` with nested ``overrides`` (as from
    :func:`parse_overrides`) applied; keys they do not set keep ``obj``'s values.

    ``where`` (e.g. ``"race"``) prefixes every error message.
    """
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        raise TypeError(f"apply_overrides needs a dataclass instance, got {obj!r}")
    return build_section(type(obj), overrides, where, base=obj)


def build_section(
    cls: type[T], values: dict[str, Any] | None, where: str, base: T | None = None
) -> T:
    """Instantiate dataclass ``cls`` from ``values``, checking keys and types.

    ``where`` (e.g. ``"run.toml [model]"``) prefixes every error message. Keys
    not in ``values`` take ``base``'s values when given, else the class defaults.
    A field whose type is a dataclass and whose value is a table is built the same
    way, from the base's (or the field default's) instance, so a nested table
    changes only the keys it names. A field with ``metadata={"choices": names}``
    (any container of the allowed values; ``"what"``: what they are, for the
    message) only takes one of them.
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table, got {values!r}")
    values = dict(values)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        hint = hints[name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
            inner = getattr(base, name) if base is not None else _field_default(fields[name])
            values[name] = build_section(hint, value, _nested(where, name), inner)
        else:
            values[name] = _coerce(value, hint, f"{where} {name}")
        _check_choice(fields[name], values[name], f"{where} {name}")
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)  # type: ignore[type-var]
    except TypeError as exc:  # a required key is missing
        raise ConfigError(f"{where}: {exc}") from None
    except (ValueError, SeispinnError) as exc:  # the dataclass's own range checks
        raise ConfigError(f"{where}: {exc}") from None


def load_sections(
    defaults: T,
    sections: dict[str, type],
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    fresh: frozenset[str] = frozenset(),
) -> T:
    """A config dataclass of sections (``defaults`` with each field a section
    dataclass) from a TOML file (None: defaults only) and nested overrides as from
    :func:`parse_overrides`, merged into the file's tables key by key. Unknown
    sections and keys are errors naming the file; keys a section does not set keep
    ``defaults``' values, except in ``fresh`` sections, which start from their class
    defaults when given at all.
    """
    raw: dict[str, Any] = read_toml(path) if path is not None else {}
    where = str(path) if path is not None else "config"
    raw = merge_overrides(raw, overrides or {})
    unknown = sorted(set(raw) - set(sections))
    if unknown:
        raise ConfigError(
            f"{where}: unknown section [{unknown[0]}] (known: {', '.join(sorted(sections))})"
        )
    parts = {
        name: build_section(
            cls, raw[name], f"{where} [{name}]", None if name in fresh else getattr(defaults, name)
        )
        for name, cls in sections.items()
        if name in raw
    }
    return dataclasses.replace(defaults, **parts)  # type: ignore[type-var]


def _toml_value(text: str) -> Any:
    """``text`` read as a TOML value, or stripped as a plain string when it is not one."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text.strip()


def _nested(where: str, name: str) -> str:
    """``"run.toml [weighting]"``, ``"sa"`` -> ``"run.toml [weighting.sa]"``;
    ``"race"``, ``"sa"`` -> ``"race.sa"``."""
    if where.endswith("]"):
        return f"{where[:-1]}.{name}]"
    return f"{where}.{name}"


def _check_choice(f: dataclasses.Field, value: Any, where: str) -> None:
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        what = f.metadata.get("what", "value")
        raise ConfigError(
            f"{where}: unknown {what} {value!r} (choose one of {', '.join(map(str, choices))})"
        )


def _field_default(f: dataclasses.Field) -> Any:
    """The default a field would take, or None when it has none (a required key)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if type(None) in args and (value is None or value in ("none", "None", "null")):
            # TOML has no null: an optional setting is reset with the word none.
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: unexpected value {value!r}")
    if origin in (tuple, list):
        if isinstance(value, str):
            # A shell passes a list as "0,1,2"; each piece is read like a value.
            value = [_toml_value(s) for s in value.split(",") if s.strip()]
        if isinstance(value, (int, float, bool)):
            value = [value]  # one value for a list setting: a list of one (seeds=3)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where) for v in value]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table of name = value, got {value!r}")
        args = typing.get_args(hint)
        inner = args[1] if len(args) == 2 else Any
        for k in value:
            if not isinstance(k, str):
                raise ConfigError(f"{where}: keys must be names (strings), got {k!r}")
        return {k: _coerce(v, inner, f"{where}.{k}") for k, v in value.items()}
    if origin is typing.Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ConfigError(
                f"{where}: must be one of {', '.join(map(repr, choices))}, got {value!r}"
            )
        return value
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be finite, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if isinstance(value, dict):  # reached through an optional (``X | None``) field
            return build_section(hint, value, where)
        if not isinstance(value, hint):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
    return value
