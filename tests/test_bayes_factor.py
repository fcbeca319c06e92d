"""Bayes factors for an effect vs no effect, checked against independent algorithms.

Expected values come from (i) the Savage-Dickey density ratio (posterior over
prior density of mu at 0 under H1 -- no marginal likelihood involved), (ii)
brute-force nested adaptive scipy ``quad`` integrals (over mu, then tau) of prior x likelihood, and
(iii) the closed-form Gaussian marginal likelihoods of the fixed-effect model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from ketabayes.decision import Thresholds, decision_probabilities
from ketabayes.errors import PriorError
from ketabayes.inference.bayes_factor import (
    ExactPointNull,
    bayes_factor,
    decision_probabilities_mixed,
    evidence_category,
)
from ketabayes.marginals import MixedMarginal, MixtureMarginal, PointMass
from ketabayes.model.priors import HalfCauchy, HalfNormal, LogNormalTau2, Normal

Y = np.array([-0.40, -0.20, -0.55, 0.10, -0.30])
V = np.array([0.04, 0.09, 0.05, 0.10, 0.06])


def _lik(y, v, mu, tau):
    """prod_i N(y_i; mu, v_i + tau^2) in plain Python (fast inside quad)."""
    out = 1.0
    for yi, vi in zip(y, v):
        s2 = vi + tau * tau
        out *= math.exp(-0.5 * (yi - mu) ** 2 / s2) / math.sqrt(2 * math.pi * s2)
    return out


def _normal_pdf(x, m, s):
    return math.exp(-0.5 * ((x - m) / s) ** 2) / (s * math.sqrt(2 * math.pi))


def _tau_pdf(prior_tau):
    return lambda tau: float(np.exp(prior_tau.logpdf(tau)))


def _z1_dblquad(y, v, prior_mu, prior_tau, mu_hi=np.inf):
    ptau = _tau_pdf(prior_tau)

    def f(mu, tau):
        return _normal_pdf(mu, prior_mu.mu, prior_mu.sigma) * _lik(y, v, mu, tau)

    def inner(tau):
        return ptau(tau) * integrate.quad(f, -np.inf, mu_hi, args=(tau,), epsabs=0, epsrel=1e-11)[0]

    return integrate.quad(inner, 0, np.inf, epsabs=0, epsrel=1e-10, limit=200)[0]


def _z0_quad(y, v, prior_tau):
    ptau = _tau_pdf(prior_tau)
    return integrate.quad(lambda tau: ptau(tau) * _lik(y, v, 0.0, tau), 0, np.inf, epsabs=0, epsrel=1e-12,
                          limit=200)[0]


@pytest.mark.parametrize("prior_tau", [HalfNormal(0.5), HalfCauchy(0.3), LogNormalTau2(-2.56, 1.74)])
@pytest.mark.parametrize("prior_mu", [Normal(0, 1), Normal(-0.2, 0.3)])
def test_bf_matches_savage_dickey(prior_mu, prior_tau):
    # Savage-Dickey: with independent priors, BF01 = p(mu=0 | y, H1) / p(mu=0 | H1)
    bf = bayes_factor(Y, V, prior_mu, prior_tau)
    sd_bf01 = float(bf.h1.mu.pdf(0.0)) / stats.norm.pdf(0.0, prior_mu.mu, prior_mu.sigma)
    assert bf.log_bf10 == pytest.approx(-math.log(sd_bf01), abs=1e-8)


@pytest.mark.parametrize("prior_tau", [HalfNormal(0.5), HalfCauchy(0.3)])
def test_evidences_match_brute_force_integrals(prior_tau):
    prior_mu = Normal(0, 1)
    bf = bayes_factor(Y, V, prior_mu, prior_tau)
    z1 = _z1_dblquad(Y, V, prior_mu, prior_tau)
    z0 = _z0_quad(Y, V, prior_tau)
    assert bf.log_evidence_h1 == pytest.approx(math.log(z1), abs=1e-7)
    assert bf.log_evidence_h0 == pytest.approx(math.log(z0), abs=1e-9)
    assert bf.bf10 == pytest.approx(z1 / z0, rel=1e-7)


def test_fixed_effect_closed_form():
    # y ~ N(m0 1, V + s0^2 11') under H1 and N(0, V) under H0
    prior_mu = Normal(0.1, 0.5)
    bf = bayes_factor(Y, V, prior_mu, None, fixed=True)
    cov1 = np.diag(V) + prior_mu.sigma**2 * np.ones((Y.size, Y.size))
    l1 = stats.multivariate_normal.logpdf(Y, np.full(Y.size, prior_mu.mu), cov1)
    l0 = stats.norm.logpdf(Y, 0.0, np.sqrt(V)).sum()
    assert bf.log_evidence_h1 == pytest.approx(l1, abs=1e-10)
    assert bf.log_evidence_h0 == pytest.approx(l0, abs=1e-12)
    assert isinstance(bf.marginal("mean", "h0"), PointMass)


def test_posterior_model_probabilities():
    bf = bayes_factor(Y, V, Normal(0, 1), HalfNormal(0.5), prior_prob_h1=0.25)
    odds = 0.25 / 0.75 * bf.bf10
    assert bf.post_prob_h1 == pytest.approx(odds / (1 + odds), rel=1e-12)
    assert bf.post_prob_h0 + bf.post_prob_h1 == pytest.approx(1.0)


def test_model_averaged_probability_matches_spike_and_slab_integral():
    # P(mu < lo | y) under the spike-and-slab prior pi0 delta_0 + pi1 N(0,1), by brute force:
    # numerator pi1 * int_{mu<lo} int N(mu) p(tau) L dmu dtau, denominator pi0 Z0 + pi1 Z1
    prior_mu, prior_tau, pi1 = Normal(0, 1), HalfNormal(0.5), 0.5
    th = Thresholds(1.25, "lower", ratio=True)
    lo, hi = th.cuts()

    num_benefit = _z1_dblquad(Y, V, prior_mu, prior_tau, mu_hi=lo)
    num_any = _z1_dblquad(Y, V, prior_mu, prior_tau, mu_hi=0.0)
    z1 = _z1_dblquad(Y, V, prior_mu, prior_tau)
    z0 = _z0_quad(Y, V, prior_tau)
    den = (1 - pi1) * z0 + pi1 * z1
    bf = bayes_factor(Y, V, prior_mu, prior_tau, prior_prob_h1=pi1)
    d = bf.decision_probabilities(th, "mean")
    assert d["p_benefit"] == pytest.approx(pi1 * num_benefit / den, abs=1e-7)
    # the H0 point mass at 0 is "practically no effect", never "any benefit"
    assert d["p_any_benefit"] == pytest.approx(pi1 * num_any / den, abs=1e-7)
    assert d["p_benefit"] + d["p_trivial"] + d["p_harm"] == pytest.approx(1.0, abs=1e-12)
    # the averaged marginal's CDF jumps by P(H0 | y) at 0
    m = bf.marginal("mean")
    jump = float(m.cdf(0.0) - m.cdf(-1e-12))
    assert jump == pytest.approx(bf.post_prob_h0, abs=1e-9)
    q = float(m.ppf(np.array([float(m.cdf(-1e-9)) + 0.5 * bf.post_prob_h0]))[0])
    assert abs(q) < 1e-9


def test_null_predictive_is_normal_mixture_over_tau():
    # under H0, theta_new ~ N(0, tau^2): its cdf at x equals int Phi(x/tau) p(tau|y,H0) dtau
    prior_tau = HalfNormal(0.5)
    h0 = ExactPointNull(Y, V, prior_tau)
    z0 = _z0_quad(Y, V, prior_tau)
    x = -0.3

    def g(tau):
        return (stats.norm.cdf(x / tau) * stats.halfnorm.pdf(tau, scale=0.5)
                * np.prod(stats.norm.pdf(Y, 0.0, np.sqrt(V + tau**2))))

    expected = integrate.quad(g, 0, np.inf, epsabs=1e-15, epsrel=1e-12, limit=200)[0] / z0
    assert float(h0.theta_new.cdf(x)) == pytest.approx(expected, abs=1e-8)


def test_flat_prior_is_refused():
    with pytest.raises(PriorError, match="proper prior for mu"):
        bayes_factor(Y, V, "flat()", "halfnormal(0.5)")
    with pytest.raises(PriorError, match="proper prior for mu"):
        bayes_factor(Y, V, None, "halfnormal(0.5)")


def test_accepts_a_model():
    from ketabayes.model.random_effects import RandomEffectsModel

    m = RandomEffectsModel.from_arrays(Y, V, prior_mu="normal(0, 1)", prior_tau="halfnormal(0.5)")
    a = bayes_factor(m)
    b = bayes_factor(Y, V, Normal(0, 1), HalfNormal(0.5))
    assert a.log_bf10 == b.log_bf10


def test_mixed_marginal_moments_and_quantiles():
    m = MixedMarginal([0.3, 0.7], [PointMass(0.0), PointMass(1.0)])
    assert m.mean == pytest.approx(0.7)
    assert m.sd == pytest.approx(math.sqrt(0.21))
    assert m.ppf(np.array([0.2, 0.5]))[0] == pytest.approx(0.0, abs=1e-9)
    assert m.ppf(np.array([0.2, 0.5]))[1] == pytest.approx(1.0, abs=1e-9)


def test_evidence_category():
    assert evidence_category(150) == "extreme evidence for an effect (H1)"
    assert evidence_category(1 / 5) == "moderate evidence for no effect (H0)"
    assert evidence_category(2.0) == "anecdotal evidence for an effect (H1)"


def test_evidence_category_every_band_and_symmetry():
    # Lee & Wagenmakers (2013): 1-3 anecdotal, 3-10 moderate, 10-30 strong, 30-100 very strong, > 100 extreme
    bands = {2.0: "anecdotal", 3.0: "moderate", 9.99: "moderate", 10.0: "strong", 29.0: "strong",
             30.0: "very strong", 99.0: "very strong", 100.0: "extreme", 1e12: "extreme"}
    for b, label in bands.items():
        assert evidence_category(b) == f"{label} evidence for an effect (H1)"
        assert evidence_category(1.0 / b) == f"{label} evidence for no effect (H0)"
    assert evidence_category(1.0) == "no evidence either way"
    # under/overflow of exp(log BF10) is extreme evidence, not "undefined"
    assert evidence_category(0.0) == "extreme evidence for no effect (H0)"
    assert evidence_category(math.inf) == "extreme evidence for an effect (H1)"
    assert evidence_category(math.nan) == "undefined"
    assert evidence_category(-1.0) == "undefined"


@pytest.mark.parametrize("benefit", ["lower", "higher"])
def test_model_averaged_decisions_match_spike_and_slab_closed_form(benefit):
    # fixed-effect model: H1 posterior of mu is N(m1, s1^2) and both evidences are Gaussian densities, so
    # P(region | y) = P(H0|y) 1[0 in region] + P(H1|y) P_N(m1, s1)(region), with the atom at 0 in
    # "practically no effect" and never in "any benefit" (a strict inequality)
    prior_mu, pi1 = Normal(-0.1, 0.5), 0.3
    th = Thresholds(1.25, benefit, ratio=True)
    lo, hi = th.cuts()
    prec = np.sum(1 / V) + 1 / prior_mu.sigma**2
    m1 = (np.sum(Y / V) + prior_mu.mu / prior_mu.sigma**2) / prec
    s1 = math.sqrt(1 / prec)
    l1 = stats.multivariate_normal.logpdf(Y, np.full(Y.size, prior_mu.mu),
                                          np.diag(V) + prior_mu.sigma**2 * np.ones((Y.size, Y.size)))
    l0 = stats.norm.logpdf(Y, 0.0, np.sqrt(V)).sum()
    w1 = pi1 / (pi1 + (1 - pi1) * math.exp(l0 - l1))
    n = stats.norm(m1, s1)
    if benefit == "lower":
        slab = {"p_benefit": n.cdf(lo), "p_harm": n.sf(hi), "p_any_benefit": n.cdf(0.0)}
    else:
        slab = {"p_benefit": n.sf(hi), "p_harm": n.cdf(lo), "p_any_benefit": n.sf(0.0)}
    expect = {"p_benefit": w1 * slab["p_benefit"], "p_harm": w1 * slab["p_harm"],
              "p_trivial": (1 - w1) + w1 * (n.cdf(hi) - n.cdf(lo)), "p_any_benefit": w1 * slab["p_any_benefit"]}

    bf = bayes_factor(Y, V, prior_mu, None, fixed=True, prior_prob_h1=pi1)
    assert bf.post_prob_h1 == pytest.approx(w1, rel=1e-12)
    averaged = bf.marginal("mean")  # MixedMarginal of PointMass(0) and the H1 posterior
    for d in (bf.decision_probabilities(th, "mean"), decision_probabilities_mixed(averaged, th)):
        for k, v in expect.items():
            assert d[k] == pytest.approx(v, abs=1e-12), k
    # the general function agrees: an atom at 0 is not "any benefit" in either direction
    plain = decision_probabilities(averaged, th)
    for k, v in expect.items():
        assert plain[k] == pytest.approx(v, abs=1e-12), k
    # for a continuous marginal both functions agree
    cont = MixtureMarginal([1.0], [m1], [s1])
    assert decision_probabilities_mixed(cont, th) == decision_probabilities(cont, th)
