"""Config resolution: types, presets, files, overrides and range checks."""

import re
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import pytest

from harness.config import Preset, build_config, load_config_file, parse_sets, require
from harness.errors import ConfigError
from harness.experiment import Experiment


@dataclass(frozen=True, kw_only=True)
class Demo:
    k: tuple[int, ...] = (10, 100)
    alpha: float = 1.2
    level: Literal["distribution", "sampled"] = "distribution"
    seeds: int = 3
    seed: int = 0
    fast: bool = False
    device: str | None = None

    def __post_init__(self) -> None:
        require(self.alpha > 0, f"alpha must be > 0, got {self.alpha}")
        require(all(k > 0 for k in self.k), f"k must be > 0, got {self.k}")


EXP = Experiment(
    name="demo.x", help="demo", config_cls=Demo,
    presets={"quick": Preset({"seeds": 2}, "small", 1.0), "full": Preset({"seeds": 9}, "big", 10.0)},
    run=lambda config, run: {"predictions": []},
)


def test_types_are_coerced():
    config = build_config(Demo, {"k": "1,2,3", "alpha": "2", "level": "sampled", "fast": "yes", "device": "none"})
    assert config == Demo(k=(1, 2, 3), alpha=2.0, level="sampled", fast=True, device=None)


def test_tuples_of_pairs_from_the_command_line():
    from toymodels.protocols.resistance import ResistanceConfig

    assert build_config(ResistanceConfig, {"protocol.pairs": "1-2,2-3"}).protocol.pairs == ((1, 2), (2, 3))
    assert build_config(ResistanceConfig, {"protocol.pairs": "1-3"}).protocol.pairs == ((1, 3),)
    assert build_config(ResistanceConfig, {"protocol.optimizer.betas": "0.8,0.9"}).protocol.optimizer.betas == (0.8, 0.9)
    with pytest.raises(ConfigError, match="expected 2 values"):
        build_config(ResistanceConfig, {"protocol.pairs": "1-2-3"})


def test_resolution_order(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[config]\nseeds = 4\nalpha = 3.0\n")
    assert EXP.resolve("full").seeds == 9
    assert EXP.resolve("quick", str(toml)).seeds == 4
    config = EXP.resolve("quick", str(toml), {"alpha": "5"}, seed=7)
    assert (config.seeds, config.alpha, config.seed) == (4, 5.0, 7)


def test_bad_files_and_sets():
    with pytest.raises(ConfigError, match="not found"):
        load_config_file("/nonexistent/c.toml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_sets(["novalue"])
    with pytest.raises(ConfigError, match="unknown preset"):
        EXP.resolve("paper")


@dataclass(frozen=True, kw_only=True)
class Optim:
    ALIASES: ClassVar[dict[str, str]] = {"lr": "lr"}
    lr: float = 1e-3
    batch_size: int = 16

    def __post_init__(self) -> None:
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")


@dataclass(frozen=True, kw_only=True)
class Pretrain:
    ALIASES: ClassVar[dict[str, str]] = {"pretrain_lr": "lr"}
    lr: float = 3e-3
    batch_size: int = 64


@dataclass(frozen=True, kw_only=True)
class Probe:
    n_eval: int = 256
    optimizer: Optim = field(default_factory=Optim)


@dataclass(frozen=True, kw_only=True)
class Nested:
    seeds: int = 5
    pretrain: Pretrain = field(default_factory=Pretrain)
    probe: Probe = field(default_factory=lambda: Probe(n_eval=64))


def test_blocks_are_reached_by_dotted_keys_unique_names_and_aliases(tmp_path):
    assert build_config(Nested).probe.n_eval == 64  # the block's default comes from its parent
    config = build_config(Nested, {"probe.optimizer.lr": "0.01", "n_eval": "8", "pretrain_lr": "0.5"})
    assert (config.probe.optimizer.lr, config.probe.n_eval, config.pretrain.lr) == (0.01, 8, 0.5)
    assert build_config(Nested, {"lr": "0.2"}).probe.optimizer.lr == 0.2  # a declared alias beats a leaf name
    toml = tmp_path / "c.toml"
    toml.write_text("seeds = 3\n[probe]\nn_eval = 7\n[probe.optimizer]\nlr = 0.3\n")
    config = build_config(Nested, load_config_file(toml))
    assert (config.seeds, config.probe.n_eval, config.probe.optimizer.lr) == (3, 7, 0.3)
    assert config.pretrain == Pretrain()


@pytest.mark.parametrize("cls, override, message", [
    (Demo, {"nonsense": "1"}, "unknown key 'nonsense'; valid keys: k, alpha, level"),
    (Demo, {"seeds": "2.5"}, "bad value for 'seeds'"),
    (Demo, {"level": "tree"}, "expected one of distribution, sampled"),
    (Demo, {"alpha": "-1"}, "alpha must be > 0"),
    (Demo, {"k": "10,-3"}, "k must be > 0"),
    (Demo, {"fast": "maybe"}, "expected true or false"),
    (Nested, {"batch_size": "4"}, "ambiguous key 'batch_size': say pretrain.batch_size or probe.optimizer.batch_size"),
    (Nested, {"probe": "1"}, "'probe' is a block; set its keys, e.g. probe.n_eval"),
    (Nested, {"probe.nonsense": "1"}, "unknown key 'probe.nonsense'; valid keys: seeds, pretrain.lr"),
    (Nested, {"lr": "-1"}, "lr must be > 0"),
    (Nested, {"probe.optimizer.lr": "inf"}, "expected a finite number"),
])
def test_bad_values_are_config_errors(cls, override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        build_config(cls, override)
