"""Configs that compose: frozen, kw_only dataclasses whose fields are values or nested blocks.

A shared block (pre-training, probe, execution, ...) is declared once as its own dataclass and
nested in each experiment's config. Keys are dotted paths to leaves (``probe.optimizer.lr``).
A leaf is also reachable by its own name when no other leaf of the config shares it
(``n_eval`` for ``probe.n_eval``), and a config or block may declare ``ALIASES``, for renamed keys
(``{"pretrain_lr": "lr"}`` on the pre-training block) or to say which leaf a shared name means
(the optimizer block declares ``lr``, so ``lr`` is the fine-tuning rate, not ``pretrain.lr``).
A block's aliases are lifted to every config that nests it, and a declared alias wins over a
leaf's name. A name that still reaches two leaves is refused as ambiguous.

Resolution order: dataclass defaults < preset < ``--config FILE`` (TOML or JSON) < ``--set`` (and flags
such as ``--k``) < ``--seed``. Every override is type-checked against its field, and the
``__post_init__`` of each block checks ranges; both raise :class:`ConfigError`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from harness.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """Named overrides of a config, with an honest runtime estimate on 2 CPU cores."""

    overrides: Mapping[str, Any] = field(default_factory=dict)
    help: str = ""
    est_seconds: float = 0.0


# how a boolean key is written in --set or a config file
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def is_block(tp: Any) -> bool:
    """Whether a field's type is a nested config block (a dataclass)."""
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


@cache
def leaf_types(cls: type) -> dict[str, Any]:
    """Every leaf of a config class as ``dotted.key -> type``, in declaration order."""
    out: dict[str, Any] = {}
    for name, tp in typing.get_type_hints(cls).items():
        if name not in {f.name for f in dataclasses.fields(cls)}:
            continue  # ClassVars such as ALIASES
        if is_block(tp):
            out.update({f"{name}.{key}": sub for key, sub in leaf_types(tp).items()})
        else:
            out[name] = tp
    return out


@cache
def declared_aliases(cls: type) -> dict[str, frozenset[str]]:
    """The ``ALIASES`` a config class and its blocks declare, as dotted keys; the class's own win."""
    offered: dict[str, set[str]] = {}
    for name, tp in typing.get_type_hints(cls).items():
        if is_block(tp):
            for alias, keys in declared_aliases(tp).items():
                offered.setdefault(alias, set()).update(f"{name}.{k}" for k in keys)
    offered.update({alias: {key} for alias, key in getattr(cls, "ALIASES", {}).items()})
    return {alias: frozenset(keys) for alias, keys in offered.items()}


@cache
def alias_table(cls: type) -> dict[str, tuple[str, ...]]:
    """Every short name of a config class -> the dotted keys it may mean (one unless ambiguous).

    A leaf's own last name counts; a declared alias of the same name replaces it.
    """
    names: dict[str, set[str]] = {}
    for key in leaf_types(cls):
        names.setdefault(key.rsplit(".", 1)[-1], set()).add(key)
    names.update(declared_aliases(cls))
    return {name: tuple(sorted(keys)) for name, keys in names.items()}


def resolve_key(cls: type, key: str) -> str:
    """The dotted key that ``key`` (dotted, a unique leaf name or an alias) names."""
    key = key.strip().replace("-", "_")
    leaves = leaf_types(cls)
    if key in leaves:
        return key
    keys = alias_table(cls).get(key, ())
    if len(keys) == 1:
        return keys[0]
    if len(keys) > 1:
        raise ConfigError(f"ambiguous key '{key}': say {' or '.join(keys)}")
    blocks = sorted({k.split(".", 1)[0] for k in leaves if "." in k})
    if key in blocks:
        raise ConfigError(f"'{key}' is a block; set its keys, e.g. {next(k for k in leaves if k.startswith(key + '.'))}")
    raise ConfigError(f"unknown key '{key}'; valid keys: {', '.join(leaves)}")


def parse_value(cls: type, key: str, raw: Any) -> tuple[str, Any]:
    """The dotted key and ``raw`` (command-line text or a TOML value) coerced to its field's type."""
    dotted = resolve_key(cls, key)
    try:
        return dotted, _coerce(leaf_types(cls)[dotted], raw)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad value for '{dotted}': {raw!r} ({err})") from None


def _coerce(tp: Any, raw: Any, sep: str = ",") -> Any:
    """``raw`` as a value of type ``tp``; tuples are ``sep``-separated text (a tuple's own tuple
    items are ``-``-separated: ``"1-2,2-3"`` is ``((1, 2), (2, 3))``)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(tp) if a is not type(None)]
        if raw is None or (isinstance(raw, str) and raw.lower() in ("none", "null", "")):
            return None
        errors = []
        for option in options:
            try:
                return _coerce(option, raw, sep)
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
        if isinstance(raw, str):
            parts = [p.strip() for p in raw.split(sep) if p.strip()]
        elif isinstance(raw, Sequence):
            parts = list(raw)
        else:
            parts = [raw]
        if args and args[-1] is not Ellipsis:  # fixed length, e.g. tuple[int, int]
            if len(parts) != len(args):
                raise ValueError(f"expected {len(args)} values, got {len(parts)}")
            return tuple(_coerce(item, p, "-") for item, p in zip(args, parts, strict=True))
        return tuple(_coerce(args[0] if args else str, p, "-") for p in parts)
    if tp is bool:
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        raise ValueError("expected true or false")
    if tp is int:
        if isinstance(raw, bool):
            raise ValueError("expected an integer")
        number = float(raw) if isinstance(raw, str) else raw
        if isinstance(number, float) and not number.is_integer():
            raise ValueError("expected an integer")
        return int(number)
    if tp is float:
        if isinstance(raw, bool):
            raise ValueError("expected a number")
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError("expected a finite number")
        return value
    if tp is str:
        return str(raw)
    raise TypeError(f"unsupported config field type {tp}")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Read a config file, TOML or (by its ``.json`` suffix) JSON, as dotted keys.

    Keys sit at the top or under ``config`` (so ``--print-config`` output reads back); tables are
    blocks. A key left out keeps its default; files have no null, so an unset (None) value is left
    out or written as ``"none"``.
    """
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {err.strerror}") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot parse {path}: {err}") from None
    tree = data.get("config", data) if isinstance(data, Mapping) else data
    if not isinstance(tree, Mapping):
        raise ConfigError(f"{path} must hold a table of config keys (a JSON object), not {type(tree).__name__}")
    return flatten(tree)


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables (``{"probe": {"n_eval": 8}}``) as dotted keys (``{"probe.n_eval": 8}``)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def parse_sets(items: Sequence[str]) -> dict[str, str]:
    """Parse repeated ``key=value`` strings."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value
    return out


def build_config(cls: type, *layers: Mapping[str, Any]) -> Any:
    """Apply override layers in order on top of the dataclass defaults and validate."""
    values: dict[str, Any] = {}
    for layer in layers:
        for key, raw in layer.items():
            dotted, value = parse_value(cls, key, raw)
            values[dotted] = value
    try:
        config = _with_overrides(cls(), values)
        if hasattr(config, "seeds") and hasattr(config, "seed"):
            check_seeds(config)  # before anything is written
        return config
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(str(err)) from None


def _with_overrides(base: Any, values: Mapping[str, Any]) -> Any:
    """``base`` with dotted ``values`` replaced, block by block (each block validates itself)."""
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(base):
        if f.name in values:
            changes[f.name] = values[f.name]
        inner = {k[len(f.name) + 1:]: v for k, v in values.items() if k.startswith(f.name + ".")}
        if inner:
            changes[f.name] = _with_overrides(getattr(base, f.name), inner)
    return dataclasses.replace(base, **changes) if changes else base


# The most independent runs one config may ask for: each seed is a cell of the run's grid.
MAX_SEEDS = 10_000
# Seeds go to torch.manual_seed (a signed 64-bit integer) and into derived seeds: keep them small.
MAX_SEED = 2**31 - 1
# Sizes are checked against this much memory before anything runs; the environment variable
# raises or lowers it for a machine.
MEMORY_CAP_ENV = "ELASTICITY_MEMORY_CAP_GIB"
DEFAULT_MEMORY_CAP_GIB = 16.0


def seeds_of(config: Any) -> list[int]:
    """The seeds a config's ``seeds`` and ``seed`` name: ``seed, seed + 1, ...``."""
    check_seeds(config)
    return [config.seed + i for i in range(config.seeds)]


def check_seeds(config: Any) -> None:
    """A config's seeds fit what the grids and the random generators take."""
    require(config.seeds <= MAX_SEEDS, f"seeds = {config.seeds} is more than the {MAX_SEEDS} independent runs "
            "one config may hold")
    require(0 <= config.seed and config.seed + config.seeds - 1 <= MAX_SEED,
            f"seed = {config.seed} with {config.seeds} seeds must stay within 0..{MAX_SEED}")


def require_distinct(key: str, values: Sequence[Any]) -> None:
    """A grid axis names each value once: a repeat would count its cells twice."""
    repeated = sorted({str(v) for v in values if list(values).count(v) > 1})
    require(not repeated, f"{key} repeats {', '.join(repeated)}; give each value once")


def memory_cap_gib() -> float:
    """The memory cap sizes are checked against, in GiB (``ELASTICITY_MEMORY_CAP_GIB``, default 16)."""
    raw = os.environ.get(MEMORY_CAP_ENV, "")
    try:
        cap = float(raw) if raw.strip() else DEFAULT_MEMORY_CAP_GIB
    except ValueError:
        cap = float("nan")
    require(math.isfinite(cap) and cap > 0, f"{MEMORY_CAP_ENV} = {raw!r} must be a positive number of GiB")
    return cap


def require_fits(key: str, count: int | Sequence[int], bytes_each: float, what: str) -> None:
    """``count`` (the largest, for a tuple) items of ``bytes_each`` must fit in the memory cap."""
    largest = max(count, default=0) if isinstance(count, Sequence) else count
    need = largest * bytes_each / 2**30
    cap = memory_cap_gib()
    require(need <= cap, f"{key} = {largest} would hold about {need:.3g} GiB of {what}, over the memory cap of "
            f"{cap:g} GiB (set {MEMORY_CAP_ENV} to change it)")


def require(condition: bool, message: str) -> None:
    """Range checks in ``__post_init__``: one line, raised as ConfigError (exit 2)."""
    if not condition:
        raise ConfigError(message)
