"""``--print-config`` writes a file that ``--config`` reads back to the same config hash, for every
experiment and preset, as TOML and as JSON."""

import json

import pytest

from elasticity import registry
from elasticity.cli import main
from elasticity.command import config_text
from harness.config import load_config_file
from harness.errors import ConfigError
from harness.runs import config_hash

CASES = [(name, preset) for name in sorted(registry.EXPERIMENTS) for preset in registry.load(name).presets]


@pytest.mark.parametrize("as_json", [False, True], ids=["toml", "json"])
@pytest.mark.parametrize("name, preset", CASES)
def test_printed_config_reads_back_to_the_same_hash(name, preset, as_json, tmp_path):
    experiment = registry.load(name)
    config = experiment.resolve(preset)
    path = tmp_path / ("printed.json" if as_json else "printed.toml")
    path.write_text(config_text(experiment, preset, config, as_json=as_json))
    # read back under the default preset: the file alone fixes every key
    assert config_hash(name, experiment.resolve(config_file=str(path))) == config_hash(name, config)


def test_none_round_trips_where_a_preset_or_default_is_set(tmp_path):
    """A None that leaving the key out would not give is written as "none"; one it would give is left out."""
    experiment = registry.load("toy.rebound")
    config = experiment.resolve(sets={"probe.optimizer.max_grad_norm": "none"})
    path = tmp_path / "unset.toml"
    path.write_text(config_text(experiment, "quick", config))
    assert 'max_grad_norm = "none"' in path.read_text() and "dask_scheduler" not in path.read_text()
    assert experiment.resolve(config_file=str(path)) == config


def test_print_config_through_the_command_line(tmp_path, capsys):
    argv = ["toy", "rebound", "--preset", "full", "--set", "n_eval=64", "--seed", "5"]
    assert main([*argv, "--print-config"]) == 0
    toml = tmp_path / "rebound.toml"
    toml.write_text(capsys.readouterr().out)
    assert main([*argv, "--print-config", "--json"]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed)["config"]["probe"]["n_eval"] == 64
    (tmp_path / "rebound.json").write_text(printed)
    for path in (toml, tmp_path / "rebound.json"):
        assert main(["toy", "rebound", "--config", str(path), "--print-config", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["config"] == json.loads(printed)["config"]


def test_json_config_files_flatten_like_toml(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text('{"seeds": 4, "probe": {"n_eval": 8, "optimizer": {"lr": 0.01}}}')
    config = registry.load("toy.rebound").resolve(config_file=str(flat))
    assert (config.seeds, config.probe.n_eval, config.probe.optimizer.lr) == (4, 8, 0.01)
    for text, message in (("[1, 2]", "a table of config keys"), ('{"config": 3}', "a table of config keys"),
                          ("{nope", "cannot parse")):
        flat.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_config_file(flat)
