"""Exact engine vs an independent high-precision computation.

The reference (class ``Reference`` below) evaluates p(y | tau) as a multivariate
normal density with batched Cholesky factorisations, integrates with Simpson's rule
on a dense uniform grid in log(tau), and inverts an interpolated cumulative-Simpson
CDF -- a different algorithm from the engine's closed-form conditional likelihood,
composite Gauss-Legendre panels and normal-mixture CDFs.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from ketabayes.inference.exact import ExactNormalNormal
from ketabayes.model import priors as P

TOL = 1e-4  # the accuracy requirement for every reported probability and quantile
# probabilities are checked much tighter: the engine claims ~1e-8 and the Simpson reference
# on 40,001 points is accurate to better than that for these smooth integrands
PTOL = 1e-8


class Reference:
    """Posterior of the normal-normal model on a dense grid in log(tau).

    ``p(y | tau)`` is the multivariate normal density of ``y`` with covariance
    ``diag(v + tau^2) + s0^2 11'`` (mu integrated analytically by the covariance),
    evaluated with batched Cholesky factorisations; for a flat prior on mu the
    restricted (contrast) likelihood is used. Integrals use Simpson's rule on
    40,001 points in u = log(tau), CDFs cumulative Simpson, quantiles brentq on
    the interpolated CDF -- independent of the engine's Gauss-Legendre panels and
    normal-mixture formulas.
    """

    def __init__(self, y, v, prior_mu, prior_tau, n=40001, u_lo=-25.0):
        self.y, self.v, self.pm, self.pt = np.asarray(y, float), np.asarray(v, float), prior_mu, prior_tau
        lo_b, hi_b = prior_tau.bounds()
        u_hi = math.log(hi_b) if math.isfinite(hi_b) else math.log(50.0)
        self.u = np.linspace(u_lo, u_hi, n)
        self.t = np.exp(self.u)
        k = self.y.size
        cov = np.zeros((n, k, k)) + np.diag(self.v)
        cov[:, np.arange(k), np.arange(k)] += (self.t**2)[:, None]
        ones = np.ones(k)
        if isinstance(prior_mu, P.Normal):
            cov = cov + prior_mu.sigma**2
            r = self.y - prior_mu.mu
            L = np.linalg.cholesky(cov)
            z = np.linalg.solve(L, np.broadcast_to(r, (n, k))[..., None])[..., 0]
            logdet = 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
            ll = -0.5 * (k * math.log(2 * math.pi) + logdet + (z**2).sum(1))
        else:
            # restricted likelihood: int prod N(y_i; mu, v_i + tau^2) dmu
            L = np.linalg.cholesky(cov)
            a = np.linalg.solve(L, np.broadcast_to(ones, (n, k))[..., None])[..., 0]
            b = np.linalg.solve(L, np.broadcast_to(self.y, (n, k))[..., None])[..., 0]
            s11, s1y, syy = (a * a).sum(1), (a * b).sum(1), (b * b).sum(1)
            logdet = 2 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1)
            ll = (-0.5 * ((k - 1) * math.log(2 * math.pi) + logdet + np.log(s11))
                  - 0.5 * (syy - s1y**2 / s11))
        with np.errstate(divide="ignore"):
            lp = ll + np.asarray(prior_tau.logpdf(self.t)) + self.u  # Jacobian d tau = tau du
        lp = np.where(np.isfinite(lp), lp, -np.inf)
        self.dens = np.exp(lp - lp.max())
        self.Z = integrate.simpson(self.dens, x=self.u)
        self.cum = integrate.cumulative_simpson(self.dens, x=self.u, initial=0.0) / self.Z

    def cond(self, t):
        w = 1.0 / (self.v + t[:, None] ** 2)
        prec, num = w.sum(1), w @ self.y
        if isinstance(self.pm, P.Normal):
            prec = prec + 1 / self.pm.sigma**2
            num = num + self.pm.mu / self.pm.sigma**2
        return num / prec, 1.0 / prec

    def E(self, g):
        return integrate.simpson(self.dens * g(self.t), x=self.u) / self.Z

    def cdf_mu(self, x):
        m, var = self.cond(self.t)
        return self.E(lambda t: stats.norm.cdf(x, m, np.sqrt(var)))

    def cdf_new(self, x):
        m, var = self.cond(self.t)
        return self.E(lambda t: stats.norm.cdf(x, m, np.sqrt(var + t * t)))

    def cdf_theta(self, i, x):
        m, var = self.cond(self.t)
        b = self.v[i] / (self.v[i] + self.t**2)
        return self.E(lambda t: stats.norm.cdf(x, (1 - b) * self.y[i] + b * m, np.sqrt((1 - b) * self.v[i] + b * b * var)))

    def cdf_tau(self, x):
        return float(np.interp(math.log(x), self.u, self.cum))

    def ppf(self, cdf, q, lo, hi):
        return optimize.brentq(lambda x: cdf(x) - q, lo, hi, xtol=1e-10)


PRIORS = [
    (P.Normal(0, 4), P.HalfNormal(0.5)),
    (P.Flat(), P.HalfCauchy(0.5)),
    (P.Normal(-0.2, 1), P.Uniform(0, 2)),
    (P.Normal(0, 4), P.LogNormalTau2(-2.56, 1.74)),
    (P.Flat(), P.LogStudentTTau2(-3.44, 2.59, 5)),
    (P.Normal(0, 10), P.Exponential(2.0)),
    (P.Normal(0, 10), P.HalfStudentT(3, 0.5)),
]


@pytest.mark.parametrize("prior_mu,prior_tau", PRIORS, ids=lambda p: str(p))
def test_exact_matches_adaptive_quadrature(bcg, prior_mu, prior_tau):
    y, v = bcg.yi.to_numpy(), bcg.vi.to_numpy()
    e = ExactNormalNormal(y, v, prior_mu, prior_tau)
    ref = Reference(y, v, prior_mu, prior_tau)
    for x in (-1.0, -0.7, -0.3, 0.0):
        assert float(e.mu.cdf(x)) == pytest.approx(ref.cdf_mu(x), abs=PTOL)
        assert float(e.theta_new.cdf(x)) == pytest.approx(ref.cdf_new(x), abs=PTOL)
    for t in (0.2, 0.5, 1.0):
        assert float(e.tau_cdf(t)[0]) == pytest.approx(ref.cdf_tau(t), abs=1e-6)  # reference interpolates
    for q in (0.025, 0.5, 0.975):
        assert float(e.mu.ppf(q)) == pytest.approx(ref.ppf(ref.cdf_mu, q, -5, 5), abs=1e-7)
        assert float(e.tau_ppf(q)[0]) == pytest.approx(ref.ppf(ref.cdf_tau, q, 1e-9, ref.t[-1]), abs=TOL)
    assert e.mu.mean == pytest.approx(ref.E(lambda t: ref.cond(t)[0]), abs=PTOL)
    assert e.tau_mean == pytest.approx(ref.E(lambda t: t), abs=1e-7)


def test_study_effects_match_quadrature(bcg):
    y, v = bcg.yi.to_numpy(), bcg.vi.to_numpy()
    pm, pt = P.Normal(0, 4), P.HalfNormal(0.5)
    e = ExactNormalNormal(y, v, pm, pt)
    ref = Reference(y, v, pm, pt)
    for i in (0, 7, 12):
        for x in (-1.0, -0.5, 0.0):
            assert float(e.theta(i).cdf(x)) == pytest.approx(ref.cdf_theta(i, x), abs=PTOL)


def test_fixed_effect_is_conjugate_normal():
    y = np.array([-0.3, 0.1, -0.5])
    v = np.array([0.04, 0.09, 0.16])
    m0, s0 = 0.2, 0.7
    e = ExactNormalNormal(y, v, P.Normal(m0, s0), None, fixed=True)
    prec = (1 / v).sum() + 1 / s0**2
    mean = ((y / v).sum() + m0 / s0**2) / prec
    assert e.mu.mean == pytest.approx(mean, rel=1e-12)
    assert e.mu.sd == pytest.approx(prec**-0.5, rel=1e-12)
    assert float(e.mu.ppf(0.975)) == pytest.approx(mean + 1.959963984540054 * prec**-0.5, abs=1e-9)
    # log evidence: y ~ MVN(m0 1, diag(v) + s0^2 11')
    cov = np.diag(v) + s0**2
    assert e.log_evidence == pytest.approx(stats.multivariate_normal(np.full(3, m0), cov).logpdf(y), rel=1e-10)


def test_random_effects_evidence_matches_quadrature(bcg):
    """log p(y) = log int p(tau) MVN(y; m0, V + tau^2 I + s0^2 11') dtau, computed independently."""
    y, v = bcg.yi.to_numpy()[:6], bcg.vi.to_numpy()[:6]
    pm, pt = P.Normal(0, 1), P.HalfNormal(0.5)
    e = ExactNormalNormal(y, v, pm, pt)

    def f(t):
        cov = np.diag(v + t * t) + pm.sigma**2
        return math.exp(stats.multivariate_normal(np.zeros(6), cov).logpdf(y) + float(pt.logpdf(t)) + 10)

    z = integrate.quad(f, 0, 10, epsrel=1e-11, limit=200)[0]
    assert e.log_evidence == pytest.approx(math.log(z) - 10, abs=1e-8)


def test_single_study_posterior_tau_equals_prior():
    """With one study and a flat prior on mu, the data say nothing about tau."""
    pt = P.HalfNormal(0.3)
    e = ExactNormalNormal([0.5], [0.1], P.Flat(), pt)
    for t in (0.1, 0.3, 0.6):
        assert float(e.tau_cdf(t)[0]) == pytest.approx(2 * stats.norm.cdf(t / 0.3) - 1, abs=1e-9)


def test_draws_match_exact_distribution(bcg):
    e = ExactNormalNormal(bcg.yi, bcg.vi, P.Normal(0, 4), P.HalfNormal(0.5))
    d = e.sample(40000, np.random.default_rng(3))
    # Kolmogorov-Smirnov against the exact CDFs (independent iid draws)
    for name, cdf in (("mu", e.mu.cdf), ("theta_new", e.theta_new.cdf),
                      ("tau", lambda x: e.tau_cdf(x))):
        assert stats.kstest(d[name], cdf).pvalue > 1e-3, name
    assert stats.kstest(d["theta"][:, 3], e.theta(3).cdf).pvalue > 1e-3


def test_many_studies_and_tiny_variances():
    rng = np.random.default_rng(1)
    k = 60
    v = rng.uniform(0.001, 0.01, k)
    y = rng.normal(0.3, np.sqrt(v + 0.05**2))
    e = ExactNormalNormal(y, v, P.Normal(0, 10), P.HalfCauchy(1.0))
    # coarser reference grid for k = 60 (Simpson error still < 1e-8 at this spacing)
    ref = Reference(y, v, P.Normal(0, 10), P.HalfCauchy(1.0), n=4001, u_lo=-15.0)
    assert float(e.mu.cdf(0.3)) == pytest.approx(ref.cdf_mu(0.3), abs=1e-7)
    assert float(e.tau_ppf(0.5)[0]) == pytest.approx(ref.ppf(ref.cdf_tau, 0.5, 1e-9, 5), abs=TOL)


def test_result_tau_marginal_is_exact(bcg):
    import ketabayes as kb

    res = kb.RandomEffectsModel(bcg, prior_mu="normal(0, 4)", prior_tau="halfnormal(0.5)").fit("exact", seed=1)
    m = res.marginal("tau")
    assert m.exact
    ref = Reference(bcg.yi.to_numpy(), bcg.vi.to_numpy(), P.Normal(0, 4), P.HalfNormal(0.5))
    assert float(m.cdf(0.5)) == pytest.approx(ref.cdf_tau(0.5), abs=1e-6)
    assert float(m.ppf(0.5)) == pytest.approx(ref.ppf(ref.cdf_tau, 0.5, 1e-9, 5), abs=TOL)
    assert m.mean == pytest.approx(ref.E(lambda t: t), abs=1e-7)
