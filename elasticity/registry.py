"""Where each experiment lives, by name, imported only when needed (for `figures` and `reproduce`)."""

from __future__ import annotations

from harness.experiment import Experiment, load_object

# experiment name -> "module:attribute" of its Experiment
EXPERIMENTS: dict[str, str] = {
    "theory.simulate": "theory.simulate:EXPERIMENT",
    "theory.boundary": "theory.boundary:EXPERIMENT",
    "toy.resistance": "toymodels.protocols.resistance:EXPERIMENT",
    "toy.rebound": "toymodels.protocols.rebound:EXPERIMENT",
    "toy.scale": "toymodels.protocols.scale:EXPERIMENT",
    "toy.compression": "toymodels.protocols.compression:EXPERIMENT",
    "toy.lifecycle": "toymodels.protocols.lifecycle:EXPERIMENT",
    "llm.resistance": "llm_bridge.resistance:EXPERIMENT",
    "llm.rebound": "llm_bridge.rebound:EXPERIMENT",
    "llm.pareto": "llm_bridge.pareto:EXPERIMENT",
}


def load(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment '{name}'; known: {', '.join(EXPERIMENTS)}")
    return load_object(EXPERIMENTS[name])
