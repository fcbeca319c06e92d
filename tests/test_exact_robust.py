"""The exact engine over a matrix of extreme data and priors, against an independent brute force.

The reference (``tests/_brute_force.py``) integrates over log(tau) with Simpson's rule on a dense
uniform grid placed by a scan of tau from 1e-300 to 1e300, with the marginal likelihood written
from the sums of w, w y, w y^2 (the engine uses residuals) -- a different algorithm from the
engine's scanned, checked Gauss-Legendre panels. Data sets are SIMULATED (numpy, fixed seeds).
The tolerances are the accuracy stated in :mod:`ketabayes.inference.exact`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from _brute_force import BruteForce

from ketabayes.errors import DataError, KetabayesError, PriorError
from ketabayes.inference.exact import ExactIntegrationError, ExactNormalNormal
from ketabayes.model import priors as P

PTOL = 1e-8  # probabilities of mu, theta_new (documented accuracy)
TAU_PTOL = 1e-7  # tau's CDF (the reference's Simpson on a truncated grid is the limit here)
QTOL = 1e-8  # quantiles of mu, in posterior standard deviations


def simulated(k=10, seed=1):
    """SIMULATED log-OR-like data: k studies, variances 0.01-0.5, true mu -0.2, tau 0.3."""
    rng = np.random.default_rng(seed)
    v = np.exp(rng.uniform(np.log(0.01), np.log(0.5), k))
    y = rng.normal(rng.normal(-0.2, 0.3, k), np.sqrt(v))
    return y, v


def _cases():
    y, v = simulated()
    yo, vo = y.copy(), v.copy()
    yo[0], vo[0] = 1e6, 1.0
    out = {
        "base": (y, v, P.Normal(0, 4), P.HalfNormal(0.5)),
        "offset 1e6": (y + 1e6, v, P.Normal(1e6, 4), P.HalfNormal(0.5)),
        "offset 1e8, flat": (y + 1e8, v, P.Flat(), P.HalfCauchy(0.5)),
        "outlier 1e6": (yo, vo, P.Flat(), P.HalfNormal(0.5)),
        "outlier 1e6, halfcauchy": (yo, vo, P.Normal(0, 10), P.HalfCauchy(1.0)),
        "variance ratio 1e20": (y, np.logspace(-10, 10, y.size), P.Flat(), P.HalfNormal(0.5)),
        "narrow halfnormal(1e-3)": (y, v, P.Normal(0, 4), P.HalfNormal(1e-3)),
        "narrow lognormaltau2(-2, 0.01)": (y, v, P.Normal(0, 4), P.LogNormalTau2(-2.0, 0.01)),
        "narrow lognormaltau2(-12, 0.05)": (y, v, P.Normal(0, 4), P.LogNormalTau2(-12.0, 0.05)),
        "wide halfcauchy(1e6)": (y, v, P.Flat(), P.HalfCauchy(1e6)),
        "wide lognormaltau2(0, 30)": (y, v, P.Normal(0, 4), P.LogNormalTau2(0.0, 30.0)),
        "wide logttau2(0, 20, 1): mass below 1e-300": (y, v, P.Normal(0, 4), P.LogStudentTTau2(0.0, 20.0, 1.0)),
        "uniform(0, 0.1) cuts the likelihood": (y, v, P.Normal(0, 4), P.Uniform(0, 0.1)),
        "uniform(0.05, 0.3)": (y, v, P.Flat(), P.Uniform(0.05, 0.3)),
        "k=1": (y[:1], v[:1], P.Flat(), P.HalfNormal(0.5)),
        "k=2 halfcauchy": (y[:2], v[:2], P.Flat(), P.HalfCauchy(0.5)),
    }
    for e in (150, -150):
        s = 10.0**e
        out[f"scale 1e{e}"] = (y * s, v * s * s, P.Normal(0, 4 * s), P.HalfNormal(0.5 * s))
        out[f"scale 1e{e}, wide prior"] = (y * s, v * s * s, P.Flat(), P.HalfCauchy(1e3 * s))
    return out


CASES = _cases()


#: cases whose posterior of mu has no finite variance (k = 2, flat prior, half-Cauchy: E[tau^2] diverges)
NO_SD = {"k=2 halfcauchy"}


def check(y, v, pm, pt, ref_kwargs=None, moments=True):
    e = ExactNormalNormal(y, v, pm, pt)
    ref = BruteForce(y, v, pm, pt, **(ref_kwargs or {}))
    sd = ref.sd_mu()
    if moments:
        assert e.mu.sd == pytest.approx(sd, rel=1e-8)
        assert abs(e.mu.mean - ref.mean_mu()) <= 1e-8 * sd
    else:  # quantiles are then measured in units of the conditional sd
        sd = ref.s * math.sqrt(float(np.min(ref.var)))
    for q in (0.001, 0.025, 0.5, 0.975, 0.999):
        x = ref.ppf_mu(q)
        assert abs(float(e.mu.cdf(x)) - ref.cdf_mu(x)) <= PTOL
        assert abs(float(e.theta_new.cdf(x)) - ref.cdf_new(x)) <= PTOL
        assert abs(float(e.mu.ppf(q)) - x) <= QTOL * sd
    # tau at the reference's quantiles of tau (on its grid)
    cum = np.cumsum(ref.dens) / ref.dens.sum()
    for q in (0.05, 0.5, 0.95):
        t = ref.s * math.exp(float(np.interp(q, cum, ref.u)))
        assert abs(float(e.tau.cdf(t)) - ref.cdf_tau(t)) <= TAU_PTOL
    return e, ref


@pytest.mark.parametrize("name", list(CASES))
def test_exact_matches_brute_force(name):
    check(*CASES[name], moments=name not in NO_SD)


def test_many_studies_vectorised():
    """k = 5,000 studies (SIMULATED): the peak in log(tau) is ~0.015 wide."""
    y, v = simulated(5000, 5)
    check(y, v, P.Normal(0, 4), P.HalfNormal(0.5), dict(n_scan=1401, n_mid=2001, n=4001))


@pytest.mark.slow
def test_hundred_thousand_studies():
    y, v = simulated(100000, 7)
    check(y, v, P.Normal(0, 4), P.HalfNormal(0.5), dict(n_scan=1401, n_mid=2001, n=4001))


def test_log_evidence_is_scale_equivariant():
    """log p(y) changes by -k log(s) when data and priors are scaled by s (closed form of the change)."""
    y, v = simulated()
    e1 = ExactNormalNormal(y, v, P.Normal(0, 4), P.HalfNormal(0.5))
    s = 1e100
    e2 = ExactNormalNormal(y * s, v * s * s, P.Normal(0, 4 * s), P.HalfNormal(0.5 * s))
    assert e2.log_evidence == pytest.approx(e1.log_evidence - y.size * math.log(s), abs=1e-8)


def test_outlier_median_is_a_median():
    y, v = CASES["outlier 1e6"][:2]
    e = ExactNormalNormal(y, v, P.Flat(), P.HalfNormal(0.5))
    med = float(e.mu.ppf(0.5))
    assert float(e.mu.cdf(med)) == pytest.approx(0.5, abs=1e-10)
    tmed = float(e.tau.ppf(0.5))
    assert float(e.tau.cdf(tmed)) == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize("text", ["halfnormal(1e-300)", "halfnormal(1e300)", "normal(0, 1e-300)",
                                  "normal(1e300, 1)", "halfcauchy(1e250)", "uniform(0, 1e300)",
                                  "lognormaltau2(5000, 1)", "exponential(1e-250)"])
def test_extreme_priors_raise_prior_error(text):
    with pytest.raises(PriorError, match="range"):
        P.parse_prior(text)


@pytest.mark.parametrize("text", ["turner(a, b, c)", "rhodes(a, b, c, d)", "turner(, x)"])
def test_empirical_prior_argument_count(text):
    with pytest.raises(PriorError, match="takes up to"):
        P.parse_prior(text)


def test_bad_data_raise_data_error():
    with pytest.raises(DataError, match="yi"):
        ExactNormalNormal([0.1, np.nan], [0.1, 0.1], P.Flat(), P.HalfNormal(0.5))
    with pytest.raises(DataError, match="vi"):
        ExactNormalNormal([0.1, 0.2], [0.1, 0.0], P.Flat(), P.HalfNormal(0.5))


class _LogUniform(P.Prior):
    """An improper prior p(tau) ~ 1/tau (written here: not offered by the library)."""

    support = "positive"

    def logpdf(self, x):
        with np.errstate(divide="ignore"):
            return -np.log(np.asarray(x, dtype=float))


def test_improper_posterior_raises_clear_error():
    y, v = simulated()
    with pytest.raises(ExactIntegrationError, match="nuts") as exc:
        ExactNormalNormal(y, v, P.Flat(), _LogUniform())
    assert isinstance(exc.value, KetabayesError)


@pytest.mark.parametrize("scale", [1e150, 1e-150])
def test_model_fit_at_extreme_scales_is_equivariant(scale):
    """A full exact fit (with the frequentist reference and draws) of data scaled by 1e+/-150 gives the
    scaled results of the unscaled fit (the model is exactly scale-equivariant)."""
    import pandas as pd

    import ketabayes as kb

    y, v = simulated(8, 3)

    def fit(s):
        df = pd.DataFrame({"study": [f"SIM-{i}" for i in range(y.size)], "yi": y * s, "vi": v * s * s})
        return kb.RandomEffectsModel(df, prior_mu=P.Normal(0, 4 * s), prior_tau=P.HalfNormal(0.5 * s)).fit(
            "exact", seed=1)

    r1, r2 = fit(1.0), fit(scale)
    for name in ("mu", "tau", "theta_new"):
        q1 = np.asarray(r1.marginal(name).ppf(np.array([0.025, 0.5, 0.975])))
        q2 = np.asarray(r2.marginal(name).ppf(np.array([0.025, 0.5, 0.975])))
        np.testing.assert_allclose(q2 / scale, q1, rtol=1e-9)
