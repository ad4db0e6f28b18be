"""``elasticity toy ...``: each experiment module is imported only when its command runs."""

from __future__ import annotations

from collections.abc import Sequence

from elasticity.command import experiment_command, group_main

COMMANDS = {
    "resistance": ("forward vs inverse fine-tuning between alignment checkpoints (paper Table 1)",
                   experiment_command("toymodels.protocols.resistance:EXPERIMENT")),
    "rebound": ("alignment depth vs decay under reverse fine-tuning (paper Fig. 4, Table 3)",
                experiment_command("toymodels.protocols.rebound:EXPERIMENT")),
    "scale": ("rebound metrics across model sizes and pre-training budgets (paper Figs. 5-6)",
              experiment_command("toymodels.protocols.scale:EXPERIMENT")),
    "compression": ("d(gamma_a)/dl vs d(gamma_p)/dl on trained networks, against theory",
                    experiment_command("toymodels.protocols.compression:EXPERIMENT")),
    "lifecycle": ("when elasticity emerges along pre-training, and in which regimes",
                  experiment_command("toymodels.protocols.lifecycle:EXPERIMENT")),
    "mitigations": ("does anything make alignment stick? SFT, replay, anchor, Vaccine, DPO, SimPO under rebound",
                    experiment_command("toymodels.protocols.mitigations:EXPERIMENT")),
}


def main(argv: Sequence[str] | None = None, prog: str = "elasticity toy") -> int:
    return group_main(prog, "Toy Transformer experiments on synthetic corpora with exact attributes.",
                      argv, COMMANDS)
