"""simulate: summary schema, determinism, resume, the exact distribution level, recorded verdicts."""

from __future__ import annotations

import json
import math

from harness.runner import execute
from harness.runs import config_hash
from tests.verdicts import check_recorded_verdict
from theory.simulate import EXPERIMENT

KEYS = ("slope", "slope_ci", "ratios", "coefficients", "coefficients_l0", "signs_hold",
        "max_conservation_residual", "predictions")


def test_summary_has_the_promised_keys(simulate_run):
    summary = simulate_run.summary
    for key in KEYS:
        assert key in summary
    n_k = len(simulate_run.run.config.k)
    for key in ("ratios", "coefficients", "coefficients_l0", "signs_hold"):
        assert len(summary[key]) == n_k
    assert summary["max_conservation_residual"] <= 1e-9
    assert summary["instrument_failures"] == []
    assert (simulate_run.run.path / "figures" / "ratio_vs_k.png").exists()
    assert (simulate_run.run.path / "figures" / "hooke.png").exists()
    assert (simulate_run.run.path / "figures" / "pareto_ccdf.png").exists()
    fit = summary["pareto_fits"][0]
    print(f"Pareto fit of the D_p sample: alpha {fit['alpha_fit']:.3f} (generator {fit['alpha']})")
    assert set(fit["tests"]) == {"lognormal", "exponential"}


def test_exact_generator_masses_give_the_theorem(simulate_run):
    """The sampled run also codes the generator's exact masses with P_t = P_p: coefficient ~1."""
    for c, k in zip(simulate_run.summary["exact_coefficients"], simulate_run.run.config.k, strict=True):
        assert 0.9 <= c <= 1.1 + 1.0 / k


def test_sampled_level_verdict(simulate_run):
    """Sampled level, pre-training-like D_t: the theorem's primary slope reading, against the record."""
    found = {p["id"]: p for p in simulate_run.summary["predictions"]}["theorem.ratio_scales_with_k"]
    assert found["primary"] and tuple(found["band"]) == (0.9, 1.1)
    check_recorded_verdict(EXPERIMENT.name, config_hash(EXPERIMENT.name, simulate_run.run.config), found)


def test_cell_readings_are_exploratory_fractions(simulate_run):
    """Signs and coefficients over cells: a share of cells per seed with an interval, no verdict."""
    found = {p["id"]: p for p in simulate_run.summary["predictions"]}
    for pid in ("simulate.gamma_p_falls_fraction", "simulate.gamma_a_rises_fraction",
                "simulate.coefficient_in_band_fraction", "simulate.coefficient_l0_in_band_fraction"):
        assert not found[pid].get("primary") and "verdict" not in found[pid]
        assert 0.0 <= found[pid]["value"] <= 1.0 and found[pid]["n_runs"] == simulate_run.run.config.seeds
    assert found["theorem.ratio_scales_with_k"]["value"] == simulate_run.summary["slope"]


def test_distribution_level_is_exact(tmp_path):
    config = EXPERIMENT.resolve("distribution", sets={"k": "10,1000,100000", "alpha": "0.8,2",
                                                      "depth": "4,12", "seeds": "2",
                                                      "n_leaves": "1024"})
    summary = execute(EXPERIMENT, config, out=tmp_path / "d", draw=False).summary
    assert summary["max_identity_rel_error"] <= 1e-9
    assert all(summary["signs_hold"])
    assert all(abs(c - 1) <= 1.1e-3 for c in summary["coefficients_l0"])
    found = {p["id"]: p for p in summary["predictions"]}
    assert abs(found["theorem.ratio_scales_with_k"]["value"] - 1) < 1e-3
    for pid in ("simulate.coefficient_l0_in_band_fraction", "simulate.gamma_p_falls_fraction",
                "simulate.gamma_a_rises_fraction", "simulate.coefficient_in_band_fraction"):
        assert found[pid]["value"] == 1.0
    print(f"distribution level: slope {summary['slope']:.4f}, coefficients {summary['coefficients']}")


def test_novel_slope_near_one_is_not_the_theorem(tmp_path):
    """A slope near 1 with a tiny coefficient and wrong signs: why the slope alone is not evidence,
    and why the shares of cells with the theorem's signs and coefficient are reported beside it."""
    config = EXPERIMENT.resolve("novel", sets={"k": "100,1000,10000", "seeds": "2"})
    summary = execute(EXPERIMENT, config, out=tmp_path / "n", draw=False).summary
    print(f"novel: slope {summary['slope']:.3f}, coefficients {summary['coefficients']}, signs {summary['signs_hold']}")
    assert abs(summary["slope"] - 1) < 0.2
    assert max(summary["coefficients"]) < 0.1 and not any(summary["signs_hold"])
    found = {p["id"]: p for p in summary["predictions"]}
    assert found["theorem.ratio_scales_with_k"]["verdict"] == "underpowered"  # 2 seeds
    for pid in ("simulate.gamma_p_falls_fraction", "simulate.gamma_a_rises_fraction",
                "simulate.coefficient_in_band_fraction"):
        assert found[pid]["value"] == 0.0


def test_deterministic_and_resumable(tmp_path):
    config = EXPERIMENT.resolve("quick", sets={"k": "10,100", "seeds": "2", "n_types": "512"})
    a = execute(EXPERIMENT, config, out=tmp_path / "a", draw=False)
    b = execute(EXPERIMENT, config, out=tmp_path / "b", draw=False)
    assert (a.run.path / "metrics.csv").read_text() == (b.run.path / "metrics.csv").read_text()
    cells = sorted((a.run.path / "cells").glob("*.json"))
    cells[0].unlink()  # an interrupted run: one cell missing
    resumed = execute(EXPERIMENT, config, out=tmp_path / "a", draw=False)
    assert resumed.run.resumed
    assert (resumed.run.path / "metrics.csv").read_text() == (b.run.path / "metrics.csv").read_text()


def test_cli_json_and_bad_input(capsys, tmp_path):
    from elasticity.theory_group import main

    code = main(["simulate", "--k", "10,100", "--seeds", "2", "--set", "n_types=512",
                 "--out", str(tmp_path / "cli"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and len(out["ratios"]) == 2 and not math.isnan(out["slope"])
    for argv, message in ([["simulate", "--k", "0"], "k must be > 0"],
                          [["simulate", "--depth", "0"], "depth must be >= 1"],
                          [["simulate", "--alpha", "x"], "bad value for 'alpha'"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1


def test_unresolved_huffman_steps_survive_resume(tmp_path):
    """At k = 1e4 integer lengths do not change: the Huffman coefficient is NaN, cached as null."""
    config = EXPERIMENT.resolve("quick", sets={"level": "distribution", "k": "10,10000",
                                               "seeds": "2", "n_leaves": "512"})
    first = execute(EXPERIMENT, config, out=tmp_path / "h", draw=False)
    again = execute(EXPERIMENT, config, out=tmp_path / "h", draw=False)
    assert again.run.resumed
    assert (first.run.path / "metrics.csv").read_text() == (again.run.path / "metrics.csv").read_text()
    print(f"Huffman coefficients {again.summary['huffman_coefficients_median']}, "
          f"resolved fraction {again.summary['huffman_resolves_fraction']}")
