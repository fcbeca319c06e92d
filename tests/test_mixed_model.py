"""The hierarchical engine's Gaussian pass (given the variance components) against the marginal covariance.

:class:`ketabayes.inference._mixed_model.MixedModel` computes, per node ``phi``, the log marginal likelihood
and the targets' conditional means and variances with per-``tau`` parts and an indicator term eliminated
in closed form (block Cholesky). The reference here is a different algorithm written in the test: the
k x k *marginal* covariance of the estimates, ``S = diag(v + tau^2) + sum_g sigma_g^2 Z_g Z_g'``, with the
normal priors of the fixed coefficients as pseudo-observations, generalised least squares for ``b`` and the
BLUP of ``u`` with its error covariance (Henderson 1975), on the original scale. SIMULATED designs.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest

from ketabayes.data.simulate import simulate_review
from ketabayes.inference.exact_hierarchical import ExactHierarchical
from ketabayes.model import priors as P
from ketabayes.model.hierarchical import HierarchicalModel


def marginal_reference(y, v, X, prior_fixed, Z, term, phi, A, pred):
    """Per node: restricted log likelihood (up to a constant), targets' means and variances (original scale)."""
    k, q = X.shape
    r = Z.shape[1]
    px, py, pv = [], [], []
    for j, pr in enumerate(prior_fixed):
        if pr.kind != "flat":
            row = np.zeros(q)
            row[j] = 1.0
            px.append(row)
            py.append(pr.mu)
            pv.append(pr.sigma**2)
    Xa = np.vstack([X, np.array(px).reshape(-1, q)])
    ya = np.concatenate([y, py])
    Za = np.vstack([Z, np.zeros((len(py), r))])
    ll, tm, tv = [], [], []
    for ph in phi:
        G = ph[1:][term] ** 2 if r else np.zeros(0)
        S = np.diag(np.concatenate([v + ph[0] ** 2, pv])) + (Za * G) @ Za.T
        Si = np.linalg.inv(S)
        XtSiX = Xa.T @ Si @ Xa
        Vb = np.linalg.inv(XtSiX)
        b = Vb @ Xa.T @ Si @ ya
        res = ya - Xa @ b
        u = G * (Za.T @ Si @ res)
        ZG = Za * G
        Cbu = -Vb @ Xa.T @ Si @ ZG
        Cuu = np.diag(G) - ZG.T @ Si @ ZG + ZG.T @ Si @ Xa @ Vb @ Xa.T @ Si @ ZG
        Cov = np.block([[Vb, Cbu], [Cbu.T, Cuu]])
        ll.append(-0.5 * (np.linalg.slogdet(S)[1] + np.linalg.slogdet(XtSiX)[1] + res @ Si @ res))
        coef = np.concatenate([b, u])
        tm.append(A @ coef)
        tv.append(np.einsum("ta,ab,tb->t", A, Cov, A) + pred @ ph**2)
    return np.array(ll), np.array(tm), np.array(tv)


def _designs():
    df = simulate_review(seed=11, drugs={"ket": 8, "mem": 5, "dex": 4}, conditions={"CRPS": 0.5, "PHN": 0.3, "DN": 0.2})
    df = df[~((df.drug == "dex") & (df.condition == "DN"))].reset_index(drop=True)  # an unobserved cell
    df["cls"] = df.drug.map({"ket": "NMDA", "mem": "NMDA", "dex": "other"})
    df["dose"] = np.linspace(-1.0, 1.0, len(df))
    hn = "halfnormal(10)"
    return {
        "drug x condition": HierarchicalModel(df, by=["drug", "condition"], prior_mu="normal(0, 50)", prior_tau=hn),
        "with interaction": HierarchicalModel(df, by=["drug", "condition"], interaction=True,
                                              prior_mu="normal(0, 50)", prior_tau=hn),
        "nested, moderator, flat mu": HierarchicalModel(df, by=["drug"], nest={"drug": "cls"}, moderators=["dose"],
                                                        prior_mu="flat()", prior_tau=hn, prior_gamma="normal(0, 20)"),
        "one grouping": HierarchicalModel(df, by="drug", prior_mu="normal(0, 50)", prior_tau=hn),
        "no grouping": HierarchicalModel(df, by=[], prior_mu="normal(0, 50)", prior_tau=hn),
    }


DESIGNS = _designs()


def _nodes(C, scale, seed=0, top=40.0):
    """Nodes on a product grid (shared tau values, as in the quadrature) and scattered ones (log-uniform
    between ``e^-6`` and ``top`` times ``scale``), incl. zero group scales."""
    rng = np.random.default_rng(seed)
    ax = scale * np.array([0.0, 1e-4, 0.05, 0.7, 3.0, top])
    grid = np.stack([g.ravel() for g in np.meshgrid(*[ax] * C, indexing="ij")], axis=1)
    grid[:, 0] = np.maximum(grid[:, 0], 1e-3 * scale)
    scattered = scale * np.exp(rng.uniform(-6.0, math.log(top), (40, C)))
    return np.concatenate([grid[rng.choice(grid.shape[0], min(grid.shape[0], 60), replace=False)], scattered])


def _check_against_reference(e, m, prior_fixed, phi):
    d = m.design
    ll_ref, tm_ref, tv_ref = marginal_reference(m.yi, m.vi, d.X, prior_fixed, d.Z, d.term_of_col, phi, d.A,
                                                d.pred.astype(float))
    out = e._mm.evaluate(phi / e._scale, True)
    tm = e._c * d.A[:, 0][None, :] + e._scale * out["tmean"]
    tv = e._scale**2 * out["tvar"]
    sd = np.sqrt(tv_ref)
    np.testing.assert_allclose(tv, tv_ref, rtol=1e-9)
    assert np.max(np.abs(tm - tm_ref) / sd) < 1e-9
    # log likelihoods agree up to a constant (flat coefficients, standardisation)
    diff = out["loglik"] - ll_ref
    assert np.ptp(diff) < 1e-9
    return diff


@pytest.mark.parametrize("name", list(DESIGNS))
def test_gaussian_pass_matches_the_marginal_covariance(name):
    m = DESIGNS[name]
    e = m._exact(integrate=False)
    prior_fixed = [m.prior_mu, *m.prior_gamma.values()]
    # the reference's k x k covariance loses digits for group scales far above the data's (G - G Z' S^-1 Z G
    # cancels), so it is compared up to 10 times the data's scale; beyond, the fast and dense passes agree
    phi = _nodes(e.n_comp, math.sqrt(float(np.median(m.vi))), top=10.0)
    diff = _check_against_reference(e, m, prior_fixed, phi)
    if all(p.kind != "flat" for p in prior_fixed):
        # proper priors: the reference is log p(y | phi) + (k/2) log(2 pi), the engine's log p(y' | phi') is
        # log p(y | phi) minus its Jacobian (exact_hierarchical: ``_log_jac``)
        np.testing.assert_allclose(diff + e._log_jac, -0.5 * m.k * math.log(2.0 * math.pi), atol=1e-8)


def test_indicator_term_is_eliminated_and_a_general_term_is_not():
    """The drug x condition design eliminates its larger term; a random term whose columns overlap in a
    trial (not an indicator) stays in the factorised block, with the same answers."""
    e = DESIGNS["with interaction"]._exact(integrate=False)
    cells = np.flatnonzero(e.term_of_col == 2) + e.q
    assert list(e._mm.J) == list(cells)  # the drug x condition cells: the largest indicator term
    rng = np.random.default_rng(3)
    k = 9
    y, v = rng.normal(0.0, 1.0, k), rng.uniform(0.05, 0.4, k)
    Z = np.zeros((k, 5))
    Z[np.arange(k), np.arange(k) % 3] = 1.0                        # an indicator term (3 levels)
    Z[:, 3] = rng.normal(0.0, 1.0, k)                              # a general term: two dense columns
    Z[:, 4] = rng.normal(0.0, 1.0, k)
    term = np.array([0, 0, 0, 1, 1])
    A = np.eye(1 + 5)[[0, 1, 4, 5]]
    A[0, 1] = 0.5
    pred = np.zeros((4, 3), bool)
    pred[1] = True
    pf = [P.Normal(0.0, 3.0)]
    eng = ExactHierarchical(y, v, np.ones((k, 1)), pf, Z, term, P.HalfNormal(1.0), [P.HalfNormal(1.0)] * 2, A, pred,
                            integrate=False)
    assert list(eng._mm.J) == [1, 2, 3]
    phi = np.exp(rng.uniform(-5.0, 2.0, (30, 3)))
    ll_ref, tm_ref, tv_ref = marginal_reference(y, v, np.ones((k, 1)), pf, Z, term, phi, A, pred.astype(float))
    out = eng._mm.evaluate(phi / eng._scale, True)
    np.testing.assert_allclose(eng._scale**2 * out["tvar"], tv_ref, rtol=1e-9)
    np.testing.assert_allclose(eng._c * A[:, 0] + eng._scale * out["tmean"], tm_ref, atol=1e-9 * np.sqrt(tv_ref.max()))
    assert np.ptp(out["loglik"] - ll_ref) < 1e-9


def test_non_unit_indicator_entries():
    """A term with one non-zero per trial that is not 1 (e.g. a dose-scaled group effect) is eliminated too;
    targets may contrast several of its levels."""
    rng = np.random.default_rng(5)
    k = 10
    y, v = rng.normal(0.0, 1.0, k), rng.uniform(0.05, 0.4, k)
    Z = np.zeros((k, 4))
    Z[np.arange(k), np.arange(k) % 4] = rng.uniform(0.3, 2.0, k)
    Z[3, :] = 0.0                                                   # a trial in no group of the term
    A = np.vstack([np.eye(5), np.r_[1.0, 0.0, 0.0, 1.0, 0.0], np.r_[0.0, 1.0, -1.0, 0.0, 0.5]])  # contrasts of groups
    pred = np.zeros((7, 2), bool)
    pf = [P.Flat()]
    eng = ExactHierarchical(y, v, np.ones((k, 1)), pf, Z, np.zeros(4, int), P.HalfNormal(1.0), [P.HalfCauchy(1.0)],
                            A, pred, integrate=False)
    assert eng._mm.J.size == 4
    phi = np.exp(rng.uniform(-8.0, 2.0, (30, 2)))
    ll_ref, tm_ref, tv_ref = marginal_reference(y, v, np.ones((k, 1)), pf, Z, np.zeros(4, int), phi, A,
                                                pred.astype(float))
    out = eng._mm.evaluate(phi / eng._scale, True)
    np.testing.assert_allclose(eng._scale**2 * out["tvar"], tv_ref, rtol=1e-8)
    np.testing.assert_allclose(eng._c * A[:, 0] + eng._scale * out["tmean"], tm_ref, atol=1e-8 * np.sqrt(tv_ref.max()))
    assert np.ptp(out["loglik"] - ll_ref) < 1e-8


def _exact_rational(mm, ph):
    """Log likelihood, coefficient means and targets' variances at one node in exact rational arithmetic
    (the doubles of the inputs taken exactly; Gaussian elimination on the full precision matrix)."""
    k, p = mm.k, mm.p
    fr = [Fraction(float(x)) for x in ph]
    d = [1 / (Fraction(float(mm.vs[j])) + fr[0] ** 2) for j in range(k)]
    W = [[Fraction(float(x)) for x in row] for row in mm.W]
    S = [Fraction(1) if c < 0 else fr[c] for c in mm.comp_of_col]
    P = [[sum(d[j] * W[j][a] * W[j][b] for j in range(k)) * S[a] * S[b] + (Fraction(float(mm.q0[a])) if a == b else 0)
          for b in range(p)] for a in range(p)]
    res = [Fraction(float(x)) for x in mm.resid]
    r = [sum(d[j] * res[j] * W[j][a] for j in range(k)) * S[a] for a in range(p)]
    At = [[Fraction(float(x)) * S[a] for a, x in enumerate(row)] for row in mm.A]

    def solve(rhs):  # columns of rhs: P x = rhs (no pivoting needed: P is positive definite)
        M = [P[i][:] + [col[i] for col in rhs] for i in range(p)]
        det = Fraction(1)
        for c in range(p):
            det *= M[c][c]
            for i in range(c + 1, p):
                f = M[i][c] / M[c][c]
                M[i] = [x - f * y for x, y in zip(M[i], M[c])]
        out = []
        for m_ in range(len(rhs)):
            x = [Fraction(0)] * p
            for i in reversed(range(p)):
                x[i] = (M[i][p + m_] - sum(M[i][j] * x[j] for j in range(i + 1, p))) / M[i][i]
            out.append(x)
        return out, det

    sols, det = solve([r, *At])
    sol = sols[0]
    quad = sum(d[j] * res[j] ** 2 for j in range(k)) - sum(a * b for a, b in zip(r, sol))
    logdet = math.log(det.numerator) - math.log(det.denominator)
    ll = -0.5 * (k * math.log(2 * math.pi) + sum(-math.log(x) for x in d) + logdet - mm.logdet_q0 + float(quad))
    mean = np.array([float(Fraction(float(mm.c0[a])) + sol[a]) * float(S[a]) for a in range(p)])
    tvar = np.array([float(sum(a * b for a, b in zip(row, x))) for row, x in zip(At, sols[1:])])
    return ll, mean @ mm.A.T, tvar + mm.pred @ np.asarray(ph) ** 2


@pytest.mark.parametrize("name", ["drug x condition", "nested, moderator, flat mu"])
def test_extreme_nodes_match_exact_arithmetic(name):
    """Far outside the data's scale (group SDs 400 times it, tau 1e-3 times it, flat mu) the fast pass keeps
    its digits: against exact rational arithmetic (the direct dense pass loses up to ~1e-7 sd there)."""
    e = DESIGNS[name]._exact(integrate=False)
    mm = e._mm
    C = e.n_comp
    nodes = [np.r_[1e-3, [400.0] * (C - 1)], np.r_[1e-3, 0.05, [400.0] * (C - 2)], np.r_[0.05, 400.0, [0.0] * (C - 2)],
             np.r_[30.0, [1e-4] * (C - 1)]]
    out = mm.evaluate(np.array(nodes), True)
    for i, ph in enumerate(nodes):
        ll, tm, tv = _exact_rational(mm, ph)
        assert abs(out["loglik"][i] - ll) < 1e-10 * max(1.0, abs(ll))
        assert np.max(np.abs(out["tmean"][i] - tm) / np.sqrt(tv)) < 2e-9
        np.testing.assert_allclose(out["tvar"][i], tv, rtol=2e-9)  # sums of +-1e5 variances to 0.3: cancellation


@pytest.mark.parametrize("name", ["with interaction", "nested, moderator, flat mu"])
def test_fast_and_dense_passes_agree(name):
    """The block-eliminated pass and the direct one (one Cholesky of the full precision) on the same nodes,
    including the coefficients' and target means only (``"coef"``, ``"mean"``) and the log likelihood alone; up to 400 times the data's scale,
    where the direct pass is itself ~1e-7 sd off (see the test above)."""
    m = DESIGNS[name]
    e = m._exact(integrate=False)
    phi = _nodes(e.n_comp, 1.0, seed=2, top=400.0)
    sd = np.sqrt(e._mm.dense(phi, True)["tvar"])
    for targets in (False, "coef", "mean", True):
        a, b = e._mm.evaluate(phi, targets), e._mm.dense(phi, "mean" if targets == "coef" else targets)
        if targets:
            # the targets' means are the coefficients' means through A (a sparse product: summation order only)
            np.testing.assert_allclose(a.get("tmean", a["coef"] @ e.A.T), a["coef"] @ e.A.T, rtol=1e-13, atol=1e-15)
            a["tmean"] = a["coef"] @ e.A.T
            b["tmean"] = b["mean_z"] * b["sv"] @ e.A.T
        np.testing.assert_allclose(a["loglik"], b["loglik"], rtol=1e-10)
        if targets:
            assert np.max(np.abs(a["tmean"] - b["tmean"]) / sd) < 1e-6
        if targets is True:
            np.testing.assert_allclose(a["tvar"], b["tvar"], rtol=1e-8)


def test_the_caller_frame_and_design_are_not_modified():
    m = DESIGNS["drug x condition"]
    before = pd.DataFrame(m.design.A).copy()
    e = m._exact(integrate=False)
    e._mm.evaluate(_nodes(3, 1.0), True)
    pd.testing.assert_frame_equal(pd.DataFrame(m.design.A), before)
