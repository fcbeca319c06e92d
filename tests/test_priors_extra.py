"""Priors for the mean (Student-t, Cauchy, truncated, point mass) and the tau priors of bayesmeta /
metaBMA (inverse gamma, reference priors); the exact engine under them; shortest intervals.

Expected densities are written out here with ``math``; normalisation by QUADPACK; the exact engine
is compared with a dense 2-D grid over (log tau, mu) with the likelihood prod N(y_i; mu, v_i + tau^2)
written here (no closed-form marginalisation); HPD intervals with a density-threshold search on a
dense grid. Data are SIMULATED (numpy, fixed seed).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, special

from ketabayes.errors import PriorError
from ketabayes.inference.exact import ExactNormalNormal
from ketabayes.marginals import MixtureMarginal
from ketabayes.model import priors as P
from ketabayes.model import priors_extra as X
from ketabayes.model.priors import parse_prior, prior_from_dict

TEXTS = ["cauchy(0, 0.707, lower=0)", "cauchy(0.1, 2)", "studentt(3, 0, 1, upper=2)", "studentt(5, -0.2, 0.5)",
         "normal(0, 1, lower=-1, upper=2)", "point(0)", "invgamma(1, 0.15)", "invgammatau2(0.001, 0.001)",
         "improperuniform()", "jeffreys()", "dumouchel()", "dumouchel(0.3)", "shrinkage()", "shrinkage(0.2)",
         "i2()", "i2(0.25)"]


@pytest.mark.parametrize("text", TEXTS)
def test_string_and_dict_round_trip(text):
    p = parse_prior(text)
    assert parse_prior(str(p)) == p
    assert prior_from_dict(p.to_dict()) == p


def test_keywords_are_checked():
    with pytest.raises(PriorError, match="keyword"):
        parse_prior("halfnormal(1, lower=0)")
    with pytest.raises(PriorError, match="lower < upper"):
        parse_prior("cauchy(0, 1, lower=2, upper=1)")


def _t(z, nu):
    return math.exp(math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2)) / math.sqrt(nu * math.pi) * (1 + z * z / nu) ** (
        -(nu + 1) / 2)


@pytest.mark.parametrize("prior,f,lo,hi", [
    (X.Cauchy(0.0, 0.707, lower=0.0), lambda x: 1 / (math.pi * 0.707 * (1 + (x / 0.707) ** 2)), 0.0, math.inf),
    (X.StudentT(3, 0.0, 1.0, upper=2.0), lambda x: _t(x, 3), -math.inf, 2.0),
    (P.Normal(0.0, 1.0, lower=-1.0, upper=2.0), lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi), -1.0, 2.0),
])
def test_truncated_location_priors(prior, f, lo, hi):
    mass = integrate.quad(f, lo, hi)[0]
    for x in (-0.5, 0.3, 1.5):
        expected = math.log(f(x) / mass) if lo <= x <= hi else -math.inf
        assert float(prior.logpdf(x)) == pytest.approx(expected, rel=1e-12)
        if lo <= x <= hi:
            assert float(prior.cdf(x)) == pytest.approx(integrate.quad(f, lo, x)[0] / mass, abs=1e-10)
    assert integrate.quad(lambda x: math.exp(float(prior.logpdf(x))), lo, hi)[0] == pytest.approx(1.0, abs=1e-8)


def test_inverse_gamma_conventions():
    a, b = 1.5, 0.15
    ig = X.InvGamma(a, b)  # on tau
    x = 0.3
    assert float(ig.logpdf(x)) == pytest.approx(a * math.log(b) - math.lgamma(a) - (a + 1) * math.log(x) - b / x)
    ig2 = X.InvGammaTau2(a, b)  # on tau^2: p(tau) = 2 tau IG(tau^2)
    assert float(ig2.logpdf(x)) == pytest.approx(math.log(2 * x) + a * math.log(b) - math.lgamma(a)
                                                 - (a + 1) * math.log(x * x) - b / (x * x))
    for p in (ig, ig2):
        assert integrate.quad(lambda t, p=p: math.exp(float(p.logpdf(t))), 0, math.inf)[0] == pytest.approx(1, abs=1e-8)
        assert float(p.cdf(p.ppf(0.3))) == pytest.approx(0.3, abs=1e-12)


def test_reference_priors_follow_bayesmeta():
    vi = np.array([0.04, 0.01, 0.09, 0.02])
    k, w = vi.size, 1 / vi
    s02 = k / w.sum()  # bayesmeta: s02 <- k / sum(1 / sigma^2)
    sig2hat = (k - 1) * w.sum() / (w.sum() ** 2 - (w * w).sum())  # Higgins & Thompson (2002) eq. 9
    t = 0.23
    du = X.resolve_prior(parse_prior("dumouchel()"), vi)
    assert float(du.logpdf(t)) == pytest.approx(math.log(math.sqrt(s02) / (math.sqrt(s02) + t) ** 2))
    sh = X.resolve_prior(parse_prior("shrinkage()"), vi)
    assert float(sh.logpdf(t)) == pytest.approx(math.log(2 * t * s02 / (s02 + t * t) ** 2))
    i2 = X.resolve_prior(parse_prior("i2()"), vi)
    assert float(i2.logpdf(t)) == pytest.approx(math.log(2 * sig2hat * t / (sig2hat + t * t) ** 2))
    je = X.resolve_prior(parse_prior("jeffreys()"), vi)
    assert float(je.logpdf(t)) == pytest.approx(0.5 * math.log(sum((t / (v + t * t)) ** 2 for v in vi)))
    for p in (du, sh, i2):
        assert integrate.quad(lambda x, p=p: math.exp(float(p.logpdf(x))), 0, math.inf)[0] == pytest.approx(1, abs=1e-7)
        assert float(p.cdf(p.ppf(0.7))) == pytest.approx(0.7, abs=1e-12)
    with pytest.raises(PriorError, match="resolve"):
        parse_prior("dumouchel()").logpdf(0.1)


# ---------------------------------------------------------------------------
# exact engine under non-normal priors vs a dense 2-D grid
# ---------------------------------------------------------------------------
def simulated(k=6, seed=11):
    """SIMULATED: k studies, variances 0.01-0.5."""
    rng = np.random.default_rng(seed)
    v = np.exp(rng.uniform(np.log(0.01), np.log(0.5), k))
    return rng.normal(-0.2, np.sqrt(v + 0.04)), v


class Grid2D:
    """Posterior on a dense grid over (u = log tau, mu); probabilities by 2-D Simpson."""

    def __init__(self, y, v, prior_mu, prior_tau, u=(-12.0, 3.0, 1201), mu_pts=2001):
        self.y, self.v, self.pm, self.pt = y, v, prior_mu, X.resolve_prior(prior_tau, v)
        self.u = np.linspace(*u)
        self.t = np.exp(self.u)
        lo, hi = prior_mu.bounds()
        self.lo, self.hi = max(lo, -4.0), min(hi, 4.0)
        self.mu_pts = mu_pts
        self.Z = self.mass(self.hi)

    def mass(self, x):
        mu = np.linspace(self.lo, min(x, self.hi), self.mu_pts)
        tv = self.v + self.t[:, None] ** 2
        ll = (-0.5 * np.log(2 * np.pi * tv).sum(1)[:, None]
              - 0.5 * (((self.y - mu[:, None, None]) ** 2) / tv[None]).sum(2).T)
        lp = ll + np.asarray(self.pm.logpdf(mu))[None, :] + (np.asarray(self.pt.logpdf(self.t)) + self.u)[:, None]
        return integrate.simpson(integrate.simpson(np.exp(lp + 10.0), x=mu, axis=1), x=self.u)

    def cdf_mu(self, x):
        return self.mass(x) / self.Z

    def mean_mu(self):
        mu = np.linspace(self.lo, self.hi, self.mu_pts)
        tv = self.v + self.t[:, None] ** 2
        ll = (-0.5 * np.log(2 * np.pi * tv).sum(1)[:, None]
              - 0.5 * (((self.y - mu[:, None, None]) ** 2) / tv[None]).sum(2).T)
        lp = ll + np.asarray(self.pm.logpdf(mu))[None, :] + (np.asarray(self.pt.logpdf(self.t)) + self.u)[:, None]
        return integrate.simpson(integrate.simpson(np.exp(lp + 10.0) * mu, x=mu, axis=1), x=self.u) / self.Z

    def cdf_new(self, x):
        """P(theta_new <= x) = E[Phi((x - mu) / tau)] on the full grid."""
        mu = np.linspace(self.lo, self.hi, self.mu_pts)
        tv = self.v + self.t[:, None] ** 2
        ll = (-0.5 * np.log(2 * np.pi * tv).sum(1)[:, None]
              - 0.5 * (((self.y - mu[:, None, None]) ** 2) / tv[None]).sum(2).T)
        lp = ll + np.asarray(self.pm.logpdf(mu))[None, :] + (np.asarray(self.pt.logpdf(self.t)) + self.u)[:, None]
        g = special.ndtr((x - mu[None, :]) / self.t[:, None])
        return integrate.simpson(integrate.simpson(np.exp(lp + 10.0) * g, x=mu, axis=1), x=self.u) / self.Z


@pytest.mark.parametrize("prior_mu,prior_tau", [
    ("cauchy(0, 0.707)", "halfnormal(0.5)"),
    ("cauchy(0, 0.707, lower=0)", "halfnormal(0.5)"),
    ("studentt(3, -0.2, 0.1)", "halfcauchy(0.5)"),
    ("normal(0, 1, upper=-0.1)", "dumouchel()"),
    ("flat()", "i2()"),
    ("normal(0, 2)", "invgamma(1, 0.15)"),
])
def test_exact_mu_matches_2d_grid(prior_mu, prior_tau):
    y, v = simulated()
    pm, pt = parse_prior(prior_mu), parse_prior(prior_tau)
    e = ExactNormalNormal(y, v, pm, pt)
    g = Grid2D(y, v, pm, pt)
    for x in (-0.45, -0.25, -0.15, 0.05):
        if g.lo < x < g.hi:
            assert float(e.mu.cdf(x)) == pytest.approx(g.cdf_mu(x), abs=1e-7)
        assert float(e.theta_new.cdf(x)) == pytest.approx(g.cdf_new(x), abs=1e-6)
    assert e.mu.mean == pytest.approx(g.mean_mu(), abs=1e-7)


@pytest.mark.parametrize("prior_mu", ["cauchy(0, 0.707)", "studentt(3, 0, 0.5, upper=0)"])
def test_bayes_factor_with_heavy_tailed_prior_matches_2d_grid(prior_mu):
    """log p(y | H1) = log of the 2-D integral of prior(mu) prior(tau) prod N(y_i; mu, v_i + tau^2)."""
    from ketabayes.inference.bayes_factor import bayes_factor

    y, v = simulated()
    pm, pt = parse_prior(prior_mu), P.HalfNormal(0.5)
    g = Grid2D(y, v, pm, pt, u=(-14.0, 3.0, 1701))
    bf = bayes_factor(y, v, prior_mu, "halfnormal(0.5)")
    assert bf.log_evidence_h1 == pytest.approx(math.log(g.Z) - 10.0, abs=1e-6)


def test_point_prior_is_the_null_model():
    y, v = simulated()
    e = ExactNormalNormal(y, v, X.Point(0.0), P.HalfNormal(0.5))
    assert float(e.mu.cdf(-1e-12)) == 0.0 and float(e.mu.cdf(0.0)) == 1.0
    # posterior of tau: prior x prod N(y; 0, v + tau^2), by QUADPACK

    def f(t):
        return math.exp(float(P.HalfNormal(0.5).logpdf(t)) + sum(
            -0.5 * math.log(2 * math.pi * (vi + t * t)) - yi * yi / (2 * (vi + t * t)) for yi, vi in zip(y, v)))

    z = integrate.quad(f, 0, 10, epsabs=0, epsrel=1e-12)[0]
    assert float(e.tau.cdf(0.2)) == pytest.approx(integrate.quad(f, 0, 0.2, epsabs=0, epsrel=1e-12)[0] / z, abs=1e-9)


# ---------------------------------------------------------------------------
# shortest (HPD) intervals
# ---------------------------------------------------------------------------
def test_hpd_equals_eti_for_a_normal_posterior():
    y, v = simulated()
    e = ExactNormalNormal(y, v, P.Normal(0, 1), P.HalfNormal(0.5), fixed=True)
    lo, hi = e.mu.hpd(0.95)
    elo, ehi = e.mu.eti(0.95)
    assert lo == pytest.approx(elo, abs=1e-8) and hi == pytest.approx(ehi, abs=1e-8)


def test_hpd_of_a_skewed_density_by_density_threshold():
    m = MixtureMarginal([0.7, 0.3], [0.0, 2.0], [1.0, 1.5])
    x = np.linspace(-10, 14, 240_001)
    f = 0.7 * np.exp(-0.5 * x**2) / math.sqrt(2 * math.pi) + 0.3 * np.exp(-0.5 * ((x - 2) / 1.5) ** 2) / (
        1.5 * math.sqrt(2 * math.pi))
    dx = x[1] - x[0]
    lo_c, hi_c = 0.0, float(f.max())
    for _ in range(100):  # the HPD region {f > c} holding 90%
        c = 0.5 * (lo_c + hi_c)
        if f[f > c].sum() * dx > 0.9:
            lo_c = c
        else:
            hi_c = c
    region = x[f > lo_c]
    lo, hi = m.hpd(0.9)
    assert lo == pytest.approx(region[0], abs=2e-4) and hi == pytest.approx(region[-1], abs=2e-4)
    assert hi - lo < np.diff(m.eti(0.9))[0]


@pytest.mark.slow
@pytest.mark.parametrize("prior_mu,prior_tau", [("studentt(3, 0, 1)", "invgammatau2(1, 0.05)"),
                                                ("normal(0, 1, upper=0)", "i2()")])
def test_nuts_agrees_with_exact_within_mcse(prior_mu, prior_tau):
    """The PyMC form of the priors (``to_pymc``) targets the same posterior as the exact engine."""
    import arviz as az
    import pandas as pd

    import ketabayes as kb

    y, v = simulated(8, 1)
    df = pd.DataFrame({"study": [f"SIM-{i}" for i in range(y.size)], "yi": y, "vi": v})
    model = kb.RandomEffectsModel(df, prior_mu=prior_mu, prior_tau=prior_tau)
    nuts = model.fit("nuts", seed=3, chains=2, draws=1000, tune=1000)
    exact = model.fit("exact", seed=3)
    se = float(az.mcse(nuts.tree, var_names=["mu"])["mu"].values)
    assert 0 < se < 0.05
    assert abs(float(nuts.posterior["mu"].values.mean()) - exact.marginal("mu").mean) < 4 * se
