"""A data record of the real-checkpoint tasks: what every data layout is read into."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Record:
    prompt: str
    response: str
    label: str = "aligned"
    stratum: str = ""  # the group a held-out split is stratified over (genre, request kind, form)
