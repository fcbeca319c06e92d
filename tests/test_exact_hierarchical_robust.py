"""The exact hierarchical engine over a matrix of extreme cases, against an independent brute force.

References (``tests/_brute_force.py``), each a different algorithm from the engine's (mixed-model equations
in non-centred coefficients, checked tensor Gauss-Legendre rules in ``asinh(phi / a)``):

* one grouping (tau and one group SD): :class:`BruteForceGrouped` -- each group reduced to its
  precision-weighted mean, a normal-normal model across groups, Simpson's rule on a dense product grid in
  ``log(phi)`` placed by a brute-force scan;
* two groupings (three components): :class:`BruteForceHierarchical` -- the k x k marginal covariance of
  ``y``, GLS and BLUP, Simpson on a product grid (slow tier);
* no grouping (tau only): :class:`BruteForce`, the normal-normal reference.

Data are SIMULATED (numpy, fixed seeds). Tolerances are the accuracy documented in
:mod:`ketabayes.inference.exact_hierarchical`. Measured worst errors on this matrix (``python
tests/test_exact_hierarchical_robust.py`` prints them; before = the engine at commit 6d91be8: window
``[0, 1000 x data scale]``, no standardisation, no checks): largest CDF error of the mean, predictive, group
and group-predictive targets (``p``), and of the CDFs of tau and the group SD (``phi``):

=====================================  ==================  ==================
case                                   before p / phi      after p / phi
=====================================  ==================  ==================
data scaled by 1e-100                  8.8e-06 / 2.3e-07   1.3e-13 / 2.4e-12
data scaled by 1e-150                  3.5e-01 / 2.3e-07   1.3e-13 / 2.4e-12
nearly flat sd prior halfcauchy(1e4)   4.4e-02 / 5.9e-02   9.2e-12 / 1.6e-07
nearly flat sd prior uniform(0, 1e3)   4.2e-02 / 5.0e-04   1.0e-10 / 1.2e-10
30 groups of 2 trials                  5.5e-09 / 1.6e-11   1.2e-13 / 4.1e-14
base, 1e100, 1e150, offset 1e6,        <= 1.2e-10 /        <= 1.6e-13 /
outlier, narrow sd priors, one-trial   <= 6.5e-10          <= 5.9e-10
group
=====================================  ==================  ==================

(the phi errors of about 1e-7 are the reference's own: it converges towards the engine as its grid is
refined.)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _brute_force import BruteForce, BruteForceGrouped, BruteForceHierarchical

from ketabayes.errors import DataError, ExactIntegrationError, KetabayesError, PriorError
from ketabayes.inference.exact_hierarchical import ExactHierarchical
from ketabayes.model import priors as P
from ketabayes.model.hierarchical import HierarchicalModel

PTOL = 1e-8  # probabilities (CDF values) of the targets, one or two components; also at the engine's quantiles
QTOL = 1e-6  # means, in posterior sds
SDTOL = 1e-6  # sds of the mean and group targets, relative
PHI_TOL = 1e-6  # CDF of the variance components (the reference's own error under a heavy tail is ~2e-7)
PTOL3 = 1e-6  # three components


def simulated(k=12, groups=3, seed=1, solo=False):
    """SIMULATED trials: k log-OR-like estimates in ``groups`` drugs (round robin), one drug with one trial if
    ``solo``; drug effects N(0, 0.3^2), tau 0.2, variances 0.01-0.3."""
    rng = np.random.default_rng(seed)
    drug = [f"d{i % groups}" for i in range(k)]
    if solo:
        drug[-1] = "solo"
    levels = list(dict.fromkeys(drug))
    alpha = dict(zip(levels, rng.normal(0.0, 0.3, len(levels))))
    v = np.exp(rng.uniform(np.log(0.01), np.log(0.3), k))
    y = np.array([rng.normal(-0.2 + alpha[g] + rng.normal(0.0, 0.2), math.sqrt(vi)) for g, vi in zip(drug, v)])
    return pd.DataFrame({"study": [f"SIM-{i}" for i in range(k)], "drug": drug, "yi": y, "vi": v})


def _cases():
    d = simulated()
    hn = P.HalfNormal(0.5)
    out = {"base": (d, P.Normal(0, 4), hn, hn)}
    for e in (100, -100, 150, -150):
        s = 10.0**e
        out[f"scale 1e{e}"] = (d.assign(yi=d.yi * s, vi=d.vi * s * s), P.Normal(0, 4 * s), P.HalfNormal(0.5 * s),
                               P.HalfNormal(0.5 * s))
    out["offset 1e6"] = (d.assign(yi=d.yi + 1e6), P.Normal(1e6, 4), hn, hn)
    outlier = d.copy()
    outlier.loc[0, ["yi", "vi"]] = [50.0, 1.0]
    out["outlier y = 50"] = (outlier, P.Flat(), hn, hn)
    out["narrow sd halfnormal(1e-3)"] = (d, P.Normal(0, 4), hn, P.HalfNormal(1e-3))
    out["narrow sd lognormaltau2(-3, 0.05)"] = (d, P.Normal(0, 4), hn, P.LogNormalTau2(-3.0, 0.05))
    out["nearly flat sd halfcauchy(1e4)"] = (d, P.Normal(0, 4), hn, P.HalfCauchy(1e4))
    out["nearly flat sd uniform(0, 1e3)"] = (d, P.Flat(), hn, P.Uniform(0, 1e3))
    out["a group with one trial"] = (simulated(solo=True), P.Normal(0, 4), hn, hn)
    out["30 groups of 2"] = (simulated(60, 30, seed=3), P.Normal(0, 4), hn, hn)
    return out


CASES = _cases()
FAST = ["base", "scale 1e-100", "nearly flat sd halfcauchy(1e4)"]


def compare(d, prior_mu, prior_tau, prior_sd):
    """Worst errors of the engine against BruteForceGrouped.

    ``p``: CDF at the reference's mean + (-3.09, -1.96, 0, 1.96, 3.09) sd; ``q``: the reference probability
    below the engine's 0.1%, 2.5%, 50%, 97.5%, 99.9% quantiles, minus the level; ``mean``: in posterior sds;
    ``sd``: relative (mean and group targets); ``phi``: CDF of tau and the group SD at three points.
    """
    m = HierarchicalModel(d, by="drug", prior_mu=prior_mu, prior_tau=prior_tau, prior_sd={"drug": prior_sd})
    e = m._exact()
    names = [t.name for t in m.design.targets]
    g = d.drug.iloc[-1]
    targets = {"mean": "mean", "predictive": "predictive", f"drug={g}": f"group:{g}",
               f"predictive|drug={g}": f"predictive:{g}"}
    ref = BruteForceGrouped(m.yi, m.vi, list(d.drug), prior_mu, prior_tau, prior_sd, list(targets.values()),
                            n_fine=801)
    worst = dict.fromkeys(["p", "q", "mean", "sd", "phi"], 0.0)
    levels = np.array([0.001, 0.025, 0.5, 0.975, 0.999])
    for r, name in enumerate(targets):
        mg = e.marginal(names.index(name))
        mean, sd = ref.mean(r), ref.sd(r)
        worst["mean"] = max(worst["mean"], abs(mg.mean - mean) / sd)
        if not name.startswith("predictive"):  # (see test_predictive_sd_of_a_heavy_tail)
            worst["sd"] = max(worst["sd"], abs(mg.sd / sd - 1.0))
        x = mean + sd * np.array([-3.09, -1.96, 0.0, 1.96, 3.09])
        worst["p"] = max(worst["p"], float(np.max(np.abs(np.asarray(mg.cdf(x)) - ref.cdf_many(r, x)))))
        worst["q"] = max(worst["q"], float(np.max(np.abs(ref.cdf_many(r, mg.ppf(levels)) - levels))))
    for c in range(2):
        for u in np.quantile(ref.grids[c], [0.3, 0.5, 0.7]):
            x = ref.s * math.exp(u)
            worst["phi"] = max(worst["phi"], abs(float(e.component_cdf(c, x)) - ref.component_cdf(c, x)))
    return worst


def _check(name):
    w = compare(*CASES[name])
    assert w["p"] <= PTOL and w["q"] <= PTOL, w
    assert w["mean"] <= QTOL, w
    assert w["sd"] <= SDTOL, w
    assert w["phi"] <= PHI_TOL, w


@pytest.mark.parametrize("name", FAST)
def test_exact_hierarchical_matches_brute_force(name):
    _check(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in CASES if n not in FAST])
def test_exact_hierarchical_matches_brute_force_full_matrix(name):
    _check(name)


def test_one_component_at_an_extreme_scale_matches_the_normal_normal_brute_force():
    """No grouping (tau only), data scaled by 1e150: the engine's one-dimensional checked rule."""
    d = simulated(8, 1, seed=5)
    s = 1e150
    y, v = d.yi.to_numpy() * s, d.vi.to_numpy() * s * s
    m = HierarchicalModel(d.assign(yi=y, vi=v), by=[], prior_mu=P.Normal(0, 4 * s), prior_tau=P.HalfCauchy(0.5 * s))
    e = m._exact()
    ref = BruteForce(y, v, P.Normal(0, 4 * s), P.HalfCauchy(0.5 * s))
    mg = e.marginal([t.name for t in m.design.targets].index("mean"))
    for q in (0.025, 0.5, 0.975):
        x = ref.ppf_mu(q)
        assert abs(float(mg.cdf(x)) - ref.cdf_mu(x)) <= PTOL
    cum = np.cumsum(ref.dens) / ref.dens.sum()
    t = ref.s * math.exp(float(np.interp(0.5, cum, ref.u)))
    assert abs(float(e.component_cdf(0, t)) - ref.cdf_tau(t)) <= PHI_TOL


def test_predictive_sd_of_a_heavy_tail():
    """Under a nearly flat prior on a group SD with three groups, the predictive sd depends on the far tail
    of the group SD (E[sigma^2] is dominated by sigma ~ 1e4): the engine's range ends where the density has
    fallen by exp(-30), which leaves ~1e-4 of that moment out; its probabilities stay exact (above)."""
    d, pm, pt, ps = CASES["nearly flat sd halfcauchy(1e4)"]
    m = HierarchicalModel(d, by="drug", prior_mu=pm, prior_tau=pt, prior_sd={"drug": ps})
    e = m._exact()
    ref = BruteForceGrouped(m.yi, m.vi, list(d.drug), pm, pt, ps, ["predictive"], n_fine=401)
    assert e.marginal([t.name for t in m.design.targets].index("predictive")).sd == pytest.approx(ref.sd(0),
                                                                                                   rel=1e-3)


def three_components(prior_sd):
    """Drug x condition (tau and two group SDs), 16 SIMULATED trials."""
    rng = np.random.default_rng(11)
    drug = [f"d{i % 3}" for i in range(16)]
    cond = [f"c{(i // 3) % 2}" for i in range(16)]
    v = np.exp(rng.uniform(np.log(0.02), np.log(0.3), 16))
    y = rng.normal(-0.2, 0.4, 16)
    d = pd.DataFrame({"study": [f"SIM-{i}" for i in range(16)], "drug": drug, "condition": cond, "yi": y, "vi": v})
    return HierarchicalModel(d, by=["drug", "condition"], prior_mu=P.Normal(0, 4), prior_tau=P.HalfNormal(0.5),
                             prior_sd={"*": prior_sd})


@pytest.mark.slow
@pytest.mark.parametrize("prior_sd", [P.HalfNormal(0.5), P.HalfCauchy(0.2)])
def test_three_components_match_brute_force(prior_sd):
    """Drug x condition (tau and two group SDs), 16 SIMULATED trials, against the k x k marginal-covariance
    brute force (144^3 Gauss-Legendre nodes in log(phi), ~1-2 minutes per case; it agrees with an engine rule
    of 18x more nodes to 2e-8). The half-Cauchy case needs the refinement: the starting rule is 1e-5 off."""
    m = three_components(prior_sd)
    e = m._exact()
    des = m.design
    names = [t.name for t in des.targets]
    rows = [names.index(n) for n in ("mean", "predictive", "drug=d0|condition=c1")]
    ref = BruteForceHierarchical(m.yi, m.vi, des.X, [m.prior_mu], des.Z, des.term_of_col,
                                 [m.prior_tau, *(m.prior_sd[t.name] for t in des.terms)], des.A[rows],
                                 des.pred[rows], n_coarse=61, cutoff=28.0, gauss=(18, 8), window=(-40.0, 10.0),
                                 extend=False)  # above e^10 x the data's scale the likelihood is ~e^-20 of its peak
    for r, t in enumerate(rows):
        mg = e.marginal(t)
        for q in (0.025, 0.5, 0.975):
            x = ref.ppf(r, q)
            assert abs(float(mg.cdf(x)) - ref.cdf(r, x)) <= PTOL3


def _check_models():
    """The models of the matrix (one grouping), the two three-component designs above and the 67-trial
    benchmark design (three components, SIMULATED)."""
    from ketabayes.data.simulate import REVIEW_DRUGS, simulate_review

    out = {name: (lambda c=case: HierarchicalModel(c[0], by="drug", prior_mu=c[1], prior_tau=c[2],
                                                   prior_sd={"drug": c[3]})) for name, case in CASES.items()}
    out["three components, halfnormal(0.5)"] = lambda: three_components(P.HalfNormal(0.5))
    out["three components, halfcauchy(0.2)"] = lambda: three_components(P.HalfCauchy(0.2))
    out["benchmark drug x condition"] = lambda: HierarchicalModel(
        simulate_review(seed=3, drugs=dict(REVIEW_DRUGS, ketamine=37)), by=["drug", "condition"],
        prior_mu="normal(0, 50)", prior_tau="halfnormal(10)")
    return out


CHECK_MODELS = _check_models()
CHECK_FAST = ["base", "outlier y = 50", "nearly flat sd halfcauchy(1e4)", "three components, halfcauchy(0.2)",
              "benchmark drug x condition"]


def _check_decisions(name, monkeypatch):
    """Every check of the engine's run done twice on the same rule: with the other axes integrated by the
    subset rules (the default, reusing the full rule's values) and by their full rules (new evaluations of
    the second rule on the whole grid, as before); the run continues with the subset decision."""
    import ketabayes.inference._tensor_quadrature as tq

    seen = []
    check = tq._check

    def both(rule, C, tol, evaluate=None, st=None, mean_map=None):
        bad_full, err_full = check(rule, C, tol, evaluate, st, mean_map, others="full")
        bad_sub, err_sub = check(rule, C, tol, evaluate, st, mean_map, others="subset")
        seen.append((evaluate is not None, bad_full, bad_sub, err_full, err_sub))
        return bad_sub, err_sub

    monkeypatch.setattr(tq, "_check", both)
    CHECK_MODELS[name]()._exact()
    return seen


def _assert_same_decisions(seen):
    assert any(s[0] for s in seen)  # the second Gauss-Legendre rule was used
    for _, bad_full, bad_sub, err_full, err_sub in seen:
        for a, b in zip(bad_full, bad_sub):
            np.testing.assert_array_equal(a, b)
        assert err_sub >= 0.5 * err_full


@pytest.mark.parametrize("name", CHECK_FAST)
def test_subset_check_takes_the_full_checks_decisions(name, monkeypatch):
    """The cheap check (other axes by the interpolatory rule on half their nodes, reusing the full rule's
    values) refines exactly the panels the full check refines, round by round, and its worst estimate is
    not below half the full check's (see _tensor_quadrature._check)."""
    _assert_same_decisions(_check_decisions(name, monkeypatch))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in CHECK_MODELS if n not in CHECK_FAST])
def test_subset_check_takes_the_full_checks_decisions_full_matrix(name, monkeypatch):
    _assert_same_decisions(_check_decisions(name, monkeypatch))


def test_log_evidence_is_scale_equivariant():
    """log p(y) changes by -(k - flat coefficients) log(s) when data and priors are scaled by s (closed form)."""
    d, pm, pt, ps = CASES["base"]

    def evidence(s, flat):
        m = HierarchicalModel(d.assign(yi=d.yi * s, vi=d.vi * s * s), by="drug",
                              prior_mu=P.Flat() if flat else P.Normal(0, 4 * s), prior_tau=P.HalfNormal(0.5 * s),
                              prior_sd={"drug": P.HalfNormal(0.5 * s)})
        return m._exact().log_evidence

    k = len(d)
    for flat in (False, True):
        assert evidence(1e100, flat) == pytest.approx(evidence(1.0, flat) - (k - flat) * math.log(1e100), abs=1e-7)


def _engine(y, v, prior_mu=None, prior_tau=None, prior_sd=None):
    """ExactHierarchical for one grouping of the trials (two levels), targets: mu; flat / halfnormal(0.5) priors."""
    prior_mu = prior_mu or P.Flat()
    prior_tau, prior_sd = prior_tau or P.HalfNormal(0.5), prior_sd or P.HalfNormal(0.5)
    y = np.asarray(y, dtype=float)
    k = y.size
    Z = np.zeros((k, 2))
    Z[np.arange(k), np.arange(k) % 2] = 1.0
    return ExactHierarchical(y, v, np.ones((k, 1)), [prior_mu], Z, [0, 0], prior_tau, [prior_sd],
                             np.array([[1.0, 0.0, 0.0]]), np.zeros((1, 2), bool))


def test_extreme_prior_scales_raise_prior_error():
    y, v = np.array([0.1, 0.3, -0.2, 0.05]), np.array([0.04, 0.09, 0.05, 0.02])
    with pytest.raises(PriorError, match="variance component 1"):
        _engine(y * 1e-150, v * 1e-300, prior_sd=P.HalfNormal(1e180))
    with pytest.raises(PriorError, match="variance component 0"):
        _engine(y * 1e150, v * 1e300, prior_tau=P.HalfNormal(1e-190))
    with pytest.raises(PriorError, match="coefficient 0"):
        _engine(y * 1e150, v * 1e300, prior_mu=P.Normal(0, 1e-10))


def test_bad_data_raise_data_error():
    with pytest.raises(DataError, match="yi"):
        _engine([0.1, np.nan, 0.2], [0.1, 0.1, 0.1])
    with pytest.raises(DataError, match="vi"):
        _engine([0.1, 0.2, 0.3], [0.1, -1.0, 0.1])


class _LogUniform(P.Prior):
    """An improper prior p(sigma) ~ 1/sigma (written here: not offered by the library)."""

    support = "positive"

    def logpdf(self, x):
        with np.errstate(divide="ignore"):
            return -np.log(np.asarray(x, dtype=float))


def test_improper_posterior_of_a_group_sd_raises_clear_error():
    y, v = np.array([0.1, 0.3, -0.2, 0.05, 0.4, -0.1]), np.array([0.04, 0.09, 0.05, 0.02, 0.06, 0.03])
    with pytest.raises(ExactIntegrationError, match="nuts") as exc:
        _engine(y, v, prior_sd=_LogUniform())
    assert isinstance(exc.value, KetabayesError)


if __name__ == "__main__":  # the table of worst errors over the whole matrix
    for name, case in CASES.items():
        try:
            w = compare(*case)
            print(f"{name:38s} " + "  ".join(f"{k} {v:.1e}" for k, v in w.items()))
        except KetabayesError as err:
            print(f"{name:38s} {type(err).__name__}: {err}")
