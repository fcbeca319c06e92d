"""Binomial results carry the trials' own effects, joint draws and the ArviZ groups (issues #12 item 1, #13).

Expected values: the dense references of ``_binomial_reference.py`` (trapezoid / Simpson rules with the
``x = m + s z`` substitution, written independently of the engines) and ``scipy.stats.binom``. Data: six
small magnesium trials (Bertschat 1989 has no death on magnesium) plus one SIMULATED double-zero trial;
the groups ``a`` / ``b`` are arbitrary labels for the test only.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from _binomial_reference import (
    grouped_effect_reference,
    grouped_joint_reference,
    sparse_data,
    theta_reference,
    trial_likelihood,
    trial_log_lik,
)
from scipy import stats

from ketabayes.model.binomial import BinomialModel

GROUPS = ["a", "b", "a", "b", "a", "b", "b"]
PROBS = np.array([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98])
L125 = math.log(1.25)


@pytest.fixture(scope="module")
def tables():
    return trial_log_lik(sparse_data(), 0.0, 5.0)


@pytest.fixture(scope="module")
def plain():
    return BinomialModel(sparse_data(), prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)").fit(
        "exact", mcid=1.25, seed=3)


@pytest.fixture(scope="module")
def grouped():
    df = sparse_data().assign(drug=GROUPS)
    return BinomialModel(df, by="drug", prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)",
                         prior_sd="halfnormal(0.5)").fit("exact", mcid=1.25, seed=1, draws=5000)


def _check_cdf(marginal, grid, F, atol):
    """The CDF at the reference's own nodes nearest to its 2%, ..., 98% quantiles (the whole distribution;
    no interpolation of the reference, whose linear interpolant would be off by h**2 F'' / 8)."""
    idx = np.searchsorted(F, PROBS)
    np.testing.assert_allclose(np.asarray(marginal.cdf(grid[idx]), dtype=float), F[idx], atol=atol)


@pytest.mark.parametrize("study, tau_sd", [("Bertschat 1989", 0.5), ("SIMULATED double-zero", 0.5),
                                           ("Bertschat 1989", 0.1)])
def test_study_effects_match_dense_reference(tables, plain, study, tau_sd):
    # tau_sd = 0.1 puts most of tau's mass near 0, where a trial's effect given (mu, tau) is nearly a point
    # mass (a mixture over the quadrature nodes of mu would be a comb of spikes there: CDF errors of 4e-3)
    res = plain if tau_sd == 0.5 else BinomialModel(sparse_data(), prior_mu="normal(0, 2)",
                                                    prior_tau=f"halfnormal({tau_sd})").fit("exact", mcid=1.25, seed=1)
    i = res.studies.index(study)
    theta, F = theta_reference(*tables, i, 2.0, tau_sd)
    _check_cdf(res.marginal(study), theta, F, 2e-4)
    row = res.decision_table(targets=[study]).iloc[0]
    assert row["kind"] == "study" and bool(row["exact"])
    assert row["p_benefit"] == pytest.approx(float(np.interp(-L125, theta, F)), abs=3e-4)
    # the stored draws of the trial's effect follow its exact marginal (independent draws)
    draws = res.tree["posterior"]["effect"].sel(target=study).values.ravel()
    assert stats.kstest(draws, lambda x: np.interp(x, theta, F)).pvalue > 1e-3


def test_group_and_trial_effects_match_dense_reference(tables, grouped):
    i = grouped.studies.index("Bertschat 1989")
    gam, F_g, theta, F_t = grouped_effect_reference(*tables, GROUPS, 2.0, 0.5, 0.5, i)
    # the reference on this grid is converged to 3e-4 (the fine grid of the slow test: the engine within 1.3e-4)
    _check_cdf(grouped.marginal("drug=a"), gam, F_g, 6e-4)
    _check_cdf(grouped.marginal("Bertschat 1989"), theta, F_t, 6e-4)


@pytest.mark.slow
def test_group_and_trial_effects_match_fine_reference(tables, grouped):
    for study in ("Bertschat 1989", "SIMULATED double-zero"):
        i = grouped.studies.index(study)
        gam, F_g, theta, F_t = grouped_effect_reference(*tables, GROUPS, 2.0, 0.5, 0.5, i, fine=True)
        _check_cdf(grouped.marginal(f"drug={GROUPS[i]}"), gam, F_g, 2.5e-4)
        _check_cdf(grouped.marginal(study), theta, F_t, 2.5e-4)


def test_grouped_draws_are_joint_draws(tables, grouped):
    p_ab, mean, sd = grouped_joint_reference(*tables, GROUPS, 2.0, 0.5, 0.5)
    eff = grouped.tree["posterior"]["effect"]
    d = (eff.sel(target="drug=a") - eff.sel(target="drug=b")).values.ravel()
    n = d.size      # independent draws
    assert abs(d.mean() - mean) < 5 * sd / math.sqrt(n)
    assert abs(d.std() - sd) < 5 * sd / math.sqrt(2 * n)
    assert abs(np.mean(d < 0) - p_ab) < 5 * math.sqrt(p_ab * (1 - p_ab) / n)
    # draws of each target from its own marginal (the previous behaviour) would miss the correlation of the
    # two groups through mu and fail the check of the sd by far
    ma, mb = grouped.marginal("drug=a"), grouped.marginal("drug=b")
    assert math.hypot(ma.sd, mb.sd) - sd > 20 * sd / math.sqrt(2 * n)
    # every trial's own effect is drawn given its group's effect: same group, positively correlated
    th = grouped.tree["posterior"]["theta"]
    r_same = np.corrcoef(th.sel(study="Morton 1984").values.ravel(), th.sel(study="Bertschat 1989").values.ravel())
    assert r_same[0, 1] > 0.2


@pytest.mark.parametrize("which", ["plain", "grouped"])
def test_log_likelihood_and_prior_groups(which, plain, grouped):
    import arviz as az

    res = plain if which == "plain" else grouped
    tree = res.tree
    assert {"log_likelihood", "prior"} <= set(tree.children)
    ll = tree["log_likelihood"]["y"]
    assert ll.dims == ("chain", "draw", "study")
    post = tree["posterior"]
    df = sparse_data()
    for (c, d), study in (((1, 17), "Bertschat 1989"), ((3, 404), "SIMULATED double-zero"), ((0, 5), "Morton 1984")):
        i = res.studies.index(study)
        # the trial's centre: mu, or its group's effect
        target = "mean" if which == "plain" else f"drug={GROUPS[i]}"
        m = float(post["effect"].sel(target=target).values[c, d])
        tau = float(post["tau"].values[c, d])
        a, n1, ci, n2 = df.loc[i, ["ai", "n1i", "ci", "n2i"]].to_numpy(float)
        expect = trial_likelihood(a, n1, ci, n2, m, tau, 0.0, 5.0)
        assert float(ll.sel(study=study).values[c, d]) == pytest.approx(expect, abs=1e-5)
    priors = {"mu": stats.norm(0, 2), "tau": stats.halfnorm(scale=0.5)}
    if which == "grouped":
        priors["sd_drug"] = stats.halfnorm(scale=0.5)
    assert set(tree["prior"].data_vars) == set(priors)
    for name, dist in priors.items():
        assert stats.kstest(tree["prior"][name].values.ravel(), dist.cdf).pvalue > 1e-3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ notes when a Pareto k is high; not the point here
        loo = az.loo(tree)
    assert np.isfinite(float(loo.elpd)) and loo.n_data_points == 7
    import matplotlib.pyplot as plt

    az.plot_prior_posterior(tree, var_names=list(priors))
    plt.close("all")


def test_shrinkage_forest_of_a_binomial_result(plain):
    from ketabayes.reporting.plots import _forest_rows, plot_forest

    rows = {r["label"]: r for r in _forest_rows(plain, 0.95)}
    # Bertschat 1989 (0/22 vs 1/21): observed log OR as metafor's escalc shows it (0.5 added to every cell)
    a, b, c, d = 0.5, 22.5, 1.5, 20.5
    y, se = math.log(a * d / (b * c)), math.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    z = stats.norm.ppf(0.975)
    np.testing.assert_allclose(rows["Bertschat 1989"]["obs"], (y - z * se, y, y + z * se), rtol=1e-12)
    m = plain.marginal("Bertschat 1989")
    np.testing.assert_allclose(rows["Bertschat 1989"]["post"], m.ppf(np.array([0.025, 0.5, 0.975])), rtol=1e-12)
    dz = rows["SIMULATED double-zero (not estimable)"]
    assert dz["obs"] is None and dz["post"] is not None
    assert sum(r["kind"] == "study" for r in rows.values()) == 7
    fig = plot_forest(plain)
    assert "0.5 added to zero cells" in " ".join(t.get_text() for t in fig.legends[0].get_texts())


def test_exact_and_nuts_agree_on_study_effects(fit_nuts, plain):
    import arviz as az

    model = BinomialModel(sparse_data(), prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)")
    nuts = fit_nuts(model, mcid=1.25, seed=5, chains=2, draws=1000, tune=1000)
    summ = nuts.summary(targets=nuts.studies).set_index("target")
    for study in ("Bertschat 1989", "SIMULATED double-zero", "Shechter 1989"):
        ex = plain.marginal(study)
        draws = nuts.tree["posterior"]["effect"].sel(target=study).values
        ess = float(summ.loc[study, "ess_bulk"])
        assert abs(draws.mean() - ex.mean) < 5 * ex.sd / math.sqrt(ess)
        p = float(ex.cdf(-L125))
        assert abs(np.mean(draws < -L125) - p) < 5 * math.sqrt(p * (1 - p) / ess) + 2e-3
    # the same pointwise log likelihood as the exact engine's: the trial's centre is theta - tau z
    post = nuts.tree["posterior"]
    c, d, i = 1, 250, 2
    centre = float(post["theta"].values[c, d, i] - post["tau"].values[c, d] * post["z_trial"].values[c, d, i])
    a, n1, ci, n2 = sparse_data().loc[i, ["ai", "n1i", "ci", "n2i"]].to_numpy(float)
    expect = trial_likelihood(a, n1, ci, n2, centre, float(post["tau"].values[c, d]), 0.0, 5.0)
    assert float(nuts.tree["log_likelihood"]["y"].values[c, d, i]) == pytest.approx(expect, abs=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ notes when a Pareto k is high; not the point here
        assert np.isfinite(float(az.loo(nuts.tree).elpd))


@pytest.mark.parametrize("m, tau", [(-1.0, 0.02), (-1.0, 0.5), (0.5, 2.0), (-3.0, 1.0)])
def test_trial_effects_are_drawn_from_their_exact_conditionals(tables, m, tau):
    from ketabayes.inference.exact_binomial import trial_curves
    from ketabayes.model.priors import Normal

    df = sparse_data()
    curves = trial_curves(df.ai, df.n1i, df.ci, df.n2i, Normal(0, 5))
    n = 4000
    draws = curves.draw_units(np.full((n, curves.k), m), np.full(n, tau), np.random.default_rng(7))
    th, logf = tables
    for i in (2, 4, 6):     # a trial with events, the zero-event arm, the double-zero trial
        # N(theta; m, tau^2) f_i(theta) on the reference's own dense grid (trapezoid CDF)
        x = np.linspace(m - 10 * tau - 3, m + 10 * tau + 3, 20001)
        ld = -0.5 * ((x - m) / tau) ** 2 + np.interp(x, th, logf[i])
        F = np.cumsum(np.exp(ld - ld.max()))
        assert stats.kstest(draws[:, i], lambda v, x=x, F=F / F[-1]: np.interp(v, x, F)).pvalue > 1e-3
