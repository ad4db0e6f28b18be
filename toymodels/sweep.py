"""Seeded grids of experiment cells: run in parallel through joblib, resumable, aggregated over seeds.

A :class:`Grid` is the product of named config axes times seeds. Each cell is one call of a
module-level function ``cell_fn(cell, device) -> list[metric row]``; its rows are cached in the run
folder (``cells/<key>.json``) by the driver as they arrive, so a killed sweep restarts where it
stopped and the final table is assembled in grid order, whatever the backend or completion order.
Every row's condition starts with the cell's axis values.

Parallelism: each cell runs with a fixed number of torch threads (so its numbers do not depend
on the number of workers), and ``n_jobs`` worker processes times those threads never exceed the
cores. ``backend="dask"``
sends the same cells to a dask.distributed cluster through joblib's backend switch (the
``cluster`` extra); without a scheduler address it starts a local cluster of ``n_jobs`` workers.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from joblib import Parallel, delayed, parallel_config

from harness.atomic import atomic_write_text
from harness.config import require
from harness.errors import ConfigError
from harness.logs import progress as progress_bar
from harness.metrics import AGGREGATE_COLUMNS, condition_label, table_text
from harness.runs import RunDir
from harness.verdicts import mean_ci

Scalar = int | float | str
CellFn = Callable[["Cell", str], list[dict[str, Any]]]


@dataclass(frozen=True)
class Cell:
    """One point of a grid: axis values and a seed."""

    params: tuple[tuple[str, Scalar], ...]
    seed: int

    def __getitem__(self, name: str) -> Scalar:
        return dict(self.params)[name]

    @property
    def condition(self) -> dict[str, Scalar]:
        """``{"size": "50k", "n_pretrain": 2000}``: the condition every row of this cell starts with."""
        return dict(self.params)

    @property
    def key(self) -> str:
        """Cache key of the cell in the run folder."""
        return condition_label({**self.condition, "seed": self.seed})


@dataclass(frozen=True)
class Grid:
    """The product of named axes (in order) times seeds. Bad grids are ConfigErrors."""

    axes: tuple[tuple[str, tuple[Scalar, ...]], ...]
    seeds: tuple[int, ...]
    positive: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        names = [name for name, _ in self.axes]
        if len(set(names)) != len(names):
            raise ConfigError(f"grid axes repeat a name: {', '.join(names)}")
        for name, values in self.axes:
            if name == "seed" or "," in name or "=" in name:
                raise ConfigError(f"grid axis name {name!r} is reserved or holds ',' or '='")
            _check_axis(name, values, name in self.positive)
        _check_axis("seeds", self.seeds, positive=False)

    @classmethod
    def of(cls, axes: Mapping[str, Sequence[Scalar]], seeds: Sequence[int] | int,
           positive: Iterable[str] = ()) -> Grid:
        """Build a grid; ``seeds`` is a list of seeds or a count (seeds ``0..n-1``).

        ``positive`` names the axes whose values are sizes and must be > 0.
        """
        if isinstance(seeds, int):
            if seeds < 1:
                raise ConfigError(f"a grid needs at least one seed, got {seeds}")
            seeds = range(seeds)
        return cls(tuple((name, tuple(values)) for name, values in axes.items()),
                   tuple(int(s) for s in seeds), frozenset(positive))

    def cells(self) -> list[Cell]:
        """All cells, seeds innermost, in a fixed order (the order of the metrics table)."""
        names = [name for name, _ in self.axes]
        combos = itertools.product(*(values for _, values in self.axes))
        return [Cell(tuple(zip(names, combo, strict=True)), seed)
                for combo in combos for seed in self.seeds]

    def __len__(self) -> int:
        size = len(self.seeds)
        for _, values in self.axes:
            size *= len(values)
        return size


@dataclass(frozen=True, kw_only=True)
class Runtime:
    """Where one process runs: its device and torch threads (0: every core). The execution block of
    the llm configs, which run one model in one process."""

    device: str = "cpu"
    threads: int = 1

    def __post_init__(self) -> None:
        require(self.threads >= 0, f"threads must be >= 0 (0: every core), got {self.threads}")
        require(self.device in ("cpu", "cuda") or self.device.startswith("cuda:"),
                f"device must be cpu, cuda or cuda:N, got {self.device!r}")


@dataclass(frozen=True, kw_only=True)
class Execution(Runtime):
    """Where and how a grid's cells run: the execution block of every toy experiment.

    ``threads`` torch threads per cell, whatever the number of workers, so that results do not
    depend on ``n_jobs``; ``n_jobs`` workers (0: as many as ``cores // threads`` on the CPU, one on
    a GPU) on the ``local`` backend or a dask.distributed cluster (``dask_scheduler``: its address;
    none starts a local cluster).
    """

    n_jobs: int = 0
    backend: Literal["local", "dask"] = "local"
    dask_scheduler: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.n_jobs >= 0, f"n_jobs must be >= 0 (0: as many as the cores allow), got {self.n_jobs}")
        require(self.backend == "dask" or self.dask_scheduler is None,
                f"dask_scheduler = {self.dask_scheduler!r} is not used with backend = {self.backend}; "
                "set backend=dask or leave it out")
        require(self.backend == "dask" or self.workers * self.cell_threads <= self.available_cores,
                f"{self.workers} workers x {self.cell_threads} threads oversubscribe "
                f"{self.available_cores} cores; lower n_jobs or threads")

    @property
    def available_cores(self) -> int:
        return os.cpu_count() or 1

    @property
    def cell_threads(self) -> int:
        return self.threads or self.available_cores

    @property
    def workers(self) -> int:
        if self.n_jobs:
            return self.n_jobs
        # one process per GPU by default: several would each hold a CUDA context on it
        return 1 if self.device.startswith("cuda") else max(1, self.available_cores // self.cell_threads)


def _check_axis(name: str, values: Sequence[Scalar], positive: bool) -> None:
    if len(values) == 0:
        raise ConfigError(f"grid axis '{name}' is empty")
    seen: set[Any] = set()
    for value in values:
        if not isinstance(value, int | float | str) or isinstance(value, bool):
            raise ConfigError(f"grid axis '{name}' holds {value!r}; use numbers or strings")
        if isinstance(value, str) and ("," in value or "=" in value):
            raise ConfigError(f"grid axis '{name}' value {value!r} holds ',' or '='")
        if value in seen:
            raise ConfigError(f"grid axis '{name}' repeats the value {value!r}")
        seen.add(value)
        if positive and (isinstance(value, str) or not value > 0):
            raise ConfigError(f"grid axis '{name}' needs positive sizes, got {value!r}")


def _run_cell(fn: CellFn, cell: Cell, device: str, threads: int) -> tuple[str, list[dict[str, Any]]]:
    """Worker side: fix torch threads (and deterministic kernels on CUDA) for this cell, run it,
    hand the rows back to the driver."""
    import torch

    from toymodels.determinism import make_deterministic

    previous = torch.get_num_threads()
    make_deterministic(threads, device)
    try:
        rows = fn(cell, device)
    finally:
        torch.set_num_threads(previous)
    return cell.key, [dict(row) for row in rows]


@contextlib.contextmanager
def _backend(execution: Execution) -> Iterator[None]:
    if execution.backend == "local":
        with parallel_config(backend="loky", n_jobs=execution.workers,
                             inner_max_num_threads=execution.cell_threads):
            yield
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise ConfigError("--backend dask needs dask.distributed: pip install 'lm-elasticity[cluster]'") from None
    with contextlib.ExitStack() as stack:
        if execution.dask_scheduler:
            client = stack.enter_context(Client(execution.dask_scheduler))
        else:
            cluster = stack.enter_context(LocalCluster(
                n_workers=execution.workers, threads_per_worker=1, processes=True,
                dashboard_address=None))
            client = stack.enter_context(Client(cluster))
        n_workers = max(1, len(client.scheduler_info().get("workers", {})) or execution.workers)
        with parallel_config(backend="dask", n_jobs=n_workers):
            yield


def run_sweep(run_dir: RunDir, grid: Grid, cell_fn: CellFn, execution: Execution = Execution(),
              desc: str = "cells", progress: bool = True) -> list[dict[str, Any]]:
    """Run every unfinished cell of ``grid`` and return the metrics table of the whole grid.

    ``cell_fn`` must be a module-level function (it is pickled to the workers). Its rows may carry
    condition fields of their own; they follow the cell's axis values.
    """
    todo = [cell for cell in grid.cells() if not run_dir.has_cell(cell.key)]
    if todo:
        jobs = (delayed(_run_cell)(cell_fn, cell, execution.device, execution.cell_threads) for cell in todo)
        bar = progress_bar(total=len(grid), initial=len(grid) - len(todo), desc=desc, disable=not progress)
        with bar, _backend(execution):
            results = Parallel(return_as="generator_unordered")(jobs)
            for key, rows in results:
                run_dir.cell(key, lambda rows=rows: rows)
                bar.update(1)
    return grid_table(run_dir, grid)


def run_grid(run_dir: RunDir, config: Any, cell_fn: Callable[..., list[dict[str, Any]]], desc: str
             ) -> list[dict[str, Any]]:
    """Every cell of ``config.grid()`` as ``cell_fn(config, cell, device)``, run with the config's
    execution block: how each toy experiment runs its grid."""
    return run_sweep(run_dir, config.grid(), functools.partial(cell_fn, config), config.execution, desc=desc)


def grid_table(run_dir: RunDir, grid: Grid) -> list[dict[str, Any]]:
    """The cached rows of every cell, in grid order, with seed and condition filled in."""
    table: list[dict[str, Any]] = []
    for cell in grid.cells():
        if not run_dir.has_cell(cell.key):
            raise ConfigError(f"cell {cell.key} has not been run in {run_dir.path}")
        for row in run_dir.metric_cell(cell.key, lambda: []):
            table.append({**row, "seed": cell.seed, "condition": {**cell.condition, **row["condition"]}})
    return table


def aggregate(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and 95% Student-t interval over seeds for each (condition, x, measure, unit)."""
    groups: dict[tuple, list[float]] = {}
    for row in rows:
        key = (tuple(row["condition"].items()), row["x"], row["measure"], row["unit"])
        groups.setdefault(key, []).append(float(row["value"]))
    out = []
    for (condition, x, measure, unit), values in groups.items():
        mean, (lo, hi) = mean_ci(values)
        out.append({"condition": dict(condition), "x": x, "measure": measure, "unit": unit,
                    "mean": mean, "ci_lo": lo, "ci_hi": hi, "n": len(values)})
    return out


def write_aggregate(run_dir: RunDir, rows: Iterable[Mapping[str, Any]],
                    name: str = "aggregate.csv") -> Path:
    """Write the over-seed aggregate of ``rows`` beside metrics.csv (floats in repr, so it round-trips)."""
    target = run_dir.path / name
    atomic_write_text(target, table_text(aggregate(rows), leading=(), trailing=AGGREGATE_COLUMNS))
    return target
