"""Exact binomial-logit model with a grouping nested in another, against a dense reference and against NUTS.

Expected values: :func:`_binomial_reference.nested_reference` (a dense ``(tau, sd_drug, mu, sd_klass)`` tensor
grid of tabulated likelihoods, Simpson / trapezoid rules, written independently of the engine; on the grid used
here it is within 1e-4 of the same reference on a grid 1.3 times finer in every direction) and
``scipy.stats.binom`` (:func:`_binomial_reference.trial_likelihood`). Data: six small magnesium trials (Egger et
al. 2001) and the SIMULATED double-zero trial of ``sparse_data()``, as four arbitrary "drugs" in two "classes"
(test only).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from _binomial_reference import nested_reference, sparse_data, trial_likelihood, trial_log_lik

from ketabayes.model.binomial import BinomialModel
from ketabayes.result.io import load_result

PROBS = np.array([0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.98])
PRIORS = dict(prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)", prior_sd="halfnormal(0.5)")


def data() -> pd.DataFrame:
    return sparse_data().assign(drug=list("abcdabc"), klass=list("ppqqppq"))


@pytest.fixture(scope="module")
def fitted():
    df = data()
    return df, BinomialModel(df, by="drug", nest={"drug": "klass"}, **PRIORS).fit("exact", mcid=1.25, seed=1)


def test_nested_matches_dense_reference(fitted):
    df, res = fitted
    th, logf = trial_log_lik(df, 0.0, 5.0)
    ref = nested_reference(th, logf, ["abcd".index(d) for d in df.drug], [0, 0, 1, 1], 2.0, 0.5, 0.5, 0.5)
    grid, F = ref["mu"]
    idx = np.searchsorted(F, PROBS)              # the reference's own nodes (no interpolation of the reference)
    np.testing.assert_allclose(np.asarray(res.marginal("mean").cdf(grid[idx]), dtype=float), F[idx], atol=1e-3)
    for c, klass in enumerate("pq"):
        assert float(res.marginal(f"klass={klass}").cdf(0.0)) == pytest.approx(ref["below_outer"][c], abs=1e-3)
    for d, drug in enumerate("abcd"):
        assert float(res.marginal(f"drug={drug}").cdf(0.0)) == pytest.approx(ref["below_inner"][d], abs=1e-3)
    scales = res.scale_summary().set_index("target")
    for comp, key in (("tau", "tau_mean"), ("sd_klass", "sdp_mean"), ("sd_drug", "sdc_mean")):
        assert scales.loc[comp, "mean"] == pytest.approx(ref[key], abs=1e-3), comp


def test_nested_draws_are_joint_and_round_trip(fitted, tmp_path):
    df, res = fitted
    post = res.tree["posterior"]
    assert post["klass_effect"].dims[-1] == "klass" and post["drug_effect"].dims[-1] == "drug"
    c, d = 3, 456
    mu, tau = (float(post[v].values[c, d]) for v in ("mu", "tau"))
    for study in ("Bertschat 1989", "SIMULATED double-zero"):
        i = res.studies.index(study)
        centre = (mu + float(post["klass_effect"].sel(klass=df.klass[i]).values[c, d])
                  + float(post["drug_effect"].sel(drug=df.drug[i]).values[c, d]))
        a, n1, ci, n2 = df.loc[i, ["ai", "n1i", "ci", "n2i"]].to_numpy(float)
        expect = trial_likelihood(a, n1, ci, n2, centre, tau, 0.0, 5.0)
        assert float(res.tree["log_likelihood"]["y"].values[c, d, i]) == pytest.approx(expect, abs=1e-5)
    for target in ("mean", "klass=q", "drug=c", "predictive|drug=a", "Bertschat 1989"):
        m = res.marginal(target)
        draws = post["effect"].sel(target=target).values
        assert abs(draws.mean() - m.mean) < 5 * m.sd / math.sqrt(draws.size), target
        assert abs(draws.std() - m.sd) < 5 * m.sd / math.sqrt(2 * draws.size), target
    back = load_result(res.to_netcdf(tmp_path / "nested.nc"))
    pd.testing.assert_frame_equal(back.decision_table(), res.decision_table())
    pd.testing.assert_frame_equal(back.scale_summary(), res.scale_summary())


@pytest.mark.slow
def test_nested_exact_agrees_with_nuts():
    model = BinomialModel(data(), by="drug", nest={"drug": "klass"}, **PRIORS)
    exact = model.fit("exact", mcid=1.25, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # diagnostics are checked below, not through warnings
        nuts = model.fit("nuts", mcid=1.25, seed=4, draws=2500)
    assert nuts.diagnostics.max_rhat < 1.01 and nuts.diagnostics.divergences <= 0.001 * nuts.diagnostics.n_draws
    targets = ["mean", "predictive", "klass=p", "drug=c", "predictive|drug=d", "Bertschat 1989"]
    summ = nuts.summary(targets=targets).set_index("target")
    for target in targets:
        ex = exact.marginal(target)
        dr = nuts.tree["posterior"]["effect"].sel(target=target).values
        ess = float(summ.loc[target, "ess_bulk"])
        assert abs(dr.mean() - ex.mean) < 5 * ex.sd / math.sqrt(ess), target
        p = float(ex.cdf(math.log(1 / 1.25)))
        assert abs(np.mean(dr < math.log(1 / 1.25)) - p) < 5 * math.sqrt(max(p * (1 - p), 1e-4) / ess) + 2e-3, target
    for comp in ("tau", "sd_klass", "sd_drug"):
        ess = float(summ.loc[comp, "ess_bulk"])
        s = exact.scale_summary().set_index("target").loc[comp]
        assert abs(float(nuts.tree["posterior"][comp].mean()) - s["mean"]) < 5 * s["sd"] / math.sqrt(ess), comp
