"""boundary: the map of where Theta(-k) holds; exact points are pass/fail checks, sampled ones
exploratory readings; the unseen-share reading on planted cells."""

from __future__ import annotations

import numpy as np
from scipy import stats

from harness.metrics import metric_row
from theory import boundary
from theory.boundary import EXPERIMENT


def test_grids_and_figures(boundary_run):
    grids = boundary_run.summary["grids"]
    assert set(grids) == {"dist", "tree", "sample"}
    figures = boundary_run.run.path / "figures"
    assert (figures / "heatmaps.png").exists() and (figures / "unseen_share.png").exists()


def test_exact_points(boundary_run):
    """Distribution level: s=1 holds at every l_max; s=0 (novel) breaks at every l_max."""
    cells = boundary_run.summary["grids"]["dist"]
    for cell in cells:
        if cell["s"] == 1.0:
            assert cell["holds_fraction"] == 1.0
        if cell["s"] == 0.0:
            assert cell["holds_fraction"] == 0.0
    checks = {c["id"]: c for c in boundary_run.summary["exact_checks"]}
    assert checks["boundary.novel_finite_l_breaks"]["passed"]
    assert checks["boundary.pretrain_distribution_holds"]["passed"]
    assert boundary_run.summary["instrument_failures"] == []


def test_sampled_readings_are_exploratory(boundary_run):
    found = {p["id"]: p for p in boundary_run.summary["predictions"]}
    assert set(found) == {"boundary.tree_grid_holds_fraction", "boundary.sample_grid_holds_fraction",
                          "boundary.unseen_share_breaks"}
    for p in found.values():
        assert not p.get("primary") and "verdict" not in p and p["n_runs"] == boundary_run.run.config.seeds
        print(f"{p['id']}: {p['value']:.3f} {p['ci']}")


def test_a_broken_identity_is_an_instrument_failure():
    rows = [metric_row(name, value, "1", seed=0, x=1000.0, grid="dist", s=1.0, l_max=0.1)
            for name, value in (("coefficient", 1.01), ("signs_hold", 1.0), ("holds", 1.0),
                                ("unseen_mass_share", 0.0))]
    check = boundary.exact_checks(rows)[0]
    assert check["id"] == "boundary.pretrain_distribution_holds" and not check["passed"] and check["instrument"]
    config = EXPERIMENT.resolve("quick")
    assert boundary.summarise(config, rows)["instrument_failures"]


def _cells(coefficients: np.ndarray, shares: np.ndarray) -> list[dict]:
    """Sampled-grid rows: seeds x cells of (unseen share, coefficient)."""
    return [metric_row(name, float(value), "1", seed=seed, x=1000.0, grid="sample", depth=cell, n_align=100)
            for seed in range(shares.shape[0]) for cell in range(shares.shape[1])
            for name, value in (("unseen_mass_share", shares[seed, cell]),
                                ("coefficient", coefficients[seed, cell]), ("holds", 0.0))]


def _association(rows: list[dict]) -> dict:
    return next(p for p in boundary.readings(rows) if p.id == "boundary.unseen_share_breaks")


def test_unseen_share_reading_on_planted_cells():
    """No dependence reads about 0; breaks planted to grow with the share (up, or collapsing to 0
    and below) read positive, where |coefficient - 1| reads them negative."""
    rng = np.random.default_rng(0)
    shares = rng.uniform(0, 0.5, (10, 100))
    independent = np.exp(rng.normal(0, 1, shares.shape)) * rng.choice([1, -1], shares.shape, p=[0.8, 0.2])
    null = _association(_cells(independent, shares))
    assert null.ci[0] < 0 < null.ci[1] and abs(null.value) < 0.1
    # the break |ln c| grows with the share: upward at low shares (|c - 1| > 1), a collapse toward 0
    # at high ones (|c - 1| < 1), through 0 at the highest
    size = 0.5 + 8 * shares + rng.normal(0, 0.1, shares.shape)
    planted = np.where(shares < 0.25, np.exp(size), np.exp(-size))
    planted[shares > 0.45] = -0.01
    found = _association(_cells(planted, shares))
    old = np.mean([stats.spearmanr(s, np.abs(c - 1)).statistic for s, c in zip(shares, planted, strict=True)])
    print(f"independent: {null.value:.3f} {null.ci}; planted: {found.value:.3f} {found.ci}; |c - 1|: {old:.3f}")
    assert found.ci[0] > 0.2 and old < 0


def test_bad_input():
    from elasticity.theory_group import main

    assert main(["boundary", "--similarity", "1.5"]) == 2
    assert main(["boundary", "--k", "-1"]) == 2
