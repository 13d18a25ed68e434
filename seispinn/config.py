"""Strict TOML configuration: every section maps onto a frozen dataclass.

An unknown key, a value of the wrong type or a missing required key raises
:class:`ConfigError` naming the file, the key and the reason, before any work starts.
"""

from __future__ import annotations

import dataclasses
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

__all__ = ["read_toml", "build_section", "parse_overrides"]

T = TypeVar("T")


def read_toml(path: str | Path) -> dict[str, Any]:
    """The parsed TOML file, or :class:`ConfigError` naming the file and the problem."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["training.steps=100", "weighting.name='sa'"]`` -> ``{section: {key: value}}``.

    Values are TOML (numbers, booleans, quoted strings, lists); a bare word is
    taken as a string so ``weighting.name=sa`` works from a shell.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not (sep and dot and section and name):
            raise ConfigError(f"override {item!r}: expected section.key=value")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text.strip()
        out.setdefault(section, {})[name] = value
    return out


def build_section(
    cls: type[T], values: dict[str, Any] | None, where: str, base: T | None = None
) -> T:
    """Instantiate dataclass ``cls`` from ``values``, checking keys and types.

    ``where`` (e.g. ``"run.toml [model]"``) prefixes every error message. Keys
    not in ``values`` take ``base``'s values when given, else the class defaults.
    """
    values = dict(values or {})
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(fields))})"
        )
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        values[name] = _coerce(value, hints[name], f"{where} {name}")
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
    overrides: dict[str, dict[str, Any]] | None = None,
    fresh: frozenset[str] = frozenset(),
) -> T:
    """A config dataclass of sections (``defaults`` with each field a section
    dataclass) from a TOML file (None: defaults only) and ``{section: {key:
    value}}`` overrides. Unknown sections and keys are errors naming the file;
    keys a section does not set keep ``defaults``' values, except in ``fresh``
    sections, which start from their class defaults when given at all.
    """
    raw: dict[str, Any] = read_toml(path) if path is not None else {}
    where = str(path) if path is not None else "config"
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
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


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
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
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        inner = args[0] if args else Any
        items = [_coerce(v, inner, where) for v in value]
        return tuple(items) if origin is tuple else items
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
    return value
