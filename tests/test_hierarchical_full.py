"""Issue-level checks of the hierarchical model at DEFAULT settings (slow tier).

On the bundled real multi-drug data (parkinson_adjuvants by drug class) and on a
SIMULATED review with the Cochrane review's structure: NUTS has zero divergences,
R-hat <= 1.01 and bulk ESS >= 1000 for every reported quantity, and its decision
table agrees with the exact engine within Monte-Carlo error.
"""

from __future__ import annotations

import numpy as np
import pytest

import ketabayes as kb

pytestmark = pytest.mark.slow


def _check(model, mcid):
    ex = model.fit("exact", mcid=mcid, seed=11).decision_table()
    res = model.fit("nuts", mcid=mcid, seed=11)  # default draws, chains, tune, target_accept
    d = res.diagnostics
    assert d.divergences == 0
    nu = res.decision_table()
    summ = res.summary()
    reported = summ.set_index("target").reindex(nu.target)
    assert reported["r_hat"].max() <= 1.01
    assert reported["ess_bulk"].min() >= 1000
    ess = reported["ess_bulk"].to_numpy()
    z = (nu["mean"].to_numpy() - ex["mean"].to_numpy()) / (ex["sd"].to_numpy() / np.sqrt(ess))
    assert np.max(np.abs(z)) < 4.5
    p, pn = ex["p_benefit"].to_numpy(), nu["p_benefit"].to_numpy()
    assert np.all(np.abs(p - pn) < 4.5 * np.sqrt(p * (1 - p) / ess) + 0.01)


def test_default_settings_on_bundled_parkinson_data():
    es = kb.effect_sizes(kb.load_dataset("parkinson_adjuvants", form="contrasts"), "MD")
    model = kb.HierarchicalModel(es, by=["drug_class"], prior_mu="normal(0, 5)", prior_tau="halfnormal(1)")
    _check(model, mcid=1.0)


def test_default_settings_on_simulated_review():
    sim = kb.simulate_review(seed=5)  # SIMULATED: 69 trial comparisons, 5 drugs x conditions
    model = kb.HierarchicalModel(sim, by=["drug", "condition"], prior_mu="normal(0, 50)",
                                 prior_tau="halfnormal(10)")
    _check(model, mcid=10)
