"""Exact binomial-logit meta-regression (one moderator) against a dense reference, and the forms it refuses.

Expected values: :func:`_binomial_reference.regression_reference` (a dense ``(tau, mu, gamma)`` grid of
tabulated trial likelihoods, trapezoid / Simpson rules; written independently of the engine) and
``scipy.stats.binom``. Data: the magnesium trials (Egger et al. 2001) with their publication year as the
moderator -- a real covariate of the real trials. LIMIT-2 and ISIS-4 are left out of the comparison with the
dense reference (their likelihoods are so sharp that a uniform grid fine enough for them would make the
reference slow); the slow test fits all 16 trials with both engines.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from _binomial_reference import magnesium, regression_reference, sparse_data, trial_likelihood, trial_log_lik

from ketabayes.errors import KetabayesError
from ketabayes.model.binomial import BinomialModel
from ketabayes.result.io import load_result

PROBS = np.array([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98])
PRIORS = dict(prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)", prior_gamma="normal(0, 1)")


def small_trials() -> pd.DataFrame:
    mg = magnesium()
    return mg[~mg.study.str.startswith(("ISIS", "LIMIT"))].reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted():
    df = small_trials()
    return df, BinomialModel(df, moderators="year", **PRIORS).fit("exact", mcid=1.25, seed=1)


def _check_cdf(marginal, grid, F, atol):
    idx = np.searchsorted(F, PROBS)     # the reference's own nodes (no interpolation of the reference)
    np.testing.assert_allclose(np.asarray(marginal.cdf(grid[idx]), dtype=float), F[idx], atol=atol)


def test_regression_matches_dense_reference(fitted):
    df, res = fitted
    x = (df.year - df.year.mean()).to_numpy(float)
    i = res.studies.index("Bertschat 1989")
    th, logf = trial_log_lik(df, 0.0, 5.0)
    ref = regression_reference(th, logf, x, 2.0, 1.0, 0.5, trial=i)
    # this grid is converged to 1e-4 (2e-4 for the prediction; tau mean 7e-4): the engine is within 1.3e-4
    _check_cdf(res.marginal("mean"), *ref["mu"], 3e-4)
    _check_cdf(res.marginal("moderator=year"), *ref["gamma"], 3e-4)
    _check_cdf(res.marginal("predictive"), *ref["predictive"], 4e-4)
    _check_cdf(res.marginal("Bertschat 1989"), *ref["trial"], 3e-4)
    assert res.scale_summary().set_index("target").loc["tau", "mean"] == pytest.approx(ref["tau_mean"], abs=1e-3)
    row = res.decision_table(targets=["moderator=year"]).iloc[0]
    assert bool(row["exact"]) and row["kind"] == "moderator"


def test_regression_draws_log_likelihood_and_round_trip(fitted, tmp_path):
    df, res = fitted
    post = res.tree["posterior"]
    assert post["gamma"].dims == ("chain", "draw", "moderator")
    x = (df.year - df.year.mean()).to_numpy(float)
    # the stored draws are joint: mu and the slope from the same draw give each trial's centre
    c, d = 2, 77
    mu, g, tau = (float(post[v].values[c, d].ravel()[0]) for v in ("mu", "gamma", "tau"))
    for study in ("Bertschat 1989", "Feldstedt 1988"):
        i = res.studies.index(study)
        a, n1, ci, n2 = df.loc[i, ["ai", "n1i", "ci", "n2i"]].to_numpy(float)
        expect = trial_likelihood(a, n1, ci, n2, mu + g * x[i], tau, 0.0, 5.0)
        assert float(res.tree["log_likelihood"]["y"].values[c, d, i]) == pytest.approx(expect, abs=1e-5)
    m = res.marginal("moderator=year")
    draws = post["effect"].sel(target="moderator=year").values
    assert abs(draws.mean() - m.mean) < 5 * m.sd / math.sqrt(draws.size)
    np.testing.assert_allclose(draws, post["gamma"].values[..., 0])
    back = load_result(res.to_netcdf(tmp_path / "regression.nc"))
    pd.testing.assert_frame_equal(back.decision_table(), res.decision_table())
    assert back.marginal("Bertschat 1989").mean == pytest.approx(res.marginal("Bertschat 1989").mean, abs=1e-12)


@pytest.mark.parametrize("kw, says", [
    (dict(by=["drug", "cond"]), r"random-effect terms 'drug', 'cond'.*\d+-dimensional integral"),
    (dict(by="drug", nest={"drug": "klass"}, moderators="year"), r"nested groupings \('drug' within 'klass'\)"),
    (dict(moderators=["year", "size"]), r"2 moderators \('year', 'size'\)"),
])
def test_forms_that_are_not_exact_say_why_and_name_nuts(kw, says):
    df = sparse_data().assign(drug=list("abababa"), cond=list("xxyyxyx"), klass=list("pqpqpqp"),
                              year=[1984, 1987, 1989, 1989, 1989, 1990, 1990], size=[76, 94, 43, 48, 115, 54, 60])
    with pytest.raises(KetabayesError, match=says) as err:
        BinomialModel(df, **kw).fit("exact", seed=1)
    assert "method='nuts'" in str(err.value)


@pytest.mark.slow
def test_regression_exact_agrees_with_nuts_on_all_magnesium_trials():
    df = magnesium()
    model = BinomialModel(df, moderators="year", **PRIORS)
    exact = model.fit("exact", mcid=1.25, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # diagnostics are checked below, not through warnings
        nuts = model.fit("nuts", mcid=1.25, seed=2, draws=2500)
    assert nuts.diagnostics.max_rhat < 1.01 and nuts.diagnostics.divergences <= 0.001 * nuts.diagnostics.n_draws
    summ = nuts.summary(targets=["mean", "predictive", "moderator=year", "Bertschat 1989"]).set_index("target")
    for target in ("mean", "predictive", "moderator=year", "Bertschat 1989"):
        ex = exact.marginal(target)
        dr = nuts.tree["posterior"]["effect"].sel(target=target).values
        ess = float(summ.loc[target, "ess_bulk"])
        assert abs(dr.mean() - ex.mean) < 5 * ex.sd / math.sqrt(ess), target
        p = float(ex.cdf(0.0))
        assert abs(np.mean(dr < 0.0) - p) < 5 * math.sqrt(max(p * (1 - p), 1e-4) / ess) + 2e-3, target
    ess = float(summ.loc["tau", "ess_bulk"])
    t = exact.scale_summary().set_index("target").loc["tau"]
    assert abs(float(nuts.tree["posterior"]["tau"].mean()) - t["mean"]) < 5 * t["sd"] / math.sqrt(ess)
