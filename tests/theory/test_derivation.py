"""The sympy derivation: every step reduces to 0 symbolically in M and for M = 2, 3, 4."""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from theory import derivation

CORE = ("conservation", "P_t = P_p", "l -> 0")


@pytest.mark.parametrize("ident", derivation.all_identities(None), ids=lambda i: i.name)
def test_identity_symbolic_M(ident):
    assert sp.simplify(ident.residual()) == 0


@pytest.mark.parametrize("M", [2, 3, 4])
@pytest.mark.parametrize("name", CORE)
def test_core_identities_explicit_M(M, name):
    ident = {i.name: i for i in derivation.all_identities(M)}[name]
    assert sp.simplify(ident.residual()) == 0


@pytest.mark.slow
@pytest.mark.parametrize("M", [2, 3, 4])
def test_every_identity_explicit_M(M):
    for ident in derivation.all_identities(M):
        assert sp.simplify(ident.residual()) == 0, ident.name


def test_dq_dl_and_disjoint_supports_explicit_M():
    for M in (2, 3, 4):
        assert derivation.dq_dl(M).holds() and derivation.disjoint_supports(M).holds()


def test_negative_control_is_not_an_identity():
    """The l -> 0 relation at finite l with a free P_t must not reduce to 0 (the check can fail)."""
    m = derivation.Model(2)
    wrong = derivation.Identity("wrong", derivation.l0_form(2).statement, m.dgamma("a"),
                                -derivation.k * m.dgamma("p"), m)
    assert wrong.residual() != 0


def test_render_pretty_and_latex():
    text = derivation.render(latex=False, verify=())  # verification is what the tests above do
    assert "conservation" in text and "Hooke" in text
    latex = derivation.render(latex=True, verify=())
    assert r"\frac" in latex


@pytest.mark.parametrize("M", [None, 2])
def test_unseen_share_derivation(M):
    """How D_t's mass m_u on unseen leaves enters the l -> 0 relation, step by step."""
    found = derivation.unseen_share(M)
    for ident in found.identities:
        assert ident.holds(), ident.name
    assert "non-decreasing in m_u" in found.conclusion


def test_unseen_share_negative_control():
    """Without the m_u term the l -> 0 relation must not reduce to 0."""
    u1 = derivation.unseen_share(2).identities[0]
    assert not derivation.Identity("wrong", u1.statement, u1.lhs, sp.Integer(0), u1.model).holds()


def test_unseen_share_break_grows_with_m_u_numerically():
    """theory.mixture agrees with the derivation: c0 = 1 - m_u (k+1)/(k G), and the break |ln c0|
    (infinite for c0 <= 0) never falls as m_u grows, whichever way c0 leaves 1; so does the
    finite-step coefficient's (l = 0.1), which the boundary experiment reads."""
    from theory.mixture import Components, derivatives, finite_step
    from theory.readings import break_size
    from theory.worlds import zipf_masses

    rng = np.random.default_rng(0)
    p = zipf_masses(1.2, 64)
    a = p[rng.permutation(64)]
    k, depth, pad = 100.0, 8, np.zeros(8)
    for shape in (p, a):  # R = P_p: 1 - A_R < 0 (c0 rises); R = P_a: 1 - A_R > 0 (c0 collapses)
        a_r = float(np.sum(p * shape / ((k * p + a) / (k + 1))))
        breaks0, breaks = [], []
        for m in np.linspace(0, 0.95, 40):
            comps = Components(np.r_[p, pad], np.r_[a, pad], np.r_[(1 - m) * shape, np.full(8, m / 8)])
            c0 = derivatives(comps, k, 0.0, depth).ratio / (-k)
            if m > 0:
                assert c0 == pytest.approx(1 - m * (k + 1) / (k * (1 - (1 - m) * a_r)), rel=1e-9)
            breaks0.append(break_size(c0))
            breaks.append(break_size(finite_step(comps, k, 0.1, depth).coefficient))
        for b in (breaks0, breaks):
            assert all(y >= x - 1e-12 for x, y in zip(b, b[1:], strict=False)), b
