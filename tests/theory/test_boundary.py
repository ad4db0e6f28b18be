"""boundary: the map of where Theta(-k) holds; exact points asserted, sampled ones recorded."""

from __future__ import annotations

import pytest

from harness.runs import config_hash
from tests.verdicts import check_recorded_verdict
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
    verdicts = {p["id"]: p["verdict"] for p in boundary_run.summary["predictions"]}
    assert verdicts["boundary.novel_finite_l_breaks"] == "holds"
    assert verdicts["boundary.pretrain_distribution_holds"] == "holds"


@pytest.mark.parametrize("prediction", ["boundary.sampled_small_tree_large_sample_holds",
                                        "boundary.unseen_share_breaks"])
def test_sampled_verdicts(boundary_run, prediction):
    found = {p["id"]: p for p in boundary_run.summary["predictions"]}[prediction]
    check_recorded_verdict(EXPERIMENT.name, config_hash(EXPERIMENT.name, boundary_run.run.config), found)


def test_bad_input():
    from elasticity.theory_group import main

    assert main(["boundary", "--similarity", "1.5"]) == 2
    assert main(["boundary", "--k", "-1"]) == 2
