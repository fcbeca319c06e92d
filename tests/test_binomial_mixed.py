"""Exact binomial-logit model with one grouping and one moderator against a dense reference, and against NUTS.

Expected values: :func:`_binomial_reference.mixed_reference` (a dense ``(tau, slope, mu, sd)`` tensor grid of
tabulated trial likelihoods, Simpson / trapezoid rules, written independently of the engine; on the grid used
here its CDFs are within 7e-4 of the same reference on a grid 1.3-1.5 times finer in every direction, the
engine within 4e-5 of it) and ``scipy.stats.binom``
(:func:`_binomial_reference.trial_likelihood`). Data: six small magnesium trials (Egger et al. 2001) and the
SIMULATED double-zero trial of ``sparse_data()``, in two arbitrary groups (test only), with publication year as
the moderator (the double-zero trial's year is made up, like the trial); the slow test fits all 16 magnesium
trials, grouped by size (< 200 or >= 200 participants: a real attribute of the real trials), with both engines.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from _binomial_reference import magnesium, mixed_reference, sparse_data, trial_likelihood, trial_log_lik

from ketabayes.model.binomial import BinomialModel
from ketabayes.result.io import load_result

PROBS = np.array([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98])
PRIORS = dict(prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)", prior_sd="halfnormal(0.5)",
              prior_gamma="normal(0, 0.5)")


def small() -> pd.DataFrame:
    return sparse_data().assign(drug=list("abababb"), year=[1984, 1987, 1989, 1989, 1989, 1990, 1990])


@pytest.fixture(scope="module")
def fitted():
    df = small()
    return df, BinomialModel(df, by="drug", moderators="year", **PRIORS).fit("exact", mcid=1.25, seed=1)


def test_mixed_matches_dense_reference(fitted):
    df, res = fitted
    x = (df.year - df.year.mean()).to_numpy(float)
    th, logf = trial_log_lik(df, 0.0, 5.0)
    ref = mixed_reference(th, logf, list(df.drug), x, 2.0, 0.5, 0.5, 0.5, n=(31, 81, 61, 31))
    for target, key in (("mean", "mu"), ("moderator=year", "beta")):
        grid, F = ref[key]
        idx = np.searchsorted(F, PROBS)            # the reference's own nodes (no interpolation of the reference)
        np.testing.assert_allclose(np.asarray(res.marginal(target).cdf(grid[idx]), dtype=float), F[idx], atol=1e-3)
    for g in ("a", "b"):
        assert float(res.marginal(f"drug={g}").cdf(0.0)) == pytest.approx(ref["below"][g], abs=1e-3)
    scales = res.scale_summary().set_index("target")
    assert scales.loc["tau", "mean"] == pytest.approx(ref["tau_mean"], abs=1e-3)
    assert scales.loc["sd_drug", "mean"] == pytest.approx(ref["sd_mean"], abs=1e-3)
    assert res.settings["engine"] == "exact"


def test_mixed_draws_are_joint_and_round_trip(fitted, tmp_path):
    df, res = fitted
    post = res.tree["posterior"]
    x = (df.year - df.year.mean()).to_numpy(float)
    # each trial's stored log-likelihood is that of its centre mu + drug effect + slope * x_i in the same draw
    c, d = 1, 123
    mu, g, tau = (float(post[v].values[c, d].ravel()[0]) for v in ("mu", "gamma", "tau"))
    for study in ("Bertschat 1989", "SIMULATED double-zero"):
        i = res.studies.index(study)
        u = float(post["drug_effect"].sel(drug=df.drug[i]).values[c, d])
        a, n1, ci, n2 = df.loc[i, ["ai", "n1i", "ci", "n2i"]].to_numpy(float)
        expect = trial_likelihood(a, n1, ci, n2, mu + u + g * x[i], tau, 0.0, 5.0)
        assert float(res.tree["log_likelihood"]["y"].values[c, d, i]) == pytest.approx(expect, abs=1e-5)
    for target in ("mean", "drug=a", "moderator=year", "Bertschat 1989"):
        m = res.marginal(target)
        draws = post["effect"].sel(target=target).values
        assert abs(draws.mean() - m.mean) < 5 * m.sd / math.sqrt(draws.size), target
        assert abs(draws.std() - m.sd) < 5 * m.sd / math.sqrt(2 * draws.size), target
    back = load_result(res.to_netcdf(tmp_path / "mixed.nc"))
    pd.testing.assert_frame_equal(back.decision_table(), res.decision_table())
    assert back.marginal("Bertschat 1989").mean == pytest.approx(res.marginal("Bertschat 1989").mean, abs=1e-12)


@pytest.mark.slow
def test_mixed_with_vanishing_group_sd_is_the_regression_model():
    df = small()
    kw = dict(prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)", prior_gamma="normal(0, 0.5)")
    mixed = BinomialModel(df, by="drug", moderators="year", prior_sd="halfnormal(1e-6)", **kw).fit("exact", seed=1)
    reg = BinomialModel(df, moderators="year", **kw).fit("exact", seed=1)
    for target in ("mean", "moderator=year", "Bertschat 1989"):
        a, b = mixed.marginal(target), reg.marginal(target)
        assert a.mean == pytest.approx(b.mean, abs=1e-3) and a.sd == pytest.approx(b.sd, abs=1e-3), target
        assert float(a.cdf(0.0)) == pytest.approx(float(b.cdf(0.0)), abs=1e-3), target


@pytest.mark.slow
def test_mixed_exact_agrees_with_nuts_on_all_magnesium_trials():
    df = magnesium().assign(size=lambda d: np.where(d.n1i + d.n2i >= 200, "large", "small"))
    model = BinomialModel(df, by="size", moderators="year", **PRIORS)
    exact = model.fit("exact", mcid=1.25, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # diagnostics are checked below, not through warnings
        nuts = model.fit("nuts", mcid=1.25, seed=4, draws=2500)
    assert nuts.diagnostics.max_rhat < 1.01 and nuts.diagnostics.divergences <= 0.001 * nuts.diagnostics.n_draws
    targets = ["mean", "predictive", "size=large", "size=small", "moderator=year", "Bertschat 1989"]
    summ = nuts.summary(targets=targets).set_index("target")
    for target in targets:
        ex = exact.marginal(target)
        dr = nuts.tree["posterior"]["effect"].sel(target=target).values
        ess = float(summ.loc[target, "ess_bulk"])
        assert abs(dr.mean() - ex.mean) < 5 * ex.sd / math.sqrt(ess), target
        p = float(ex.cdf(0.0))
        assert abs(np.mean(dr < 0.0) - p) < 5 * math.sqrt(max(p * (1 - p), 1e-4) / ess) + 2e-3, target
    for comp in ("tau", "sd_size"):
        ess = float(summ.loc[comp, "ess_bulk"])
        s = exact.scale_summary().set_index("target").loc[comp]
        assert abs(float(nuts.tree["posterior"][comp].mean()) - s["mean"]) < 5 * s["sd"] / math.sqrt(ess), comp


def test_mixed_with_the_default_flat_slope_prior_fits_and_draws():
    # the default slope prior is flat: slices far in its tails have degenerate group-level posteriors, which
    # the mixtures and draws leave out (a singular matrix came out of numpy before)
    df = small()
    res = BinomialModel(df, by="drug", moderators="year", prior_mu="normal(0, 2)").fit(
        "exact", mcid=1.25, seed=2, chains=2, draws=500)
    for target in ("moderator=year", "drug=b", "Bertschat 1989"):
        m = res.marginal(target)
        draws = res.tree["posterior"]["effect"].sel(target=target).values
        assert np.isfinite(m.sd) and abs(draws.mean() - m.mean) < 5 * m.sd / math.sqrt(draws.size), target


def test_numerical_failure_of_the_engine_is_a_ketabayes_error(monkeypatch):
    from ketabayes.errors import ExactIntegrationError
    from ketabayes.inference import exact_binomial_mixed

    def broken(*args, **kwargs):
        raise np.linalg.LinAlgError("Singular matrix")

    monkeypatch.setattr(exact_binomial_mixed, "group_level", broken)
    with pytest.raises(ExactIntegrationError, match="Singular matrix.*method='nuts'"):
        BinomialModel(small(), by="drug", moderators="year", **PRIORS).fit("exact", seed=1)
