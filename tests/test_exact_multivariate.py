"""Multivariate normal model: multi-arm trials and time points (ketabayes.inference.exact_multivariate).

Expected values come from independent sources:

* metafor 3.8.1 ``rma.mv`` (REML, ML and fixed tau^2) with the same known covariance and
  ``struct="CS"``, ``rho`` fixed: ``tests/data/metafor_multiarm.json``, written by
  ``scripts/reference/metafor_multiarm.R`` from REAL data of the metadat package
  (dat.senn2013, dat.franchini2012: multi-arm trials with a shared placebo arm;
  dat.ishak2007: four time windows, within-study correlation across time ASSUMED 0.5);
* :class:`~ketabayes.inference.exact.ExactNormalNormal` when no trial has several estimates;
* brute-force quadrature written here: a 2-D Simpson grid over (mu, log tau) with
  ``scipy.stats.multivariate_normal`` likelihoods, and (normal prior) the marginal
  ``y ~ N(X m0, V + s0^2 X X')`` integrated over log tau with Gaussian conditioning for beta.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import ketabayes as kb
from ketabayes.errors import DataError, KetabayesError
from ketabayes.inference.exact import ExactNormalNormal
from ketabayes.inference.exact_multivariate import ExactMultivariateNormal, rma_mv_cs
from ketabayes.model.priors import Flat, HalfNormal, Normal

REF = json.loads((Path(__file__).parent / "data" / "metafor_multiarm.json").read_text())


def real(key):
    """Estimates, covariance, trials, coefficient index and rho of a reference data set."""
    d = REF[key]
    rows = d["contrasts"] if "contrasts" in d else d["long"]
    y = np.array([r["yi"] for r in rows])
    trials = [r["study"] for r in rows]
    coef = np.array([r["time"] - 1 for r in rows]) if key == "ishak2007" else np.zeros(len(rows), int)
    rho = d["rho_between"] if key == "ishak2007" else 0.5
    return y, np.array(d["V"], dtype=float), trials, coef, rho


def senn_contrasts():
    arms = pd.DataFrame(REF["senn2013"]["arms"])
    return arms, kb.multiarm_contrasts(arms, "MD", control="placebo", arm="treatment")


# ---------------------------------------------------------------------------- data and covariance
def test_contrasts_and_covariance_equal_metafor_inputs():
    _, c = senn_contrasts()
    ref = pd.DataFrame(REF["senn2013"]["contrasts"])
    np.testing.assert_allclose(c.table["yi"], ref["yi"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(c.covariance_matrix(), np.array(REF["senn2013"]["V"]), rtol=1e-13, atol=1e-15)
    assert (c.table.groupby("study").size() > 1).sum() == 1  # Willms (1999): three arms


# ---------------------------------------------------------------------------- frequentist: metafor rma.mv
@pytest.mark.parametrize("key", ["senn2013", "franchini2012", "ishak2007"])
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_rma_mv_matches_metafor(key, method):
    y, V, trials, coef, rho = real(key)
    f = rma_mv_cs(y, V, trials, coef, rho=rho, method=method)
    ref = REF[key]["fits"][method]
    # both optimisers stop within ~1e-6 of tau^2 on a flat top: the log-likelihoods agree to 1e-9
    np.testing.assert_allclose(f.beta, np.atleast_1d(ref["beta"]), rtol=1e-6)
    np.testing.assert_allclose(f.se, np.atleast_1d(ref["se"]), rtol=1e-6)
    assert f.tau2 == pytest.approx(ref["tau2"], rel=5e-6)
    # ... and ours is at least as high up: the (restricted) log-likelihood at metafor's tau^2 is not larger
    at_ref = rma_mv_cs(y, V, trials, coef, rho=rho, method=method, tau2=ref["tau2"])
    assert f.loglik >= at_ref.loglik - 1e-12
    assert f.loglik == pytest.approx(ref["logLik"], abs=1e-9)


@pytest.mark.parametrize("key", ["senn2013", "franchini2012", "ishak2007"])
def test_conditional_given_tau_matches_metafor_fixed_tau2(key):
    """With a flat prior, beta | tau, y is the GLS fit with tau^2 fixed: metafor's estimate and SE."""
    y, V, trials, coef, rho = real(key)
    e = ExactMultivariateNormal(y, V, trials, coef, Flat(), HalfNormal(5.0), rho=rho)
    for ref in REF[key]["fits"]["fixed_tau"]:
        m, c = e._conditional(np.array([ref["tau"]]))
        np.testing.assert_allclose(m[0], np.atleast_1d(ref["beta"]), rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(np.sqrt(np.diag(c[0])), np.atleast_1d(ref["se"]), rtol=1e-11)
        f = rma_mv_cs(y, V, trials, coef, rho=rho, method="ML", tau2=ref["tau"] ** 2)
        assert f.loglik == pytest.approx(ref["loglik_ml"], abs=1e-9)


# ---------------------------------------------------------------------------- (a) no multi-arm trials
@pytest.mark.parametrize("prior_mu", [Flat(), Normal(-1.0, 1.0)])
def test_without_multiarm_trials_equals_exact_normal_normal(prior_mu):
    _, c = senn_contrasts()
    keep = c.table.groupby("study")["yi"].transform("size") == 1
    tab = c.table[keep]
    y, v = tab["yi"].to_numpy(), tab["vi"].to_numpy()
    a = ExactNormalNormal(y, v, prior_mu, HalfNormal(0.5))
    b = ExactMultivariateNormal(y, np.diag(v), tab["study"].tolist(), np.zeros(y.size, int), prior_mu,
                                HalfNormal(0.5), rho=0.5)
    x = np.linspace(-2.0, 0.5, 11)
    for ma, mb in [(a.mu, b.mu), (a.theta_new, b.theta_new), (a.theta(0), b.theta(0)), (a.theta(5), b.theta(5))]:
        np.testing.assert_allclose(mb.cdf(x), ma.cdf(x), rtol=0, atol=1e-8)
        np.testing.assert_allclose(mb.ppf([0.025, 0.5, 0.975]), ma.ppf([0.025, 0.5, 0.975]), rtol=0, atol=1e-8)
    t = np.array([0.05, 0.1, 0.2, 0.4])
    np.testing.assert_allclose(b.tau_cdf(t), a.tau_cdf(t), rtol=0, atol=1e-8)
    assert b.tau_mean == pytest.approx(a.tau_mean, abs=1e-8)
    assert b.log_evidence == pytest.approx(a.log_evidence, abs=1e-8)
    # through the public API
    sub = c.table[keep].copy()
    res = kb.RandomEffectsModel.from_arrays(y, v, sub["study"], prior_mu=prior_mu, prior_tau=HalfNormal(0.5))
    r1 = res.fit(seed=1, draws=50, chains=1, mcid=0.3)
    cc = kb.data.multiarm.Contrasts(sub, {s: c.covariance[s] for s in sub["study"]})
    r2 = kb.RandomEffectsModel.from_contrasts(cc, prior_mu=prior_mu, prior_tau=HalfNormal(0.5)).fit(
        seed=1, draws=50, chains=1, mcid=0.3)
    cols = ["mean", "sd", "median", "ci_low", "ci_high", "p_benefit", "p_trivial", "p_harm"]
    np.testing.assert_allclose(r2.decision_table()[cols].to_numpy(float), r1.decision_table()[cols].to_numpy(float),
                               rtol=0, atol=1e-8)


# ---------------------------------------------------------------------------- (c) brute force over (mu, tau)
def test_multiarm_exact_equals_brute_force_2d():
    """senn2013 with the three-arm Willms (1999) trial: flat prior on mu, half-normal(0.5) on tau."""
    y, V, trials, coef, rho = real("senn2013")
    prior_tau = HalfNormal(0.5)
    e = ExactMultivariateNormal(y, V, trials, coef, Flat(), prior_tau, rho=rho)
    K = np.zeros_like(V)
    tr = np.array(trials)
    same = tr[:, None] == tr[None, :]
    K[same] = rho
    np.fill_diagonal(K, 1.0)
    u = np.linspace(math.log(1e-4), math.log(3.0), 1201)
    tau = np.exp(u)
    mu = np.linspace(-2.0, 0.0, 1601)
    logp = np.empty((u.size, mu.size))
    for i, t in enumerate(tau):
        dist = stats.multivariate_normal(mean=np.zeros(y.size), cov=V + t * t * K)
        logp[i] = dist.logpdf(y[None, :] - mu[:, None]) + prior_tau.logpdf(t) + u[i]
    w = np.exp(logp - logp.max())
    z = integrate.simpson(integrate.simpson(w, x=mu, axis=1), x=u)
    dens_mu = integrate.simpson(w, x=u, axis=0) / z
    dens_u = integrate.simpson(w, x=mu, axis=1) / z
    for x in (-1.2, -1.05, -1.0, -0.9):  # points of the mu grid
        assert float(e.mu.cdf(x)) == pytest.approx(float(_cdf_on_grid(mu, dens_mu, x)), abs=1e-8)
    mean_bf = integrate.simpson(dens_mu * mu, x=mu)
    sd_bf = math.sqrt(integrate.simpson(dens_mu * (mu - mean_bf) ** 2, x=mu))
    assert e.mu.mean == pytest.approx(mean_bf, abs=1e-8)
    assert e.mu.sd == pytest.approx(sd_bf, abs=1e-8)
    assert e.tau_mean == pytest.approx(integrate.simpson(dens_u * tau, x=u), abs=1e-8)
    for k in (900, 1000, 1100):  # points of the log-tau grid (tau ~ 0.14, 0.43, 1.1)
        assert float(e.tau_cdf(tau[k:k + 1])[0]) == pytest.approx(float(_cdf_on_grid(u, dens_u, u[k])), abs=1e-8)
    # predictive: P(theta_new <= x) = E[Phi((x - mu) / tau)], smooth on the grid
    for x in (-1.5, -1.0, -0.5):
        p = integrate.simpson(integrate.simpson(w * special.ndtr((x - mu[None, :]) / tau[:, None]), x=mu, axis=1),
                              x=u) / z
        assert float(e.theta_new.cdf(x)) == pytest.approx(p, abs=1e-8)
    # the three-arm trial's contrasts: P(theta_ij <= x) with theta | y, mu, tau by Gaussian conditioning here
    idx = [i for i, s in enumerate(trials) if s == "Willms (1999)"]
    for j in idx:
        x = -0.8
        p = np.empty_like(w)
        for i, t in enumerate(tau):
            cov_y = V + t * t * K
            cross = t * t * K[j]  # Cov(theta_j, y)
            g = np.linalg.solve(cov_y, cross)
            m = mu + (y[None, :] - mu[:, None]) @ g
            s = math.sqrt(max(t * t - cross @ g, 0.0))
            p[i] = special.ndtr((x - m) / s)
        p_bf = integrate.simpson(integrate.simpson(w * p, x=mu, axis=1), x=u) / z
        assert float(e.theta(j).cdf(x)) == pytest.approx(p_bf, abs=1e-8)


def _cdf_on_grid(u, dens, at):
    """CDF of a density tabulated on ``u`` at ``at`` (Simpson on the grid up to ``at``, interpolated)."""
    cum = integrate.cumulative_simpson(dens, x=u, initial=0.0)
    return np.interp(at, u, cum)


def test_time_points_exact_equals_brute_force_normal_prior():
    """ishak2007 (REAL, four windows), normal prior: y ~ N(X m0, V + s0^2 X X') integrated over log tau."""
    y, V, trials, coef, rho = real("ishak2007")
    m0, s0 = -20.0, 15.0
    prior_tau = HalfNormal(10.0)
    e = ExactMultivariateNormal(y, V, trials, coef, Normal(m0, s0), prior_tau, rho=rho)
    X = np.eye(4)[coef]
    tr = np.array(trials)
    K = np.where(tr[:, None] == tr[None, :], rho, 0.0)
    np.fill_diagonal(K, 1.0)
    u = np.linspace(math.log(0.05), math.log(60.0), 801)
    tau = np.exp(u)
    lp = np.empty(u.size)
    mean = np.empty((u.size, 4))
    var = np.empty((u.size, 4))
    for i, t in enumerate(tau):
        cy = V + t * t * K + s0**2 * X @ X.T
        lp[i] = stats.multivariate_normal(X @ np.full(4, m0), cy).logpdf(y) + prior_tau.logpdf(t) + u[i]
        gain = np.linalg.solve(cy, s0**2 * X).T  # Cov(beta, y) Cov(y)^-1
        mean[i] = m0 + gain @ (y - X @ np.full(4, m0))
        var[i] = s0**2 - np.einsum("ij,ij->i", gain, s0**2 * X.T)
    w = np.exp(lp - lp.max())
    z = integrate.simpson(w, x=u)
    for j in range(4):
        for x in (-30.0, -27.0, -25.0):
            p = integrate.simpson(w * special.ndtr((x - mean[:, j]) / np.sqrt(var[:, j])), x=u) / z
            assert float(e.beta(j).cdf(x)) == pytest.approx(p, abs=1e-8)
        pn = integrate.simpson(w * special.ndtr((-26.0 - mean[:, j]) / np.sqrt(var[:, j] + tau**2)), x=u) / z
        assert float(e.predictive(j).cdf(-26.0)) == pytest.approx(pn, abs=1e-8)
    assert e.tau_mean == pytest.approx(integrate.simpson(w * tau, x=u) / z, rel=1e-8)


# ---------------------------------------------------------------------------- draws agree with the exact marginals
def test_draws_agree_with_exact_marginals():
    y, V, trials, coef, rho = real("senn2013")
    e = ExactMultivariateNormal(y, V, trials, coef, Flat(), HalfNormal(0.5), rho=rho)
    d = e.sample(40_000, np.random.default_rng(3))
    for draws, m in [(d["beta"][:, 0], e.mu), (d["theta_new"][:, 0], e.theta_new), (d["theta"][:, 17], e.theta(17)),
                     (d["tau"], e.tau)]:
        assert abs(draws.mean() - m.mean) < 5 * m.sd / math.sqrt(draws.size)
        assert abs(np.mean(draws <= m.ppf(0.3)) - 0.3) < 5 * math.sqrt(0.21 / draws.size)


# ---------------------------------------------------------------------------- the result contract and errors
def test_result_contract_roundtrip(tmp_path):
    arms, c = senn_contrasts()
    before = arms.copy()
    res = kb.RandomEffectsModel.from_contrasts(c, prior_tau="halfnormal(0.5)").fit(seed=2, draws=100, mcid=0.3)
    assert arms.equals(before)
    assert res.target_names[:2] == ["mean", "predictive"] and "Willms (1999)|acarbose" in res.target_names
    assert len(res.studies) == 19 and res.scale_names == ["tau"]
    tab = res.decision_table()
    assert list(tab["target"]) == ["mean", "predictive"] and tab["exact"].all()
    assert {"ci_low", "ci_high", "p_benefit", "p_trivial", "p_harm", "mcid"} <= set(tab.columns)
    fr = res.frequentist_table().set_index("method")
    assert fr.loc["REML", "estimate"] == pytest.approx(REF["senn2013"]["fits"]["REML"]["beta"], rel=1e-7)
    out = json.loads(json.dumps(res.to_dict()))
    assert out["model"] == "multivariate" and out["settings"]["rho"] == 0.5
    path = res.to_netcdf(tmp_path / "m.nc")
    back = kb.load_result(path)
    assert type(back).__name__ == "MultivariateResult"
    pd.testing.assert_frame_equal(back.summary(), res.summary())
    assert "<b>" in res._repr_html_() and "consistency model" in repr(res)


def test_time_result_targets_and_roundtrip(tmp_path):
    d = REF["ishak2007"]
    names = {1: "immediate", 2: "short", 3: "medium", 4: "long"}
    data = pd.DataFrame(d["long"]).assign(time=lambda x: x["time"].map(names))
    m = kb.MultivariateModel.from_time_points(data, rho_time=0.5, rho_between=0.7, prior_tau="halfnormal(10)")
    res = m.fit(seed=1, draws=50, chains=1, mcid=20.0)
    tab = res.decision_table()
    assert list(tab["target"]) == [f"{k}|time={t}" for k in ("mean", "predictive") for t in names.values()]
    assert list(tab["time"]) == list(names.values()) * 2
    assert "rho_time = 0.5 (ASSUMED" in res.settings["assumptions"]["note"]
    back = kb.load_result(res.to_netcdf(tmp_path / "t.nc"))
    pd.testing.assert_frame_equal(back.decision_table(), tab)
    sens = m.sensitivity(rho_time=[0.0, 0.9], mcid=20.0)
    assert len(sens) == 16 and set(sens["rho_time"]) == {0.0, 0.9}


def test_errors_name_study_and_column():
    d = pd.DataFrame({"study": ["A", "A", "B"], "time": ["short", "long", "short"], "yi": [1.0, 2.0, 1.0],
                      "vi": [0.1, 0.1, -0.2]})
    with pytest.raises(KetabayesError, match="rho_time is required"):
        kb.MultivariateModel.from_time_points(d, rho_time=None)
    with pytest.raises(DataError, match="B") as ei:
        kb.MultivariateModel.from_time_points(d, rho_time=0.5)
    assert ei.value.study == "B"
    with pytest.raises(DataError, match="no estimates"):
        kb.MultivariateModel.from_time_points(d.assign(vi=0.1), rho_time=0.5, times=["short", "medium", "long"])
    S = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(DataError, match="positive definite") as ei:
        ExactMultivariateNormal([0.0, 1.0], S, ["T", "T"], [0, 0], Flat(), HalfNormal(1.0), rho=0.5, labels=["T", "T"])
    assert ei.value.study == "T"
    with pytest.raises(DataError, match="different trials"):
        ExactMultivariateNormal([0.0, 1.0], np.array([[1.0, 0.1], [0.1, 1.0]]), ["T", "U"], [0, 0], Flat(),
                                HalfNormal(1.0), rho=0.5)
    with pytest.raises(KetabayesError, match="in \\[0, 1\\)"):
        kb.MultivariateModel.from_time_points(d.assign(vi=0.1), rho_time=1.0)
    _, c = senn_contrasts()
    with pytest.raises(KetabayesError, match="exactly only"):
        kb.RandomEffectsModel.from_contrasts(c, prior_tau="halfnormal(0.5)").fit(method="nuts")


def test_priors_checked_at_build_time_and_rho_sensitivity():
    _, c = senn_contrasts()
    with pytest.raises(KetabayesError, match="normal or flat"):
        kb.MultivariateModel.from_contrasts(c, prior_mu="cauchy(0, 1)", prior_tau="halfnormal(0.5)")
    with pytest.raises(KetabayesError, match="tau > 0"):
        kb.MultivariateModel.from_contrasts(c, prior_tau="normal(0, 1)")
    m = kb.MultivariateModel.from_contrasts(c, prior_tau="halfnormal(0.5)")
    sens = m.sensitivity(rho=[0.0, 0.5], mcid=0.3)
    own = m.fit(mcid=0.3, seed=0, draws=10, chains=1, frequentist=False).decision_table()
    half = sens[sens["rho"] == 0.5].reset_index(drop=True)
    np.testing.assert_allclose(half["p_benefit"], own["p_benefit"], rtol=0, atol=1e-15)
    # rho changes only the three-arm trial's random-effects covariance: a small, non-zero change
    diff = abs(sens[sens["rho"] == 0.0]["mean"].iloc[0] - half["mean"].iloc[0])
    assert 0 < diff < 0.05
