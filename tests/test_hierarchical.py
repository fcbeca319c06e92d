"""Hierarchical (drug x condition) model: exact engine against independent computations, NUTS, errors.

Expected numbers come from (a) ExactNormalNormal (a different integration of the
1-component case), (b) brute-force numerical integration written here with the
*marginal* covariance of y (not the mixed-model equations the engine uses), and
(c) NUTS.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, interpolate, optimize, stats

from ketabayes.data.simulate import simulate_review
from ketabayes.decision import Thresholds, decision_probabilities
from ketabayes.errors import DataError, KetabayesError, PriorError
from ketabayes.inference.exact import ExactNormalNormal
from ketabayes.model.hierarchical import HierarchicalModel
from ketabayes.model.priors import HalfNormal, Normal
from ketabayes.result.io import load_result

QS = np.array([0.025, 0.5, 0.975])


def tiny():
    return pd.DataFrame({
        "study": [f"T{i}" for i in range(7)],
        "drug": ["ket", "ket", "ket", "mem", "mem", "dex", "dex"],
        "yi": [-12.0, -4.0, -9.0, 2.0, -1.0, -6.0, 3.0],
        "vi": [16.0, 25.0, 20.0, 30.0, 18.0, 40.0, 22.0],
    })


# ------------------------------------------------------------------ exact engine vs independent computations
@pytest.mark.parametrize("prior_mu", ["flat()", "normal(0, 10)"])
def test_no_grouping_reproduces_exact_normal_normal(prior_mu):
    df = tiny()
    res = HierarchicalModel(df, by=[], prior_mu=prior_mu, prior_tau="halfnormal(5)").fit("exact", mcid=5, seed=1)
    ref = ExactNormalNormal(df.yi, df.vi, Normal(0, 10) if prior_mu != "flat()" else __import__(
        "ketabayes.model.priors", fromlist=["Flat"]).Flat(), HalfNormal(5))
    th = Thresholds(5, "lower")
    for target, m_ref in (("mean", ref.mu), ("predictive", ref.theta_new)):
        m = res.marginal(target)
        assert m.mean == pytest.approx(m_ref.mean, abs=1e-6)
        assert m.sd == pytest.approx(m_ref.sd, abs=1e-6)
        np.testing.assert_allclose(m.ppf(QS), m_ref.ppf(QS), atol=1e-6)
        p, p_ref = decision_probabilities(m, th), decision_probabilities(m_ref, th)
        for k in p:
            assert p[k] == pytest.approx(p_ref[k], abs=1e-6)
    s = res.scale_summary().set_index("target")
    assert s.loc["tau", "mean"] == pytest.approx(ref.tau_mean, abs=1e-6)
    np.testing.assert_allclose(s.loc["tau", ["ci_low", "median", "ci_high"]].to_numpy(float), ref.tau_ppf(QS), atol=1e-8)
    x = np.linspace(0.0, 20.0, 81)
    np.testing.assert_allclose(res.exact.component_cdf(0, x), ref.tau_cdf(x), atol=1e-9)
    # each trial's shrunken effect equals ExactNormalNormal's theta_i (a different algorithm)
    for i, study in enumerate(df.study):
        m, m_ref = res.marginal(study), ref.theta(i)
        assert m.mean == pytest.approx(m_ref.mean, abs=1e-6) and m.sd == pytest.approx(m_ref.sd, abs=1e-6)
        np.testing.assert_allclose(m.ppf(QS), m_ref.ppf(QS), atol=1e-6)


def test_study_effects_of_a_grouped_model_match_exact_draws_and_nuts_completion():
    """Grouped model: the exact mixture of a trial's effect agrees with draws made by a different route
    (phi drawn from the grid, then coefficients and theta_i drawn from their Gaussian conditionals)."""
    df = tiny()
    res = HierarchicalModel(df, by="drug", prior_mu="normal(0, 20)", prior_tau="halfnormal(6)",
                            prior_sd={"drug": "halfnormal(4)"}).fit("exact", mcid=5, seed=1, draws=5000)
    eff = res.tree["posterior"]["effect"]
    for study in ("T0", "T4"):
        m = res.marginal(study)
        d = eff.sel(target=study).values.ravel()
        se = m.sd / np.sqrt(d.size)
        assert abs(d.mean() - m.mean) < 5 * se
        assert d.std() == pytest.approx(m.sd, rel=5 / np.sqrt(2 * d.size))
        # shrunken: between the trial's own estimate and its drug's posterior mean
        own = float(df.set_index("study").loc[study, "yi"])
        drug = res.marginal(f"drug={df.set_index('study').loc[study, 'drug']}").mean
        assert min(own, drug) - 1e-9 <= m.mean <= max(own, drug) + 1e-9


def _brute_force(df, prior_mu_sd, s_tau, s_drug, n=300):
    """Posterior of mu and of mu + alpha[ket] by brute-force integration over (tau, sigma_drug).

    A plain Gauss-Legendre product rule with ``n x n`` nodes on ``[0, 8 s_tau] x [0, 8 s_drug]``
    (on the original scale, not the engine's asinh scale). Given (tau, sigma) the *marginal*
    model is ``y ~ N(0, S_y)`` with ``S_y = B C B' + V + tau^2 I`` for ``(mu, alpha) ~ N(0, C)``;
    the posterior of ``(mu, alpha)`` is the Gaussian conditional computed from that joint
    covariance -- a different route from the engine's mixed-model equations.
    """
    y, v = df.yi.to_numpy(), df.vi.to_numpy()
    levels = list(dict.fromkeys(df.drug))
    Z = np.array([[d == lv for lv in levels] for d in df.drug], dtype=float)
    k, L = Z.shape
    B = np.hstack([np.ones((k, 1)), Z])
    x, w = np.polynomial.legendre.leggauss(n)
    tau = 4 * s_tau * (x + 1)
    sig = 4 * s_drug * (x + 1)
    T, S = np.meshgrid(tau, sig, indexing="ij")
    T, S = T.ravel(), S.ravel()
    wt = np.outer(w * 4 * s_tau, w * 4 * s_drug).ravel()
    C = np.zeros((T.size, 1 + L, 1 + L))
    C[:, 0, 0] = prior_mu_sd**2
    C[:, np.arange(1, 1 + L), np.arange(1, 1 + L)] = (S**2)[:, None]
    Sy = B @ C @ B.T + np.eye(k) * (v[None, :] + T[:, None] ** 2)[:, :, None]
    Syi = np.linalg.inv(Sy)
    _, logdet = np.linalg.slogdet(Sy)
    ll = -0.5 * (logdet + np.einsum("i,nij,j->n", y, Syi, y))
    lp = ll + stats.halfnorm.logpdf(T, scale=s_tau) + stats.halfnorm.logpdf(S, scale=s_drug)
    p = wt * np.exp(lp - lp.max())
    p /= p.sum()
    K = C @ B.T @ Syi
    m = K @ y
    Cpost = C - K @ B @ C
    out = {}
    for name, idx in (("mean", [0]), ("drug=ket", [0, 1])):
        a = np.zeros(1 + L)
        a[idx] = 1
        mm, vv = m @ a, np.einsum("i,nij,j->n", a, Cpost, a)
        e1 = p @ mm
        out[name] = (e1, math.sqrt(p @ (vv + mm**2) - e1**2), p @ stats.norm.cdf(0.0, mm, np.sqrt(vv)))
    return out


def test_exact_matches_brute_force_integration():
    df = tiny()
    res = HierarchicalModel(df, by="drug", prior_mu="normal(0, 20)", prior_tau="halfnormal(6)",
                            prior_sd={"drug": "halfnormal(4)"}).fit("exact", seed=1)
    ref = _brute_force(df, 20.0, 6.0, 4.0)
    for target, (mean, sd, p0) in ref.items():
        m = res.marginal(target)
        assert m.mean == pytest.approx(mean, abs=1e-4)
        assert m.sd == pytest.approx(sd, abs=1e-4)
        assert float(m.cdf(0.0)) == pytest.approx(p0, abs=1e-5)


def _brute_force_scales(df, prior_mu_sd, s_tau, s_drug, n_fine=601, n_other=160):
    """Posterior CDFs of tau and sigma_drug by brute-force 2-D integration, each on its own fine grid.

    For each component: a uniform grid of ``n_fine`` points on ``[0, 9 s]`` (prior scale ``s``), the
    other component integrated out with a 16-point Gauss-Legendre rule on panels of ``[0, 9 s_other]``,
    and the CDF from the cumulative Simpson rule. The likelihood uses the *marginal* covariance of y,
    ``S_y = prior_mu_sd**2 J + sigma**2 Z Z' + V + tau**2 I`` (not the engine's mixed-model equations).
    """
    y, v = df.yi.to_numpy(), df.vi.to_numpy()
    levels = list(dict.fromkeys(df.drug))
    Z = np.array([[d == lv for lv in levels] for d in df.drug], dtype=float)
    k = y.size
    J, ZZ = np.full((k, k), prior_mu_sd**2), Z @ Z.T

    def log_post(tau, sig):
        S = J[None] + sig[:, None, None] ** 2 * ZZ[None] + np.eye(k)[None] * (v + tau[:, None] ** 2)[:, :, None]
        _, logdet = np.linalg.slogdet(S)
        quad = (y * np.linalg.solve(S, np.broadcast_to(y, (tau.size, k))[..., None])[..., 0]).sum(1)
        return (-0.5 * (logdet + quad) + stats.halfnorm.logpdf(tau, scale=s_tau)
                + stats.halfnorm.logpdf(sig, scale=s_drug))

    x, w = np.polynomial.legendre.leggauss(16)
    out = []
    for c, (s_c, s_o) in enumerate(((s_tau, s_drug), (s_drug, s_tau))):
        edges = np.linspace(0.0, 9.0 * s_o, n_other // 16 + 1)
        half, mid = 0.5 * np.diff(edges), 0.5 * (edges[1:] + edges[:-1])
        other, w_other = (mid[:, None] + half[:, None] * x).ravel(), (half[:, None] * w).ravel()
        g = np.linspace(0.0, 9.0 * s_c, n_fine)
        A, B = (a.ravel() for a in np.meshgrid(g, other, indexing="ij"))
        lp = log_post(A, B) if c == 0 else log_post(B, A)
        dens = np.exp(lp - lp.max()).reshape(g.size, other.size) @ w_other
        cdf = integrate.cumulative_simpson(dens, x=g, initial=0.0)
        out.append((g, cdf / cdf[-1]))
    return out


def test_variance_component_cdf_and_quantiles_match_brute_force():
    df = tiny()
    res = HierarchicalModel(df, by="drug", prior_mu="normal(0, 20)", prior_tau="halfnormal(6)",
                            prior_sd={"drug": "halfnormal(4)"}).fit("exact", seed=1)
    scales = res.scale_summary(0.9).set_index("target")
    qs = np.array([0.025, 0.05, 0.5, 0.95, 0.975])
    for c, (name, (g, cdf)) in enumerate(zip(["tau", "sd_drug"], _brute_force_scales(df, 20.0, 6.0, 4.0))):
        np.testing.assert_allclose(res.exact.component_cdf(c, g), cdf, atol=1e-6)
        spline = interpolate.CubicSpline(g, cdf)
        ref_q = np.array([optimize.brentq(lambda t, q=q, sp=spline: sp(t) - q, g[0], g[-1]) for q in qs])
        np.testing.assert_allclose(res.exact.component_ppf(c, qs), ref_q, atol=1e-5)
        np.testing.assert_allclose(scales.loc[name, ["ci_low", "median", "ci_high"]].to_numpy(float), ref_q[[1, 2, 3]],
                                   atol=1e-5)
    assert res.to_dict()["tau"]["ci_high"] == pytest.approx(float(res.exact.component_ppf(0, 0.975)), abs=1e-12)


def test_grid_refinement_does_not_change_answers():
    from ketabayes.inference.exact_hierarchical import GridSettings

    df = simulate_review(seed=11, drugs={"ket": 8, "mem": 5, "dex": 4},
                         conditions={"CRPS": 0.5, "PHN": 0.3, "DN": 0.2})
    m = HierarchicalModel(df, by=["drug", "condition"], prior_mu="normal(0, 50)", prior_tau="halfnormal(10)")
    a = m.fit("exact", seed=1).decision_table(mcid=10)
    fine = GridSettings(nodes=((16, 16), (4, 12), (3, 11), (1, 12)))
    b = m.fit("exact", seed=1, grid=fine).decision_table(mcid=10)
    np.testing.assert_allclose(a["mean"], b["mean"], atol=2e-3 * a["sd"].max())
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=2e-3)
    np.testing.assert_allclose(a[["p_benefit", "p_trivial", "p_harm"]], b[["p_benefit", "p_trivial", "p_harm"]],
                               atol=2e-3)


# ------------------------------------------------------------------ structure of the table
def test_decision_table_structure_and_unobserved_cells():
    df = simulate_review(seed=5, drugs={"ketamine": 6, "memantine": 4},
                         conditions={"CRPS": 0.5, "fibromyalgia": 0.5})
    df = df[~((df.drug == "memantine") & (df.condition == "CRPS"))].reset_index(drop=True)
    df.attrs["measure"] = "MD"
    res = HierarchicalModel(df, by=["drug", "condition"], prior_mu="normal(0, 50)",
                            prior_tau="halfnormal(10)").fit("exact", mcid=10, seed=2)
    tab = res.decision_table()
    for col in ["target", "drug", "condition", "kind", "observed", "n_trials", "mean", "sd", "ci_low", "median", "ci_high",
                "p_benefit", "p_trivial", "p_harm", "p_any_benefit", "exact"]:
        assert col in tab.columns
    row = tab.set_index("target").loc["drug=memantine|condition=CRPS"]
    assert not row.observed and row.n_trials == 0 and row.kind == "cell"
    pred = tab.set_index("target").loc["predictive|drug=memantine|condition=CRPS"]
    assert pred.kind == "predictive" and pred.sd > row.sd
    assert set(tab.kind) == {"mean", "group", "cell", "predictive"}
    np.testing.assert_allclose(tab[["p_benefit", "p_trivial", "p_harm"]].sum(axis=1), 1.0, atol=1e-12)
    # overall predictive variance = var(mu) + E[tau^2 + sd_drug^2 + sd_condition^2]
    e = res.exact
    extra = e.weights @ (e.phi_nodes**2).sum(1)
    mu_m = res.marginal("mean")
    assert res.marginal("predictive").sd ** 2 == pytest.approx(mu_m.sd**2 + extra, rel=1e-9)
    d = res.to_dict()
    assert {"measure", "scale", "estimates", "tau", "diagnostics", "settings"} <= set(d)
    assert d["settings"]["prior_sd"]["drug"]["text"].startswith("halfnormal")


def test_save_and_load_roundtrip(tmp_path):
    df = tiny()
    res = HierarchicalModel(df, by="drug", prior_mu="normal(0, 20)", prior_tau="halfnormal(6)").fit(
        "exact", mcid=5, seed=3)
    back = load_result(res.to_netcdf(tmp_path / "h.nc"))
    pd.testing.assert_frame_equal(res.decision_table(), back.decision_table())
    assert back.settings["data_hash"] == res.settings["data_hash"]


def test_nesting_and_moderator_targets():
    df = simulate_review(seed=8, drugs={"ketamine": 8, "memantine": 5, "magnesium": 5},
                         conditions={"CRPS": 0.5, "DN": 0.5})
    df["cls"] = df.drug.map({"ketamine": "NMDA", "memantine": "NMDA", "magnesium": "ion"})
    df["dose"] = np.linspace(0, 1, len(df))
    m = HierarchicalModel(df, by=["drug"], nest={"drug": "cls"}, moderators=["dose"], prior_mu="normal(0, 50)",
                          prior_tau="halfnormal(10)", prior_gamma="normal(0, 20)")
    res = m.fit("exact", mcid=10, seed=1)
    names = res.target_names
    assert "cls=NMDA" in names and "drug=ketamine" in names and "moderator=dose" in names
    # moderator slope against a Gaussian check: a huge prior sd -> the slope's posterior sd is finite
    assert 0 < res.marginal("moderator=dose").sd < 100


# ------------------------------------------------------------------ NUTS vs exact
def test_nuts_agrees_with_exact_small(fit_nuts):
    df = simulate_review(seed=4, drugs={"ket": 8, "mem": 5, "dex": 4}, conditions={"CRPS": 0.5, "PHN": 0.5})
    m = HierarchicalModel(df, by=["drug", "condition"], prior_mu="normal(0, 50)", prior_tau="halfnormal(10)")
    ex = m.fit("exact", mcid=10, seed=1).decision_table()
    nu_res = fit_nuts(m, mcid=10, seed=1, chains=2, draws=900, tune=300)
    nu = nu_res.decision_table()
    ess = nu_res.summary().set_index("target")["ess_bulk"].reindex(nu.target).to_numpy()
    z = (nu["mean"].to_numpy() - ex["mean"].to_numpy()) / (ex["sd"].to_numpy() / np.sqrt(ess))
    assert np.max(np.abs(z)) < 4.0
    # tail probabilities: binomial Monte-Carlo error with the ESS
    p, pn = ex["p_benefit"].to_numpy(), nu["p_benefit"].to_numpy()
    assert np.all(np.abs(p - pn) < 4.5 * np.sqrt(p * (1 - p) / ess) + 0.01)


def test_noncentred_nuts_agrees_with_exact(fit_nuts):
    df = tiny()
    m = HierarchicalModel(df, by="drug", prior_mu="normal(0, 20)", prior_tau="halfnormal(6)",
                          prior_sd={"drug": "halfnormal(4)"})
    ex = m.fit("exact", mcid=5, seed=1)
    nu = fit_nuts(m, mcid=5, seed=2, chains=2, draws=1500, tune=1000, parameterization="noncentred",
                  nuts={"target_accept": 0.99})
    assert nu.settings["engine_settings"]["parameterization"] == "noncentred"
    assert "z_drug" in nu.tree["posterior"].data_vars          # the group effects were sampled, not drawn exactly
    a, b = ex.decision_table(), nu.decision_table()
    ess = nu.summary().set_index("target")["ess_bulk"].reindex(b.target).to_numpy()
    assert np.all(ess > 300)
    z = (b["mean"].to_numpy() - a["mean"].to_numpy()) / (a["sd"].to_numpy() / np.sqrt(ess))
    assert np.max(np.abs(z)) < 4.0
    np.testing.assert_array_less(np.abs(b["sd"] / a["sd"] - 1.0), 4.0 / np.sqrt(2.0 * ess) + 0.02)
    p, pn = a["p_benefit"].to_numpy(), b["p_benefit"].to_numpy()
    assert np.all(np.abs(p - pn) < 4.5 * np.sqrt(p * (1 - p) / ess) + 0.01)
    # variance components: posterior means within Monte-Carlo error of the quadrature
    se, sn = ex.scale_summary().set_index("target"), nu.summary().set_index("target")
    for name in ("tau", "sd_drug"):
        assert abs(sn.loc[name, "mean"] - se.loc[name, "mean"]) < 4.0 * se.loc[name, "sd"] / math.sqrt(
            sn.loc[name, "ess_bulk"])
    # ArviZ groups of the NUTS tree: the raw effects z_drug have N(0, 1) prior draws; the likelihood is marginal
    import arviz as az
    import matplotlib.pyplot as plt
    from scipy import stats

    tree = nu.tree
    assert set(tree["prior"].data_vars) == set(tree["posterior"].data_vars)
    assert stats.kstest(tree["prior"]["z_drug"].values.ravel(), "norm").pvalue > 1e-3
    post, i, c, d = tree["posterior"], 3, 1, 77
    eta = float(post["mu"].values[c, d] + post["drug_effect"].sel(drug=df["drug"].iloc[i]).values[c, d])
    v = float(df["vi"].iloc[i]) if "vi" in df else float(df["sei"].iloc[i]) ** 2
    assert float(tree["log_likelihood"]["y"].values[c, d, i]) == pytest.approx(
        stats.norm.logpdf(float(df["yi"].iloc[i]), eta, math.sqrt(v + float(post["tau"].values[c, d]) ** 2)),
        rel=1e-10)
    assert set(az.psense(tree).data_vars) == set(post.data_vars)
    az.plot_prior_posterior(tree, var_names=["mu", "tau", "sd_drug", "z_drug"])
    plt.close("all")


# ------------------------------------------------------------------ errors
def test_error_unknown_grouping_column_names_closest():
    with pytest.raises(DataError, match="did you mean 'drug'"):
        HierarchicalModel(tiny(), by=["drugs"])


def test_error_missing_group_label_names_study():
    df = tiny()
    df.loc[3, "drug"] = np.nan
    with pytest.raises(DataError, match="T3") as err:
        HierarchicalModel(df, by="drug")
    assert err.value.study == "T3" and err.value.column == "drug"


def test_error_non_numeric_moderator_names_study():
    df = tiny()
    df["rob"] = ["low", "high", "low", "low", "high", "low", "low"]
    with pytest.raises(DataError, match="T0") as err:
        HierarchicalModel(df, by="drug", moderators=["rob"])
    assert err.value.column == "rob"


def test_error_bad_nesting_and_prior_keys():
    df = tiny()
    df["cls"] = ["A", "B", "A", "A", "A", "B", "B"]
    with pytest.raises(DataError, match="T1"):
        HierarchicalModel(df, by="drug", nest={"drug": "cls"})
    with pytest.raises(PriorError, match="did you mean 'drug'"):
        HierarchicalModel(tiny(), by="drug", prior_tau="halfnormal(5)", prior_sd={"drgu": "halfnormal(1)"})
    with pytest.raises(KetabayesError, match="interaction"):
        HierarchicalModel(tiny(), by="drug", interaction=True, prior_tau="halfnormal(5)")


def test_too_many_components_for_exact_points_to_nuts():
    df = simulate_review(seed=1, drugs={"a": 6, "b": 6}, conditions={"x": 0.5, "y": 0.5})
    df["cls"] = df.drug.map({"a": "A", "b": "B"})
    m = HierarchicalModel(df, by=["drug", "condition"], interaction=True, nest={"drug": "cls"},
                          prior_tau="halfnormal(10)")
    with pytest.raises(KetabayesError, match="method='nuts'"):
        m.fit("exact")
