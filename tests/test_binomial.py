"""Binomial-logit model: validation, zero events, and agreement with independent computations.

Expected numbers come from an inverse-variance fixed-effect estimate and from the exact posterior of a
common log OR by numerical integration of the binomial likelihood written in the test."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

from ketabayes.data.simulate import simulate_review
from ketabayes.errors import DataError
from ketabayes.model.binomial import BinomialModel


def test_validation_names_study_and_column():
    df = pd.DataFrame({"study": ["A", "B"], "drug": ["k", "m"], "ai": [3, 12], "n1i": [10, 10],
                       "ci": [1, 2], "n2i": [10, 10]})
    with pytest.raises(DataError, match="'B'") as err:
        BinomialModel(df, by="drug")
    assert err.value.column == "ai"


def test_baseline_risk_default_is_median_control_risk():
    df = simulate_review(seed=2, binary={})
    m = BinomialModel(df, by="drug")
    assert m.baseline_risk == pytest.approx(float(np.median(df.ci / df.n2i)))


def test_binomial_fit_double_zero_and_transformations(fit_nuts):
    df = simulate_review(seed=2, binary={"mu": -0.7, "tau": 0.1}, drugs={"k": 6, "m": 5},
                         conditions={"x": 1.0}, n_range=(30, 60))
    df.loc[0, ["ai", "ci"]] = 0          # a double-zero trial is kept, not dropped
    m = BinomialModel(df, by="drug", prior_mu="normal(0, 2)")
    res = fit_nuts(m, mcid=1.25, benefit="higher", seed=4)  # default 4 chains x 1000 draws
    tab = res.decision_table()
    assert {"mean", "predictive", "drug=k", "drug=m"} <= set(tab.target)
    # independent check: the pooled log OR of the same data from metafor-style inverse-variance FE
    a, c, n1, n2 = (df[x].to_numpy(float) + 0.5 for x in ("ai", "ci", "n1i", "n2i"))
    yi = np.log(a / (n1 - a + 0.5)) - np.log(c / (n2 - c + 0.5))
    vi = 1 / a + 1 / (n1 - a + 0.5) + 1 / c + 1 / (n2 - c + 0.5)
    fe = np.sum(yi / vi) / np.sum(1 / vi)
    mu = res.marginal("mean")
    assert abs(mu.mean - fe) < 3 * mu.sd
    ab = res.absolute_effects().set_index("target")
    p0 = m.baseline_risk
    q = mu.ppf(np.array([0.025, 0.5, 0.975]))
    p1 = 1 / (1 + np.exp(-(np.log(p0 / (1 - p0)) + q)))
    np.testing.assert_allclose(ab.loc["mean", ["RR_ci_low", "RR_median", "RR_ci_high"]].to_numpy(float), p1 / p0)
    np.testing.assert_allclose(ab.loc["mean", ["OR_ci_low", "OR_median", "OR_ci_high"]].to_numpy(float), np.exp(q))


# ------------------------------------------------------------------ against the exact posterior
def _exact_common_log_or(a, n1, c, n2, mu_sd, base_mean, base_sd):
    """Exact posterior of a common log OR by numerical integration (written here, independent of the model).

    ``ai ~ Bin(n1i, expit(b_i + mu/2))``, ``ci ~ Bin(n2i, expit(b_i - mu/2))``, ``b_i ~ N(base_mean, base_sd**2)``,
    ``mu ~ N(0, mu_sd**2)``. Given ``mu`` the baselines are independent, so the posterior density of
    ``mu`` is its prior times one integral over ``b_i`` per trial (trapezoidal rule on dense grids).
    Returns the grid, the normalised density, the mean and the sd.
    """
    mu = np.linspace(-8.0, 8.0, 3201)
    b = np.linspace(base_mean - 12 * base_sd, base_mean + 12 * base_sd, 2001)
    B, M = np.meshgrid(b, mu, indexing="ij")
    logp = stats.norm.logpdf(mu, 0.0, mu_sd)
    for ai, ni, ci, mi in zip(a, n1, c, n2):
        ll = (stats.binom.logpmf(ai, ni, special.expit(B + M / 2)) + stats.binom.logpmf(ci, mi, special.expit(B - M / 2))
              + stats.norm.logpdf(B, base_mean, base_sd))
        top = ll.max()
        logp = logp + np.log(integrate.trapezoid(np.exp(ll - top), b, axis=0)) + top
    p = np.exp(logp - logp.max())
    p /= integrate.trapezoid(p, mu)
    mean = integrate.trapezoid(p * mu, mu)
    return mu, p, mean, math.sqrt(integrate.trapezoid(p * (mu - mean) ** 2, mu))


def test_common_effect_matches_exact_integration_and_double_zero_contributes(fit_nuts):
    # tau's prior halfnormal(1e-6) makes the model a common-effect (fixed-effect) one: theta_i = mu (+ < 1e-5).
    # A single informative trial plus a double-zero trial; with a baseline prior of about 5% risk the
    # double-zero trial says "no difference at a low risk" and pulls the log OR towards 0.
    one = pd.DataFrame({"study": ["A"], "ai": [12], "n1i": [40], "ci": [3], "n2i": [40]})
    two = pd.concat([one, pd.DataFrame({"study": ["DZ"], "ai": [0], "n1i": [60], "ci": [0], "n2i": [60]})],
                    ignore_index=True)
    priors = {"prior_mu": "normal(0, 2)", "prior_tau": "halfnormal(1e-6)", "prior_baseline": "normal(-3, 1)"}
    log_mcid = math.log(1.25)
    fits = {}
    for name, df in (("one", one), ("two", two)):
        grid, dens, mean, sd = _exact_common_log_or(df.ai, df.n1i, df.ci, df.n2i, 2.0, -3.0, 1.0)
        p_benefit = integrate.trapezoid(dens * (grid > log_mcid), grid)
        res = fit_nuts(BinomialModel(df, **priors), mcid=1.25, benefit="higher", seed=7, chains=2, draws=1500,
                       tune=1000)
        row = res.decision_table().set_index("target").loc["mean"]
        ess = float(res.summary().set_index("target").loc["mean", "ess_bulk"])
        assert ess > 500
        assert abs(row["mean"] - mean) < 4.0 * sd / math.sqrt(ess)
        assert abs(row["sd"] - sd) < 4.0 * sd / math.sqrt(2.0 * ess)
        assert abs(row["p_benefit"] - p_benefit) < 4.0 * math.sqrt(p_benefit * (1 - p_benefit) / ess) + 0.005
        fits[name] = (mean, row["mean"], sd)
    # the double-zero trial moves the posterior towards 0 by (exactly) about 0.24, i.e. many MC errors;
    # NUTS shows the same shift
    exact_shift = fits["two"][0] - fits["one"][0]
    nuts_shift = fits["two"][1] - fits["one"][1]
    assert exact_shift < -0.15
    assert abs(nuts_shift - exact_shift) < 0.1
