"""Bayesian model averaging (issue #14): checked against closed forms, independent integration and metaBMA."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import ketabayes as kb
from ketabayes.errors import KetabayesError, PriorError
from ketabayes.inference.bma import Ensemble, ModelFit, ensemble_specs, fit_ensemble
from ketabayes.inference.bma_quadrature import TruncatedNormalMixture, fit_quadrature
from ketabayes.inference.bma_selection import WEIGHT_FUNCTIONS, weight_function_logpdf
from ketabayes.inference.exact import ExactNormalNormal
from ketabayes.marginals import PointMass
from ketabayes.model.priors import HalfCauchy, HalfNormal, InvGamma, Normal, StudentT

REF = json.loads((Path(__file__).parent / "reference" / "metabma_towels.json").read_text())
Y = np.array(REF["data"]["logOR"])
SE = np.array(REF["data"]["SE"])
V = SE**2


# ---------------------------------------------------------------- closed forms
def test_fixed_effect_log_ml_is_a_multivariate_normal_density():
    s0 = 0.7
    f1 = fit_quadrature(Y, V, prior_mu=Normal(0.1, s0), prior_tau=None)
    cov = np.diag(V) + s0**2
    assert f1.log_ml == pytest.approx(stats.multivariate_normal(np.full(Y.size, 0.1), cov).logpdf(Y), abs=1e-12)
    f0 = fit_quadrature(Y, V, prior_mu=None, prior_tau=None)
    assert f0.log_ml == pytest.approx(stats.norm.logpdf(Y, 0, SE).sum(), abs=1e-12)
    # posterior of mu: conjugate normal
    prec = (1 / V).sum() + 1 / s0**2
    assert f1.mu.mean == pytest.approx(((Y / V).sum() + 0.1 / s0**2) / prec, abs=1e-12)
    assert f1.mu.sd == pytest.approx(prec**-0.5, abs=1e-12)


def test_random_effects_log_ml_matches_exact_engine_and_dblquad():
    prior_mu, prior_tau = Normal(0, 0.5), HalfNormal(0.3)
    f = fit_quadrature(Y, V, prior_mu=prior_mu, prior_tau=prior_tau)
    assert f.log_ml == pytest.approx(ExactNormalNormal(Y, V, prior_mu, prior_tau).log_evidence, abs=1e-8)

    def integrand(mu, tau):
        return math.exp(stats.norm.logpdf(Y, mu, np.sqrt(V + tau**2)).sum() + stats.norm.logpdf(mu, 0, 0.5)
                        + stats.halfnorm.logpdf(tau, scale=0.3))

    val, _ = integrate.dblquad(integrand, 0, 3, -3, 3, epsabs=1e-13, epsrel=1e-10)
    assert f.log_ml == pytest.approx(math.log(val), abs=1e-6)


def test_pet_log_ml_matches_independent_double_integral():
    """PET: mu integrated by the multivariate normal density (with s0^2 11'), tau and beta by scipy's dblquad."""
    s0 = 0.5
    f = fit_quadrature(Y, V, prior_mu=Normal(0, s0), prior_tau=HalfNormal(0.3), x=SE, prior_beta=HalfCauchy(1.0),
                       beta_sign=1)

    def integrand(beta, tau):
        cov = np.diag(V + tau**2) + s0**2
        return math.exp(stats.multivariate_normal(beta * SE, cov).logpdf(Y) + stats.halfnorm.logpdf(tau, scale=0.3)
                        + stats.halfcauchy.logpdf(beta))

    val = sum(integrate.dblquad(integrand, 0, 2.5, a, b, epsabs=1e-13, epsrel=1e-6)[0]
              for a, b in ((0, 2), (2, 20), (20, 400)))
    assert f.log_ml == pytest.approx(math.log(val), abs=1e-4)


def test_peese_fixed_no_effect_one_dimensional():
    f = fit_quadrature(Y, V, prior_mu=None, prior_tau=None, x=V, prior_beta=HalfCauchy(5.0), beta_sign=-1)
    g = lambda b: math.exp(stats.norm.logpdf(Y, -b * V, SE).sum() + stats.halfcauchy.logpdf(b, scale=5.0))  # noqa: E731
    val = sum(integrate.quad(g, a, b, epsabs=1e-15, epsrel=1e-11)[0] for a, b in ((0, 5), (5, 100), (100, np.inf)))
    assert f.log_ml == pytest.approx(math.log(val), abs=1e-7)
    assert np.all(f.beta_nodes < 0)


def test_truncated_normal_mixture_against_scipy():
    m = TruncatedNormalMixture([0.3, 0.7], [0.2, -0.1], [0.1, 0.3], sign=1)
    a = [stats.truncnorm((0 - mu) / s, np.inf, loc=mu, scale=s) for mu, s in ((0.2, 0.1), (-0.1, 0.3))]
    x = np.array([0.05, 0.2, 0.5])
    assert np.allclose(m.cdf(x), 0.3 * a[0].cdf(x) + 0.7 * a[1].cdf(x), atol=1e-13)
    assert m.mean == pytest.approx(0.3 * a[0].mean() + 0.7 * a[1].mean(), abs=1e-12)
    second = 0.3 * (a[0].var() + a[0].mean() ** 2) + 0.7 * (a[1].var() + a[1].mean() ** 2)
    assert m.sd == pytest.approx(math.sqrt(second - m.mean**2), abs=1e-12)
    q = m.ppf(np.array([0.1, 0.5, 0.9]))
    assert np.allclose(m.cdf(q), [0.1, 0.5, 0.9], atol=1e-10)
    neg = TruncatedNormalMixture([1.0], [0.1], [0.2], sign=-1)
    ref = stats.truncnorm(-np.inf, (0 - 0.1) / 0.2, loc=0.1, scale=0.2)
    assert neg.mean == pytest.approx(ref.mean(), abs=1e-12)
    assert float(neg.cdf(np.array(-0.1))) == pytest.approx(ref.cdf(-0.1), abs=1e-13)


# ---------------------------------------------------------------- published: metaBMA vignette (towels)
@pytest.fixture(scope="module")
def towels():
    df = pd.DataFrame({"study": REF["data"]["study"], "yi": Y, "sei": SE})
    return kb.bma(df, prior_mu="normal(0, 0.3)", prior_tau="halfcauchy(0.3)", mu_truncation="positive",
                  benefit="higher", mcid=0.1, measure="OR", seed=1)


def test_metabma_towels_log_ml_and_bayes_factors(towels):
    p = REF["printed"]
    tab = towels.models.set_index("model")
    names = {"fixed_H0": "FE-H0", "fixed_H1": "FE-H1", "random_H0": "RE-H0", "random_H1": "RE-H1"}
    for theirs, ours in names.items():
        assert tab.loc[ours, "log_ml"] == pytest.approx(p["logml"][theirs], abs=0.005)
        assert tab.loc[ours, "post_prob"] == pytest.approx(p["post_prob"][theirs], abs=5e-5)
    lml = tab["log_ml"]
    assert math.exp(lml["FE-H1"] - lml["FE-H0"]) == pytest.approx(p["bf"]["fixed_H1_vs_fixed_H0"], abs=0.005)
    assert math.exp(lml["RE-H1"] - lml["RE-H0"]) == pytest.approx(p["bf"]["random_H1_vs_random_H0"], abs=5e-4)
    assert math.exp(lml["FE-H1"] - lml["RE-H1"]) == pytest.approx(p["bf"]["fixed_H1_vs_random_H1"], abs=5e-4)
    assert math.exp(lml["RE-H0"] - lml["FE-H0"]) == pytest.approx(p["bf"]["random_H0_vs_fixed_H0"], abs=0.005)
    inc = towels.inclusion_bf("effect")
    assert inc["bf"] == pytest.approx(p["inclusion_bf_effect"], abs=5e-4)
    assert inc["post_prob"] == pytest.approx(p["inclusion_post_prob_effect"], abs=5e-4)
    assert inc["log_bf_se"] == 0.0


def test_metabma_towels_posteriors(towels):
    p = REF["printed"]
    fe = towels.marginal("mean|model=FE-H1")
    q = fe.ppf(np.array([0.025, 0.5, 0.975]))
    assert fe.mean == pytest.approx(p["fixed_posterior_d"]["mean"], abs=5e-4)
    assert fe.sd == pytest.approx(p["fixed_posterior_d"]["sd"], abs=5e-4)
    assert np.allclose(q, [p["fixed_posterior_d"][k] for k in ("q2.5", "q50", "q97.5")], atol=5e-4)
    avg = towels.marginal("mean|effect")  # metaBMA's "averaged" (from Stan draws: Monte-Carlo error ~0.003)
    q = avg.ppf(np.array([0.025, 0.5, 0.975]))
    ref = p["averaged_posterior_d_mcmc"]
    assert avg.mean == pytest.approx(ref["mean"], abs=0.003)
    assert avg.sd == pytest.approx(ref["sd"], abs=0.003)
    assert np.allclose(q, [ref["q2.5"], ref["q50"], ref["q97.5"]], atol=0.006)


# ---------------------------------------------------------------- decisions with a point mass at 0
def test_decision_table_counts_point_mass_as_no_effect():
    """FE-only ensemble (prior 0 on RE): every number from the conjugate closed form."""
    df = pd.DataFrame({"yi": Y, "vi": V})
    s0 = 0.5
    res = kb.bma(df, prior_mu=f"normal(0, {s0})", prior_tau="halfnormal(0.3)", prior_probs=[0.5, 0.5, 0, 0],
                 benefit="higher", mcid=0.1, seed=3)
    l0 = stats.norm.logpdf(Y, 0, SE).sum()
    l1 = stats.multivariate_normal(np.zeros(Y.size), np.diag(V) + s0**2).logpdf(Y)
    q1 = 1 / (1 + math.exp(l0 - l1))
    prec = (1 / V).sum() + 1 / s0**2
    post = stats.norm((Y / V).sum() / prec, prec**-0.5)
    row = res.decision_table(targets=["mean"]).iloc[0]
    assert row["p_benefit"] == pytest.approx(q1 * post.sf(0.1), abs=1e-10)
    assert row["p_trivial"] == pytest.approx((1 - q1) + q1 * (post.cdf(0.1) - post.cdf(-0.1)), abs=1e-10)
    assert row["p_any_benefit"] == pytest.approx(q1 * post.sf(0.0), abs=1e-10)
    low = res.decision_table(benefit="lower", targets=["mean"]).iloc[0]
    assert low["p_any_benefit"] == pytest.approx(q1 * post.cdf(0.0), abs=1e-10)  # the atom at 0 is not a benefit
    assert res.inclusion_bf("effect")["bf"] == pytest.approx(math.exp(l1 - l0), rel=1e-10)


def test_inclusion_bf_mc_error_by_finite_differences():
    """Delta-method log_bf_se against numerical derivatives of log BF with respect to each log marginal likelihood."""
    specs = ensemble_specs(bias="2s.05")
    lml = np.array([-5.0, -4.0, -4.5, -4.2, -3.9, -4.4, -4.1, -4.0])
    se = np.array([0, 0.05, 0, 0.1, 0, 0.02, 0, 0.2])

    def fits(l):
        return [ModelFit(s, float(a), float(b), PointMass(0), PointMass(0)) for s, a, b in zip(specs, l, se)]

    ens = Ensemble(fits(lml))
    for comp in ("effect", "heterogeneity", "bias"):
        h = 1e-6
        grad = [(Ensemble(fits(lml + h * np.eye(8)[k])).inclusion_bf(comp)["log_bf"]
                 - Ensemble(fits(lml - h * np.eye(8)[k])).inclusion_bf(comp)["log_bf"]) / (2 * h) for k in range(8)]
        assert ens.inclusion_bf(comp)["log_bf_se"] == pytest.approx(float(np.sqrt(np.sum((np.array(grad) * se) ** 2))),
                                                                     rel=1e-6)
        prior = np.array([s.prior_prob for s in specs])
        has = np.array([{"effect": s.effect, "heterogeneity": s.heterogeneity, "bias": s.bias != "none"}[comp]
                        for s in specs])
        w = prior * np.exp(lml)
        bf = (w[has].sum() / w[~has].sum()) / (prior[has].sum() / prior[~has].sum())
        assert ens.inclusion_bf(comp)["bf"] == pytest.approx(bf, rel=1e-12)


def test_default_prior_probabilities_follow_robma():
    specs = ensemble_specs(bias="robma")
    assert len(specs) == 36
    p = {s.label: s.prior_prob for s in specs}
    assert sum(p.values()) == pytest.approx(1.0, abs=1e-14)
    assert p["RE-H1"] == pytest.approx(0.125)
    assert p["RE-H1-PET"] == pytest.approx(0.125 / 4)
    assert p["FE-H0-2s.05"] == pytest.approx(0.125 / 12)


# ---------------------------------------------------------------- selection likelihood
@pytest.mark.parametrize("name", list(WEIGHT_FUNCTIONS))
@pytest.mark.parametrize("sign", [1, -1])
def test_weighted_normal_is_a_density(name, sign):
    wf = WEIGHT_FUNCTIONS[name]
    omega = np.linspace(1.0, 0.2, wf.n_weights)
    se, mu, tau = 0.3, 0.2, 0.15

    def dens(y):
        return math.exp(weight_function_logpdf(np.array([y]), np.array([se]), mu, tau, omega, wf, sign))

    cuts = sorted({sign * se * special.ndtri(1 - c) for c in wf.steps} | {-sign * se * special.ndtri(1 - c / 2)
                                                                          for c in wf.steps} | {0.0})
    pts = [-np.inf, *cuts, np.inf]
    total = sum(integrate.quad(dens, a, b, epsabs=1e-13)[0] for a, b in zip(pts[:-1], pts[1:]))
    assert total == pytest.approx(1.0, abs=1e-9)
    # omega all one: the plain normal likelihood
    ll = weight_function_logpdf(Y, SE, mu, tau, np.ones(wf.n_weights), wf, sign)
    assert ll == pytest.approx(stats.norm.logpdf(Y, mu, np.sqrt(V + tau**2)).sum(), abs=1e-12)


# ---------------------------------------------------------------- result contract, saving, errors, plots
def test_result_round_trip_and_contract(tmp_path, towels):
    path = towels.to_netcdf(tmp_path / "bma.nc")
    back = kb.load_result(path)
    assert type(back).__name__ == "BMAResult"
    pd.testing.assert_frame_equal(back.decision_table(), towels.decision_table())
    pd.testing.assert_frame_equal(back.models, towels.models)
    d = back.to_dict()
    assert {"models", "inclusion", "estimates"} <= set(d)
    assert set(towels.summary()["target"]) >= {"tau", "mean", "mean|effect", "mean|model=RE-H1"}
    assert "BF_incl(effect)" in towels._repr_html_()


def test_pet_peese_ensemble_round_trip(tmp_path):
    df = pd.DataFrame({"yi": Y, "vi": V})
    res = kb.bma(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", bias="PET", seed=2, mcid=0.1)
    assert len(res.models) == 8 and set(res.models["bias"]) == {"none", "PET"}
    back = kb.load_result(res.to_netcdf(tmp_path / "pp.nc"))
    pd.testing.assert_frame_equal(back.decision_table(), res.decision_table())
    assert res.inclusion_bf("bias")["prior_prob"] == pytest.approx(0.5)


def test_errors():
    df = pd.DataFrame({"yi": Y, "vi": V})
    with pytest.raises(PriorError, match="proper prior for mu"):
        kb.bma(df, prior_mu="flat()", prior_tau="halfnormal(0.5)")
    with pytest.raises(PriorError, match="unknown bias model"):
        kb.bma(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", bias="trimfill")
    with pytest.raises(PriorError, match="4 non-negative numbers"):
        kb.bma(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", prior_probs=[1, 2])
    with pytest.raises(KetabayesError):
        kb.bma(df.assign(vi=-1.0), prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)")
    res = kb.bma(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", seed=1)
    with pytest.raises(KetabayesError, match="unknown target"):
        res.marginal("mean|model=XX")
    with pytest.raises(KetabayesError, match="no selection models"):
        kb.plot_weight_function(res)


def test_plots(towels):
    import matplotlib.pyplot as plt

    fig = kb.plot_bma_mean(towels)        # every ketabayes plot returns its Figure
    assert len(fig.axes[0].lines) >= 2
    fig2 = kb.plot_model_probabilities(towels)
    assert len(fig2.axes[0].patches) == 8
    plt.close("all")


# ---------------------------------------------------------------- SMC (slow)
@pytest.mark.slow
def test_smc_agrees_with_quadrature_on_the_normal_ensemble():
    from ketabayes.inference.bma_selection import fit_smc

    for pm_, pt_ in ((Normal(0, 0.5), HalfNormal(0.3)), (None, HalfNormal(0.3)), (Normal(0, 0.5), None)):
        q = fit_quadrature(Y, V, prior_mu=pm_, prior_tau=pt_)
        s = fit_smc(Y, V, prior_mu=pm_, prior_tau=pt_, wf=None, draws=1000, chains=4, seed=11)
        assert abs(s.log_ml - q.log_ml) < 4 * s.log_ml_se + 0.02


@pytest.mark.slow
def test_smc_selection_model_against_quadrature():
    """FE, no effect, one-sided .05 weight function: one free weight, integrated by scipy's quad."""
    from ketabayes.inference.bma_selection import fit_smc

    wf = WEIGHT_FUNCTIONS["1s.05"]
    g = lambda e: math.exp(weight_function_logpdf(Y, SE, 0.0, 0.0, [1.0, e], wf, 1))  # noqa: E731  Dirichlet(1,1)
    ref = math.log(integrate.quad(g, 0, 1, epsabs=1e-15)[0])
    s = fit_smc(Y, V, prior_mu=None, prior_tau=None, wf=wf, draws=1000, chains=4, seed=5)
    assert abs(s.log_ml - ref) < 4 * s.log_ml_se + 0.02


def test_cli_analyse_bma_json(tmp_path):
    """``ketabayes analyse --bma --json``: the model table's FE log marginal likelihoods against closed forms."""
    from click.testing import CliRunner

    from ketabayes.cli import main

    csv = tmp_path / "towels.csv"
    pd.DataFrame({"study": [f"S{i}" for i in range(Y.size)], "yi": Y, "sei": SE}).to_csv(csv, index=False)
    out = tmp_path / "bma.json"
    r = CliRunner().invoke(main, ["analyse", str(csv), "--bma", "--prior-mu", "normal(0, 0.5)", "--prior-tau",
                                  "halfnormal(0.3)", "--mcid", "0.1", "--benefit", "higher", "--json", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    models = {m["model"]: m for m in d["models"]}
    assert models["FE-H0"]["log_ml"] == pytest.approx(stats.norm.logpdf(Y, 0, SE).sum(), abs=1e-10)
    assert models["FE-H1"]["log_ml"] == pytest.approx(
        stats.multivariate_normal(np.zeros(Y.size), np.diag(V) + 0.25).logpdf(Y), abs=1e-10)
    assert {e["target"] for e in d["estimates"]} == {"mean", "mean|effect", "predictive"}
    assert "Inclusion Bayes factors" in r.output
    bad = CliRunner().invoke(main, ["analyse", str(csv), "--bias", "PET"])
    assert bad.exit_code != 0 and "--bias needs --bma" in bad.output


# ---------------------------------------------------------------- published: RoBMA / Bartoš et al. 2021 (Poulsen 2006)
POUL = json.loads((Path(__file__).parent / "reference" / "robma_poulsen2006.json").read_text())


@pytest.mark.slow
def test_student_t_prior_log_ml_against_dblquad():
    y, se = np.array(POUL["data"]["d"]), np.array(POUL["data"]["se"])
    pm_, pt_ = StudentT(5, 0, 0.51), InvGamma(1.79, 0.28)
    f = fit_quadrature(y, se**2, prior_mu=pm_, prior_tau=pt_)

    def integrand(mu, tau):
        return math.exp(stats.norm.logpdf(y, mu, np.sqrt(se**2 + tau**2)).sum() + stats.t.logpdf(mu, 5, 0, 0.51)
                        + stats.invgamma.logpdf(tau, 1.79, scale=0.28))

    val = sum(integrate.dblquad(integrand, a, b, -2, 4, epsabs=1e-14, epsrel=1e-10)[0] for a, b in ((0, 1), (1, 30)))
    assert f.log_ml == pytest.approx(math.log(val), abs=1e-6)
    f_fe = fit_quadrature(y, se**2, prior_mu=pm_, prior_tau=None)
    g = lambda mu: math.exp(stats.norm.logpdf(y, mu, se).sum() + stats.t.logpdf(mu, 5, 0, 0.51))  # noqa: E731
    assert f_fe.log_ml == pytest.approx(math.log(integrate.quad(g, -2, 4, epsabs=1e-15, points=[1.1])[0]), abs=1e-9)


def test_robma_poulsen2006_informed_bma():
    """Bartoš et al. (2021) dentine hypersensitivity: BF10 = 218.53, BF_rf = 3.52, mu = 1.082 [0.686, 1.412]."""
    y, se = np.array(POUL["data"]["d"]), np.array(POUL["data"]["se"])
    ens = fit_ensemble(y, se**2, prior_mu=StudentT(5, 0, 0.51), prior_tau=InvGamma(1.79, 0.28))
    paper, vig = POUL["paper"], POUL["vignette_mcmc"]
    bf = ens.inclusion_bf("effect")["bf"]
    # the two published values differ by RoBMA's bridge-sampling error (0.5%); ours must lie within 1% of both
    assert bf == pytest.approx(paper["bf_effect"], rel=0.01) and bf == pytest.approx(vig["bf_effect"], rel=0.01)
    bf_rf = ens.inclusion_bf("heterogeneity")["bf"]
    assert bf_rf == pytest.approx(paper["bf_heterogeneity"], rel=0.01)
    assert bf_rf == pytest.approx(vig["bf_heterogeneity"], rel=0.01)
    cond = ens.averaged("mu", "effect")
    assert cond.mean == pytest.approx(paper["conditional_mu"]["mean"], abs=0.002)
    q = cond.ppf(np.array([0.025, 0.5, 0.975]))
    assert q[1] == pytest.approx(vig["conditional_mu"]["median"], abs=0.003)
    # the 2.5% quantiles printed (0.686 paper, 0.701 vignette) differ by 0.015 (MCMC error of a tail quantile);
    # ours (0.676) is exact: checked against a brute-force grid in test_student_t_posterior_against_brute_force_grid
    assert q[0] == pytest.approx(paper["conditional_mu"]["q2.5"], abs=0.012)
    assert q[2] == pytest.approx(paper["conditional_mu"]["q97.5"], abs=0.012)
    assert q[2] == pytest.approx(vig["conditional_mu"]["q97.5"], abs=0.012)
    avg = ens.averaged("mu")
    assert avg.mean == pytest.approx(vig["averaged_mu"]["mean"], abs=0.003)


def test_student_t_posterior_against_brute_force_grid():
    """Conditional posterior of mu (FE-H1 + RE-H1) by a plain 2-D trapezoid grid over (mu, tau)."""
    y, se = np.array(POUL["data"]["d"]), np.array(POUL["data"]["se"])
    ens = fit_ensemble(y, se**2, prior_mu=StudentT(5, 0, 0.51), prior_tau=InvGamma(1.79, 0.28))
    mu = np.linspace(-1.0, 3.0, 1601)
    tau = np.linspace(1e-9, 5.0, 2501)
    lp_mu = stats.t.logpdf(mu, 5, 0, 0.51)
    fe = np.exp(stats.norm.logpdf(y[None, :], mu[:, None], se).sum(1) + lp_mu)
    sd = np.sqrt(se**2 + tau[:, None] ** 2)
    re = np.array([np.trapezoid(np.exp(stats.norm.logpdf(y, m, sd).sum(1) + stats.invgamma.logpdf(tau, 1.79, scale=0.28)),
                                tau) for m in mu]) * np.exp(lp_mu)
    z_fe, z_re = np.trapezoid(fe, mu), np.trapezoid(re, mu)
    lml = ens.models().set_index("model")["log_ml"]
    assert lml["FE-H1"] == pytest.approx(math.log(z_fe), abs=1e-5)
    assert lml["RE-H1"] == pytest.approx(math.log(z_re), abs=1e-4)
    dens = fe + re                       # equal prior model probabilities: the sum is the mixture
    c = integrate.cumulative_trapezoid(dens, mu, initial=0.0)
    c /= c[-1]
    ref_q = np.interp([0.025, 0.5, 0.975], c, mu)
    cond = ens.averaged("mu", "effect")
    assert np.allclose(cond.ppf(np.array([0.025, 0.5, 0.975])), ref_q, atol=1e-3)
    assert cond.mean == pytest.approx(np.trapezoid(mu * dens, mu) / np.trapezoid(dens, mu), abs=1e-4)


# ---------------------------------------------------------------- risk of bias
def test_risk_of_bias_shift_model(tmp_path):
    """FE-H1-RoB: y ~ N(mu + delta x, v), delta < 0 (benefit lower); mu by the MVN density, delta by scipy's quad."""
    x = np.array([1, 0, 0, 1, 0, 1, 0], dtype=float)
    df = pd.DataFrame({"study": [f"S{i}" for i in range(7)], "yi": Y, "vi": V,
                       "rob": np.where(x == 1, "High", "low")})
    res = kb.bma(df, prior_mu="normal(0, 0.5)", prior_tau="halfnormal(0.3)", bias="RoB", rob="rob",
                 prior_rob="halfnormal(0.4)", benefit="lower", mcid=0.1, seed=1)
    cov = np.diag(V) + 0.25
    g = lambda d: math.exp(stats.multivariate_normal(-d * x, cov).logpdf(Y) + stats.halfnorm.logpdf(d, scale=0.4))  # noqa: E731
    ref = math.log(integrate.quad(g, 0, 5, epsabs=1e-15, epsrel=1e-11)[0])
    tab = res.models.set_index("model")
    assert tab.loc["FE-H1-RoB", "log_ml"] == pytest.approx(ref, abs=1e-7)
    assert res.inclusion_bf("RoB")["prior_prob"] == pytest.approx(0.5)
    back = kb.load_result(res.to_netcdf(tmp_path / "rob.nc"))
    pd.testing.assert_frame_equal(back.models, res.models)
    with pytest.raises(KetabayesError, match="missing risk-of-bias judgement") as err:
        kb.bma(df.assign(rob=[None] + ["low"] * 6), prior_mu="normal(0, 1)", prior_tau="halfnormal(0.3)",
               bias="RoB", rob="rob", prior_rob="halfnormal(0.4)")
    assert err.value.column == "rob" and err.value.study == "S0"
    with pytest.raises(PriorError, match="rob="):   # no rob column given
        kb.bma(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.3)", bias="RoB", prior_rob="halfnormal(0.4)")
    with pytest.raises(PriorError, match="needs prior_rob"):   # no uncited default prior of the bias
        kb.bma(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.3)", bias="RoB", rob="rob")


# ---------------------------------------------------------------- predictive of a new trial (the "predictive" target)
def _re_h1_predictive_cdf(c, s0, st, mu_lower=None, m0=0.0):
    """P(theta_new <= c | y) under RE-H1 with mu ~ N(m0, s0^2) (optionally truncated to mu >= mu_lower) and
    tau ~ half-normal(st), and the model's evidence, by scipy quadrature of the conjugate forms given tau."""
    def given_tau(tau):
        w = 1.0 / (V + tau**2)
        prec = w.sum() + 1.0 / s0**2
        m = ((w * Y).sum() + m0 / s0**2) / prec
        s = prec**-0.5
        # p(y | tau) with mu integrated (normal prior; the truncated one rescales by the posterior/prior half mass)
        cov = np.diag(V + tau**2) + s0**2
        log_ml = stats.multivariate_normal(np.full(Y.size, m0), cov).logpdf(Y)
        if mu_lower is None:
            cdf = stats.norm.cdf(c, m, math.sqrt(s**2 + tau**2))
        else:
            post_mass = stats.norm.sf(mu_lower, m, s)
            log_ml += math.log(post_mass) - math.log(stats.norm.sf(mu_lower, m0, s0))
            # E[Phi((c - mu) / tau)] over mu ~ N(m, s^2) truncated to mu >= mu_lower
            f = lambda mu: stats.norm.pdf(mu, m, s) * stats.norm.cdf((c - mu) / tau) / post_mass  # noqa: E731
            cdf = integrate.quad(f, mu_lower, m + 12 * s, epsabs=1e-14, epsrel=1e-11)[0]
        return math.exp(log_ml) * stats.halfnorm.pdf(tau, scale=st), cdf

    # tau by a composite Gauss-Legendre rule on [0, 3] (the posterior of tau is smooth there)
    x, w = special.roots_legendre(32)
    edges = np.linspace(0.0, 3.0, 6)
    taus = np.concatenate([0.5 * (a + b) + 0.5 * (b - a) * x for a, b in zip(edges[:-1], edges[1:])])
    wts = np.concatenate([0.5 * (b - a) * w for a, b in zip(edges[:-1], edges[1:])])
    vals = np.array([given_tau(t) for t in taus])
    z = wts @ vals[:, 0]
    return (wts @ (vals[:, 0] * vals[:, 1])) / z, z


def test_model_averaged_predictive_against_independent_integration():
    """sum_M p(M | y) P(theta_new <= c | y, M): FE-H0 a spike at 0, FE-H1 the conjugate normal, RE-H0 N(0, tau^2),
    RE-H1 N(m_tau, s_tau^2 + tau^2) -- each integrated over tau by scipy, the evidences too."""
    s0, st = 0.5, 0.3
    df = pd.DataFrame({"yi": Y, "vi": V})
    res = kb.bma(df, prior_mu=f"normal(0, {s0})", prior_tau=f"halfnormal({st})", mcid=0.1, benefit="higher", seed=1)
    m = res.marginal("predictive")
    ev_fe0 = math.exp(stats.norm.logpdf(Y, 0, SE).sum())
    ev_fe1 = math.exp(stats.multivariate_normal(np.zeros(Y.size), np.diag(V) + s0**2).logpdf(Y))
    ev_re0 = integrate.quad(lambda t: math.exp(stats.norm.logpdf(Y, 0, np.sqrt(V + t**2)).sum())
                            * stats.halfnorm.pdf(t, scale=st), 0, 3, epsabs=0, epsrel=1e-11)[0]
    prec = (1 / V).sum() + 1 / s0**2
    m1, s1 = (Y / V).sum() / prec, prec**-0.5
    for c in (-0.1, 0.05, 0.1, 0.3):
        cdf_re1, ev_re1 = _re_h1_predictive_cdf(c, s0, st)
        cdf_re0 = integrate.quad(lambda t, c=c: math.exp(stats.norm.logpdf(Y, 0, np.sqrt(V + t**2)).sum())
                                 * stats.halfnorm.pdf(t, scale=st) * stats.norm.cdf(c / t), 1e-12, 3,
                                 epsabs=0, epsrel=1e-11)[0] / ev_re0
        ev = np.array([ev_fe0, ev_fe1, ev_re0, ev_re1])
        pp = ev / ev.sum()
        ref = pp @ [float(c >= 0), stats.norm.cdf(c, m1, s1), cdf_re0, cdf_re1]
        assert float(m.cdf(np.array(c))) == pytest.approx(ref, abs=1e-7), c
    # the decision table uses it: P(benefit) = P(theta_new > 0.1) for higher-is-better
    row = res.decision_table().set_index("target").loc["predictive"]
    assert row["kind"] == "predictive"
    assert row["p_benefit"] == pytest.approx(1.0 - float(m.cdf(np.array(0.1))), abs=1e-12)
    assert "predictive" in set(res.decision_table()["target"])


def test_grid_convolution_of_a_normal_prior_equals_the_normal_mixture():
    """GridMarginal.convolved (used for non-normal priors of mu) on a normal prior, where the predictive is the
    closed-form mixture sum_j w_j N(m'_j, s'_j^2 + tau_j^2) of the conjugate updates."""
    from ketabayes.inference.bma_quadrature import GridMarginal

    rng = np.random.default_rng(8)
    w, m, s = rng.uniform(0.1, 1, 30), rng.normal(0.2, 0.1, 30), rng.uniform(0.05, 0.15, 30)
    tau = np.repeat(rng.uniform(0.0, 0.4, 10), 3)  # nodes sharing a tau, as in a (tau, beta) grid
    m0, s0 = 0.1, 0.3
    post_var = 1 / (1 / s**2 + 1 / s0**2)
    post_m = post_var * (m / s**2 + m0 / s0**2)
    # N(mu; m, s^2) N(mu; m0, s0^2) = N(m; m0, s^2 + s0^2) N(mu; post_m, post_var): the node weights do not change
    g = GridMarginal.convolved(w, m, s, tau, Normal(m0, s0))
    for c in (-0.1, 0.15, 0.3, 0.6):
        ref = (w / w.sum()) @ stats.norm.cdf(c, post_m, np.sqrt(post_var + tau**2))
        assert float(g.cdf(np.array(c))) == pytest.approx(ref, abs=3e-7)


@pytest.mark.parametrize("prior", ["truncated", pytest.param("studentt", marks=pytest.mark.slow)])
def test_single_model_predictive_under_non_normal_priors(prior):
    """RE-H1 alone: a directional (truncated normal) prior -- exact via bivariate normal CDFs -- and a Student-t
    prior (grid convolution), against scipy integration over tau (and mu)."""
    s0, st = 0.5, 0.3
    df = pd.DataFrame({"yi": Y, "vi": V})
    if prior == "truncated":
        res = kb.bma(df, prior_mu=f"normal(0, {s0})", prior_tau=f"halfnormal({st})", mu_truncation="positive",
                     prior_probs=[0, 0, 0, 1], seed=1)
        m = res.marginal("predictive")
        assert m.exact
        for c in (0.0, 0.3):
            assert float(m.cdf(np.array(c))) == pytest.approx(_re_h1_predictive_cdf(c, s0, st, mu_lower=0.0)[0],
                                                              abs=1e-7)
        return
    res = kb.bma(df, prior_mu="studentt(3, 0, 0.5)", prior_tau=f"halfnormal({st})", prior_probs=[0, 0, 0, 1], seed=1)
    m = res.marginal("predictive")
    t_prior = stats.t(3, 0, 0.5)

    def joint(mu, tau):
        return math.exp(stats.norm.logpdf(Y, mu, np.sqrt(V + tau**2)).sum() + t_prior.logpdf(mu)
                        + stats.halfnorm.logpdf(tau, scale=st))

    z = integrate.dblquad(joint, 0, 3, -2, 2, epsabs=0, epsrel=1e-9)[0]
    for c in (0.0, 0.2):
        num = integrate.dblquad(lambda mu, tau, c=c: joint(mu, tau) * stats.norm.cdf((c - mu) / max(tau, 1e-300)),
                                0, 3, -2, 2, epsabs=0, epsrel=1e-9)[0]
        assert float(m.cdf(np.array(c))) == pytest.approx(num / z, abs=1e-6)


@pytest.mark.slow
def test_pet_predictive_is_the_bias_corrected_effect():
    """RE-H1-PET alone: theta_new = mu + tau z with mu the intercept (the effect at standard error 0); given
    (tau, beta), mu | y is normal -- integrated over tau and beta by scipy's dblquad."""
    s0, st = 0.5, 0.3
    df = pd.DataFrame({"yi": Y, "vi": V})
    probs = [0.0] * 12
    labels = [s.label for s in ensemble_specs(bias="pet-peese")]
    probs[labels.index("RE-H1-PET")] = 1.0
    res = kb.bma(df, prior_mu=f"normal(0, {s0})", prior_tau=f"halfnormal({st})", bias="pet-peese",
                 prior_probs=probs, benefit="higher", seed=1)
    m = res.marginal("predictive")

    def parts(beta, tau, c):
        r = Y - beta * SE
        w = 1.0 / (V + tau**2)
        prec = w.sum() + 1 / s0**2
        mm, s = (w * r).sum() / prec, prec**-0.5
        ev = math.exp(stats.multivariate_normal(beta * SE, np.diag(V + tau**2) + s0**2).logpdf(Y)
                      + stats.halfnorm.logpdf(tau, scale=st) + stats.halfcauchy.logpdf(beta))
        return ev, ev * stats.norm.cdf(c, mm, math.sqrt(s**2 + tau**2))

    ranges = ((0, 2), (2, 20), (20, 400))
    z = sum(integrate.dblquad(lambda b, t: parts(b, t, 0)[0], 0, 2.5, a, bb, epsabs=0, epsrel=1e-7)[0]
            for a, bb in ranges)
    for c in (0.0, 0.2):
        num = sum(integrate.dblquad(lambda b, t, c=c: parts(b, t, c)[1], 0, 2.5, a, bb, epsabs=0, epsrel=1e-7)[0]
                  for a, bb in ranges)
        assert float(m.cdf(np.array(c))) == pytest.approx(num / z, abs=1e-5)


def test_pointwise_likelihoods_of_bias_models():
    """Per-trial log-likelihood under PET (shifted normal) and a selection model (the weighted normal: the
    per-trial terms sum to weight_function_logpdf, itself checked above) at draws of their parameters."""
    from ketabayes.inference import bma_draws
    from ketabayes.inference.bma_selection import weight_function_loglik

    wf = WEIGHT_FUNCTIONS["1s.025.05"]
    rng = np.random.default_rng(4)
    mu, tau = rng.normal(0.2, 0.1, 5), rng.uniform(0, 0.4, 5)
    omega = np.column_stack([np.ones(5), rng.uniform(0.3, 1, 5), rng.uniform(0.05, 0.3, 5)])
    ll = weight_function_loglik(Y, SE, mu, tau, omega, wf, 1)
    for i in range(5):
        assert ll[i].sum() == pytest.approx(weight_function_logpdf(Y, SE, mu[i], tau[i], omega[i], wf, 1), rel=1e-12)
    # PET through the ensemble's draws
    ens = fit_ensemble(Y, V, prior_mu="normal(0, 0.5)", prior_tau="halfnormal(0.3)", bias="PET", benefit="higher")
    d = bma_draws.posterior_draws(ens, 2000, np.random.default_rng(1))
    out = bma_draws.pointwise_loglik(ens, d)
    k = ens.labels.index("RE-H1-PET")
    r = np.flatnonzero(d["model"] == k)[0]
    assert d["beta"][r] > 0
    ref = stats.norm.logpdf(Y, d["mu"][r] + d["beta"][r] * SE, np.sqrt(V + d["tau"][r] ** 2))
    assert out[r] == pytest.approx(ref, rel=1e-12)


def test_models_without_joint_draws_or_predictive_are_reported_not_guessed():
    """An engine that gives marginals only (no quadrature nodes, no particles): no predictive target and no
    joint draws -- the ensemble says so instead of inventing a dependence between mu and tau."""
    from ketabayes.inference import bma_draws

    ens = fit_ensemble(Y, V, prior_mu="normal(0, 0.5)", prior_tau="halfnormal(0.3)", benefit="higher")
    assert ens.has_predictive and bma_draws.can_draw(ens)
    k = ens.labels.index("RE-H1")
    ens.fits[k].quad, ens.fits[k].predictive = None, None
    assert not ens.has_predictive and not bma_draws.can_draw(ens)
    with pytest.raises(NotImplementedError, match="RE-H1"):
        bma_draws.posterior_draws(ens, 100, np.random.default_rng(0))
