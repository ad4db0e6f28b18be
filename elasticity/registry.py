"""Where each experiment and each module of calibrations lives, by name, imported only when needed
(for `figures`, `reproduce`, `judge` and `calibrate`)."""

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
    "toy.mitigations": "toymodels.protocols.mitigations:EXPERIMENT",
    "llm.resistance": "llm_bridge.resistance:EXPERIMENT",
    "llm.rebound": "llm_bridge.rebound:EXPERIMENT",
    "llm.mitigations": "llm_bridge.mitigations:EXPERIMENT",
    "llm.pareto": "llm_bridge.pareto:EXPERIMENT",
}

# modules whose ``CALIBRATIONS`` (harness.calibration.Calibration) `elasticity calibrate` runs
CALIBRATION_MODULES: tuple[str, ...] = (
    "theory.calibration",
    "toymodels.protocols.resistance_calibration",
    "toymodels.protocols.rebound_calibration",
    "toymodels.protocols.scale_calibration",
    "toymodels.protocols.mitigation_calibration",
)


def load(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise KeyError(f"unknown experiment '{name}'; known: {', '.join(EXPERIMENTS)}")
    return load_object(EXPERIMENTS[name])
