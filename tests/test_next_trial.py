"""next_trial: assurance, expected posterior probabilities and EVSI of a new trial.

Independent checks: closed forms of the conjugate (fixed-effect) case; the exact
re-weighting against a full refit of the exact engine with the new trial appended; a
simulation that draws new trials from the posterior predictive, refits, and counts; the
martingale identity E[updated P] = current P; the simulation path against the exact one.
All data here are SIMULATED toy numbers (no trial data are invented as real).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import ketabayes as kb
from ketabayes.errors import KetabayesError
from ketabayes.inference.exact import ExactNormalNormal
from ketabayes.model.priors import HalfNormal, Normal
from ketabayes.result.next_trial import _ExactUpdate, new_trial_variance

# SIMULATED toy data: MD on a 0-100 pain scale
Y = np.array([-20.0, -10.0, -14.0, -25.0, 2.0])
V = np.array([64.0, 49.0, 81.0, 100.0, 90.0])
PRIOR_MU = Normal(0.0, 50.0)
PRIOR_TAU = HalfNormal(10.0)
MCID = 10.0
SD = 20.0


@pytest.fixture(scope="module")
def re_result():
    return kb.RandomEffectsModel.from_arrays(Y, V, measure="MD", prior_mu="normal(0, 50)",
                                             prior_tau="halfnormal(10)").fit(mcid=MCID, seed=3, frequentist=False)


@pytest.fixture(scope="module")
def fe_result():
    return kb.RandomEffectsModel.from_arrays(Y[:3], V[:3], measure="MD", fixed=True,
                                             prior_mu="normal(0, 50)").fit(mcid=MCID, seed=3, frequentist=False)


def _conjugate(y, v, m0=0.0, s0=50.0):
    prec = 1 / s0**2 + np.sum(1 / v)
    return (m0 / s0**2 + np.sum(y / v)) / prec, 1 / prec


def test_new_trial_variance():
    v, _ = new_trial_variance([50, 200], "MD", sd=20)
    assert v.tolist() == [16.0, 4.0]
    # log OR, 100 per arm, p0 = 0.2, OR 1 : 2 / (100 * 0.16)
    v, _ = new_trial_variance([100], "OR", baseline_risk=0.2)
    assert v[0] == pytest.approx(2 / 16.0, rel=1e-12)
    with pytest.raises(KetabayesError, match="SD"):
        new_trial_variance([50], "MD")
    with pytest.raises(KetabayesError, match="above 1"):
        new_trial_variance([0], "MD", sd=1)


def test_fixed_effect_closed_forms(fe_result):
    """Conjugate case: assurance = Phi((y* - m) / sqrt(V + s2)), EVSI = a Phi(a/s) + s phi(a/s) - max(0, a)."""
    m, Vp = _conjugate(Y[:3], V[:3])
    ns = [10, 30, 100, 400]
    nt = kb.next_trial(fe_result, ns, sd=SD, threshold=0.8)
    z = stats.norm.ppf(0.8)
    for n, row in zip(ns, nt.table.itertuples()):
        s2 = 2 * SD**2 / n
        v_new = 1 / (1 / Vp + 1 / s2)
        # updated P(mu < -MCID) >= 0.8  <=>  m' <= -MCID - z sqrt(v_new)  <=>  y <= y_star
        y_star = ((-MCID - z * math.sqrt(v_new)) / v_new - m / Vp) * s2
        assur = stats.norm.cdf((y_star - m) / math.sqrt(Vp + s2))
        assert row.assurance_benefit == pytest.approx(assur, abs=1e-9)
        # harm region: updated P(mu > +MCID) >= 0.8
        y_h = ((MCID + z * math.sqrt(v_new)) / v_new - m / Vp) * s2
        assert row.assurance_harm == pytest.approx(stats.norm.sf((y_h - m) / math.sqrt(Vp + s2)), abs=1e-9)
        a = -m - MCID
        s = math.sqrt(Vp**2 / (Vp + s2))  # sd of the preposterior mean
        evsi = a * stats.norm.cdf(a / s) + s * stats.norm.pdf(a / s) - max(a, 0.0)
        assert row.evsi == pytest.approx(evsi, abs=1e-7)
    inf = nt.table.iloc[-1]
    assert inf["assurance_benefit"] == pytest.approx(stats.norm.cdf((-MCID - m) / math.sqrt(Vp)), abs=1e-12)
    a, s = -m - MCID, math.sqrt(Vp)
    assert inf["evsi"] == pytest.approx(a * stats.norm.cdf(a / s) + s * stats.norm.pdf(a / s) - max(a, 0), abs=1e-9)


def test_updated_posterior_equals_refit(re_result):
    """Re-weighting the tau nodes by the new estimate = fitting the exact engine with k + 1 trials."""
    e = re_result.exact
    upd = _ExactUpdate(e.weights, e.cond_mean, e.cond_var, e.tau_nodes**2, re_result.thresholds)
    s2 = 2 * SD**2 / 60
    ys = np.array([-40.0, -18.0, -5.0, 12.0])
    probs = upd.probs(ys, s2)
    for i, y in enumerate(ys):
        ref = ExactNormalNormal(np.append(Y, y), np.append(V, s2), PRIOR_MU, PRIOR_TAU)
        assert probs["benefit"][i] == pytest.approx(float(ref.mu.cdf(-MCID)), abs=2e-7)
        assert probs["harm"][i] == pytest.approx(float(1 - ref.mu.cdf(MCID)), abs=2e-7)
        assert probs["mean"][i] == pytest.approx(ref.mu.mean, abs=1e-5)


def test_martingale_and_shape(re_result):
    nt = kb.next_trial(re_result, [20, 100, 1000], sd=SD)
    cur = re_result.decision_table().set_index("target").loc["mean"]
    for r in ("benefit", "trivial", "harm"):
        assert np.allclose(nt.table[f"expected_p_{r}"], cur[f"p_{r}"], atol=1e-7)
    t = nt.table
    assert list(t["n_per_arm"])[-1] == math.inf
    assert np.all(np.diff(t["assurance_benefit"]) > 0)  # more patients, more assurance (here)
    assert np.all(np.diff(t["evsi"]) > 0) and np.all(t["evsi"] >= 0)
    assert np.all(t["p_settled"] <= 1 + 1e-12)
    # heterogeneity: the infinite trial cannot settle P(benefit) >= 0.8 with assurance 0.8 here
    assert nt.settling_n is None and "heterogeneity" in nt.statement
    assert nt.to_dict()["table"][-1]["n_per_arm"] is None or nt.to_dict()["table"][-1]["n_per_arm"] > 1e300


def test_assurance_by_simulation_and_refit(re_result):
    """Draw (mu, tau) from the posterior, a new trial from them, refit with k + 1 trials, count."""
    n = 100
    s2 = 2 * SD**2 / n
    nt = kb.next_trial(re_result, [n], sd=SD)
    rng = np.random.default_rng(2024)
    draws = re_result.exact.sample(600, rng)
    y_new = draws["mu"] + np.sqrt(draws["tau"] ** 2 + s2) * rng.standard_normal(600)
    hits = [float(ExactNormalNormal(np.append(Y, y), np.append(V, s2), PRIOR_MU, PRIOR_TAU).mu.cdf(-MCID)) >= 0.8
            for y in y_new]
    est = np.mean(hits)
    se = math.sqrt(est * (1 - est) / len(hits))
    assert abs(est - nt.table["assurance_benefit"].iloc[0]) < 4 * se


def test_simulation_path_matches_exact(re_result):
    """A result without an exact engine (as from NUTS) uses simulation; it agrees within its MC error."""
    from ketabayes.result.result import MetaResult

    draws_only = MetaResult(re_result.tree, dict(re_result.settings), exact=None)
    ex = kb.next_trial(re_result, [50], sd=SD)
    sim = kb.next_trial(draws_only, [50], sd=SD, n_sim=3000, seed=5)
    r_ex, r_sim = ex.table.iloc[0], sim.table.iloc[0]
    assert not r_sim["exact"] and r_sim["mc_se"] > 0
    # MC error of the assurance plus that of the 4000 posterior draws behind the inner update
    assert abs(r_sim["assurance_benefit"] - r_ex["assurance_benefit"]) < 4 * r_sim["mc_se"] + 0.02


def test_bad_input(re_result):
    with pytest.raises(KetabayesError, match="which"):
        kb.next_trial(re_result, [50], sd=SD, which="both")
    with pytest.raises(KetabayesError, match="threshold"):
        kb.next_trial(re_result, [50], sd=SD, threshold=0.4)
    with pytest.raises(KetabayesError, match="SD"):
        kb.next_trial(re_result, [50])


def test_published_estimate_with_assumed_heterogeneity(fe_result):
    """A fixed-effect result with an assumed tau: a point tau gives the closed form with s2 -> s2 + tau^2;
    a half-normal prior for tau is checked by simulating trials and updating on a natural-scale tau grid."""
    m, Vp = _conjugate(Y[:3], V[:3])
    z = stats.norm.ppf(0.8)

    def closed(n, tau):
        r = 2 * SD**2 / n + tau**2
        v_new = 1 / (1 / Vp + 1 / r)
        y_star = ((-MCID - z * math.sqrt(v_new)) / v_new - m / Vp) * r
        return stats.norm.cdf((y_star - m) / math.sqrt(Vp + r))

    nt = kb.next_trial(fe_result, [50], sd=SD, tau=4.0)
    assert nt.table["assurance_benefit"].iloc[0] == pytest.approx(closed(50, 4.0), abs=1e-9)
    assert "assumed" in nt.assumptions["heterogeneity"]
    nt = kb.next_trial(fe_result, [50], sd=SD, tau="halfnormal(5)")
    cur = float(fe_result.marginal("mean").cdf(-MCID))
    assert nt.table["expected_p_benefit"].iloc[0] == pytest.approx(cur, abs=1e-7)
    # simulation: tau from its prior, a new trial, the updated P(benefit) by Gauss-Legendre on the natural
    # tau scale (the code integrates in log tau), vectorised over the simulated trials
    rng = np.random.default_rng(99)
    s2 = 2 * SD**2 / 50
    n_sim = 4000
    tau_d = np.abs(rng.normal(0, 5, n_sim))
    y_new = rng.normal(m, np.sqrt(Vp + tau_d**2 + s2))
    x, w = np.polynomial.legendre.leggauss(400)
    t = 30.0 * (x + 1.0)
    wt = 30.0 * w * np.sqrt(2 / np.pi) / 5 * np.exp(-0.5 * (t / 5) ** 2)
    r = t**2 + s2
    v_new = 1 / (1 / Vp + 1 / r)
    lik = wt * np.exp(-0.5 * (y_new[:, None] - m) ** 2 / (Vp + r)) / np.sqrt(Vp + r)
    p_upd = stats.norm.cdf((-MCID - v_new * (m / Vp + y_new[:, None] / r)) / np.sqrt(v_new))
    updated = (lik * p_upd).sum(1) / lik.sum(1)
    est = np.mean(updated >= 0.8)
    se = math.sqrt(est * (1 - est) / n_sim)
    assert abs(est - nt.table["assurance_benefit"].iloc[0]) < 4 * se
    none = kb.next_trial(fe_result, [50], sd=SD)
    assert "no heterogeneity" in none.assumptions["heterogeneity"]
    with pytest.raises(KetabayesError, match="fixed-effect"):
        kb.next_trial(kb.RandomEffectsModel.from_arrays(Y, V, measure="MD", prior_tau="halfnormal(10)").fit(
            mcid=MCID, frequentist=False), [50], sd=SD, tau=3.0)
