"""Run folders, atomic writes and resume.

A run folder holds ``config.json`` (resolved config, versions, git commit, config hash),
``metrics.csv`` (long format, see :mod:`harness.metrics`), ``summary.json`` and ``figures/``.
Every file is written to a temporary name and renamed, so an interrupted run never leaves a
half-written file. Finished units of work ("cells") are cached under ``cells/`` so that a rerun
into the same ``--out`` folder resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere run folders are not locked
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

from harness.atomic import atomic_write_json, to_jsonable
from harness.errors import ConfigError
from harness.logs import RUN_LOG
from harness.markdown import (
    CALIBRATION_END,
    CALIBRATION_START,
    DASHBOARD_END,
    DASHBOARD_START,
    TABLE_END,
    TABLE_START,
    with_block,
)
from harness.metrics import metrics_path, read_metrics_csv, restore_nan, write_metrics_csv

TRACKED_PACKAGES = ("lm-elasticity", "numpy", "scipy", "sympy", "torch", "transformers", "peft")


def config_hash(experiment: str, config: Any) -> str:
    """A short stable hash of the experiment name and its resolved config."""
    payload = json.dumps({"experiment": experiment, "config": to_jsonable(config)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions, read from metadata so that nothing heavy gets imported."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def repo_root() -> Path:
    """The source checkout this package runs from (the package is installed editable)."""
    return Path(__file__).resolve().parents[1]


def run_git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)


def changed_outside_outputs(root: Path | None = None) -> list[str]:
    """Tracked files that differ from HEAD, leaving out what runs publish rather than read: figures/,
    and README.md when only the tables a reference update renders differ. Raises
    subprocess.CalledProcessError when git cannot tell."""
    root = root or repo_root()
    status = run_git(root, "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)figures")
    status.check_returncode()
    changed = [line[3:] for line in status.stdout.splitlines() if line.strip()]
    if "README.md" in changed and _only_rendered_tables_differ(root):
        changed.remove("README.md")
    return changed


def _only_rendered_tables_differ(root: Path) -> bool:
    """Whether README.md differs from HEAD's only inside the tables the reference renders."""
    committed = run_git(root, "show", "HEAD:README.md")
    if committed.returncode != 0:
        return False

    def prose(text: str) -> str:
        for start, end in ((TABLE_START, TABLE_END), (CALIBRATION_START, CALIBRATION_END),
                           (DASHBOARD_START, DASHBOARD_END)):
            text = with_block(text, start, end, "")
        return text

    return prose(committed.stdout) == prose((root / "README.md").read_text())


def git_commit(root: Path | None = None) -> str | None:
    """HEAD, marked ``-dirty`` when code or prose differs from it (outputs do not count)."""
    try:
        head = run_git(root or repo_root(), "rev-parse", "HEAD")
        head.check_returncode()
        dirty = changed_outside_outputs(root)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty else "")


def cache_dir(*parts: str) -> Path:
    """User cache for reusable artefacts (pre-trained toy models, dequantised weights, data)."""
    base = os.environ.get("ELASTICITY_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "lm-elasticity"
    )
    path = Path(base, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def read_record(path: Path, fix: str = "move the folder away or use another --out") -> Any:
    """A JSON file of a run folder, or a one-line ConfigError saying what to do when it is damaged."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path} cannot be read ({type(err).__name__}: {err}); {fix}") from None


def read_run_record(folder: Path) -> dict[str, Any]:
    """A run folder's ``config.json``: an object naming its experiment, config and config hash."""
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder} is not a run folder (no config.json)")
    record = read_record(folder / "config.json", "it is not a readable run folder")
    if not (isinstance(record, dict) and isinstance(record.get("config"), dict)
            and all(isinstance(record.get(key), str) for key in ("experiment", "config_hash"))):
        raise ConfigError(f"{folder / 'config.json'} does not name an experiment, a config and its hash; "
                          "it is not a run folder's record")
    return record


# run folders this process holds the lock of -> the locked descriptor
_HELD: dict[str, int] = {}


def lock_folder(path: Path) -> None:
    """Lock ``path`` for this process, or a ConfigError when another process holds it.

    An flock on the folder itself: the operating system drops it when its holder exits or is
    killed, so an interrupted run needs no clean-up before it resumes. Re-entrant within a process.
    """
    key = str(path.resolve())
    if fcntl is None or key in _HELD:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(f"{path} is in use by another run; wait for it to end (the same command then resumes "
                          "it, skipping finished work) or choose another --out") from None
    _HELD[key] = fd


@contextmanager
def folder_locked(path: Path) -> Iterator[None]:
    """Wait for and hold an flock on the folder ``path`` for the ``with`` block: a read-modify-write
    of a shared file in it (results.json) by several processes then loses no one's entry."""
    if fcntl is None:
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock


def unlock_folder(path: Path) -> None:
    fd = _HELD.pop(str(path.resolve()), None)
    if fd is not None:
        os.close(fd)


class RunDir:
    """One run's folder. Create it with :meth:`open`; it resumes when the config hash matches.

    An opened folder is locked against other processes until :meth:`close` (or the process's end).
    """

    def __init__(self, path: Path, experiment: str, config: Any, chash: str, resumed: bool):
        self.path = path
        self.experiment = experiment
        self.config = config
        self.config_hash = chash
        self.resumed = resumed
        # Where --update-reference records this run (results.json key, figures/data folder) and the
        # arguments that reproduce it beyond the preset; a variant such as a non-default model
        # sets both so that it sits beside the default instead of replacing it.
        self.reference_key = experiment
        self.reference_args = ""

    @classmethod
    def open(
        cls,
        experiment: str,
        config: Any,
        out: str | os.PathLike | None = None,
        root: str | os.PathLike = "runs",
        extra: Mapping[str, Any] | None = None,
    ) -> RunDir:
        """Create ``runs/<UTC>-<experiment>-<hash>/`` (or ``out``), or resume ``out``.

        Raises ConfigError when ``out`` holds a run of a different experiment or config.
        """
        chash = config_hash(experiment, config)
        path = Path(out) if out is not None else Path(root, f"{utc_stamp()}-{experiment}-{chash}")
        try:
            path.mkdir(parents=True, exist_ok=True)
            lock_folder(path)  # before anything is read or written: two runs never share a folder
        except OSError as err:
            raise ConfigError(f"cannot use {path} as a run folder ({err.strerror or err}); choose another --out"
                              ) from None
        try:
            return cls._open_locked(path, experiment, config, chash, extra)
        except BaseException:
            unlock_folder(path)
            raise

    @classmethod
    def _open_locked(cls, path: Path, experiment: str, config: Any, chash: str,
                     extra: Mapping[str, Any] | None) -> RunDir:
        config_file = path / "config.json"
        if config_file.exists():
            previous = read_record(config_file)
            if previous.get("config_hash") != chash:
                raise ConfigError(
                    f"{path} holds a run with config hash {previous.get('config_hash')} "
                    f"({previous.get('experiment')}); this config hashes to {chash}. "
                    "Use a new --out folder."
                )
            return cls(path, experiment, config, chash, resumed=True)
        if any(path.iterdir()):
            raise ConfigError(f"{path} exists, is not empty and holds no config.json; refusing to write there")
        record = {
            "experiment": experiment,
            "config_hash": chash,
            "config": to_jsonable(config),
            "versions": package_versions(),
            "git_commit": git_commit(),
            "created_utc": utc_stamp(),
            **dict(extra or {}),
        }
        atomic_write_json(config_file, record)
        return cls(path, experiment, config, chash, resumed=False)

    @classmethod
    def load(cls, path: str | os.PathLike) -> RunDir:
        """Open an existing run folder read-only (for redrawing figures)."""
        path = Path(path)
        record = read_run_record(path)
        return cls(path, record["experiment"], record["config"], record["config_hash"], resumed=True)

    @property
    def figures_dir(self) -> Path:
        path = self.path / "figures"
        path.mkdir(exist_ok=True)
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        target = self.path / name
        atomic_write_json(target, obj)
        return target

    def read_json(self, name: str) -> Any:
        return read_record(self.path / name)

    def cell(self, key: str, compute: Callable[[], Any]) -> Any:
        """Return the cached result of ``key`` or compute it and cache it atomically.

        ``compute`` must return JSON-serialisable data; this is how runs resume.
        """
        target = self.path / "cells" / f"{_safe_name(key)}.json"
        if target.exists():
            return read_record(target, "delete it and rerun to recompute it")
        value = to_jsonable(compute())
        atomic_write_json(target, value)
        return value

    def metric_cell(self, key: str, compute: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
        """:meth:`cell` for metric rows: JSON stores NaN as null, so null comes back as NaN."""
        return restore_nan(self.cell(key, compute))

    def has_cell(self, key: str) -> bool:
        return (self.path / "cells" / f"{_safe_name(key)}.json").exists()

    def write_metrics(self, rows: Iterable[Mapping[str, Any]]) -> Path:
        """Write the long-format metrics table (see :mod:`harness.metrics`)."""
        return write_metrics_csv(self.path / "metrics.csv", rows)

    def read_metrics(self) -> list[dict[str, Any]]:
        return read_metrics_csv(metrics_path(self.path))

    def finish(self, summary: Mapping[str, Any]) -> Path:
        return self.write_json("summary.json", summary)

    def discard_unused(self) -> None:
        """Undo a new run folder that holds nothing but its config and log (its input was refused
        before any work), so that the corrected command can use the same --out."""
        held = {p.name for p in self.path.iterdir()}
        if self.resumed or not held <= {"config.json", RUN_LOG}:
            return
        for name in held:
            (self.path / name).unlink()
        self.close()
        self.path.rmdir()

    def close(self) -> None:
        """Release the folder's lock (a finished run's folder can then be resumed or redrawn elsewhere)."""
        unlock_folder(self.path)


def _safe_name(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in key)
