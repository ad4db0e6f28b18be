"""Experiments as data: a config class, its presets, and the functions that measure and draw.

An :class:`Experiment` names a config dataclass, its presets, a ``run`` function that measures
and writes metrics into a :class:`~harness.runs.RunDir`, and a ``draw`` function that makes the
figures from the saved metrics only. :mod:`harness.runner` executes one; the command line
(``elasticity``) turns it into a command with the shared flags.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.config import Preset, build_config, flatten, leaf_types, load_config_file, resolve_key
from harness.errors import ConfigError
from harness.runs import RunDir


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """A command that measures something and writes a run folder.

    ``run(config, run_dir)`` writes ``metrics.csv`` through ``run_dir`` and returns the
    experiment-specific part of the summary: at least ``predictions`` (a list of Prediction or
    dicts) and, when an instrument check failed, ``instrument_failures`` (a list of strings).
    ``draw(run_dir)`` draws figures from ``run_dir``'s saved metrics and summary; it may be given
    as ``"module:function"``, imported only when figures are drawn (plotting stays out of start-up).
    ``flags`` are command-line shortcuts for config keys (``{"--k": "k"}``).
    ``readings(rows, experiment)`` turns the rows of any ``metrics.csv`` of this experiment (the
    documented layout, as :func:`harness.metrics.read_metrics_csv` returns them) into its predictions,
    so that runs made elsewhere (on a GPU, by another version) can be judged with the same code.
    """

    name: str
    help: str
    config_cls: type
    presets: Mapping[str, Preset]
    run: Callable[[Any, RunDir], Mapping[str, Any]]
    draw: Callable[[RunDir], object] | str | None = None
    readings: Callable[[Sequence[Mapping[str, Any]], str], list[Any]] | None = None
    flags: Mapping[str, str] = field(default_factory=dict)
    units: Mapping[str, str] = field(default_factory=dict)
    default_preset: str = "quick"

    def resolve(
        self, preset: str | None = None, config_file: str | None = None,
        sets: Mapping[str, Any] | None = None, seed: int | None = None,
    ) -> Any:
        """Defaults < preset < config file < sets < seed; validated (ConfigError on bad input)."""
        preset = preset or self.default_preset
        if preset not in self.presets:
            raise ConfigError(f"unknown preset '{preset}' for {self.name}; presets: {', '.join(self.presets)}")
        layers: list[Mapping[str, Any]] = [self.presets[preset].overrides]
        if config_file:
            layers.append(load_config_file(config_file))
        layers.append(dict(sets or {}))
        if seed is not None:
            if seed < 0:
                raise ConfigError(f"--seed must be >= 0, got {seed}")
            if "seed" not in leaf_types(self.config_cls):
                raise ConfigError(f"{self.name} has no seed")
            layers.append({"seed": seed})
        return build_config(self.config_cls, *layers)

    def file_tree(self, config: Any) -> dict[str, Any]:
        """``config`` as nested tables for a config file that reads back to the same config.

        Config files have no null: a None leaf is left out where leaving it out means None (neither
        the defaults nor a preset set it), and written as ``"none"`` where it does not.
        """
        defaults = flatten(dataclasses.asdict(self.config_cls()))
        preset_keys = {resolve_key(self.config_cls, key) for p in self.presets.values() for key in p.overrides}
        tree: dict[str, Any] = {}
        for key, value in flatten(dataclasses.asdict(config)).items():
            if value is None and defaults.get(key) is None and key not in preset_keys:
                continue
            *blocks, leaf = key.split(".")
            node = tree
            for block in blocks:
                node = node.setdefault(block, {})
            node[leaf] = "none" if value is None else value
        return tree


def load_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` (keeps modules lazy until they are needed)."""
    module_name, attr = path.split(":")
    return getattr(importlib.import_module(module_name), attr)
