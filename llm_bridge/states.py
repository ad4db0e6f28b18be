"""Full-model weight states kept on disk, not in memory.

The protocols keep theta0 and every checkpoint of a run as ``state_dict()`` values. A LoRA state is
the adapter (megabytes) and stays in memory; a full fine-tune's state is the whole model, so
:class:`StateFile` writes it to one file in a temporary folder and stands in for it: a read-only
mapping of parameter names that ``HFCausalLM.load_state_dict`` streams back (memory-mapped, so no
second copy of the model is ever resident). A file lives as long as its handle.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch


class StateFile(Mapping[str, torch.Tensor]):
    """Weights saved with ``torch.save``; a name reads its tensor back from the file."""

    def __init__(self, path: Path, names: tuple[str, ...], *, owner: bool = True) -> None:
        self.path = path
        self.names = names
        if owner:  # the main process removes the file when its handle goes (every rank drops it at once)
            weakref.finalize(self, path.unlink, missing_ok=True)

    def load(self) -> dict[str, torch.Tensor]:
        """Every tensor, memory-mapped from the file (pages are read as they are copied)."""
        return torch.load(self.path, mmap=True, weights_only=True, map_location="cpu")

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self.names:
            raise KeyError(name)
        return self.load()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class StateFolder:
    """Where an adapter's :class:`StateFile` s go: a temporary folder under ``root`` (the system's if
    None), made at the first state and shared by every rank; the main process writes each file and
    removes the folder with the adapter (or at exit)."""

    def __init__(self, root: Path | None, owner: Any, accelerator: Any) -> None:
        self.root = root
        self.accelerator = accelerator
        self._owner = weakref.ref(owner)
        self._path: Path | None = None
        self._numbers = itertools.count()

    def next_path(self) -> Path:
        """A new file name in the folder (every rank calls it at once: the first call is collective)."""
        if self._path is None:
            from accelerate.utils import broadcast_object_list

            main = self.accelerator.is_main_process
            if main and self.root is not None:
                self.root.mkdir(parents=True, exist_ok=True)
            shared = [tempfile.mkdtemp(prefix="states-", dir=self.root) if main else None]
            if self.accelerator.num_processes > 1:
                broadcast_object_list(shared)
            self._path = Path(shared[0])
            if main:
                weakref.finalize(self._owner(), shutil.rmtree, self._path, ignore_errors=True)
        return self._path / f"state-{next(self._numbers)}.pt"

    def save(self, named: Mapping[str, torch.Tensor]) -> StateFile:
        """``named`` as a new StateFile, written by the main process and read by every rank (whose
        ``named`` may be empty: gathered weights are the main process's only)."""
        from accelerate.utils import broadcast_object_list

        path = self.next_path()
        names = [tuple(named)]
        if self.accelerator.num_processes > 1:
            broadcast_object_list(names)  # the main process's
        main = self.accelerator.is_main_process
        if main:
            write_state(named, path)
        self.accelerator.wait_for_everyone()
        return StateFile(path, names[0], owner=main)


def write_state(named: Mapping[str, torch.Tensor], path: Path) -> None:
    """``named`` into ``path``; torch.save streams tensor by tensor (a GPU tensor via its own host copy)."""
    partial = path.with_name(path.name + ".partial")
    torch.save({name: tensor.detach() for name, tensor in named.items()}, partial)
    partial.rename(path)
