"""Bias-adjustment priors with cited sources and the bias-shift model (issue #14 item 4).

Independent sources: the published tables (typed below from the papers: Savović et al. 2018, ROBES,
Table 5; Savović et al. 2012 as tabulated in Page et al. 2016, Table 3), dense linear algebra
(scipy's multivariate normal density, numpy's solve) and scipy's quad over tau and mu. Data are
SIMULATED-free: small invented numbers, no trial data.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

import ketabayes as kb
from ketabayes.errors import DataError, KetabayesError, PriorError
from ketabayes.inference.bias_adjusted import fit_bias_shift
from ketabayes.inference.bma_quadrature import fit_quadrature
from ketabayes.model.bias_priors import BRANDO_2012, ROBES_2018, BiasPrior, bias_prior_table, meta_epidemiological_prior
from ketabayes.model.priors import HalfNormal, Normal

Y = np.array([-0.42, -0.10, -0.65, 0.05, -0.30, -0.55])
V = np.array([0.040, 0.090, 0.060, 0.030, 0.050, 0.120])
X = np.array([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])


# ------------------------------------------------------------------------------------------- cited numbers

# Savović et al. (2018) Am J Epidemiol 187:1113-1122, Table 5 (model B): ROR (95% CrI), kappa, phi
ROBES_PRINTED = {
    ("sequence_generation", "all"): (0.95, 0.88, 1.03, 0.08, 0.11),
    ("sequence_generation", "subjective"): (0.94, 0.84, 1.04, 0.08, 0.11),
    ("allocation_concealment", "all"): (0.96, 0.88, 1.03, 0.06, 0.07),
    ("allocation_concealment", "mortality"): (0.92, 0.74, 1.13, 0.11, 0.15),
    ("blinding", "all"): (0.88, 0.81, 0.94, 0.10, 0.12),
    ("blinding", "objective"): (0.95, 0.79, 1.12, 0.09, 0.10),
    ("blinding", "subjective"): (0.84, 0.75, 0.95, 0.17, 0.19),
    ("incomplete_outcome_data", "all"): (1.01, 0.94, 1.09, 0.07, 0.07),
}
# Savović et al. (2012) BRANDO, multivariable, in Page et al. (2016) PLoS One 11:e0159267, Table 3
BRANDO_PRINTED = {
    ("sequence_generation", "all"): (0.90, 0.82, 0.99, 0.06, 0.05),
    ("allocation_concealment", "subjective"): (0.82, 0.70, 0.94, 0.08, 0.07),
}


@pytest.mark.parametrize(("key", "printed"), list(ROBES_PRINTED.items()))
def test_robes_numbers_as_published(key, printed):
    ror, lo, hi, kappa, phi = printed
    row = ROBES_2018[key]
    assert (row[0], row[1], row[2], row[3], row[6]) == printed
    p = meta_epidemiological_prior(*key)
    # the derivation, by hand: exaggeration -log(ROR); predictive sd sqrt(se^2 + phi^2), se from the 95% CrI
    se = (math.log(hi) - math.log(lo)) / (2 * 1.959964)
    assert p.mean == pytest.approx(-math.log(ror), abs=1e-12)
    assert p.sd == pytest.approx(math.sqrt(se**2 + phi**2), rel=1e-6)
    assert p.kappa == kappa and p.scale == "log OR" and p.levels == ("high", "unclear")
    assert "Am J Epidemiol 187:1113-1122, Table 5" in p.source and p.doi == "10.1093/aje/kwx344"


@pytest.mark.parametrize(("key", "printed"), list(BRANDO_PRINTED.items()))
def test_brando_numbers_as_tabulated_by_page_2016(key, printed):
    row = BRANDO_2012[key]
    assert (row[0], row[1], row[2], row[3], row[6]) == printed
    assert "Page et al. 2016" in meta_epidemiological_prior(*key, source="BRANDO 2012").source


def test_blinding_subjective_prior_worked_example():
    # ROR 0.84 (0.75 to 0.95), phi 0.19: mean = 0.17435, se = 0.060305, sd = 0.199341 (computed by hand)
    p = meta_epidemiological_prior("rob_blinding_participants_personnel", "subjective")
    assert p.mean == pytest.approx(0.174353, abs=1e-6)
    assert p.sd == pytest.approx(0.199341, abs=1e-6)
    assert p.shift("lower") == -p.mean and p.shift("higher") == p.mean   # towards benefit either way
    tab = bias_prior_table()
    assert len(tab) == len(ROBES_2018) and set(tab["outcome"]) == {"all", "mortality", "objective", "subjective"}


def test_priors_refused_where_not_published():
    with pytest.raises(PriorError, match="no estimate for domain 'selective_reporting'"):
        meta_epidemiological_prior("selective_reporting")
    with pytest.raises(PriorError, match="no estimate.*blinding"):
        meta_epidemiological_prior("blinding", source="BRANDO 2012")
    with pytest.raises(PriorError, match="MD scale, for which no published conversion"):
        meta_epidemiological_prior("blinding").check_measure("MD")
    meta_epidemiological_prior("blinding").check_measure("OR")
    BiasPrior(2.0, 1.0).check_measure("MD")                      # on the analysis scale: fine
    with pytest.raises(PriorError, match=">= 0"):
        BiasPrior(0.1, -1.0)


# ------------------------------------------------------------------------------------------- the engine


def _cov(tau, s, kappa):
    return np.diag(V + tau**2 + kappa**2 * X**2) + s**2 * np.outer(X, X)


def test_fixed_effect_log_ml_and_posterior_against_dense_algebra():
    m, s, kappa, m0, s0 = -0.15, 0.2, 0.1, 0.0, 1.0
    f = fit_bias_shift(Y, V, X, shift_mean=m, shift_sd=s, kappa=kappa, prior_mu=Normal(m0, s0), prior_tau=None)
    c = _cov(0.0, s, kappa)
    ref = stats.multivariate_normal(m0 + m * X, c + s0**2).logpdf(Y)
    assert f.log_ml == pytest.approx(ref, abs=1e-12)
    # GLS posterior of mu by numpy.linalg.solve (no Sherman-Morrison)
    one = np.ones_like(Y)
    ci1, cir = np.linalg.solve(c, one), np.linalg.solve(c, Y - m * X)
    prec = one @ ci1 + 1 / s0**2
    assert f.mu.mean == pytest.approx((one @ cir + m0 / s0**2) / prec, abs=1e-12)
    assert f.mu.sd == pytest.approx(prec**-0.5, abs=1e-12)
    h0 = fit_bias_shift(Y, V, X, shift_mean=m, shift_sd=s, kappa=kappa, prior_mu=None, prior_tau=None)
    assert h0.log_ml == pytest.approx(stats.multivariate_normal(m * X, c).logpdf(Y), abs=1e-12)


def test_random_effects_log_ml_and_posterior_mean_against_quad():
    m, s, kappa, pt = -0.15, 0.2, 0.1, HalfNormal(0.3)
    f = fit_bias_shift(Y, V, X, shift_mean=m, shift_sd=s, kappa=kappa, prior_mu=Normal(0, 1), prior_tau=pt)

    def ml(t):
        return math.exp(stats.multivariate_normal(m * X, _cov(t, s, kappa) + 1.0).logpdf(Y)) * stats.halfnorm.pdf(t, 0, 0.3)

    def mean_given_tau(t):
        c = _cov(t, s, kappa)
        one = np.ones_like(Y)
        return (one @ np.linalg.solve(c, Y - m * X)) / (one @ np.linalg.solve(c, one) + 1.0)

    z = integrate.quad(ml, 0, 3, epsabs=1e-14, epsrel=1e-11)[0]
    assert f.log_ml == pytest.approx(math.log(z), abs=1e-7)
    post_mean = integrate.quad(lambda t: ml(t) * mean_given_tau(t), 0, 3, epsabs=1e-14, epsrel=1e-11)[0] / z
    assert f.mu.mean == pytest.approx(post_mean, abs=1e-7)


def test_directional_prior_against_quad_over_mu():
    m, s = -0.15, 0.2
    f = fit_bias_shift(Y, V, X, shift_mean=m, shift_sd=s, prior_mu=Normal(0, 0.5), prior_tau=None, mu_sign=-1)
    c = _cov(0.0, s, 0.0)

    def g(mu):   # N(0, 0.5) truncated to mu <= 0: density 2 phi(mu; 0, 0.5)
        return math.exp(stats.multivariate_normal(mu + m * X, c).logpdf(Y)) * 2 * stats.norm.pdf(mu, 0, 0.5)

    z = integrate.quad(g, -6, 0, epsabs=1e-15, epsrel=1e-11)[0]
    assert f.log_ml == pytest.approx(math.log(z), abs=1e-8)
    assert float(f.mu.cdf(np.array(0.0))) == pytest.approx(1.0)


def test_known_bias_without_shared_part_equals_the_conjugate_adjusted_data():
    # sd = 0: every trial at high risk is shifted by m with its own variance kappa^2 -- the conjugate
    # normal-normal model on y - m x with v + kappa^2 x (closed form for the fixed-effect posterior)
    m, kappa, s0 = -0.2, 0.15, 2.0
    f = fit_bias_shift(Y, V, X, shift_mean=m, shift_sd=0.0, kappa=kappa, prior_mu=Normal(0, s0), prior_tau=None)
    ya, va = Y - m * X, V + kappa**2 * X
    w = 1 / va
    assert f.mu.mean == pytest.approx((w @ ya) / (w.sum() + 1 / s0**2), abs=1e-12)
    assert f.mu.sd == pytest.approx((w.sum() + 1 / s0**2) ** -0.5, abs=1e-12)
    g = fit_quadrature(ya, va, prior_mu=Normal(0, s0), prior_tau=HalfNormal(0.3))
    h = fit_bias_shift(Y, V, X, shift_mean=m, shift_sd=0.0, kappa=kappa, prior_mu=Normal(0, s0),
                       prior_tau=HalfNormal(0.3))
    assert h.log_ml == pytest.approx(g.log_ml, abs=1e-9) and h.mu.mean == pytest.approx(g.mu.mean, abs=1e-9)


def test_elicited_biases_are_turner_adjusted_data():
    df = pd.DataFrame({"study": list("ABCDEF"), "yi": Y, "vi": V, "bias_mean": -0.1 * X, "bias_sd": 0.2 * X})
    adj = kb.adjust_for_elicited_bias(df)
    np.testing.assert_allclose(adj["yi"], Y + 0.1 * X)
    np.testing.assert_allclose(adj["vi"], V + 0.04 * X)
    assert adj["yi_unadjusted"].tolist() == Y.tolist() and df["yi"].tolist() == Y.tolist()   # caller's data kept
    # the fixed-effect normal-normal posterior on the adjusted data: closed form
    res = kb.RandomEffectsModel(adj, prior_mu="normal(0, 1)", fixed=True).fit(method="exact", mcid=0.1,
                                                                              benefit="lower")
    w = 1 / (V + 0.04 * X)
    prec = w.sum() + 1.0
    assert res.marginal("mean").mean == pytest.approx((w @ (Y + 0.1 * X)) / prec, abs=1e-9)
    assert res.marginal("mean").sd == pytest.approx(prec**-0.5, abs=1e-9)
    with pytest.raises(DataError, match="expected a number >= 0") as err:
        kb.adjust_for_elicited_bias(df.assign(bias_sd=[0.1, -0.1, 0, 0, 0, 0]))
    assert err.value.study == "B" and err.value.column == "bias_sd"
    with pytest.raises(DataError) as err:
        kb.adjust_for_elicited_bias(df.assign(bias_mean=[0.1, None, 0, 0, 0, 0]))
    assert err.value.study == "B" and err.value.column == "bias_mean"


# ------------------------------------------------------------------------------------------- kb.bma


def _or_table():
    return pd.DataFrame({"study": list("ABCDEF"), "yi": Y, "vi": V, "measure": "OR",
                         "rob_allocation_concealment": ["high", "low", "Unclear", "low", "low", "high"]})


def test_bma_default_prior_is_robes_for_the_named_domain(tmp_path):
    res = kb.bma(_or_table(), prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", bias="RoB",
                 rob="rob_allocation_concealment", mcid=0.9, benefit="lower", seed=3)
    es = res.settings["engine_settings"]
    assert es["bias_prior"]["label"] == "ROBES 2018: allocation_concealment, all outcomes"
    assert es["rob_high"] == ["high", "unclear"]
    # the RoB model's evidence is the dense multivariate normal density integrated over tau (quad): here FE-H1
    p = meta_epidemiological_prior("allocation_concealment")
    x = np.array([1.0, 0, 1, 0, 0, 1])
    cov = np.diag(V + p.kappa**2 * x) + p.sd**2 * np.outer(x, x) + 1.0
    ref = stats.multivariate_normal(-p.mean * x, cov).logpdf(Y)
    assert res.models.set_index("model").loc["FE-H1-RoB", "log_ml"] == pytest.approx(ref, abs=1e-10)
    back = kb.load_result(res.to_netcdf(tmp_path / "rob.nc"))
    pd.testing.assert_frame_equal(back.models, res.models)
    tab = res.adjustment_table()
    assert tab["analysis"].tolist() == ["unadjusted (models without bias)", "bias-adjusted (models with bias)",
                                        "model-averaged"]
    assert tab["target"].tolist() == ["mean|no bias", "mean|bias", "mean"]
    # the adjusted row is the average over the RoB models only: its mean by hand from the model table
    models = res.models.set_index("model")
    w = models.loc[["FE-H0-RoB", "FE-H1-RoB", "RE-H0-RoB", "RE-H1-RoB"], "post_prob"]
    means = [res.ensemble.fit(lab).mu.mean for lab in w.index]
    assert tab.loc[1, "mean"] == pytest.approx(float(np.dot(w, means) / w.sum()), abs=1e-10)


def test_bma_refuses_silent_or_uncited_bias_priors():
    df = _or_table()
    common = dict(prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", bias="RoB", benefit="lower", seed=1)
    with pytest.raises(PriorError, match="needs prior_rob"):
        kb.bma(df.rename(columns={"rob_allocation_concealment": "rob"}), rob="rob", **common)
    with pytest.raises(PriorError, match="no published conversion"):
        kb.bma(df.assign(measure="MD"), rob="rob_allocation_concealment",
               prior_rob="ROBES 2018:allocation_concealment", **common)
    rob2 = df.assign(rob_allocation_concealment=["high", "low", "some concerns", "low", "low", "high"])
    with pytest.raises(PriorError, match="RoB 2 judgements.*rob_high="):
        kb.bma(rob2, rob="rob_allocation_concealment", **common)
    res = kb.bma(rob2, rob="rob_allocation_concealment", rob_high=("high", "some concerns"), **common)
    assert res.settings["engine_settings"]["rob_high"] == ["high", "some concerns"]
    with pytest.raises(DataError, match="'hgih'"):
        kb.bma(df.assign(rob_allocation_concealment=["hgih", "low", "low", "low", "low", "high"]),
               rob="rob_allocation_concealment", **common)
    elicited = kb.bma(df.assign(measure="MD"), rob="rob_allocation_concealment", prior_rob=kb.BiasPrior(0.1, 0.05),
                      **common)
    assert elicited.settings["engine_settings"]["rob_high"] == ["high"]
    with pytest.raises(KetabayesError, match="adjustment_table needs"):
        kb.bma(df, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)", seed=1).adjustment_table()


def test_compare_decisions_side_by_side():
    df = pd.DataFrame({"study": list("ABCDEF"), "yi": Y, "vi": V, "bias_mean": -0.1 * X, "bias_sd": 0.2 * X})
    fits = {name: kb.RandomEffectsModel(d, prior_mu="normal(0, 1)", fixed=True).fit(mcid=0.1, benefit="lower")
            for name, d in {"unadjusted": df, "adjusted": kb.adjust_for_elicited_bias(df)}.items()}
    tab = kb.compare_decisions(fits)
    assert tab["analysis"].tolist() == ["unadjusted", "adjusted"]
    for name, res in fits.items():
        row = tab.set_index("analysis").loc[name]
        assert row["p_benefit"] == res.decision_table().set_index("target").loc["mean", "p_benefit"]
    # the adjusted trials are moved towards no effect: less probability of benefit beyond the MCID
    assert tab.loc[1, "p_benefit"] < tab.loc[0, "p_benefit"]
    assert set(tab["verdict"]) <= {"probable benefit", "probable harm", "practically no effect", "uncertain"}
