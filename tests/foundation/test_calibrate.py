"""`elasticity calibrate` on a tiny fake calibration: run folder, power curves, reference table.
And every registered calibration module imports and names its calibrations once."""

import importlib
import json
import subprocess

import numpy as np
import pytest

from elasticity import calibrate, registry
from elasticity.cli import main
from harness import reference
from harness.calibration import Calibration
from harness.markdown import CALIBRATION_END, CALIBRATION_START
from harness.metrics import read_metrics_csv
from harness.verdicts import Claim, judge, t_estimate


def _replicate(size: float, seed: int):
    """Five runs of a reading with unit noise, its effect planted at ``size``."""
    values = np.random.default_rng(seed).normal(size, 1.0, 5)
    return judge("demo.mean_positive", t_estimate(values), "mean", claim=Claim(direction=1), family="demo")


CALIBRATIONS = (Calibration(reading="demo.mean_positive", experiment="demo.micro", replicate=_replicate, null=0.0,
                            stated=3.0, scan=(0.5, 1.5, 3.0), unit="nats", paper_size="none derivable",
                            noise="sd 1 per run"),)


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(registry, "CALIBRATION_MODULES", ("tests.foundation.test_calibrate",))


def test_calibrate_writes_a_run_folder(fake, tmp_path, capsys):
    out = tmp_path / "cal"
    assert main(["calibrate", "--reps", "20", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    (result,) = summary["calibrations"]
    assert result["name"] == "demo.micro:demo.mean_positive" and result["fpr_ok"] and result["power_ok"]
    assert summary["failed"] == [] and summary["n_replicates"] == 20
    rows = read_metrics_csv(out / "metrics.csv")
    assert (out / "metrics.csv").read_text().splitlines()[0] == "seed,experiment,reading,size_unit,x,measure,value,unit"
    assert {r["measure"] for r in rows} == {"false_positive_rate", "false_positive_mcse", "power_stated",
                                            "power_stated_mcse", "power", "minimal_detectable_effect"}
    assert sorted(r["x"] for r in rows if r["measure"] == "power") == [0.5, 1.5, 3.0]
    assert (out / "figures" / calibrate.FIGURE).stat().st_size > 0
    assert main(["calibrate", "--only", "nothing-matches"]) == 2


def test_calibrate_updates_the_reference(fake, tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "figures").mkdir(parents=True)
    (root / "README.md").write_text(f"# r\n{CALIBRATION_START}\nold\n{CALIBRATION_END}\n")
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "s"]):
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)
    monkeypatch.setattr(reference, "repo_root", lambda: root)
    assert main(["calibrate", "--reps", "10", "--out", str(tmp_path / "cal"), "--update-reference"]) == 0
    record = json.loads((root / "figures" / "calibration.json").read_text())
    assert list(record["calibrations"]) == ["demo.micro:demo.mean_positive"]
    entry = record["calibrations"]["demo.micro:demo.mean_positive"]
    assert entry["git_commit"] == record["provenance"]["git_commit"] and "--update-reference" in entry["command"]
    readme = (root / "README.md").read_text()
    assert "| `demo.mean_positive` | `demo.micro` |" in readme and "old" not in readme
    assert (root / "figures" / reference.CALIBRATION_FIGURE).exists()
    assert "calibration.power_curves.png" in (root / "figures" / "README.md").read_text()


@pytest.mark.parametrize("module", registry.CALIBRATION_MODULES)
def test_every_calibration_module_imports(module):
    cals = importlib.import_module(module).CALIBRATIONS
    assert cals and all(isinstance(c, Calibration) for c in cals)


def test_calibration_names_are_unique():
    calibrate.load_calibrations()  # raises on a name registered twice
