"""Frozen dataclass configs: presets, TOML files and ``--set key=value`` overrides.

Resolution order: dataclass defaults < preset < ``--config FILE.toml`` < ``--set`` (and its
aliases such as ``--k``) < ``--seed``. Every override is type-checked against the dataclass
field, and ``__post_init__`` of the config checks ranges; both raise :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from theory.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """Named overrides of a config, with an honest runtime estimate on 2 CPU cores."""

    overrides: Mapping[str, Any] = field(default_factory=dict)
    help: str = ""
    est_seconds: float = 0.0


def field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def parse_value(cls: type, key: str, raw: Any) -> Any:
    """Coerce ``raw`` (a string from the command line, or a TOML value) to the field's type."""
    hints = typing.get_type_hints(cls)
    if key not in hints:
        raise ConfigError(f"unknown key '{key}'; valid keys: {', '.join(field_names(cls))}")
    try:
        return _coerce(hints[key], raw)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad value for '{key}': {raw!r} ({err})") from None


def _coerce(tp: Any, raw: Any) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null", "")):
            return None
        errors = []
        for option in options:
            try:
                return _coerce(option, raw)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        choices = get_args(tp)
        value = raw if not isinstance(raw, str) else _coerce(type(choices[0]), raw)
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(map(str, choices))}")
        return value
    if origin is tuple:
        args = get_args(tp)
        item = args[0] if args else str
        if isinstance(raw, str):
            parts = [p.strip() for p in raw.split(",") if p.strip()]
        elif isinstance(raw, Sequence):
            parts = list(raw)
        else:
            parts = [raw]
        return tuple(_coerce(item, p) for p in parts)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true or false")
    if tp is int:
        if isinstance(raw, bool):
            raise ValueError("expected an integer")
        if isinstance(raw, float) and not raw.is_integer():
            raise ValueError("expected an integer")
        if isinstance(raw, str):
            number = float(raw)
            if not number.is_integer():
                raise ValueError("expected an integer")
            return int(number)
        return int(raw)
    if tp is float:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        return float(raw)
    if tp is str:
        return str(raw)
    raise TypeError(f"unsupported config field type {tp}")


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a config file: flat keys, or keys under a ``[config]`` table."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"cannot parse {path}: {err}") from None
    return dict(data.get("config", data))


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """Parse repeated ``key=value`` strings."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip().replace("-", "_")] = value
    return out


def build_config(cls: type, *layers: Mapping[str, Any]) -> Any:
    """Apply override layers in order on top of the dataclass defaults and validate."""
    values: dict[str, Any] = {}
    for layer in layers:
        for key, raw in layer.items():
            values[key] = parse_value(cls, key, raw)
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None


def describe_config(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def require(condition: bool, message: str) -> None:
    """Range checks in ``__post_init__``: one line, raised as ConfigError (exit 2)."""
    if not condition:
        raise ConfigError(message)
