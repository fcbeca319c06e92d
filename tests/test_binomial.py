"""Binomial-logit model: validation, zero events, and agreement with an independent fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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


def test_binomial_fit_double_zero_and_transformations():
    df = simulate_review(seed=2, binary={"mu": -0.7, "tau": 0.1}, drugs={"k": 6, "m": 5},
                         conditions={"x": 1.0}, n_range=(30, 60))
    df.loc[0, ["ai", "ci"]] = 0          # a double-zero trial is kept, not dropped
    m = BinomialModel(df, by="drug", prior_mu="normal(0, 2)")
    res = m.fit(mcid=1.25, benefit="higher", seed=4, chains=2, draws=1000, tune=700)
    assert res.diagnostics.divergences == 0
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
    np.testing.assert_allclose(ab.loc["mean", ["RR_q025", "RR_q50", "RR_q975"]].to_numpy(float), p1 / p0)
    np.testing.assert_allclose(ab.loc["mean", ["OR_q025", "OR_q50", "OR_q975"]].to_numpy(float), np.exp(q))
