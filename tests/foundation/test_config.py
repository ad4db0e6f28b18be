"""Config resolution: types, presets, files, overrides and range checks."""

from dataclasses import dataclass
from typing import Literal

import pytest

from harness.config import Preset, build_config, load_toml, parse_sets, require
from harness.errors import ConfigError
from harness.experiment import Experiment


@dataclass(frozen=True)
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


@pytest.mark.parametrize(
    "override, message",
    [
        ({"nonsense": "1"}, "unknown key 'nonsense'; valid keys: k, alpha, level"),
        ({"seeds": "2.5"}, "bad value for 'seeds'"),
        ({"level": "tree"}, "expected one of distribution, sampled"),
        ({"alpha": "-1"}, "alpha must be > 0"),
        ({"k": "10,-3"}, "k must be > 0"),
        ({"fast": "maybe"}, "expected true or false"),
    ],
)
def test_bad_values_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        build_config(Demo, override)


def test_resolution_order(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[config]\nseeds = 4\nalpha = 3.0\n")
    assert EXP.resolve("full").seeds == 9
    assert EXP.resolve("quick", str(toml)).seeds == 4
    config = EXP.resolve("quick", str(toml), {"alpha": "5"}, seed=7)
    assert (config.seeds, config.alpha, config.seed) == (4, 5.0, 7)


def test_bad_files_and_sets():
    with pytest.raises(ConfigError, match="not found"):
        load_toml("/nonexistent/c.toml")
    with pytest.raises(ConfigError, match="key=value"):
        parse_sets(["novalue"])
    with pytest.raises(ConfigError, match="unknown preset"):
        EXP.resolve("paper")
