"""``elasticity theory boundary``: where Theta(-k) holds and where it breaks.

"Holds" at a point means the coefficient ``ratio/(-k)`` over the step ``[0, l_max]`` is in
[0.9, 1.1] *and* the theorem's signs hold (gamma_p falls, gamma_a rises). Three grids:

- ``dist``: distribution level, similarity ``s`` of the perturbation (``s * pretrain + (1-s) *
  novel``) against ``l_max``;
- ``tree``: sampled level, similarity ``s`` against pruning depth (tree size: the world's leaves);
- ``sample``: sampled level, pre-training-like perturbation, depth against ``|D_a|`` (sample size).

Every sampled point also records the share of D_t's mass on leaves that the D_p and D_a samples never
produced, so the breakdown can be read against it. This goes beyond the paper: it says when
elasticity should *not* be expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from harness.config import Preset, require, seeds_of
from harness.experiment import Experiment
from harness.metrics import metric_row
from harness.runs import RunDir
from harness.verdicts import predict
from theory.mixture import finite_step
from theory.simulate import BAND
from theory.worlds import WorldSpec, distribution_components, sample_components


@dataclass(frozen=True, kw_only=True)
class BoundaryConfig:
    alpha: float = 1.2
    k: float = 1000.0
    similarity: tuple[float, ...] = (0.0, 0.5, 0.9, 0.99, 1.0)
    l_max: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0)
    depth: tuple[int, ...] = (2, 4, 8, 12)
    n_align: tuple[int, ...] = (100, 1000, 10000)
    sampled_l_max: float = 0.1
    seeds: int = 5
    seed: int = 0
    world: WorldSpec = field(default_factory=WorldSpec)

    def __post_init__(self) -> None:
        require(self.alpha > 0, "alpha must be > 0")
        require(self.k > 0, f"k must be > 0, got {self.k}")
        require(len(self.similarity) >= 1 and all(0 <= s <= 1 for s in self.similarity),
                "every similarity must be in [0, 1]")
        require(len(self.l_max) >= 1 and all(x > 0 for x in self.l_max), "every l_max must be > 0")
        require(len(self.depth) >= 1 and all(x >= 1 for x in self.depth), "every depth must be >= 1")
        require(len(self.n_align) >= 1 and all(x >= 1 for x in self.n_align), "every n_align must be >= 1")
        require(self.sampled_l_max > 0, "sampled_l_max must be > 0")
        require(self.seeds >= 1, "seeds must be >= 1")


def holds(coefficient: float, signs: bool) -> bool:
    return bool(signs and BAND[0] <= coefficient <= BAND[1])


def _point(step, extra: dict[str, float]) -> dict[str, float]:
    return {"coefficient": step.coefficient, "signs_hold": float(step.signs_hold),
            "holds": float(holds(step.coefficient, step.signs_hold)),
            "unseen_mass_share": step.unseen_mass, **extra}


def seed_rows(config: BoundaryConfig, seed: int) -> list[dict[str, Any]]:
    """Every grid point of one seed as tidy metric rows (condition names the grid and its axes)."""
    rows: list[dict[str, Any]] = []

    def emit(condition: dict[str, Any], values: dict[str, float]) -> None:
        for name, value in values.items():
            rows.append(metric_row(name, value, "1", seed=seed, x=config.k, **condition))

    for s in config.similarity:
        comps = distribution_components(config.alpha, config.world.n_leaves, "mix", seed, s)
        for lm in config.l_max:
            emit({"grid": "dist", "s": s, "l_max": lm}, _point(finite_step(comps, config.k, lm, 8), {}))
    world = config.world.make(seed, config.alpha)
    middle = config.n_align[len(config.n_align) // 2]
    for depth in config.depth:
        for s in config.similarity:
            sample = sample_components(world, depth, config.k, middle, config.sampled_l_max,
                                       config.world.max_pretrain_samples, "mix", s, seed)
            emit({"grid": "tree", "s": s, "depth": depth},
                 _point(finite_step(sample.components, config.k, config.sampled_l_max, depth),
                        {"world_leaves": float(sample.world_leaves)}))
        for n_align in config.n_align:
            sample = sample_components(world, depth, config.k, n_align, config.sampled_l_max,
                                       config.world.max_pretrain_samples, "pretrain", 1.0, seed)
            emit({"grid": "sample", "depth": depth, "n_align": n_align},
                 _point(finite_step(sample.components, config.k, config.sampled_l_max, depth),
                        {"world_leaves": float(sample.world_leaves),
                         "pretrain_drawn": float(sample.n_pretrain_drawn)}))
    return rows


def run(config: BoundaryConfig, run_dir: RunDir) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for seed in seeds_of(config):
        # a ratio with Delta gamma_p = 0 is NaN
        rows.extend(run_dir.metric_cell(f"seed={seed}", lambda s=seed: seed_rows(config, s)))
    run_dir.write_metrics(rows)
    return summarise(config, rows)


Point = tuple[tuple[str, Any], ...]  # a grid point: its condition's (field, value) pairs


def point(grid: str, **axes: Any) -> Point:
    return (("grid", grid), *axes.items())


def cell_table(rows: list[dict[str, Any]]) -> dict[Point, dict[str, list[float]]]:
    """grid point -> measure -> values over seeds (seed order)."""
    table: dict[Point, dict[str, list[float]]] = {}
    for r in sorted(rows, key=lambda r: r["seed"]):
        table.setdefault(tuple(r["condition"].items()), {}).setdefault(r["measure"], []).append(float(r["value"]))
    return table


def summarise(config: BoundaryConfig, rows: list[dict[str, Any]]) -> dict[str, Any]:
    table = cell_table(rows)
    grids: dict[str, list[dict[str, Any]]] = {}
    for where, measures in table.items():
        axes = dict(where)
        grid = axes.pop("grid")
        grids.setdefault(grid, []).append({
            **axes,
            "holds_fraction": float(np.mean(measures["holds"])),
            "coefficient_median": float(np.median(measures["coefficient"])),
            "signs_fraction": float(np.mean(measures["signs_hold"])),
            "unseen_mass_share": float(np.mean(measures["unseen_mass_share"])),
            **({"world_leaves": float(np.mean(measures["world_leaves"]))} if "world_leaves" in measures else {}),
        })
    summary: dict[str, Any] = {"k": config.k, "alpha": config.alpha, "band": list(BAND), "grids": grids}
    summary["predictions"] = _predictions(config, table)
    return summary


def _margin(values: list[float]) -> list[float]:
    return [0.1 - abs(c - 1.0) if np.isfinite(c) else -1.0 for c in values]


def _predictions(config: BoundaryConfig, table: dict[Point, dict[str, list[float]]]) -> list:
    family = "theory.boundary: 4 tests, no correction"
    s_lo, s_hi, lm = min(config.similarity), max(config.similarity), max(config.l_max)
    novel = table[point("dist", s=s_lo, l_max=lm)]
    pretrain = table[point("dist", s=s_hi, l_max=lm)]
    best = table[point("sample", depth=min(config.depth), n_align=max(config.n_align))]
    margin = "0.1 - |ratio/(-k) - 1| over [0, l_max]"
    preds = [
        predict("boundary.novel_finite_l_breaks", _margin(novel["coefficient"]), -1,
                f"{margin}, distribution level, s={s_lo:g}, l_max={lm:g} (negative: outside the band)",
                family=family),
        predict("boundary.pretrain_distribution_holds", _margin(pretrain["coefficient"]), +1,
                f"{margin}, distribution level, s={s_hi:g}, l_max={lm:g}", family=family),
        predict("boundary.sampled_small_tree_large_sample_holds", _margin(best["coefficient"]), +1,
                f"{margin}, sampled, pretrain-like, depth={min(config.depth)}, "
                f"n_align={max(config.n_align)}", family=family),
    ]
    # across sampled cells, per seed: does a larger unseen share go with a larger |coefficient - 1|?
    rhos = []
    for i in range(config.seeds):
        share, dev = [], []
        for where, measures in table.items():
            if dict(where)["grid"] == "dist":
                continue
            share.append(measures["unseen_mass_share"][i])
            c = measures["coefficient"][i]
            dev.append(abs(c - 1.0) if np.isfinite(c) else np.inf)
        rho = stats.spearmanr(share, dev).statistic if np.ptp(share) > 0 else float("nan")
        rhos.append(float(rho))
    preds.append(predict("boundary.unseen_share_breaks", rhos, +1,
                         "Spearman correlation over sampled cells of unseen-leaf share and |coefficient - 1|",
                         family=family))
    return preds


PRESETS = {
    "quick": Preset({}, "k=1000, 5 similarities x 4 l_max (exact), 4 depths x (5 s + 3 sizes) sampled, 5 seeds",
                    est_seconds=10),
    "full": Preset({"similarity": (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0),
                    "l_max": (0.001, 0.01, 0.03, 0.1, 0.3, 1.0), "depth": (2, 3, 4, 6, 8, 10, 12),
                    "n_align": (30, 100, 300, 1000, 3000, 10000), "seeds": 10},
                   "finer grids, 10 seeds", est_seconds=40),
}

EXPERIMENT = Experiment(
    name="theory.boundary",
    help="map where Theta(-k) (coefficient in [0.9, 1.1] with the theorem's signs) holds and breaks",
    config_cls=BoundaryConfig,
    presets=PRESETS,
    run=run,
    draw="theory.figures:draw_boundary",
    flags={"--k": "k", "--alpha": "alpha", "--similarity": "similarity", "--l-max": "l_max",
             "--depth": "depth", "--n-align": "n_align", "--seeds": "seeds"},
    units={"coefficient": "1", "unseen_mass_share": "1"},
)
