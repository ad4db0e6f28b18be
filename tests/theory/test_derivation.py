"""The sympy derivation: every step reduces to 0 symbolically in M and for M = 2, 3, 4."""

from __future__ import annotations

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
