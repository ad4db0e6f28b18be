# ruff: noqa: E741  (l is the paper's symbol for |D_t|/|D_a|)
"""The joint-training mixture ``q(l)`` and the rate changes it implies, computed without cancellation.

Sizes in units of ``n = |D_a|``: ``N_p = k``, ``N_a = 1``, ``N_t = l``, ``S = k + 1 + l`` and

    q(l) = (k P_p + P_a + l P_t) / S.

With ``delta_i = P_i - q`` (formed from differences of the components, never as ``P_i - q`` of two
nearly equal floats) and ``m_u`` the mass of ``P_t`` on leaves where ``q = 0``, the derivation
(theory.derivation) gives, in nats,

    d gamma_i / dl = (1 - A_i) / (d S),   1 - A_i = m_u - sum_{q>0} delta_i delta_t / q,

which has no ``1 - (1 + tiny)`` step, and over a finite step ``[0, l]`` with
``x = l (P_t - q0) / ((S0 + l) q0)`` on leaves with ``q0 > 0``,

    d * Delta gamma_i = -[ sum q0 (log1p(x) - x) - l m_u / (S0 + l) + sum delta_i(0) log1p(x) ].

Every returned rate is in bits (divided by ln 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.errors import ConfigError
from theory.coding import huffman_lengths, one_bit_bound, validate_masses

LN2 = float(np.log(2.0))
ROLES = ("p", "a", "t")


@dataclass(frozen=True)
class Components:
    """Leaf distributions of D_p, D_a and D_t on one aligned leaf set."""

    p: np.ndarray
    a: np.ndarray
    t: np.ndarray

    def __post_init__(self) -> None:
        for role in ROLES:
            arr = validate_masses(getattr(self, role), f"P_{role}")
            object.__setattr__(self, role, arr)
        if not (self.p.size == self.a.size == self.t.size):
            raise ConfigError("P_p, P_a and P_t must be on the same leaves")


def _check(k: float, l: float, depth: int) -> None:
    if not k > 0:
        raise ConfigError(f"k must be > 0, got {k}")
    if not l >= 0:
        raise ConfigError(f"l must be >= 0, got {l}")
    if depth < 1:
        raise ConfigError(f"depth must be >= 1, got {depth}")


def mixture(c: Components, k: float, l: float) -> np.ndarray:
    """The joint model's leaf masses ``q(l)``."""
    return (k * c.p + c.a + l * c.t) / (k + 1.0 + l)


def deviations(c: Components, k: float, l: float) -> dict[str, np.ndarray]:
    """``delta_i = P_i - q(l)`` from pairwise component differences (no cancellation against q)."""
    s = k + 1.0 + l
    return {
        "p": ((c.p - c.a) + l * (c.p - c.t)) / s,
        "a": (k * (c.a - c.p) + l * (c.a - c.t)) / s,
        "t": (k * (c.t - c.p) + (c.t - c.a)) / s,
    }


@dataclass(frozen=True)
class Derivatives:
    """Pointwise ``d gamma_i / dl`` in bits at one ``l``; ``l_dgamma_t`` is ``l * d gamma_t/dl``.

    At ``l = 0`` with unseen leaves (``m_u > 0``) ``dgamma_t`` is infinite while ``l_dgamma_t``
    tends to ``-m_u / (d ln 2)``; that limit is what enters the conservation law there.
    """

    p: float
    a: float
    t: float
    l_dgamma_t: float
    unseen_mass: float
    k: float
    l: float

    @property
    def ratio(self) -> float:
        """``(d gamma_a/dl) / (d gamma_p/dl)``; the theorem says ``-(k + l)`` for ``P_t = P_p``."""
        return self.a / self.p if self.p != 0 else float("nan")

    def conservation_residual(self) -> float:
        """``|k g_p' + g_a' + l g_t'|`` relative to the sum of the magnitudes (0 when all vanish)."""
        terms = np.array([self.k * self.p, self.a, self.l_dgamma_t])
        scale = float(np.abs(terms).sum())
        return float(abs(terms.sum()) / scale) if scale > 0 else 0.0

    def identity_error(self) -> float:
        """Relative error of ``g_a' = -(k + l) g_p'`` (meaningful when ``P_t = P_p``)."""
        target = -(self.k + self.l) * self.p
        scale = max(abs(self.a), abs(target))
        return float(abs(self.a - target) / scale) if scale > 0 else 0.0


def derivatives(c: Components, k: float, l: float, depth: int) -> Derivatives:
    """Pointwise derivatives of the compression rates in ``l`` (bits per unit ``l``)."""
    _check(k, l, depth)
    q = mixture(c, k, l)
    seen = q > 0
    unseen_mass = float(c.t[~seen].sum())
    dev = deviations(c, k, l)
    dt = dev["t"][seen]
    qs = q[seen]
    scale = depth * (k + 1.0 + l) * LN2
    one_minus_a = {r: unseen_mass - float((dev[r][seen] * dt / qs).sum()) for r in ROLES}
    gp, ga = one_minus_a["p"] / scale, one_minus_a["a"] / scale
    if unseen_mass > 0:  # only possible at l = 0
        gt, l_gt = float("inf"), -unseen_mass / (depth * LN2)
    else:
        gt = one_minus_a["t"] / scale
        l_gt = l * gt
    return Derivatives(gp, ga, gt, l_gt, unseen_mass, float(k), float(l))


def log1pmx(x: np.ndarray) -> np.ndarray:
    """``log(1 + x) - x`` accurate for small ``|x|`` (series), ``x > -1``."""
    x = np.asarray(x, dtype=float)
    out = np.empty_like(x)
    small = np.abs(x) < 0.1
    xs = x[small]
    term, acc = xs * xs, np.zeros_like(xs)
    for n in range(2, 20):  # |x| < 0.1: the 19th term is below 1e-19 relative
        acc += (-1) ** (n + 1) * term / n
        term = term * xs
    out[small] = acc
    big = ~small
    out[big] = np.log1p(x[big]) - x[big]
    return out


@dataclass(frozen=True)
class Step:
    """Changes of the rates (bits) over the finite step ``[0, l]``."""

    dgamma_p: float
    dgamma_a: float
    unseen_mass: float
    k: float
    l: float
    depth: int

    @property
    def ratio(self) -> float:
        return self.dgamma_a / self.dgamma_p if self.dgamma_p != 0 else float("nan")

    @property
    def coefficient(self) -> float:
        """``ratio / (-k)``: 1 is the theorem's ``Theta(-k)`` with unit constant."""
        return self.ratio / (-self.k)

    @property
    def signs_hold(self) -> bool:
        """The theorem's signs: gamma_p falls and gamma_a rises."""
        return self.dgamma_p < 0 < self.dgamma_a


def finite_step(c: Components, k: float, l: float, depth: int) -> Step:
    """``gamma_i(l) - gamma_i(0)`` for D_p and D_a, in a log1p form that does not cancel at large k."""
    _check(k, l, depth)
    s0 = k + 1.0
    q0 = (k * c.p + c.a) / s0
    seen = q0 > 0
    unseen_mass = float(c.t[~seen].sum())
    q0s = q0[seen]
    delta_t0 = (k * (c.t - c.p) + (c.t - c.a))[seen] / s0  # P_t - q0 without cancellation
    x = l * delta_t0 / ((s0 + l) * q0s)
    common = float((q0s * log1pmx(x)).sum()) - l * unseen_mass / (s0 + l)
    lp = np.log1p(x)
    delta0 = {"p": (c.p - c.a)[seen] / s0, "a": k * (c.a - c.p)[seen] / s0}
    change = {r: -(common + float((delta0[r] * lp).sum())) / (depth * LN2) for r in ("p", "a")}
    return Step(change["p"], change["a"], unseen_mass, float(k), float(l), int(depth))


@dataclass(frozen=True)
class HuffmanStep:
    """The same step with actual Huffman code lengths of ``q(0)`` and ``q(l)`` (bits per unit depth)."""

    dgamma_p: float
    dgamma_a: float
    bound_holds: bool  # the 1-bit bound for the coded mixture at both ends of the step
    component_bound_share: float  # share of (component, end) pairs within 1 bit of their entropy

    @property
    def resolves(self) -> bool:
        """Whether integer lengths registered any change of gamma_p (changes of order 1/k vanish)."""
        return self.dgamma_p != 0.0


def huffman_step(c: Components, k: float, l: float, depth: int) -> HuffmanStep:
    """Huffman-coded rates of D_p and D_a at ``l = 0`` and at ``l``."""
    _check(k, l, depth)
    gam, bounds, comps = {}, [], []
    for end in (0.0, l):
        q = mixture(c, k, end)
        coded = q > 0
        lengths = np.zeros(q.size, dtype=np.int64)
        lengths[coded] = huffman_lengths(q[coded])
        holds, _, _ = one_bit_bound(q[coded], lengths[coded])
        bounds.append(holds)
        for role in ("p", "a"):
            pr = getattr(c, role)
            gam[(role, end)] = float((pr[coded] * lengths[coded]).sum()) / depth
            used = pr[coded] > 0
            entropy = float(-(pr[coded][used] * np.log2(pr[coded][used])).sum())
            comps.append(entropy <= gam[(role, end)] * depth < entropy + 1.0)
    return HuffmanStep(
        gam[("p", l)] - gam[("p", 0.0)], gam[("a", l)] - gam[("a", 0.0)],
        all(bounds), float(np.mean(comps)),
    )
