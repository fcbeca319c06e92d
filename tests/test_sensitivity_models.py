"""The sensitivity grid with the hierarchical and binomial models plugged in.

These are wiring tests: the grid's rows must equal a direct fit of the same model
with the same prior and seed (the numbers themselves are tested against
independent computations in test_hierarchical.py and test_binomial.py).
"""

from __future__ import annotations

import numpy as np
import pytest

import ketabayes as kb
from ketabayes.sensitivity import sensitivity_grid, variant_seed


@pytest.fixture(scope="module")
def sim():
    return kb.simulate_review(seed=2)


def test_hierarchical_variant_equals_direct_fit(sim):
    grid = sensitivity_grid(sim, prior_mu="normal(0, 50)", prior_tau="halfnormal(10)",
                            model=["random", "hierarchical"], mcid=10, seed=1, progress=False,
                            measure="GEN", fit_kwargs={"by": ["drug", "condition"]})
    t = grid.table
    assert (t["error"] == "").all()
    assert set(t["model"]) == {"random", "hierarchical"}
    direct = kb.HierarchicalModel(sim, by=["drug", "condition"], prior_mu="normal(0, 50)",
                                  prior_tau="halfnormal(10)", measure="GEN").fit("exact", mcid=10, seed=1)
    expect = direct.decision_table(targets=["mean"]).iloc[0]
    row = t[(t["model"] == "hierarchical") & (t["target"] == "mean")].iloc[0]
    for col in ("mean", "sd", "p_benefit", "p_trivial", "p_harm"):
        assert row[col] == pytest.approx(expect[col], abs=1e-9)
    # the random-effects variant is the plain normal-normal model
    re_direct = kb.RandomEffectsModel(sim, prior_mu="normal(0, 50)", prior_tau="halfnormal(10)",
                                      measure="GEN").fit("exact", mcid=10, seed=1, frequentist=False)
    row = t[(t["model"] == "random") & (t["target"] == "mean")].iloc[0]
    assert row["p_benefit"] == pytest.approx(re_direct.decision_table().iloc[0]["p_benefit"], abs=1e-9)


def test_hierarchical_variant_without_groupings_is_a_recorded_error(sim):
    grid = sensitivity_grid(sim, prior_mu="normal(0, 50)", prior_tau="halfnormal(10)",
                            model=["random", "hierarchical"], mcid=10, seed=1, progress=False, measure="GEN")
    t = grid.table
    bad = t[t["model"] == "hierarchical"]
    assert bad["error"].str.contains("grouping columns").all()
    assert (t.loc[t["model"] == "random", "error"] == "").all()  # the other variants are kept


def test_binomial_variants_use_the_exact_engine_and_nuts_agrees():
    mg = kb.load_dataset("magnesium_mi")
    mg = mg.assign(study=mg["study"] + " " + mg["year"].astype(str))
    es = kb.effect_sizes(mg, "OR")
    grid = sensitivity_grid(es, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)",
                            likelihood=["normal", "binomial"], method="exact", mcid=1.25, seed=1, progress=False)
    t = grid.table
    assert (t["error"] == "").all(), t["error"].tolist()
    row = t[(t["likelihood"] == "binomial") & (t["target"] == "mean")].iloc[0]
    direct = kb.BinomialModel(es, prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)").fit(
        "exact", mcid=1.25, seed=int(row["seed"])).decision_table(targets=["mean"]).iloc[0]
    for col in ("mean", "sd", "p_benefit", "p_trivial", "p_harm"):
        assert row[col] == pytest.approx(direct[col], abs=1e-12), col
    assert bool(row["exact"])
    # NUTS binomial variants (one compiled model per process) agree with the exact engine within MC error
    grid = sensitivity_grid(es.iloc[:6], prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)",
                            likelihood="binomial", method="nuts", mcid=1.25, seed=3, progress=False,
                            fit_kwargs={"draws": 1000, "chains": 2, "tune": 1000})
    t = grid.table
    assert (t["error"] == "").all(), t["error"].tolist()
    seed = int(t["seed"].iloc[0])
    assert seed == variant_seed(3, t["fit_id"].iloc[0])
    nuts = t[t["target"] == "mean"].iloc[0]
    exact = kb.BinomialModel(es.iloc[:6], prior_mu="normal(0, 2)", prior_tau="halfnormal(0.5)").fit(
        "exact", mcid=1.25, seed=1).decision_table(targets=["mean"]).iloc[0]
    # 2 x 1000 draws: an effective sample size of at least 400 gives an MC error below sd / 20
    assert abs(nuts["mean"] - exact["mean"]) < 5 * exact["sd"] / 20
    assert abs(nuts["p_benefit"] - exact["p_benefit"]) < 5 * 0.5 / 20


def test_separate_analyses_equal_a_random_effects_fit_per_level(sim):
    """model='separate': 'drug=X' is the average effect of an analysis of drug X's trials alone."""
    grid = sensitivity_grid(sim, prior_mu="normal(0, 50)", prior_tau="halfnormal(10)",
                            model=["separate", "hierarchical"], mcid=10, seed=1, progress=False, measure="GEN",
                            targets=["drug=ketamine", "predictive|drug=memantine"], fit_kwargs={"by": ["drug"]})
    t = grid.table
    assert (t["error"] == "").all(), t["error"].tolist()
    ket = sim[sim["drug"] == "ketamine"]
    alone = kb.RandomEffectsModel(ket, prior_mu="normal(0, 50)", prior_tau="halfnormal(10)",
                                  measure="GEN").fit("exact", mcid=10, seed=1, frequentist=False)
    row = t[(t["model"] == "separate") & (t["target"] == "drug=ketamine")].iloc[0]
    expect = alone.decision_table().iloc[0]
    for col in ("mean", "sd", "p_benefit", "p_trivial"):
        assert row[col] == pytest.approx(expect[col], abs=1e-9)
    mem = kb.RandomEffectsModel(sim[sim["drug"] == "memantine"], prior_mu="normal(0, 50)",
                                prior_tau="halfnormal(10)", measure="GEN").fit("exact", mcid=10, seed=1)
    row = t[(t["model"] == "separate") & (t["target"] == "predictive|drug=memantine")].iloc[0]
    assert row["p_benefit"] == pytest.approx(mem.decision_table().iloc[1]["p_benefit"], abs=1e-9)
    # the hierarchical model answers the same target name, so the two can be compared row by row
    hier = t[(t["model"] == "hierarchical") & (t["target"] == "drug=ketamine")].iloc[0]
    sep = t[(t["model"] == "separate") & (t["target"] == "drug=ketamine")].iloc[0]
    assert np.isfinite(hier["p_benefit"]) and hier["mean"] != sep["mean"]


def test_power_scaling_of_hierarchical_nuts_variants_matches_exact_with_scaled_priors():
    """prior^alpha of N(0, 5^2) x HalfNormal(1) (tau and the group SD) is N(0, 5^2/alpha) x HalfNormal(1/sqrt(alpha)):
    the importance-reweighted NUTS draws of a hierarchical variant (whose tree stores every target in
    effect[target], not mu / theta) must match the exact hierarchical engine under those priors."""
    es = kb.effect_sizes(kb.load_dataset("parkinson_adjuvants", form="contrasts"), "MD")
    res = sensitivity_grid(es, prior_mu="normal(0, 5)", prior_tau="halfnormal(1)", model="hierarchical",
                           method="nuts", mcid=1.0, power_scaling=(0.5, 2.0), progress=False, seed=3,
                           targets=("mean", "drug_class=COMTI"),
                           fit_kwargs=dict(by=["drug_class"], draws=1500, tune=500, chains=2))
    t = res.table
    assert (t["error"] == "").all(), t["error"].unique()
    for a in (0.5, 2.0):
        exact = kb.HierarchicalModel(es, by=["drug_class"], prior_mu=f"normal(0, {5 / np.sqrt(a)})",
                                     prior_tau=f"halfnormal({1 / np.sqrt(a)})").fit("exact", mcid=1.0, seed=1)
        ex = exact.decision_table().set_index("target")
        for target in ("mean", "drug_class=COMTI"):
            row = t[(t["power_scaling"] == f"prior^{a:g}") & (t["target"] == target)].iloc[0]
            assert row["is_ess"] > 500 and row["pareto_k"] < 0.7
            se = ex.loc[target, "sd"] / np.sqrt(row["is_ess"])       # Monte-Carlo error of the weighted mean
            assert abs(row["mean"] - ex.loc[target, "mean"]) < 5 * se, (a, target)
            # the SD of a draws-based estimate has a Monte-Carlo error of about sd / sqrt(2 ESS)
            assert abs(row["sd"] / ex.loc[target, "sd"] - 1) < 5 / np.sqrt(2 * row["is_ess"]), (a, target)
    assert {"psense_prior", "psense_likelihood"} <= set(t.columns)
    assert t.loc[t["power_scaling"] == "none", "psense_prior"].notna().all()
