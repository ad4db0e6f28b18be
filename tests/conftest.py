"""Suite-wide settings: offline hubs, a headless plot backend and a fresh cache per session."""

import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")
# A fresh cache per session: tests measure cold caches and never reuse a developer's artefacts.
os.environ["ELASTICITY_CACHE"] = tempfile.mkdtemp(prefix="elasticity-test-cache-")
