"""A file that would run code when unpickled, in a cache or a run folder, never runs: the load is
refused as a one-line error (exit 2) and the payload's marker file is never written."""

import pytest

from harness.errors import ConfigError
from tests.foundation.test_cli import _micro_command
from tests.untrusted import payload_bytes


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("kind", ["pickle", "torch"])
def test_payload_in_the_pretraining_cache_never_runs(kind, tmp_path):
    from harness.runs import cache_dir
    from toymodels.train import PretrainSpec, pretrain

    spec = PretrainSpec(size="50k", n_pretrain=8, seed=987)
    marker = tmp_path / "ran"
    (cache_dir("toy", "pretrain") / f"{spec.cache_key()}.pt").write_bytes(payload_bytes(marker, kind))
    with pytest.raises(ConfigError, match="delete it and rerun"):
        pretrain(spec)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["pickle", "torch"])
def test_payload_in_a_run_folder_never_runs(kind, tmp_path, capsys):
    from elasticity.command import group_main

    commands = {"micro": ("micro", _micro_command)}
    out, marker = tmp_path / "run", tmp_path / "ran"
    assert group_main("demo", "", ["micro", "--out", str(out)], commands) == 0
    cells = sorted((out / "cells").iterdir())
    assert cells
    for cell in cells:
        cell.write_bytes(payload_bytes(marker, kind))
    (out / "cells" / "weights.pt").write_bytes(payload_bytes(marker, kind))
    capsys.readouterr()
    assert group_main("demo", "", ["micro", "--out", str(out)], commands) == 2
    err = capsys.readouterr().err.strip()
    print(err)
    assert len(err.splitlines()) == 1 and "delete it" in err
    assert not marker.exists()


def test_the_payload_runs_when_unpickled(tmp_path):
    """The negative tests above mean something: loading the payload unsafely writes the marker."""
    import pickle

    marker = tmp_path / "ran"
    pickle.loads(payload_bytes(marker, "pickle"))
    assert marker.read_text() == "ran"
