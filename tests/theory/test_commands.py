"""The theory command group: lazy imports, check's exit code, derive, pareto-fit and bad files."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from elasticity.theory_group import main
from theory import checks


def test_help_needs_neither_torch_nor_transformers():
    code = ("import sys; from elasticity.cli import main; main(['theory', '--help']); "
            "from theory import simulate, boundary, checks, figures, derivation; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "simulate" in result.stdout and "pareto-fit" in result.stdout


def test_check_exits_1_only_for_exact_failures(monkeypatch, capsys):
    finding = checks.Check("a finding", False, 0.0, "sampled", exact=False)
    monkeypatch.setattr(checks, "run_checks", lambda quick=True: [finding])
    assert main(["check"]) == 0
    exact = checks.Check("an identity", False, 1.0, "broken", exact=True)
    monkeypatch.setattr(checks, "run_checks", lambda quick=True: [finding, exact])
    assert main(["check"]) == 1
    assert "an identity" in capsys.readouterr().err


def test_derive_prints(capsys):
    assert main(["derive", "--verify", ""]) == 0
    assert "conservation" in capsys.readouterr().out
    assert main(["derive", "--latex", "--verify", ""]) == 0
    assert r"\frac" in capsys.readouterr().out


def test_pareto_fit_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    p = 1.0 / np.arange(1, 9) ** 1.5
    tokens = rng.choice(8, size=(20_000, 6), p=p / p.sum())
    path = tmp_path / "tokens.npy"
    np.save(path, tokens)
    assert main(["pareto-fit", str(path), "--depth", "4", "--figure", str(tmp_path / "ccdf.png")]) == 0
    out = capsys.readouterr().out
    assert "Zipf alpha" in out and (tmp_path / "ccdf.png").exists()


def test_pareto_fit_bad_files(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 x\n")
    assert main(["pareto-fit", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "non-integer" in err and len(err.strip().splitlines()) == 1
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert main(["pareto-fit", str(empty)]) == 2
    assert "empty dataset" in capsys.readouterr().err
    assert main(["pareto-fit", str(bad), "--depth", "0"]) == 2
