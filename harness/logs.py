"""Run-level messages and progress bars: one logger, stderr by default, and ``run.log`` in each run folder.

The command line calls :func:`configure` once (``-q`` warnings and errors only, ``-v`` debug too);
:func:`run_log` copies every message of a run into its folder while the run goes, appending on
resume. stdout is left to results (``--json``). :func:`progress` is a tqdm bar on stderr that
``-q`` turns off.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from harness.errors import ConfigError, one_line

LOGGER = logging.getLogger("elasticity")
RUN_LOG = "run.log"
# ``extra=FILE_ONLY``: a message for run.log alone (where a run starts or why it stopped)
FILE_ONLY = {"file_only": True}
# the file keeps times and levels, which the terminal leaves out
FILE_FORMAT = "%(asctime)s %(levelname)s %(message)s"
_console: list[logging.Handler] = []  # the stderr handler configure() installed, if any


class _Stderr(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a message comes (tests and tools swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure(verbosity: int = 0) -> None:
    """Send messages to stderr: ``verbosity`` -1 warnings and errors, 0 progress too, 1 debug too."""
    level = {-1: logging.WARNING, 0: logging.INFO}.get(verbosity, logging.DEBUG)
    for handler in _console:
        LOGGER.removeHandler(handler)
    handler = _Stderr()
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.addFilter(lambda record: not getattr(record, "file_only", False))
    _console[:] = [handler]
    LOGGER.addHandler(handler)
    LOGGER.setLevel(min(level, logging.INFO))  # run.log keeps progress lines even under -q
    LOGGER.propagate = False


def quiet() -> bool:
    """Whether stderr shows only warnings and errors (``-q``): progress bars are off then."""
    return any(handler.level > logging.INFO for handler in _console)


def progress(items: Iterable[Any] | None = None, **options: Any) -> tqdm:
    """A progress bar on stderr, off under ``-q``; ``options`` go to tqdm."""
    options.setdefault("leave", False)
    disable = options.pop("disable", False) or quiet()
    return tqdm(items, file=sys.stderr, disable=disable, **options)


@contextlib.contextmanager
def run_log(folder: Path) -> Iterator[Path]:
    """Copy every message into ``folder/run.log`` until the block ends (also on errors)."""
    path = folder / RUN_LOG
    try:
        handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot write {path} ({err.strerror or err}); move it away or use another --out") from None
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    handler.setLevel(min(LOGGER.getEffectiveLevel(), logging.INFO))
    previous_level = LOGGER.level
    if LOGGER.getEffectiveLevel() > logging.INFO:  # not configured: the file still gets progress lines
        LOGGER.setLevel(logging.INFO)
    LOGGER.addHandler(handler)
    try:
        yield path
    except BaseException as err:
        LOGGER.error("stopped by %s: %s", type(err).__name__, one_line(str(err)), extra=FILE_ONLY)
        raise
    finally:
        LOGGER.removeHandler(handler)
        handler.close()
        LOGGER.setLevel(previous_level)
