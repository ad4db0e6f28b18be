"""Files that would run code if anything unpickled them: each writes a marker file when loaded."""

from __future__ import annotations

import pickle
from pathlib import Path


class Payload:
    """Unpickling this runs ``exec``, which writes ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def payload_bytes(marker: Path, kind: str) -> bytes:
    """The payload as a plain pickle (``"pickle"``) or in torch's zip format (``"torch"``)."""
    if kind == "pickle":
        return pickle.dumps({"states": Payload(marker)})
    import io

    import torch

    buffer = io.BytesIO()
    torch.save({"states": Payload(marker), "losses": [], "steps": 0}, buffer)
    return buffer.getvalue()


REMOTE_CODE = "open({marker!r}, 'w').write('ran')\n"
