# ruff: noqa: E741  (l is the paper's symbol for |D_t|/|D_a|)
"""What the mixture model says about mitigations during alignment.

Only replay can be written in the model. Replay with share ``rho`` keeps the alignment run's size
``n = |D_a|`` but gives ``rho n`` of its examples to pre-training-like data, so that in units of ``n``

    N_p = k + rho,   N_a = 1 - rho,   N_t = l,   q_rho(l) = ((k + rho) P_p + (1 - rho) P_a + l P_t) / S.

Derived here (sympy, :func:`replay_identity`): with the perturbation drawn like pre-training,

    d gamma_a / dl = -((k + rho + l) / (1 - rho)) d gamma_p / dl,

the theorem with ``k_eff = (k + rho)/(1 - rho)`` and ``l_eff = l/(1 - rho)``: replay makes the
ratio of the two rates larger, not smaller. What a user asks, though, is how fast the alignment is
lost. With ``u = (k + rho + l)/(1 - rho)`` pre-training-like examples per aligned one, gamma_a
depends on ``u`` alone, and its expansion in ``1/u`` (``gamma_a(u) = gamma_a(inf) - chi2/(d u) +
O(u^-2)``, chi2 = sum P_a^2 / P_p - 1) gives, at ``l = 0``:

- the alignment gain ``G = gamma_a(inf) - gamma_a(u_0)`` falls to ``(1 - rho) k / (k + rho)`` of
  plain SFT's, plus O(1/k);
- the share of that gain lost per unit ``l``, ``(d gamma_a/dl) / G``, is ``1/k + O(k^-2)`` with or
  without replay: its ratio to SFT's is ``1 + O(1/k)`` (exactly 1.017 to 1.029 at k = 40 for Zipf
  P_p and Dirichlet P_a, 1.001 to 1.002 at k = 1000; :func:`replay_forgetting` computes both
  readings exactly).

So the model predicts that replay costs alignment (a quarter of it at rho = 0.25) and leaves how
fast the remainder is lost almost unchanged. The
anchor (an L2 pull to theta0's weights) and the Vaccine perturbation act on weights and hidden
states, which the model does not have: their directions are pre-registered, not derived. (An
anchor written as KL(theta0||model) would be replay of theta0's own samples, which the model can
express; the package's anchor is the L2 form.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import sympy as sp

from harness.errors import ConfigError
from theory.derivation import Identity, Model, _g, j, k, l
from theory.mixture import Components

rho = sp.Symbol("rho", positive=True)


class ReplayModel(Model):
    """The mixture with ``rho`` of the alignment run given to pre-training-like data."""

    def q(self, leaf: sp.Expr = j, at: sp.Expr = l) -> sp.Expr:
        return ((k + rho) * self.P("p", leaf) + (1 - rho) * self.P("a", leaf) + at * self.P("t", leaf)) / (k + 1 + at)


def replay_identity(M: int | None = None) -> Identity:
    """Replay, perturbation drawn like pre-training: dgamma_a/dl = -((k + rho + l)/(1 - rho)) dgamma_p/dl."""
    m = ReplayModel(M, t_is="p")
    factor = (k + rho + l) / (1 - rho)
    return Identity("replay, P_t = P_p",
                    sp.Eq(sp.Derivative(_g["a"], l), -factor * sp.Derivative(_g["p"], l), evaluate=False),
                    m.dgamma("a"), -factor * m.dgamma("p"), m,
                    "the theorem with k_eff = (k + rho)/(1 - rho), l_eff = l/(1 - rho)")


@dataclass(frozen=True)
class Forgetting:
    """Exact readings of the mixture at ``l = 0`` (nats per unit depth), perturbation like P_p."""

    gain: float  # gamma_a(inf) - gamma_a(u_0): what alignment bought
    rate: float  # d gamma_a / dl at l = 0
    rho: float
    k: float

    @property
    def share_lost(self) -> float:
        """The share of the gain lost per unit l."""
        return self.rate / self.gain


def replay_forgetting(c: Components, k_value: float, rho_value: float, depth: int = 1) -> Forgetting:
    """The alignment gain and its loss rate with replay share ``rho_value`` (0: plain SFT)."""
    if not 0 <= rho_value < 1:
        raise ConfigError(f"rho must be in [0, 1), got {rho_value}")
    if np.any((c.a > 0) & (c.p == 0)):
        raise ConfigError("P_p must cover P_a's support: otherwise the gain over pre-training alone is infinite")
    u = (k_value + rho_value) / (1 - rho_value)
    q = (u * c.p + c.a) / (u + 1)
    ce_inf = -float(np.sum(c.a[c.a > 0] * np.log(c.p[c.a > 0]))) / depth
    gamma_a = -float(np.sum(c.a[c.a > 0] * np.log(q[c.a > 0]))) / depth
    # d gamma_a / du = -(1/d) sum P_a (P_p - P_a) / ((u + 1) (u P_p + P_a)), and du/dl = 1/(1 - rho)
    du = -float(np.sum(c.a * (c.p - c.a) / (u * c.p + c.a))) / (depth * (u + 1))
    return Forgetting(ce_inf - gamma_a, du / (1 - rho_value), float(rho_value), float(k_value))


def predicted_gain_ratio(k_value: float, rho_value: float) -> float:
    """Replay's alignment gain over plain SFT's, to leading order in 1/k."""
    return (1 - rho_value) * k_value / (k_value + rho_value)
