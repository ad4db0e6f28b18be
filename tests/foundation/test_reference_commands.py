"""Each reference's recorded command still resolves to the config that made it.

A reference made before a config gained a key records an older config hash than its command gives
today; that is allowed only when every key it had resolves to the same value now and every key added
since sits at its default, so rerunning the command runs the same experiment."""

import dataclasses
import json
import shlex

import pytest

from elasticity import cli, registry
from harness.config import flatten
from harness.reference import figures_dir, load_results

HEADLINES = {key: entry["headline"] for key, entry in sorted(load_results()["experiments"].items())}


def _plain(config: dict) -> dict:
    """Dotted keys with JSON values (tuples become lists), as config.json stores them."""
    return json.loads(json.dumps(flatten(config)))


def _config_now(command: str, capsys) -> dict:
    argv = [word for word in shlex.split(command)[1:] if word != "--update-reference"]
    capsys.readouterr()
    assert cli.main([*argv, "--print-config", "--json"]) == 0, command
    return _plain(json.loads(capsys.readouterr().out)["config"])


@pytest.mark.parametrize("key", sorted(HEADLINES))
def test_reference_command_resolves_to_the_config_that_made_it(key, capsys):
    record = json.loads((figures_dir() / "data" / key / "config.json").read_text())
    made, now = _plain(record["config"]), _config_now(HEADLINES[key]["command"], capsys)
    defaults = _plain(dataclasses.asdict(registry.load(record["experiment"]).config_cls()))
    assert [k for k in made if k not in now] == [], f"{key}: keys its config had are gone"
    assert {k: (made[k], now[k]) for k in made if made[k] != now[k]} == {}, f"{key}: values moved"
    assert {k: now[k] for k in now if k not in made and now[k] != defaults[k]} == {}, \
        f"{key}: keys added since the reference are not at their defaults"
