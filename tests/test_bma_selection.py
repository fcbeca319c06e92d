"""Selection models of the RoBMA ensemble (issue #14): marginal likelihoods against an independent integration
written here, and the published RoBMA-PSMA analysis of Lui (2015) (Bartoš et al. 2022, RoBMA's tutorial vignette).

The reference integrals use their own weighted-normal likelihood (scipy.stats, vectorised over a grid) and a
Gauss-Legendre product rule over the publication weights (ordered simplex), ``log(tau)`` and ``mu``; the library
estimates them by importance sampling on randomised quasi-Monte Carlo points (or SMC) with a Monte-Carlo error.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

from ketabayes.inference.bma import fit_ensemble
from ketabayes.inference.bma_selection import WEIGHT_FUNCTIONS, Cutoffs, interval_index
from ketabayes.inference.bma_selection_is import fit_selection_is, omega_from_logits
from ketabayes.model.priors import HalfCauchy, InvGamma, Normal

LUI = json.loads((Path(__file__).parent / "reference" / "robma_lui2015.json").read_text())
R = np.array(LUI["data"]["r"])
N = np.array(LUI["data"]["n"], dtype=float)
Z = np.arctanh(R)                  # RoBMA's analysis scale: Fisher's z, se = 1 / sqrt(n - 3)
V = 1.0 / (N - 3.0)
# RoBMA's default priors on Cohen's d, scaled to Fisher's z as RoBMA does (d / 2; PEESE inversely)
MU_Z, TAU_Z = Normal(0, 0.5), InvGamma(1.0, 0.075)


# ---------------------------------------------------------------- an independent weighted-normal likelihood
def _crit(steps, sided):
    """z-scale cut-offs of the t-test of a correlation (n - 2 df), one column per step (RoBMA's rule)."""
    a = np.asarray(steps, dtype=float) / (2.0 if sided == "two" else 1.0)
    t = stats.t.isf(a[None, :], N[:, None] - 2.0)
    r_crit = t / np.sqrt(N[:, None] - 2.0 + t**2)
    return 0.5 * np.log((1 + r_crit) / (1 - r_crit))


def _loglik(mu, tau, omega, steps, sided):
    """Sum over studies of log[omega_j(i) N(z_i; mu, v_i + tau^2) / sum_j omega_j P_j(mu, tau)]; parameters broadcast."""
    mu, tau = np.asarray(mu, dtype=float)[..., None], np.asarray(tau, dtype=float)[..., None]
    sd = np.sqrt(V + tau**2)
    crit = _crit(steps, sided)                                      # (k, J - 1), decreasing
    edges = [np.inf] + [crit[:, m] for m in range(crit.shape[1])] + [-np.inf if sided == "one" else 0.0]
    stat = Z if sided == "one" else np.abs(Z)
    dist = stats.norm(mu, sd)
    denom, num = 0.0, 0.0
    for j, w in enumerate(omega):
        hi, lo = edges[j], edges[j + 1]
        p = dist.cdf(hi) - dist.cdf(lo)
        if sided == "two":
            p = p + dist.cdf(-lo) - dist.cdf(-hi)
        w = np.asarray(w, dtype=float)[..., None]
        denom = denom + w * p
        num = num + np.where((stat <= hi) & (stat > lo), np.log(w), 0.0)
    return np.sum(num + dist.logpdf(Z) - np.log(denom), axis=-1)


def _gl(a, b, n):
    x, w = np.polynomial.legendre.leggauss(n)
    return (a + b) / 2 + (b - a) / 2 * x, (b - a) / 2 * w


def _omega_grid(n_free, n=48):
    """Ordered-simplex rule for 1 >= omega_1 >= ... >= 0 under the uniform (all-ones cumulative Dirichlet) prior."""
    x, w = _gl(0.0, 1.0, n)
    if n_free == 1:
        return [x], w                                             # omega_1 ~ U(0, 1)
    a, b = np.meshgrid(x, x, indexing="ij")                       # omega_1 = a, omega_2 = a * b: density 2
    return [a.ravel(), (a * b).ravel()], (2.0 * np.outer(w, w) * a).ravel()


def _log_integral(lp):
    top = np.max(lp)
    return float(top + np.log(np.sum(np.exp(lp - top))))


REFERENCE_MODELS = {
    # label: (weight function, effect, heterogeneity)
    "FE-H0-1s.05": ("1s.05", False, False),
    "FE-H0-2s.05": ("2s.05", False, False),
    "FE-H0-1s.025.05": ("1s.025.05", False, False),
    "RE-H0-1s.05": ("1s.05", False, True),
    "FE-H1-2s.05": ("2s.05", True, False),
    "RE-H1-1s.05": ("1s.05", True, True),
}


def _reference_log_ml(wf_name, effect, het):
    wf = WEIGHT_FUNCTIONS[wf_name]
    om, w_om = _omega_grid(wf.n_weights - 1, 48 if effect + het < 2 else 24)
    mu, lw_mu = (np.zeros(1), np.zeros(1))
    if effect:   # the posterior of mu is narrow (sd ~0.02 on z): panels of Gauss-Legendre over [-0.4, 0.8]
        parts = [_gl(a, a + 0.05, 12) for a in np.arange(-0.4, 0.8, 0.05)]
        mu = np.concatenate([p[0] for p in parts])
        lw_mu = np.log(np.concatenate([p[1] for p in parts])) + stats.norm.logpdf(mu, 0, 0.5)
    tau, lw_tau = (np.zeros(1), np.zeros(1))
    if het:      # log(tau) over [-9, 1.5] (InvGamma(1, 0.075) puts < 1e-30 below and ~3e-6 beyond)
        u, wu = _gl(-9.0, 1.5, 80 if not effect else 60)
        tau, lw_tau = np.exp(u), np.log(wu) + stats.invgamma.logpdf(np.exp(u), 1.0, scale=0.075) + u
    M, T, K = np.meshgrid(mu, tau, np.arange(w_om.size), indexing="ij")
    LW = (lw_mu[:, None, None] + lw_tau[None, :, None] + np.log(w_om)[None, None, :])
    omega = [np.ones_like(M, dtype=float)] + [o[K] for o in om]
    return _log_integral(LW + _loglik(M, T, omega, wf.steps, wf.sided))


@pytest.mark.parametrize("label", list(REFERENCE_MODELS))
def test_selection_log_ml_against_independent_integration(label):
    """RoBMA's weighted normal with the t-test cut-offs of correlations; library (importance sampling) vs a grid."""
    wf_name, effect, het = REFERENCE_MODELS[label]
    ref = _reference_log_ml(wf_name, effect, het)
    f = fit_selection_is(Z, V, prior_mu=MU_Z if effect else None, prior_tau=TAU_Z if het else None,
                         wf=WEIGHT_FUNCTIONS[wf_name], sign=1, cutoffs=Cutoffs.correlation(N), seed=7)
    assert f.log_ml_se < 2e-3
    assert f.log_ml == pytest.approx(ref, abs=4 * f.log_ml_se + 2e-4)


def test_correlation_cutoffs_and_intervals():
    """RoBMA's cut-offs of Fisher's z from the t-test of r (n - 2 df) differ from the z-test's se * z_{1-a}."""
    c = Cutoffs.correlation(N).critical(np.sqrt(V), [0.025, 0.05])
    assert np.allclose(c, _crit([0.025, 0.05], "one"), atol=1e-14)
    normal = np.sqrt(V)[:, None] * stats.norm.isf([0.025, 0.05])
    assert np.max(np.abs(c - normal)) > 2e-4                                  # not the z-test's cut-offs
    # study i is in interval j: the count of its own p-value (t-test of r) against the steps
    t_obs = R * np.sqrt((N - 2) / (1 - R**2))
    p_one = stats.t.sf(t_obs, N - 2)
    for name in ("1s.025.05.50", "2s.05.10"):
        wf = WEIGHT_FUNCTIONS[name]
        p = p_one if wf.sided == "one" else 2 * np.minimum(p_one, 1 - p_one)
        assert np.array_equal(interval_index(Z, np.sqrt(V), wf, 1, Cutoffs.correlation(N)),
                              np.searchsorted(np.asarray(wf.steps), p, side="right"))


def test_stick_breaking_is_the_cumulative_dirichlet():
    """omega from logits: omega_0 = 1, non-increasing; the density of x integrates to one (Dirichlet(2, 1, 1.5))."""
    alpha = np.array([2.0, 1.0, 1.5])
    x, w = _gl(-30, 30, 400)
    X1, X2 = np.meshgrid(x, x, indexing="ij")
    om, lp = omega_from_logits(np.stack([X1, X2], axis=-1), alpha)
    assert np.all(om[..., 0] == 1.0) and np.all(np.diff(om, axis=-1) <= 0)
    assert float(np.sum(np.outer(w, w) * np.exp(lp))) == pytest.approx(1.0, abs=1e-8)
    # E[omega_last] = E[eta_1] = alpha_1 / sum(alpha) under the Dirichlet
    assert float(np.sum(np.outer(w, w) * np.exp(lp) * om[..., 2])) == pytest.approx(2.0 / 4.5, abs=1e-8)
    eta1 = special.expit(X1)
    assert np.allclose(om[..., 2], eta1)


# ---------------------------------------------------------------- published: RoBMA-PSMA on Lui (2015)
@pytest.fixture(scope="module")
def lui_ensemble():
    return fit_ensemble(Z, V, prior_mu=MU_Z, prior_tau=TAU_Z, bias="robma", benefit="higher",
                        prior_pet=HalfCauchy(1.0), prior_peese=HalfCauchy(10.0),
                        selection_cutoffs=Cutoffs.correlation(N), seed=1)


#: RoBMA's own Monte-Carlo error of a printed log marginal likelihood: the largest difference between its two
#: published fits of the same analysis (RoBMA 3.2.0 vs 3.6.1 vignettes), plus half a unit of the last printed digit
ROBMA_LOG_ML_ERROR = 0.03 + 0.005


@pytest.mark.slow
def test_robma_lui2015_log_marginal_likelihoods(lui_ensemble):
    """All 36 models: ours within 4 MC errors + RoBMA's run-to-run spread of both printed fits."""
    tab = lui_ensemble.models().set_index("model")
    spread = max(abs(LUI["printed"]["3.2.0"]["models"][k]["log_ml"] - LUI["printed"]["3.6.1"]["models"][k]["log_ml"])
                 for k in tab.index)
    assert spread <= 0.03 + 1e-9
    for version in ("3.2.0", "3.6.1"):
        printed = LUI["printed"][version]["models"]
        assert set(printed) == set(tab.index)
        for label, row in printed.items():
            ours = tab.loc[label]
            assert ours["log_ml"] == pytest.approx(row["log_ml"], abs=4 * ours["log_ml_se"] + ROBMA_LOG_ML_ERROR), label
            assert ours["prior_prob"] == pytest.approx(row["prior_prob"], abs=5e-4)
            assert ours["post_prob"] == pytest.approx(row["post_prob"], abs=0.002), label
    assert set(tab["method"]) == {"quadrature", "importance"}


@pytest.mark.slow
def test_robma_lui2015_inclusion_bayes_factors(lui_ensemble):
    """Inclusion BFs of effect, heterogeneity, bias: ours within 4 of our MC errors + the spread of RoBMA's two fits."""
    a, b = LUI["printed"]["3.2.0"]["components"], LUI["printed"]["3.6.1"]["components"]
    for comp in ("effect", "heterogeneity", "bias"):
        inc = lui_ensemble.inclusion_bf(comp)
        spread = abs(math.log(a[comp]["inclusion_bf"] / b[comp]["inclusion_bf"]))
        for printed in (a, b):
            tol = 4 * inc["log_bf_se"] + spread + 0.0005 / printed[comp]["inclusion_bf"]
            assert inc["log_bf"] == pytest.approx(math.log(printed[comp]["inclusion_bf"]), abs=tol), comp
            assert inc["post_prob"] == pytest.approx(printed[comp]["post_prob"], abs=0.0015), comp


@pytest.mark.slow
def test_robma_lui2015_model_averaged_estimates(lui_ensemble):
    """Model-averaged mu and tau on Cohen's d (= 2 x Fisher's z, RoBMA's linear prior scale) and mu on r.

    RoBMA's quantiles come from mixed MCMC draws; near the spike at 0 the density of mu is low (~0.2 per unit d),
    so a quantile's MC error is large. The check is on the probability scale: our CDF at each printed quantile
    is within 3 binomial SEs of its level for an effective sample size of 3,000 (RoBMA runs 3 chains x 5,000
    draws per model; in its diagnostics table the models' minimum ESS has median 4,100, 8 of 35 are below 3,000,
    the smallest 565), and
    the means within 3 MC errors (sd / sqrt(3,000)).
    """
    ess = 3000.0
    mu, tau = lui_ensemble.averaged("mu"), lui_ensemble.averaged("tau")
    for version in ("3.2.0", "3.6.1"):
        est = LUI["printed"][version]["averaged_d"]
        for name, marg in (("mu", mu), ("tau", tau)):
            p = est[name]
            assert 2 * marg.mean == pytest.approx(p["mean"], abs=3 * 2 * marg.sd / math.sqrt(ess) + 5e-4), name
            for level, key in ((0.025, "q0.025"), (0.5, "median"), (0.975, "q0.975")):
                got = float(marg.cdf(np.array(p[key] / 2)))
                assert got == pytest.approx(level, abs=3 * math.sqrt(level * (1 - level) / ess)), (name, key)
        r = LUI["printed"][version]["averaged_mu_r"]
        d = 2 * np.asarray(mu.ppf(np.array([0.975])))
        assert float(d[0] / np.sqrt(d[0] ** 2 + 4)) == pytest.approx(r["q0.975"], abs=0.003)   # d2r, monotone


@pytest.mark.slow
def test_smc_agrees_with_importance_sampling_on_selection_models():
    """PyMC's SMC and the randomised-QMC importance sampler estimate the same marginal likelihoods."""
    from ketabayes.inference.bma_selection import fit_smc

    for wf_name, pm_, pt_ in (("1s.025.05", None, TAU_Z), ("2s.05", MU_Z, TAU_Z)):
        wf = WEIGHT_FUNCTIONS[wf_name]
        f = fit_selection_is(Z, V, prior_mu=pm_, prior_tau=pt_, wf=wf, cutoffs=Cutoffs.correlation(N), seed=3)
        s = fit_smc(Z, V, prior_mu=pm_, prior_tau=pt_, wf=wf, draws=1000, chains=4, seed=5,
                    cutoffs=Cutoffs.correlation(N))
        assert abs(s.log_ml - f.log_ml) < 4 * math.hypot(s.log_ml_se, f.log_ml_se) + 0.02


def test_selection_result_round_trip_and_weight_function(tmp_path):
    """Importance-sampled selection models are re-computed identically when a saved result is loaded."""
    import pandas as pd

    import ketabayes as kb

    df = pd.DataFrame({"study": LUI["data"]["study"], "yi": Z, "vi": V})
    res = kb.bma(df, prior_mu="normal(0, 0.5)", prior_tau="halfnormal(0.3)", bias=["1s.05", "PET"], benefit="higher",
                 seed=4)
    tab = res.models.set_index("model")
    assert set(tab.loc[[m for m in tab.index if m.endswith("1s.05")], "method"]) == {"importance"}
    assert res.settings["engine"] == "quadrature+importance"
    back = kb.load_result(res.to_netcdf(tmp_path / "sel.nc"))
    pd.testing.assert_frame_equal(back.models, res.models)
    from ketabayes.reporting.bma_plots import weight_function_summary

    wf = weight_function_summary(res, p=np.array([0.01, 0.2]))
    assert wf["mean"].iloc[0] == pytest.approx(1.0) and 0 < wf["mean"].iloc[1] < 1


def test_direction_of_benefit_mirrors_the_data():
    """benefit 'lower' on -y is benefit 'higher' on y: same log marginal likelihood, mirrored mu."""
    wf = WEIGHT_FUNCTIONS["1s.025.05"]
    up = fit_selection_is(Z, V, prior_mu=MU_Z, prior_tau=None, wf=wf, sign=1, seed=2)
    down = fit_selection_is(-Z, V, prior_mu=MU_Z, prior_tau=None, wf=wf, sign=-1, seed=2)
    assert down.log_ml == pytest.approx(up.log_ml, abs=4 * math.hypot(up.log_ml_se, down.log_ml_se))
    assert float(down.weights @ down.mu) == pytest.approx(-float(up.weights @ up.mu), abs=1e-3)


def test_importance_sampled_selection_model_has_a_predictive_and_joint_draws():
    """RE-H1-1s.05 alone: P(theta_new <= c) = E[Phi((c - mu) / tau) | y] by the independent grid above, against
    the predictive the ensemble builds from the importance-sampled points (resampled jointly, plus N(0, tau^2))."""
    from ketabayes.inference import bma_draws
    from ketabayes.inference.bma import ensemble_specs

    labels = [s.label for s in ensemble_specs(bias=["1s.05"])]
    probs = [1.0 if lab == "RE-H1-1s.05" else 0.0 for lab in labels]
    ens = fit_ensemble(Z, V, prior_mu=MU_Z, prior_tau=TAU_Z, bias=["1s.05"], prior_probs=probs, benefit="higher",
                       selection_cutoffs=Cutoffs.correlation(N), seed=3)
    assert ens.fits[labels.index("RE-H1-1s.05")].method == "importance"
    assert ens.has_predictive and bma_draws.can_draw(ens)
    pred = ens.averaged("predictive")
    # the reference: the grid of _reference_log_ml, with Phi((c - mu) / tau) as the integrand
    wf = WEIGHT_FUNCTIONS["1s.05"]
    om, w_om = _omega_grid(1, 24)
    parts = [_gl(a, a + 0.05, 12) for a in np.arange(-0.4, 0.8, 0.05)]
    mu = np.concatenate([p[0] for p in parts])
    lw_mu = np.log(np.concatenate([p[1] for p in parts])) + stats.norm.logpdf(mu, 0, 0.5)
    u, wu = _gl(-9.0, 1.5, 60)
    tau, lw_tau = np.exp(u), np.log(wu) + stats.invgamma.logpdf(np.exp(u), 1.0, scale=0.075) + u
    M, T, K = np.meshgrid(mu, tau, np.arange(w_om.size), indexing="ij")
    lp = lw_mu[:, None, None] + lw_tau[None, :, None] + np.log(w_om)[None, None, :] + _loglik(
        M, T, [np.ones_like(M), om[0][K]], wf.steps, wf.sided)
    w = np.exp(lp - lp.max())
    w /= w.sum()
    draws = bma_draws.posterior_draws(ens, 4000, np.random.default_rng(1))
    for c in (0.05, 0.15, 0.3):
        ref = float(np.sum(w * stats.norm.cdf((c - M) / T)))
        got = float(pred.cdf(np.array(c)))
        tol = 5 * math.sqrt(ref * (1 - ref) / 4000) + 1e-3
        assert got == pytest.approx(ref, abs=tol), c
        assert np.mean(draws["theta_new"] <= c) == pytest.approx(ref, abs=2 * tol), c
