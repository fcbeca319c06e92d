"""Bivariate benefit-harm meta-analysis: exact engine, result contract, joint and net-benefit answers.

Independent checks: scipy's bivariate normal CDF; the stacked-Gaussian likelihood and conditional
(scipy.stats.multivariate_normal) given the variance parameters; a brute-force integration on the
natural scale (Gauss-Legendre in tau1, tau2, rho, likelihood by sequential Kalman updates written
here); closed forms of the published (fixed-effect) case; Monte Carlo for the nonlinear net benefit.
Trial-level numbers below are SIMULATED toy data; the published pooled results are Ferraro 2025's.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import special, stats

import ketabayes as kb
from ketabayes.errors import DataError, KetabayesError
from ketabayes.inference.exact_bivariate import ExactBivariate, bvn_cdf
from ketabayes.model.priors import HalfNormal, Normal

# SIMULATED toy trials: pain MD (0-100) and log RR of adverse events; trials B and D report one outcome only
TOY = pd.DataFrame({"study": list("ABCDEF"), "yi1": [-20, -10, -14, np.nan, -25, 2],
                    "vi1": [64, 49, 81, np.nan, 100, 90], "yi2": [0.9, np.nan, 1.5, 0.4, 1.2, 0.1],
                    "vi2": [0.3, np.nan, 0.5, 0.2, 0.6, 0.4]})
RW = 0.2
PRI_MU = (Normal(0.0, 50.0), Normal(0.0, 3.0))
PRI_TAU = (HalfNormal(10.0), HalfNormal(0.5))
PAIN = (-15.79, -32.09, 0.51, "MD")
AE = (3.26, 1.05, 10.09, "RR")


@pytest.fixture(scope="module")
def toy_result():
    m = kb.BivariateModel(TOY, rho_within=RW, prior_mu=("normal(0, 50)", "normal(0, 3)"),
                          prior_tau=("halfnormal(10)", "halfnormal(0.5)"))
    return m.fit(mcid=10, harm_threshold=1.25, seed=1)


def test_bvn_cdf_against_scipy():
    rng = np.random.default_rng(7)
    for _ in range(20):
        h, k = rng.normal(scale=1.5, size=2)
        r = float(np.tanh(rng.normal()))
        ref = stats.multivariate_normal([0, 0], [[1, r], [r, 1]]).cdf([h, k])
        assert float(bvn_cdf(h, k, r)) == pytest.approx(ref, abs=1e-7)
    assert float(bvn_cdf(0.0, 0.0, 0.5)) == pytest.approx(0.25 + math.asin(0.5) / (2 * math.pi), abs=1e-14)


def _stacked(y, v, rw, t1, t2, rb):
    """Stacked vector of reported outcomes, its design and covariance given (t1, t2, rb)."""
    ys, rows, blocks = [], [], []
    for i in range(y.shape[0]):
        obs = np.flatnonzero(np.isfinite(y[i]))
        S = np.array([[v[i, 0], rw * math.sqrt(v[i, 0] * v[i, 1])], [rw * math.sqrt(v[i, 0] * v[i, 1]), v[i, 1]]]) \
            if obs.size == 2 else np.diag(np.nan_to_num(v[i]))
        Sig = np.array([[t1**2, rb * t1 * t2], [rb * t1 * t2, t2**2]])
        C = (S + Sig)[np.ix_(obs, obs)]
        ys.append(y[i, obs])
        rows.append(np.eye(2)[obs])
        blocks.append(C)
    from scipy.linalg import block_diag

    return np.concatenate(ys), np.vstack(rows), block_diag(*blocks)


def test_closed_forms_given_variance_parameters():
    y, v = TOY[["yi1", "yi2"]].to_numpy(float), TOY[["vi1", "vi2"]].to_numpy(float)
    e = ExactBivariate(y, v, RW, PRI_MU, PRI_TAU, fixed=True)  # uses the same closed forms at any node
    m0, D0 = np.zeros(2), np.diag([50.0**2, 3.0**2])
    for t1, t2, rb in [(5.0, 0.3, 0.4), (12.0, 0.8, -0.7), (0.5, 0.05, 0.95)]:
        ll, mean, cov = e._loglik(np.array([t1]), np.array([t2]), np.array([rb]))
        ys, A, C = _stacked(y, v, RW, t1, t2, rb)
        ref = stats.multivariate_normal(A @ m0, A @ D0 @ A.T + C).logpdf(ys)
        assert ll[0] == pytest.approx(ref, abs=1e-9)
        Ci = np.linalg.inv(C)
        P = np.linalg.inv(D0) + A.T @ Ci @ A
        ref_cov = np.linalg.inv(P)
        ref_mean = ref_cov @ (A.T @ Ci @ ys)
        assert np.allclose(mean[0], ref_mean, atol=1e-9) and np.allclose(cov[0], ref_cov, atol=1e-9)


def _brute_force(y, v, rw, t1=(0.0, 60.0), t2=(0.0, 3.0), r=(-1.0, 1.0), log_z=False, n=(64, 64, 48)):
    """Posterior on a natural-scale Gauss-Legendre grid, likelihood by sequential (Kalman) updates of mu.

    ``log_z=True``: only the log of the posterior mass (unnormalised) of the box ``t1 x t2 x r``.
    """
    def gl(a, b, n):
        x, w = special.roots_legendre(n)
        return 0.5 * (b - a) * x + 0.5 * (a + b), 0.5 * (b - a) * w

    x1, w1 = gl(*t1, n[0])
    x2, w2 = gl(*t2, n[1])
    xr, wr = gl(*r, n[2])
    T1, T2, R = (a.ravel() for a in np.meshgrid(x1, x2, xr, indexing="ij"))
    W = np.einsum("i,j,k->ijk", w1, w2, wr).ravel()
    n = T1.size
    m = np.zeros((n, 2))
    P = np.broadcast_to(np.diag([50.0**2, 3.0**2]), (n, 2, 2)).copy()
    ll = np.zeros(n)
    for i in range(y.shape[0]):
        obs = np.flatnonzero(np.isfinite(y[i]))
        Sig = np.stack([np.stack([T1**2, R * T1 * T2], -1), np.stack([R * T1 * T2, T2**2], -1)], -2)
        S = np.diag(np.nan_to_num(v[i]))
        if obs.size == 2:
            S[0, 1] = S[1, 0] = rw * math.sqrt(v[i, 0] * v[i, 1])
        H = np.eye(2)[obs]
        C = H @ (P + Sig + S) @ H.T
        r = y[i, obs] - m @ H.T
        Ci = np.linalg.inv(C)
        ll += -0.5 * (np.log(np.linalg.det(2 * np.pi * C)) + np.einsum("ni,nij,nj->n", r, Ci, r))
        K = P @ H.T @ Ci
        m = m + np.einsum("nij,nj->ni", K, r)
        P = P - K @ H @ P
    lw = ll + stats.halfnorm(scale=10).logpdf(T1) + stats.halfnorm(scale=0.5).logpdf(T2) + np.log(W)
    if log_z:
        return special.logsumexp(lw)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    return w, m, P, T1, T2, R


def test_integration_against_brute_force(toy_result):
    y, v = TOY[["yi1", "yi2"]].to_numpy(float), TOY[["vi1", "vi2"]].to_numpy(float)
    w, m, P, T1, T2, R = _brute_force(y, v, RW)
    e = toy_result.exact
    assert e.marginal("mean", 0).mean == pytest.approx(w @ m[:, 0], abs=1e-4)
    assert e.marginal("mean", 1).mean == pytest.approx(w @ m[:, 1], abs=1e-5)
    assert e.marginal("mean", 0).sd == pytest.approx(math.sqrt(w @ (P[:, 0, 0] + m[:, 0] ** 2) - (w @ m[:, 0]) ** 2),
                                                      abs=1e-4)
    assert toy_result.exact.param_stats("rho", [])[0] == pytest.approx(w @ R, abs=1e-4)
    assert toy_result.exact.param_stats("tau1", [])[0] == pytest.approx(w @ T1, abs=1e-4)
    s1, s2 = np.sqrt(P[:, 0, 0]), np.sqrt(P[:, 1, 1])
    ref = w @ bvn_cdf((-10 - m[:, 0]) / s1, (math.log(1.25) - m[:, 1]) / s2, P[:, 0, 1] / (s1 * s2))
    jt = toy_result.joint_table().set_index("target")
    assert jt.loc["mean", "p_benefit_acceptable_harm"] == pytest.approx(ref, abs=1e-6)
    Q = P + np.stack([np.stack([T1**2, R * T1 * T2], -1), np.stack([R * T1 * T2, T2**2], -1)], -2)
    q1, q2 = np.sqrt(Q[:, 0, 0]), np.sqrt(Q[:, 1, 1])
    ref = w @ bvn_cdf((-10 - m[:, 0]) / q1, (math.log(1.25) - m[:, 1]) / q2, Q[:, 0, 1] / (q1 * q2))
    assert jt.loc["predictive", "p_benefit_acceptable_harm"] == pytest.approx(ref, abs=1e-6)
    # quadrants add up, marginals agree with the per-outcome decision table
    cols = [c for c in jt.columns if c.startswith("p_") and c.count("_") >= 3]
    assert np.allclose(jt[cols].sum(axis=1), 1.0)
    dt = toy_result.decision_table().set_index("target")
    assert jt.loc["mean", "p_benefit"] == pytest.approx(dt.loc["mean|outcome=efficacy", "p_benefit"], abs=1e-12)


@pytest.mark.parametrize("grid, tol", [pytest.param("fine", 5e-7, marks=pytest.mark.slow), ("default", 3e-5)])
def test_scale_parameter_quantiles_are_exact(grid, tol, toy_result):
    """tau1, tau2 and rho_between: quantiles and HPD ends hold the stated mass under a brute-force
    integration of the posterior over the box below them (natural-scale Gauss-Legendre, Kalman likelihood).

    With a finer rule the engine's CDF between the nodes agrees to 1e-8 in the upper tail and to 2e-7
    in the lower one (the rule starts 16 units of log tau below the data scale: the ~2e-7 of mass on
    tau1 < 2e-6 is left out); the default rule's own error is ~1.5e-5 in the upper tail of tau1 here. (The former interpolation of the node CDF put the
    median of tau1 at 4.91 instead of 5.63: a CDF error of 0.06.)"""
    from ketabayes.inference.exact_bivariate import BivariateGrid

    y, v = TOY[["yi1", "yi2"]].to_numpy(float), TOY[["vi1", "vi2"]].to_numpy(float)
    res = toy_result if grid == "default" else kb.BivariateModel(
        TOY, rho_within=RW, prior_mu=("normal(0, 50)", "normal(0, 3)"),
        prior_tau=("halfnormal(10)", "halfnormal(0.5)")).fit(seed=1, settings=BivariateGrid(nodes_per_panel=10,
                                                                                               panel_width=1.0))
    n = (64, 64, 48) if grid == "fine" else (40, 40, 32)  # the coarser brute force: to ~1e-7 here
    full = _brute_force(y, v, RW, log_z=True, n=n)

    def below(box, x):
        lower = -1.0 if box == "r" else 0.0
        return (math.exp(_brute_force(y, v, RW, **{box: (lower, float(x))}, log_z=True, n=n) - full)
                if x > lower else 0.0)

    s = res.summary().set_index("target")
    assert s.loc[["tau|outcome=efficacy", "tau|outcome=harm", "rho_between"], "exact"].all()
    qs = ((0.025, "ci_low"), (0.5, "median"), (0.975, "ci_high")) if grid == "fine" else ((0.5, "median"),)
    for target, box in (("tau|outcome=efficacy", "t1"), ("tau|outcome=harm", "t2"), ("rho_between", "r")):
        for q, col in qs:
            assert below(box, s.loc[target, col]) == pytest.approx(q, abs=tol), (target, q)
        lo, hi = s.loc[target, "hpd_low"], s.loc[target, "hpd_high"]
        assert below(box, hi) - below(box, lo) == pytest.approx(0.95, abs=tol), target
        assert hi - lo <= s.loc[target, "ci_high"] - s.loc[target, "ci_low"] + 1e-12


@pytest.mark.parametrize("rho", [0.0, 0.5, -0.3])
def test_published_closed_form(rho):
    res = kb.BivariateModel.from_published(PAIN, AE, rho=rho).fit(mcid=10, harm_threshold=1.25, seed=1)
    se1 = (0.51 + 32.09) / (2 * stats.norm.ppf(0.975))
    se2 = (math.log(10.09) - math.log(1.05)) / (2 * stats.norm.ppf(0.975))
    cov = [[se1**2, rho * se1 * se2], [rho * se1 * se2, se2**2]]
    ref = stats.multivariate_normal([-15.79, math.log(3.26)], cov).cdf([-10.0, math.log(1.25)])
    jt = res.joint_table().set_index("target")
    assert jt.loc["mean", "p_benefit_acceptable_harm"] == pytest.approx(ref, abs=1e-7)
    assert any("assumed" in a for a in res.assumptions)
    # linear net benefit (gain - w * 100 * (RR - 1) is not linear; use the log-scale harm via an RD outcome instead)
    if rho == 0.0:
        assert jt.loc["mean", "p_benefit_acceptable_harm"] == pytest.approx(
            jt.loc["mean", "p_benefit"] * jt.loc["mean", "p_acceptable_harm"], abs=1e-12)


def test_net_benefit_closed_form_and_monte_carlo():
    # RD harm: net = -X1 - w * 100 * X2 is normal
    rd = (0.10, 0.02, 0.18, "RD")
    res = kb.BivariateModel.from_published(PAIN, rd, rho=0.3).fit(mcid=10, harm_threshold=0.05, seed=1)
    se1 = 32.6 / (2 * stats.norm.ppf(0.975))
    se2 = 0.16 / (2 * stats.norm.ppf(0.975))
    for w in (0.0, 0.1, 0.5):
        mean = 15.79 - w * 100 * 0.10
        var = se1**2 + (100 * w * se2) ** 2 + 2 * w * 100 * 0.3 * se1 * se2  # cov(-X1, -w100 X2) = +w100 cov
        nb = res.net_benefit([w]).iloc[0]
        assert nb["mean_net"] == pytest.approx(mean, abs=1e-9)
        assert nb["p_net_benefit"] == pytest.approx(stats.norm.cdf(mean / math.sqrt(var)), abs=1e-9)
    # RR harm at baseline risk 0.2: Monte Carlo
    res = kb.BivariateModel.from_published(PAIN, AE, rho=0.3).fit(mcid=10, harm_threshold=1.25, seed=1)
    rng = np.random.default_rng(11)
    se2 = (math.log(10.09) - math.log(1.05)) / (2 * stats.norm.ppf(0.975))
    x = rng.multivariate_normal([-15.79, math.log(3.26)], [[se1**2, 0.3 * se1 * se2], [0.3 * se1 * se2, se2**2]],
                                size=400_000)
    harm = 100 * (np.minimum(0.2 * np.exp(x[:, 1]), 1.0) - 0.2)
    for w, row in zip((0.25, 1.0), res.net_benefit([0.25, 1.0], baseline_risk=0.2).itertuples()):
        p = np.mean(-x[:, 0] - w * harm > 0)
        assert abs(row.p_net_benefit - p) < 4 * math.sqrt(p * (1 - p) / x.shape[0]) + 1e-4
        assert row.mean_harm_increase == pytest.approx(harm.mean(), rel=0.01)
    with pytest.raises(KetabayesError, match="baseline risk"):
        res.net_benefit([1.0])


def test_contract_roundtrip(toy_result, tmp_path):
    for name in ("summary", "decision_table", "benefit_curve", "marginal", "to_netcdf", "to_dict", "_repr_html_"):
        assert callable(getattr(toy_result, name))
    t = toy_result.decision_table()
    for col in ("target", "kind", "mean", "sd", "median", "ci_low", "ci_high", "p_benefit", "p_trivial", "p_harm",
                "p_any_benefit", "exact", "ci_prob", "scale", "benefit_direction", "mcid", "benefit_cut", "harm_cut",
                "outcome", "measure"):
        assert col in t.columns, col
    bc = toy_result.benefit_curve([0, 10], target="mean|outcome=efficacy")
    m = toy_result.marginal("mean|outcome=efficacy")
    assert list(bc["p_benefit"]) == pytest.approx([float(m.cdf(0.0)), float(m.cdf(-10.0))], abs=1e-12)
    with pytest.raises(KetabayesError, match="unknown target"):
        toy_result.marginal("mean")
    assert toy_result.target_names == ["mean|outcome=efficacy", "mean|outcome=harm", "predictive|outcome=efficacy",
                                       "predictive|outcome=harm"]
    s = toy_result.summary()
    assert {"tau|outcome=efficacy", "tau|outcome=harm", "rho_between"} <= set(s["target"])
    dt = toy_result.decision_table(scale="ratio").set_index("target")
    assert dt.loc["mean|outcome=harm", "scale"] == "ratio" and dt.loc["mean|outcome=efficacy", "scale"] == "identity"
    assert dt.loc["mean|outcome=harm", "harm_cut"] == pytest.approx(1.25)
    path = toy_result.to_netcdf(tmp_path / "bv.nc")
    back = kb.load_result(path)
    assert type(back).__name__ == "BivariateResult"
    pd.testing.assert_frame_equal(back.joint_table(), toy_result.joint_table())
    d = toy_result.to_dict()
    assert d["joint"][0]["target"] == "mean" and d["outcomes"] == ["efficacy", "harm"]
    assert "rho_within" in str(toy_result.settings["assumptions"]) or toy_result.settings["assumptions"]
    html = toy_result._repr_html_()
    assert "assumption" in html


def test_assumption_recorded_and_bad_input():
    m = kb.BivariateModel(TOY, prior_tau=("halfnormal(10)", "halfnormal(0.5)"))
    assert "assumed 0" in m.assumptions[0] and "assumed 0" in m.describe()
    bad = TOY.copy()
    bad.loc[2, "vi2"] = -1.0
    with pytest.raises(DataError, match="C.*vi2|vi2.*C"):
        kb.BivariateModel(bad, rho_within=0.0, prior_tau=("halfnormal(10)", "halfnormal(0.5)"))
    bad = TOY.copy()
    bad.loc[0, ["yi1", "vi1", "yi2", "vi2"]] = np.nan
    with pytest.raises(DataError, match="neither outcome"):
        kb.BivariateModel(bad, rho_within=0.0, prior_tau=("halfnormal(10)", "halfnormal(0.5)"))
    with pytest.raises(DataError, match="rho"):
        kb.BivariateModel(TOY, rho_within=1.5, prior_tau=("halfnormal(10)", "halfnormal(0.5)"))
    assert TOY["vi2"].iloc[2] == 0.5  # the caller's frame is not mutated


@pytest.mark.slow
def test_nuts_cross_check(toy_result):
    """NUTS on the same model (trial effects integrated out) agrees with the exact engine."""
    import pymc as pm

    m = kb.BivariateModel(TOY, rho_within=RW, prior_mu=("normal(0, 50)", "normal(0, 3)"),
                          prior_tau=("halfnormal(10)", "halfnormal(0.5)"))
    with m.pymc_model():
        idata = pm.sample(draws=2000, tune=1000, chains=2, random_seed=5, progressbar=False,
                          nuts={"target_accept": 0.95})
    mu = idata.posterior["mu"].values.reshape(-1, 2)
    e = toy_result.exact
    for j in (0, 1):
        mg = e.marginal("mean", j)
        assert abs(mu[:, j].mean() - mg.mean) < 0.1 * mg.sd
    p = np.mean((mu[:, 0] < -10) & (mu[:, 1] < math.log(1.25)))
    jt = toy_result.joint_table().set_index("target")
    assert abs(p - jt.loc["mean", "p_benefit_acceptable_harm"]) < 0.02
    rho = idata.posterior["rho_between"].values.ravel()
    assert abs(rho.mean() - e.param_stats("rho", [])[0]) < 0.08
