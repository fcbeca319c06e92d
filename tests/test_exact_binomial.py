"""Exact binomial-logit engine against a brute-force reference written here, and against NUTS.

The reference (:func:`dense_reference`; data and trial likelihoods from ``_binomial_reference.py``) uses none of the engine's machinery: each trial's likelihood of the
log OR is the trapezoid rule on a dense uniform grid of baselines (no Gauss-Hermite, no Newton steps), the
trial effects given ``(mu, tau)`` are integrated with ``theta = mu + tau z`` on a uniform ``z`` grid with
linear interpolation of ``log f_i`` (no spline), and ``(mu, tau)`` on a dense uniform tensor grid (no
Gauss-Legendre panels, no per-slice grids, no normal-kernel mixtures).

Data (``_binomial_reference.sparse_data``): six small magnesium trials (Egger et al. 2001), among them
Bertschat 1989 with no death on magnesium, plus one SIMULATED double-zero trial (0/30 vs 0/30; the
bundled data have none) to show that such a trial is kept and integrated without continuity correction.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from _binomial_reference import log_binom as _log_binom
from _binomial_reference import magnesium, sparse_data, trial_log_lik
from scipy import integrate, special, stats

from ketabayes.errors import KetabayesError
from ketabayes.model.binomial import BinomialModel
from ketabayes.result.io import load_result

L125 = math.log(1.25)


def dense_reference(df, mu_sd, tau_sd, base_mean, base_sd):
    """Posterior on a dense (mu, tau) grid by nested trapezoid rules; see the module docstring.

    ``mu ~ N(0, mu_sd**2)``, ``tau ~ halfnormal(tau_sd)``, baselines ``N(base_mean, base_sd**2)``.
    Returns the grids, the normalised joint density and, per trial, ``E[theta_i | mu, tau, y]`` and
    ``E[theta_i**2 | mu, tau, y]`` on the grid.
    """
    th, logf = trial_log_lik(df, base_mean, base_sd)
    mu = np.linspace(-6.0, 3.0, 181)
    tau = np.linspace(0.0, 3.0, 181)
    z = np.linspace(-9.0, 9.0, 121)
    phi = stats.norm.pdf(z)
    M, Tt = np.meshgrid(mu, tau, indexing="ij")
    X = M[..., None] + Tt[..., None] * z
    lp = stats.norm.logpdf(M, 0.0, mu_sd) + stats.halfnorm.logpdf(Tt, scale=tau_sd)
    moments = []
    for lf in logf:
        fx = np.exp(np.interp(X, th, lf)) * phi
        h = integrate.trapezoid(fx, z, axis=-1)
        moments.append((integrate.trapezoid(fx * X, z, axis=-1) / h, integrate.trapezoid(fx * X**2, z, axis=-1) / h))
        lp = lp + np.log(h)
    p = np.exp(lp - lp.max())
    p /= integrate.trapezoid(integrate.trapezoid(p, tau, axis=1), mu)
    return mu, tau, p, moments


@pytest.fixture(scope="module")
def reference():
    return dense_reference(sparse_data(), 2.0, 0.5, 0.0, 5.0)


@pytest.fixture(scope="module")
def exact_fit():
    model = BinomialModel(sparse_data(), prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)")
    return model, model.fit("exact", mcid=1.25, benefit="lower", seed=3)


def _expect(p, mu, tau, g):
    return float(integrate.trapezoid(integrate.trapezoid(p * g, tau, axis=1), mu))


def test_exact_matches_dense_reference(reference, exact_fit):
    mu, tau, p, moments = reference
    model, res = exact_fit
    M, T = np.meshgrid(mu, tau, indexing="ij")
    tab = res.decision_table().set_index("target")
    # the average effect: decision probabilities, mean, sd
    pmu = integrate.trapezoid(p, tau, axis=1)
    F = integrate.cumulative_trapezoid(pmu, mu, initial=0.0)
    f_lo, f_0, f_hi = np.interp([-L125, 0.0, L125], mu, F)
    row = tab.loc["mean"]
    assert row["p_benefit"] == pytest.approx(f_lo, abs=1e-3)
    assert row["p_any_benefit"] == pytest.approx(f_0, abs=1e-3)
    assert row["p_harm"] == pytest.approx(1.0 - f_hi, abs=1e-3)
    assert row["p_trivial"] == pytest.approx(f_hi - f_lo, abs=1e-3)
    m1 = _expect(p, mu, tau, M)
    sd = math.sqrt(_expect(p, mu, tau, M**2) - m1**2)
    assert row["mean"] == pytest.approx(m1, abs=2e-3 * sd)
    assert row["sd"] == pytest.approx(sd, rel=2e-3)
    for x in (-2.0, -1.5, -1.0, -0.5):   # the CDF in the bulk, where the probabilities are not near 0 or 1
        assert float(res.marginal("mean").cdf(x)) == pytest.approx(float(np.interp(x, mu, F)), abs=1e-3)
    # a new trial: E[Phi((x - mu) / tau)] over the grid (a step at tau = 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        for x in (-L125, 0.0, L125, -2.0):
            cdf = np.where(T > 0, special.ndtr((x - M) / np.where(T > 0, T, 1.0)), (M <= x) * 1.0)
            assert float(res.marginal("predictive").cdf(x)) == pytest.approx(_expect(p, mu, tau, cdf), abs=1e-3)
    # tau: mean and quantiles
    ptau = integrate.trapezoid(p, mu, axis=0)
    Ft = integrate.cumulative_trapezoid(ptau, tau, initial=0.0)
    s = res.scale_summary().set_index("target").loc["tau"]
    assert s["mean"] == pytest.approx(float(integrate.trapezoid(ptau * tau, tau)), abs=1e-3)
    np.testing.assert_allclose(s[["ci_low", "median", "ci_high"]].to_numpy(float), np.interp([0.025, 0.5, 0.975], Ft, tau),
                               atol=2e-3)
    # each trial's own effect (the zero-event arm and the double-zero trial): mean and sd
    for name in ("Bertschat 1989", "SIMULATED double-zero"):
        i = model.studies.index(name)
        e1 = _expect(p, mu, tau, moments[i][0])
        e2 = _expect(p, mu, tau, moments[i][1])
        th = res.exact.theta(i)
        assert th.mean == pytest.approx(e1, abs=2e-3)
        assert th.sd == pytest.approx(math.sqrt(e2 - e1**2), rel=2e-3)


def common_effect_reference(df, mu_sd, base_mean, base_sd):
    """Posterior density of a common log OR ``mu ~ N(0, mu_sd**2)`` on a grid: given ``mu`` the baselines
    are independent, so the density is the prior times one trapezoid integral over ``b_i`` per trial."""
    mu = np.linspace(-8.0, 8.0, 1601)
    b = np.linspace(base_mean - 12 * base_sd, base_mean + 12 * base_sd, 1201)
    B, M = np.meshgrid(b, mu, indexing="ij")
    logp = stats.norm.logpdf(mu, 0.0, mu_sd)
    prior_b = stats.norm.logpdf(B, base_mean, base_sd)
    for a, n1, c, n2 in df[["ai", "n1i", "ci", "n2i"]].to_numpy(float):
        ll = _log_binom(a, n1, B + M / 2) + _log_binom(c, n2, B - M / 2) + prior_b
        top = ll.max()
        logp = logp + np.log(integrate.trapezoid(np.exp(ll - top), b, axis=0)) + top
    p = np.exp(logp - logp.max())
    return mu, p / integrate.trapezoid(p, mu)


def test_common_effect_matches_one_dimensional_integration():
    # tau ~ halfnormal(1e-6) makes the model a common-effect one (theta_i = mu); the engine must also
    # cope with a posterior of tau squeezed against zero
    df = sparse_data()
    grid, dens = common_effect_reference(df, 2.0, -3.0, 1.0)
    mean = integrate.trapezoid(dens * grid, grid)
    sd = math.sqrt(integrate.trapezoid(dens * (grid - mean) ** 2, grid))
    res = BinomialModel(df, prior_mu="normal(0, 2)", prior_tau="halfnormal(1e-6)",
                        prior_baseline="normal(-3, 1)").fit("exact", mcid=1.25, benefit="lower", seed=1)
    row = res.decision_table().set_index("target").loc["mean"]
    assert row["mean"] == pytest.approx(mean, abs=1e-3 * sd)
    assert row["sd"] == pytest.approx(sd, rel=1e-3)
    assert row["p_benefit"] == pytest.approx(integrate.trapezoid(dens * (grid < -L125), grid), abs=1e-3)
    assert row["p_any_benefit"] == pytest.approx(integrate.trapezoid(dens * (grid < 0), grid), abs=1e-3)


def test_double_zero_trial_is_kept_and_informs():
    df = sparse_data()
    kw = dict(prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)", prior_baseline="normal(-3, 1)")
    with_dz = BinomialModel(df, **kw)
    assert with_dz.k == 7
    without = BinomialModel(df.iloc[:-1], **kw)
    m_with = with_dz.fit("exact", seed=1).marginal("mean").mean
    m_without = without.fit("exact", seed=1).marginal("mean").mean
    assert m_with > m_without + 0.02   # "no deaths in either arm" pulls the log OR towards 0


def test_exact_result_round_trip_and_tree(tmp_path, exact_fit):
    _, res = exact_fit
    assert res.engine == "exact" and res.diagnostics is None
    post = res.tree["posterior"]
    assert {"mu", "tau", "effect"} <= set(post.data_vars)
    assert post["mu"].shape == (4, 1000)
    # the draws follow the exact marginal (independent draws: Monte-Carlo error sd / sqrt(4000))
    m = res.marginal("mean")
    assert abs(float(post["mu"].mean()) - m.mean) < 4 * m.sd / math.sqrt(4000)
    back = load_result(res.to_netcdf(tmp_path / "binom.nc"))
    assert back.engine == "exact"
    pd.testing.assert_frame_equal(back.decision_table(), res.decision_table())


def test_exact_with_two_groupings_names_the_alternative():
    df = sparse_data().assign(drug=["a", "b", "a", "b", "a", "b", "a"], cond=list("xxyyxyx"))
    with pytest.raises(KetabayesError, match="random-effect terms 'drug', 'cond'.*method='nuts'"):
        BinomialModel(df, by=["drug", "cond"]).fit("exact", seed=1)
    with pytest.raises(KetabayesError, match="did you mean 'exact'"):
        BinomialModel(df).fit("exakt", seed=1)


def grouped_reference(df, groups, mu_sd, tau_sd, sd_sd, base_mean, base_sd):
    """Posterior of the one-grouping model on dense (tau, mu, sd) grids (Simpson's rule), written here.

    Given tau, each group's likelihood of its mean effect ``gamma``, ``H_g(gamma; tau)``, is the
    product of its trials' ``int phi(z) f_i(gamma + tau z) dz`` (trapezoid in z, ``log f_i`` linearly
    interpolated), tabulated on a gamma grid; given (tau, mu, sd), ``int N(gamma; mu, sd**2) H_g dgamma``
    is again a z-substitution. Returns the grids, the normalised joint density p[tau, mu, sd] and
    ``P(gamma_g < 0 | tau, mu, sd)`` per group.
    """
    th, logf = trial_log_lik(df, base_mean, base_sd)
    z = np.linspace(-8.0, 8.0, 65)
    phi = stats.norm.pdf(z)
    tau = np.linspace(0.0, 2.5, 41)
    mu = np.linspace(-5.0, 3.0, 81)
    sd = np.linspace(0.0, 2.5, 41)
    gam = np.linspace(-9.0, 6.0, 241)
    X = gam[None, :, None] + tau[:, None, None] * z                                    # (tau, gamma, z)
    logH = {g: np.zeros((tau.size, gam.size)) for g in set(groups)}
    for lf, g in zip(logf, groups):
        logH[g] += np.log(integrate.trapezoid(np.exp(np.interp(X, th, lf)) * phi, z, axis=-1))
    M, S = np.meshgrid(mu, sd, indexing="ij")
    G = M[..., None] + S[..., None] * z                                                  # (mu, sd, z)
    lp = (stats.halfnorm.logpdf(tau, scale=tau_sd)[:, None, None] + stats.norm.logpdf(M, 0.0, mu_sd)[None]
          + stats.halfnorm.logpdf(S, scale=sd_sd)[None])
    below = {}
    for g, lh in logH.items():
        vals = np.stack([np.exp(np.interp(G, gam, lh[t])) * phi for t in range(tau.size)])   # (tau, mu, sd, z)
        Hg = integrate.trapezoid(vals, z, axis=-1)
        below[g] = integrate.trapezoid(vals * (G < 0.0), z, axis=-1) / Hg
        lp = lp + np.log(Hg)
    p = np.exp(lp - lp.max())
    p /= integrate.simpson(integrate.simpson(integrate.simpson(p, x=sd, axis=2), x=mu, axis=1), x=tau)
    return tau, mu, sd, p, below


def test_grouped_exact_matches_dense_reference():
    df = sparse_data().assign(drug=["a", "b", "a", "b", "a", "b", "b"])   # arbitrary groups (test only)
    tau, mu, sd, p, below = grouped_reference(df, list(df.drug), 2.0, 0.5, 0.5, 0.0, 5.0)
    res = BinomialModel(df, by="drug", prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)",
                        prior_sd="halfnormal(0.5)").fit("exact", mcid=1.25, benefit="lower", seed=1)

    def expect(f):
        return float(integrate.simpson(integrate.simpson(integrate.simpson(p * f, x=sd, axis=2), x=mu, axis=1),
                                       x=tau))

    M = mu[None, :, None] + 0.0 * p
    tab = res.decision_table().set_index("target")
    pmu = integrate.simpson(integrate.simpson(p, x=sd, axis=2), x=tau, axis=0)
    F = integrate.cumulative_trapezoid(pmu, mu, initial=0.0)
    assert tab.loc["mean", "p_any_benefit"] == pytest.approx(float(np.interp(0.0, mu, F)), abs=1e-3)
    assert tab.loc["mean", "mean"] == pytest.approx(expect(M), abs=1e-3)
    for g in ("a", "b"):
        assert tab.loc[f"drug={g}", "p_any_benefit"] == pytest.approx(expect(below[g]), abs=1e-3)
    scales = res.scale_summary().set_index("target")
    assert scales.loc["tau", "mean"] == pytest.approx(expect(tau[:, None, None] + 0.0 * p), abs=1e-3)
    assert scales.loc["sd_drug", "mean"] == pytest.approx(expect(sd[None, None, :] + 0.0 * p), abs=1e-3)


def test_grouped_exact_result_round_trip(tmp_path):
    df = sparse_data().assign(drug=["a", "b", "a", "b", "a", "b", "b"])
    res = BinomialModel(df, by="drug", prior_mu="normal(0, 2)").fit("exact", mcid=1.25, seed=2)
    assert {"mu", "tau", "sd_drug", "effect"} <= set(res.tree["posterior"].data_vars)
    back = load_result(res.to_netcdf(tmp_path / "grouped.nc"))
    pd.testing.assert_frame_equal(back.decision_table(), res.decision_table())
    pd.testing.assert_frame_equal(back.summary(), res.summary())


def test_grouped_with_vanishing_group_sd_is_the_ungrouped_model():
    df = sparse_data().assign(drug=["a", "b", "a", "b", "a", "b", "b"])
    kw = dict(prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)")
    grouped = BinomialModel(df, by="drug", prior_sd="halfnormal(1e-6)", **kw).fit("exact", mcid=1.25, seed=1)
    plain = BinomialModel(df, **kw).fit("exact", mcid=1.25, seed=1)
    a, b = grouped.decision_table().set_index("target"), plain.decision_table().set_index("target")
    cols = ["mean", "sd", "p_benefit", "p_trivial", "p_harm", "p_any_benefit"]
    np.testing.assert_allclose(a.loc[["mean", "predictive"], cols].to_numpy(float),
                               b.loc[["mean", "predictive"], cols].to_numpy(float), atol=1e-3)
    assert a.loc["drug=a", "mean"] == pytest.approx(b.loc["mean", "mean"], abs=1e-3)


@pytest.mark.slow
def test_exact_agrees_with_nuts_on_real_sparse_data():
    # all 16 magnesium trials (Bertschat: no death on magnesium) plus the SIMULATED double-zero trial
    mg = magnesium()[["study", "ai", "n1i", "ci", "n2i"]]
    df = pd.concat([mg, sparse_data().iloc[[-1]]], ignore_index=True)
    model = BinomialModel(df, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)")
    exact = model.fit("exact", mcid=1.25, benefit="lower", seed=5)
    nuts = model.fit("nuts", mcid=1.25, benefit="lower", seed=5, draws=2500)
    te, tn = exact.decision_table().set_index("target"), nuts.decision_table().set_index("target")
    summ = nuts.summary().set_index("target")
    for target in ("mean", "predictive"):
        ess = float(summ.loc[target, "ess_bulk"])
        sd = te.loc[target, "sd"]
        assert abs(tn.loc[target, "mean"] - te.loc[target, "mean"]) < 5 * sd / math.sqrt(ess)
        for col in ("p_benefit", "p_any_benefit", "p_harm"):
            p = te.loc[target, col]
            assert abs(tn.loc[target, col] - p) < 5 * math.sqrt(max(p * (1 - p), 1e-4) / ess) + 2e-3
    ess_tau = float(summ.loc["tau", "ess_bulk"])
    t_ex = exact.scale_summary().set_index("target").loc["tau"]
    assert abs(float(nuts.tree["posterior"]["tau"].mean()) - t_ex["mean"]) < 5 * t_ex["sd"] / math.sqrt(ess_tau)
    _study_effects_agree(exact, nuts)


def _study_effects_agree(exact, nuts):
    """Every trial's own effect: exact mean and P(theta_i < 0) against the NUTS draws, within 5 MCSE."""
    summ = nuts.summary(targets=exact.studies).set_index("target")
    for study in exact.studies:
        ex = exact.marginal(study)
        dr = nuts.tree["posterior"]["effect"].sel(target=study).values
        ess = float(summ.loc[study, "ess_bulk"])
        assert abs(dr.mean() - ex.mean) < 5 * ex.sd / math.sqrt(ess), study
        p = float(ex.cdf(0.0))
        assert abs(np.mean(dr < 0.0) - p) < 5 * math.sqrt(max(p * (1 - p), 1e-4) / ess) + 2e-3, study


@pytest.mark.slow
def test_grouped_exact_agrees_with_nuts():
    from ketabayes.data.simulate import simulate_review

    df = simulate_review(seed=2, binary={"mu": -0.7, "tau": 0.1}, drugs={"k": 6, "m": 5, "d": 4},
                         conditions={"x": 1.0}, n_range=(30, 60))          # SIMULATED
    df.loc[0, ["ai", "ci"]] = 0
    model = BinomialModel(df, by="drug", prior_mu="normal(0, 2)")
    exact = model.fit("exact", mcid=1.25, benefit="higher", seed=3)
    nuts = model.fit("nuts", mcid=1.25, benefit="higher", seed=3, draws=2500)
    te, tn = exact.decision_table().set_index("target"), nuts.decision_table().set_index("target")
    summ = nuts.summary().set_index("target")
    for target in te.index:
        ess = float(summ.loc[target, "ess_bulk"])
        assert abs(tn.loc[target, "mean"] - te.loc[target, "mean"]) < 5 * te.loc[target, "sd"] / math.sqrt(ess)
        p = te.loc[target, "p_any_benefit"]
        assert abs(tn.loc[target, "p_any_benefit"] - p) < 5 * math.sqrt(max(p * (1 - p), 1e-4) / ess) + 2e-3
    for comp in ("tau", "sd_drug"):
        ess = float(summ.loc[comp, "ess_bulk"])
        s = exact.scale_summary().set_index("target").loc[comp]
        assert abs(float(nuts.tree["posterior"][comp].mean()) - s["mean"]) < 5 * s["sd"] / math.sqrt(ess)
    _study_effects_agree(exact, nuts)
    # a joint quantity: the difference of two drugs' effects (exact draws are joint draws now)
    d_ex = (exact.tree["posterior"]["effect"].sel(target="drug=k") - exact.tree["posterior"]["effect"].sel(
        target="drug=m")).values
    d_nu = (nuts.tree["posterior"]["effect"].sel(target="drug=k") - nuts.tree["posterior"]["effect"].sel(
        target="drug=m")).values
    ess = min(float(summ.loc["drug=k", "ess_bulk"]), float(summ.loc["drug=m", "ess_bulk"]))
    assert abs(d_ex.mean() - d_nu.mean()) < 5 * d_ex.std() * math.sqrt(1 / ess + 1 / d_ex.size)
    assert abs(d_ex.std() - d_nu.std()) < 5 * d_ex.std() * math.sqrt(1 / (2 * ess) + 1 / (2 * d_ex.size))
