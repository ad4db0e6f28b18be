# ruff: noqa: E741  (l is the paper's symbol for |D_t|/|D_a|)
"""The elasticity theorem derived in sympy, one identity per function, from the definitions only.

Model (paper Defs 3.1-3.3, digest §2.5-2.6): after pruning there are ``M`` leaves; dataset ``i``
puts mass ``P_i[j]`` on leaf ``j`` (each sums to 1). Sizes in units of ``n = |D_a|``:
``N_p = k n``, ``N_a = n``, ``N_t = l n``, ``S = k + 1 + l``. Joint training gives

    q[j](l) = (k P_p[j] + P_a[j] + l P_t[j]) / S,     gamma_i(l) = -(1/d) sum_j P_i[j] log q[j](l)

(natural logs here; bits only rescale every identity). Each function below returns an
:class:`Identity` whose ``lhs`` is computed from these definitions (``sp.diff`` and all) and whose
``rhs`` is the claimed closed form. ``Identity.residual()`` reduces ``lhs - rhs`` using only the
normalisation ``sum_j P_i[j] = 1``; it is 0 when the step is right:

- for a symbolic ``M`` the sums stay unevaluated: sums are merged, the summand is cancelled, split
  again, and every ``Sum(P_i[j])`` is replaced by 1;
- for an integer ``M`` the sums are written out, each leaf's terms are cancelled, and
  ``P_i[M] = 1 - sum_{j<M} P_i[j]`` is substituted.

Reading of "pairwise disjoint" datasets (digest §2.5): disjoint as *sets of responses*, while their
leaves overlap in the pruned tree. The other reading, fully disjoint leaf supports, is
:func:`disjoint_supports`: there ``dgamma_p/dl = dgamma_a/dl`` and the ratio is +1, not ``-k``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sympy as sp

k, l, d, n = sp.symbols("k l d n", positive=True)
j = sp.Symbol("j", integer=True, positive=True)
M_SYM = sp.Symbol("M", integer=True, positive=True)
ROLES = ("p", "a", "t")
S = k + 1 + l


class Model:
    """Leaf masses of D_p, D_a, D_t over ``M`` leaves (symbolic when ``M`` is None).

    ``t_is`` sets the perturbation's distribution equal to another role's ("p" or "a").
    """

    def __init__(self, M: int | None = None, t_is: str | None = None):
        self.M = M
        self.base = {r: sp.IndexedBase(f"P_{r}", positive=True) for r in ROLES}
        if t_is is not None:
            self.base["t"] = self.base[t_is]

    def P(self, role: str, leaf: sp.Expr = j) -> sp.Expr:
        return self.base[role][leaf]

    def q(self, leaf: sp.Expr = j, at: sp.Expr = l) -> sp.Expr:
        return (k * self.P("p", leaf) + self.P("a", leaf) + at * self.P("t", leaf)) / (k + 1 + at)

    def total(self, summand: Callable[[sp.Expr], sp.Expr]) -> sp.Expr:
        """``sum_j summand(j)``: unevaluated for a symbolic M, written out for an integer M."""
        if self.M is None:
            return sp.Sum(summand(j), (j, 1, M_SYM))
        return sp.Add(*(summand(sp.Integer(i)) for i in range(1, self.M + 1)))

    def gamma(self, role: str) -> sp.Expr:
        """Compression rate of D_role under the joint model (nats per unit depth)."""
        return -self.total(lambda leaf: self.P(role, leaf) * sp.log(self.q(leaf))) / d

    def dgamma(self, role: str) -> sp.Expr:
        return sp.diff(self.gamma(role), l)

    def A(self, role: str) -> sp.Expr:
        return self.total(lambda leaf: self.P(role, leaf) * self.P("t", leaf) / self.q(leaf))

    def entropy(self, role: str) -> sp.Expr:
        return -self.total(lambda leaf: self.P(role, leaf) * sp.log(self.P(role, leaf)))

    def kl(self, role: str) -> sp.Expr:
        """KL(P_role || q), the data||model direction (nats)."""
        return self.total(lambda leaf: self.P(role, leaf) * sp.log(self.P(role, leaf) / self.q(leaf)))

    def chi(self) -> sp.Expr:
        """``X = sum_j (P_a - P_p)^2 / q``, the non-negative sum behind the signs."""
        return self.total(lambda leaf: (self.P("a", leaf) - self.P("p", leaf)) ** 2 / self.q(leaf))

    def normalise(self, expr: sp.Expr) -> sp.Expr:
        """Use ``sum_j P_i[j] = 1``: reduce sums (symbolic M) or eliminate the last leaf (integer M)."""
        if self.M is None:
            return reduce_sums(expr, [b for b in set(self.base.values())])
        subs = {}
        for b in set(self.base.values()):
            subs[b[self.M]] = 1 - sp.Add(*(b[i] for i in range(1, self.M)))
        return expr.subs(subs)


def reduce_sums(expr: sp.Expr, bases: list[sp.IndexedBase]) -> sp.Expr:
    """Merge a linear combination of ``Sum(., (j, 1, M))`` into one sum, cancel the summand, split
    it into terms, pull out what does not depend on ``j`` and replace ``Sum(P_i[j])`` by 1."""
    expr = sp.expand(sp.expand_log(expr, force=True))
    summand, rest = sp.Integer(0), sp.Integer(0)
    for term in sp.Add.make_args(expr):
        sums = [f for f in sp.Mul.make_args(term) if isinstance(f, sp.Sum)]
        if len(sums) == 1:
            coeff = term / sums[0]
            summand += coeff * sums[0].function
        elif not sums:
            rest += term
        else:
            raise ValueError("reduce_sums handles linear combinations of sums only")
    summand = sp.expand(sp.cancel(sp.together(summand)))
    total = rest
    for term in sp.Add.make_args(summand):
        coeff, part = term.as_independent(j, as_Add=False)
        if any(part == b[j] for b in bases):
            total += coeff
        else:
            total += coeff * sp.Sum(part, (j, 1, M_SYM))
    return total


@dataclass(frozen=True)
class Identity:
    """One step of the derivation: its printed statement and the two sides computed from the model."""

    name: str
    statement: sp.Eq
    lhs: sp.Expr
    rhs: sp.Expr
    model: Model
    note: str = ""

    def residual(self) -> sp.Expr:
        """``simplify`` of ``lhs - rhs`` after the normalisation; 0 when the step holds.

        Terms are cancelled leaf by leaf before the normalisation couples the leaves (one common
        denominator over all leaves would make sympy expand a product of M mixtures).
        """
        expr = sp.expand(sp.expand_log(self.lhs - self.rhs, force=True))
        if self.model.M is None:
            return sp.simplify(self.model.normalise(expr))
        groups: dict[object, sp.Expr] = {}
        for term in sp.Add.make_args(expr):
            leaves = {x.indices[0] for x in term.atoms(sp.Indexed)}
            key = leaves.pop() if len(leaves) == 1 else None
            groups[key] = groups.get(key, sp.Integer(0)) + term
        total = sp.Add(*(sp.cancel(sp.together(g)) for g in groups.values()))
        return sp.simplify(self.model.normalise(total))

    def holds(self) -> bool:
        return self.residual() == 0


# Display symbols (the statements are what `elasticity theory derive` prints)
_q, _Pt, _Pp, _Pa = sp.symbols("q P_t P_p P_a")
_g = {r: sp.Function(f"gamma_{r}")(l) for r in ROLES}
_A = {r: sp.Symbol(f"A_{r}") for r in ROLES}
_KL = {r: sp.Function(f"KL_{r}")(l) for r in ROLES}
_H = {r: sp.Symbol(f"H_{r}") for r in ROLES}
_X = sp.Symbol("X")
_N = {"p": k * n, "a": n, "t": l * n}


def dq_dl(M: int | None = None) -> Identity:
    """Step 1: dq/dl = (P_t - q)/S, leaf by leaf."""
    m = Model(M)
    leaf = j if M is None else sp.Integer(M)
    return Identity("dq/dl", sp.Eq(sp.Derivative(sp.Function("q")(l), l), (_Pt - _q) / S, evaluate=False),
                    sp.diff(m.q(leaf), l), (m.P("t", leaf) - m.q(leaf)) / S, m)


def dgamma_dl(role: str = "a", M: int | None = None) -> Identity:
    """Step 2: dgamma_i/dl = (1 - A_i)/(d S), A_i = sum_j P_i P_t / q."""
    m = Model(M)
    return Identity(f"dgamma_{role}/dl",
                    sp.Eq(sp.Derivative(_g[role], l), (1 - _A[role]) / (d * S), evaluate=False),
                    m.dgamma(role), (1 - m.A(role)) / (d * S), m,
                    f"A_{role} = sum_j P_{role}(j) P_t(j) / q(j)")


def conservation(M: int | None = None) -> Identity:
    """Step 3: sum_i N_i dgamma_i/dl = 0 for any P_p, P_a, P_t (springs in series)."""
    m = Model(M)
    lhs = sp.Add(*(_N[r] * m.dgamma(r) for r in ROLES))
    return Identity("conservation",
                    sp.Eq(sp.Add(*(_N[r] * sp.Derivative(_g[r], l) for r in ROLES)), 0, evaluate=False),
                    lhs, sp.Integer(0), m, "for any three distributions; sum_i N_i A_i = N")


def pretraining_perturbation(M: int | None = None) -> Identity:
    """Step 4: P_t = P_p gives dgamma_a/dl = -(k + l) dgamma_p/dl exactly (Theorem 4.2's Theta(-k))."""
    m = Model(M, t_is="p")
    return Identity("P_t = P_p",
                    sp.Eq(sp.Derivative(_g["a"], l), -(k + l) * sp.Derivative(_g["p"], l), evaluate=False),
                    m.dgamma("a"), -(k + l) * m.dgamma("p"), m, "perturbation drawn like pre-training")


def l0_form(M: int | None = None) -> Identity:
    """Step 5: at l -> 0, dgamma_a/dl = -k dgamma_p/dl for ANY P_t covered by the joint model."""
    m = Model(M)
    return Identity("l -> 0",
                    sp.Eq(sp.Subs(sp.Derivative(_g["a"], l), l, 0),
                          -k * sp.Subs(sp.Derivative(_g["p"], l), l, 0), evaluate=False),
                    m.dgamma("a").subs(l, 0), -k * m.dgamma("p").subs(l, 0), m,
                    "needs q(0) > 0 wherever P_t > 0; the signs depend on P_t")


def alignment_perturbation(M: int | None = None) -> Identity:
    """Step 5b: P_t = P_a flips the roles: dgamma_p/dl = -((1 + l)/k) dgamma_a/dl."""
    m = Model(M, t_is="a")
    return Identity("P_t = P_a",
                    sp.Eq(sp.Derivative(_g["p"], l), -((1 + l) / k) * sp.Derivative(_g["a"], l), evaluate=False),
                    m.dgamma("p"), -((1 + l) / k) * m.dgamma("a"), m, "both signs flip")


def sign_p(M: int | None = None) -> Identity:
    """Step 6a: with P_t = P_p, dgamma_p/dl = -X/(d S^3) <= 0, X = sum (P_a - P_p)^2 / q >= 0."""
    m = Model(M, t_is="p")
    return Identity("sign of dgamma_p/dl",
                    sp.Eq(sp.Derivative(_g["p"], l), -_X / (d * S**3), evaluate=False),
                    m.dgamma("p"), -m.chi() / (d * S**3), m, "X >= 0, so gamma_p falls")


def sign_a(M: int | None = None) -> Identity:
    """Step 6b: with P_t = P_p, dgamma_a/dl = (k + l) X/(d S^3) >= 0."""
    m = Model(M, t_is="p")
    return Identity("sign of dgamma_a/dl",
                    sp.Eq(sp.Derivative(_g["a"], l), (k + l) * _X / (d * S**3), evaluate=False),
                    m.dgamma("a"), (k + l) * m.chi() / (d * S**3), m, "so gamma_a rises")


def kl_form(role: str = "a", M: int | None = None) -> Identity:
    """Step 7a: KL(P_i || q) = d gamma_i - H(P_i); H does not depend on l."""
    m = Model(M)
    return Identity(f"KL_{role}", sp.Eq(_KL[role], d * _g[role] - _H[role], evaluate=False),
                    m.kl(role), d * m.gamma(role) - m.entropy(role), m, "data||model direction")


def hooke(M: int | None = None) -> Identity:
    """Step 7b: Hooke's law, sum_i |D_i| dKL_i/dl = 0: size-weighted deformations balance."""
    m = Model(M)
    lhs = sp.Add(*(_N[r] * sp.diff(m.kl(r), l) for r in ROLES))
    return Identity("Hooke", sp.Eq(sp.Add(*(_N[r] * sp.Derivative(_KL[r], l) for r in ROLES)), 0,
                                   evaluate=False), lhs, sp.Integer(0), m,
                    "|D_p| dKL_p ~ -|D_a| dKL_a when the |D_t| term is small")


def disjoint_supports(M: int | None = None) -> Identity:
    """Boundary case: fully disjoint leaf supports give dgamma_a/dl = dgamma_p/dl, ratio +1.

    On D_i's own leaves ``q = N_i P_i / N``, so ``gamma_i = (H_i + log(N/N_i))/d`` and
    ``dgamma_i/dl = 1/(d S)`` for both D_p and D_a.
    """
    m = Model(M)
    weight = {"p": k, "a": sp.Integer(1)}

    def gamma_disjoint(role: str) -> sp.Expr:
        return -m.total(lambda leaf: m.P(role, leaf) * sp.log(weight[role] * m.P(role, leaf) / S)) / d

    return Identity("disjoint supports",
                    sp.Eq(sp.Derivative(_g["a"], l), sp.Derivative(_g["p"], l), evaluate=False),
                    sp.diff(gamma_disjoint("a"), l), sp.diff(gamma_disjoint("p"), l), m,
                    "the other reading of 'disjoint': the ratio is +1, not -k")


# --- leaves that only D_t has: how the unseen mass m_u enters, and which way it moves the coefficient
m_u = sp.Symbol("m_u", nonnegative=True)
_A_R = sp.Symbol("A_R", positive=True)


class UnseenModel(Model):
    """D_t puts mass ``m_u`` on leaves that D_p and D_a never produce and ``(1 - m_u) R`` on the M
    seen leaves (``R`` sums to 1). gamma_p and gamma_a sum over the seen leaves only (P_p = P_a = 0
    on the others), where q = (k P_p + P_a + l (1 - m_u) R)/S: the unseen leaves enter through S."""

    def __init__(self, M: int | None = None):
        super().__init__(M)
        self.base["t"] = sp.IndexedBase("R", positive=True)

    def P(self, role: str, leaf: sp.Expr = j) -> sp.Expr:
        mass = super().P(role, leaf)
        return (1 - m_u) * mass if role == "t" else mass


@dataclass(frozen=True)
class UnseenShare:
    """The l -> 0 relation with unseen leaves, verified step by step, and the sign it implies."""

    identities: list[Identity]
    conclusion: str


def unseen_share(M: int | None = None) -> UnseenShare:
    """How m_u enters k gamma_p' + gamma_a' at l -> 0, and so the coefficient c0 = gamma_a'/(-k gamma_p').

    Steps (each an :class:`Identity`): (U1) k gamma_p'(0) + gamma_a'(0) = m_u/d; (U2) gamma_p'(0) =
    G/(d (k+1)) with G = 1 - (1 - m_u) A_R, A_R = sum_j P_p R / q(0) > 0; so c0 = 1 - m_u (k+1)/(k G);
    (U3) dc0/dm_u = -(k+1)(1 - A_R)/(k G^2), one sign for all m_u; (U4) c0 = -1/k at m_u = 1.
    """
    m = UnseenModel(M)
    at0 = {r: m.dgamma(r).subs(l, 0) for r in ("p", "a")}
    a_r = m.total(lambda leaf: m.P("p", leaf) * m.base["t"][leaf] / m.q(leaf, at=0))
    gp0 = sp.Subs(sp.Derivative(_g["p"], l), l, 0)
    G = 1 - (1 - m_u) * _A_R
    c0 = 1 - m_u * (k + 1) / (k * G)
    scalar = Model(None)  # U3 and U4 are algebra in A_R, m_u and k: no sums to normalise
    c0_sym = sp.Symbol("c_0")
    identities = [
        Identity("unseen, l -> 0", sp.Eq(k * gp0 + sp.Subs(sp.Derivative(_g["a"], l), l, 0), m_u / d, evaluate=False),
                 k * at0["p"] + at0["a"], m_u / d, m, "m_u: D_t's mass on leaves where q(0) = 0"),
        Identity("unseen, gamma_p'(0)", sp.Eq(gp0, (1 - (1 - m_u) * _A_R) / (d * (k + 1)), evaluate=False),
                 at0["p"], (1 - (1 - m_u) * a_r) / (d * (k + 1)), m, "A_R = sum_j P_p R / q(0) > 0"),
        Identity("unseen, dc0/dm_u", sp.Eq(sp.Derivative(c0_sym, m_u), -(k + 1) * (1 - _A_R) / (k * G**2),
                                           evaluate=False),
                 sp.diff(c0, m_u), -(k + 1) * (1 - _A_R) / (k * G**2), scalar,
                 "c0 = gamma_a'(0)/(-k gamma_p'(0)) = 1 - m_u (k+1)/(k G) by U1 and U2"),
        Identity("unseen, c0 at m_u = 1", sp.Eq(c0_sym, -1 / k, evaluate=False), c0.subs(m_u, 1), -1 / k, scalar),
    ]
    conclusion = (
        "Take the break b = |ln c0|, infinite for c0 <= 0 (a collapse to 0 or a flipped ratio). G rises "
        "with m_u (slope A_R > 0) and c0 = 1 at m_u = 0. If 1 - A_R < 0 (gamma_p falls without unseen "
        "leaves, the theorem's sign), c0 rises from 1 to +inf as G -> 0- and is negative beyond (U3, "
        "U4); if 1 - A_R > 0, c0 falls from 1 through 0 to -1/k. Either way b is non-decreasing in m_u "
        "from b = 0: across cells that differ in m_u the expected association of the unseen share with "
        "b is positive, and 0 when the break does not depend on m_u. With |c0 - 1| instead, the second "
        "case stays below 1 + 1/k (a collapse reads about 1) while the first is unbounded, so the sign "
        "of a correlation with |c0 - 1| follows the mix of cases, not m_u."
    )
    return UnseenShare(identities, conclusion)


STEPS: list[Callable[..., Identity]] = [
    dq_dl, dgamma_dl, conservation, pretraining_perturbation, l0_form, alignment_perturbation,
    sign_p, sign_a, kl_form, hooke, disjoint_supports,
]


def all_identities(M: int | None = None) -> list[Identity]:
    """Every step for one number of leaves (None: symbolic M)."""
    out = []
    for step in STEPS:
        if step is dgamma_dl:
            out.extend(dgamma_dl(r, M) for r in ROLES)
        else:
            out.append(step(M=M))
    return out


def render(latex: bool = False, verify: tuple[int | None, ...] = (None,)) -> str:
    """The derivation as text (sympy pretty-printing) or LaTeX, with each step's verification."""
    lines = ["The elasticity theorem in the joint-compression model",
             "q(l) = (k P_p + P_a + l P_t)/S,  S = k + 1 + l,  gamma_i = -(1/d) sum_j P_i(j) log q(j)", ""]
    if latex:
        lines = [r"% The elasticity theorem in the joint-compression model",
                 r"q(l) = \frac{k P_p + P_a + l P_t}{S},\quad S = k + 1 + l,\quad "
                 r"\gamma_i = -\frac{1}{d}\sum_j P_i(j)\log q(j)", ""]
    generic = {i.name: i for i in all_identities(None)}
    for name, ident in generic.items():
        checks = []
        for M in verify:
            checked = ident if M is None else {i.name: i for i in all_identities(M)}[name]
            checks.append(f"{'M' if M is None else f'M={M}'}: {'0' if checked.holds() else 'NOT 0'}")
        body = sp.latex(ident.statement) if latex else sp.pretty(ident.statement, use_unicode=True)
        head = f"{name}" + (f"  ({ident.note})" if ident.note else "")
        lines.append(("% " if latex else "") + head)
        lines.append(body)
        if checks:
            lines.append(("% " if latex else "") + "simplify(lhs - rhs): " + ", ".join(checks))
        lines.append("")
    return "\n".join(lines)
