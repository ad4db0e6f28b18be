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

The distribution-level points are deterministic, so they are exact checks (pass or fail): with the
perturbation drawn like pre-training (s = 1) the mixture model's identity puts the coefficient in
[1, 1 + l_max/k] with the theorem's signs (a failure is an instrument failure), and a novel
perturbation (s = 0) breaks the relation at the largest l_max (a finding). The sampled readings are
exploratory: shares of cells where the theorem holds, and the association of the unseen share with
the size of the break (:func:`unseen_share_breaks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

from harness.config import Preset, require, require_distinct, seeds_of
from harness.experiment import Experiment
from harness.logs import progress
from harness.metrics import metric_row
from harness.preregistration import reading
from harness.runs import RunDir
from harness.verdicts import Prediction, t_estimate
from theory.mixture import finite_step
from theory.readings import BAND, break_size
from theory.worlds import WorldSpec, distribution_components, sample_components

NAME = "theory.boundary"
IDENTITY_TOLERANCE = 1e-9


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
        self.world.check_alignment_sample(max(self.n_align))
        for key in ("similarity", "l_max", "depth", "n_align"):
            require_distinct(key, getattr(self, key))
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
    for seed in progress(seeds_of(config), desc="theory.boundary", unit="seed"):
        # a ratio with Delta gamma_p = 0 is NaN
        rows.extend(run_dir.metric_cell(f"seed={seed}", lambda s=seed: seed_rows(config, s)))
    run_dir.write_metrics(rows)
    return summarise(config, rows)


Point = tuple[tuple[str, Any], ...]  # a grid point: its condition's (field, value) pairs


def _points(rows: list[dict[str, Any]]) -> dict[int, dict[Point, dict[str, float]]]:
    """seed -> grid point -> measure -> value."""
    out: dict[int, dict[Point, dict[str, float]]] = {}
    for r in rows:
        where = tuple(r["condition"].items())
        out.setdefault(int(r["seed"]), {}).setdefault(where, {})[r["measure"]] = float(r["value"])
    return out


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
    checks = exact_checks(rows)
    failures = [f"{c['id']} failed: {c['detail']} (worst {c['value']:.6g})"
                for c in checks if c["instrument"] and not c["passed"]]
    return {"k": config.k, "alpha": config.alpha, "band": list(BAND), "grids": grids,
            "exact_checks": checks, "predictions": readings(rows, NAME), "instrument_failures": failures}


def _from_one(c: float) -> float:
    return abs(c - 1.0) if np.isfinite(c) else float("inf")


def exact_checks(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deterministic distribution-level points as pass/fail checks (none without a dist grid).

    ``instrument``: a failure means the measurement is wrong, not that the theory broke.
    """
    dist: dict[tuple[int, float, float], dict[str, float]] = {}
    k = float("nan")
    for r in rows:
        c = r["condition"]
        if c.get("grid") == "dist":
            dist.setdefault((int(r["seed"]), float(c["s"]), float(c["l_max"])), {})[r["measure"]] = float(r["value"])
            k = float(r["x"])
    checks = []
    pretrain = [(lm, m) for (_, s, lm), m in dist.items() if s == 1.0]
    if pretrain:
        # dgamma_a/dl = -(k + l) dgamma_p/dl pointwise, so the step's ratio/(-k) is a mean of (k + l)/k
        tol = IDENTITY_TOLERANCE
        ok = [m["signs_hold"] == 1.0 and 1 - tol <= m["coefficient"] <= 1 + lm / k + tol for lm, m in pretrain]
        checks.append({"id": "boundary.pretrain_distribution_holds", "passed": all(ok), "instrument": True,
                       "value": max((m["coefficient"] for _, m in pretrain), key=_from_one),
                       "detail": f"s = 1 (D_t drawn like D_p), every l_max and seed: ratio/(-k) in "
                                 f"[1, 1 + l_max/k] to {IDENTITY_TOLERANCE:g} with the theorem's signs in "
                                 f"{sum(ok)}/{len(ok)} points; value: the coefficient farthest from 1"})
    novel = [(lm, m) for (_, s, lm), m in dist.items() if s == 0.0]
    if novel:
        largest = max(lm for lm, _ in novel)
        at = [m for lm, m in novel if lm == largest]
        broken = [not (m["signs_hold"] == 1.0 and BAND[0] <= m["coefficient"] <= BAND[1]) for m in at]
        checks.append({"id": "boundary.novel_finite_l_breaks", "passed": all(broken), "instrument": False,
                       "value": min((m["coefficient"] for m in at), key=_from_one),
                       "detail": f"s = 0 (a novel perturbation), l_max = {largest:g}: outside [0.9, 1.1] or "
                                 f"the signs fail in {sum(broken)}/{len(broken)} seeds; value: the "
                                 f"coefficient nearest 1"})
    return checks


def unseen_share_breaks(shares: list[float], coefficients: list[float]) -> float:
    """Spearman correlation of the unseen share with the break ``|ln c|`` (infinite for c <= 0).

    theory.derivation.unseen_share derives that at l -> 0 the break grows with the unseen mass
    whichever way the coefficient leaves 1 (up, or collapsing through 0), so a positive association
    is the expectation and 0 means no dependence; |c - 1| would read a collapse (about 1) as smaller
    than noise. Infinite breaks tie above every finite one (ranks only). NaN without spread.
    """
    breaks = np.array([break_size(c) for c in coefficients])
    finite = breaks[np.isfinite(breaks)]
    breaks[~np.isfinite(breaks)] = (finite.max() if finite.size else 0.0) + 1.0
    if np.ptp(shares) == 0 or np.ptp(breaks) == 0:
        return float("nan")
    return float(stats.spearmanr(shares, breaks).statistic)


def readings(rows: list[dict[str, Any]], experiment: str = NAME) -> list[Prediction]:
    """The sampled-level readings of any theory.boundary metrics table, all exploratory: per seed, the
    share of cells of each sampled grid where Theta(-k) holds, and the unseen-share association."""
    by_seed = _points(rows)
    preds = []
    for grid, what in (("tree", "similarity x tree depth"), ("sample", "pre-training-like, depth x |D_a|")):
        fractions = []
        for points in by_seed.values():
            held = [m["holds"] for w, m in points.items() if dict(w).get("grid") == grid]
            if held:
                fractions.append(float(np.mean(held)))
        if fractions:
            preds.append(reading(f"boundary.{grid}_grid_holds_fraction", t_estimate(fractions),
                                 f"fraction of the {grid} grid's cells ({what}) per seed with ratio/(-k) "
                                 f"in [0.9, 1.1] and the theorem's signs", experiment=experiment))
    rhos = []
    for points in by_seed.values():
        sampled = [m for w, m in points.items() if dict(w).get("grid") in ("tree", "sample")]
        if sampled:
            rhos.append(unseen_share_breaks([m["unseen_mass_share"] for m in sampled],
                                            [m["coefficient"] for m in sampled]))
    if rhos:
        preds.append(reading("boundary.unseen_share_breaks", t_estimate(rhos),
                             "Spearman correlation over sampled cells, per seed, of the unseen-leaf share "
                             "with the break |ln(ratio/(-k))| (infinite when ratio/(-k) <= 0)",
                             experiment=experiment))
    return preds


PRESETS = {
    "quick": Preset({}, "k=1000, 5 similarities x 4 l_max (exact), 4 depths x (5 s + 3 sizes) sampled, 5 seeds",
                    est_seconds=10),
    "full": Preset({"similarity": (0.0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0),
                    "l_max": (0.001, 0.01, 0.03, 0.1, 0.3, 1.0), "depth": (2, 3, 4, 6, 8, 10, 12),
                    "n_align": (30, 100, 300, 1000, 3000, 10000), "seeds": 10},
                   "finer grids, 10 seeds", est_seconds=6),
}

EXPERIMENT = Experiment(
    name=NAME,
    help="map where Theta(-k) (coefficient in [0.9, 1.1] with the theorem's signs) holds and breaks",
    config_cls=BoundaryConfig,
    presets=PRESETS,
    run=run,
    readings=readings,
    draw="theory.figures:draw_boundary",
    flags={"--k": "k", "--alpha": "alpha", "--similarity": "similarity", "--l-max": "l_max",
             "--depth": "depth", "--n-align": "n_align", "--seeds": "seeds"},
    units={"coefficient": "1", "unseen_mass_share": "1"},
)
