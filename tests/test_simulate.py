"""simulate_review: structure, labelling as simulated, and the truth it is drawn from."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ketabayes.data.simulate import REVIEW_DRUGS, simulate_review


def test_structure_and_labels():
    df = simulate_review(seed=1)
    assert df.attrs["simulated"] is True and "SIMULATED" in df.attrs["description"]
    assert df["simulated"].all() and df.study.str.match(r"SIM-\d{3}$").all()
    assert df.drug.value_counts().to_dict() == REVIEW_DRUGS
    assert set(df.design) == {"parallel", "crossover"}
    assert df.n1i.between(8, 40).all() and df.n2i.between(8, 40).all()
    for col in ["study", "drug", "condition", "design", "n1i", "n2i", "m1i", "sd1i", "m2i", "sd2i", "yi", "vi", "sei"]:
        assert col in df.columns
    np.testing.assert_allclose(df.yi, df.m1i - df.m2i)
    np.testing.assert_allclose(df.sei**2, df.vi)
    t = df.attrs["truth"]
    assert set(t["drug_effects"]) == set(REVIEW_DRUGS) and t["mu"] == -8.0


def test_reproducible_and_user_truth():
    a = simulate_review(seed=3, drug_effects={d: 0.0 for d in REVIEW_DRUGS})
    b = simulate_review(seed=3, drug_effects={d: 0.0 for d in REVIEW_DRUGS})
    assert a.equals(b)
    assert a.attrs["truth"]["drug_effects"]["ketamine"] == 0.0
    with pytest.raises(ValueError, match="missing"):
        simulate_review(drug_effects={"ketamine": 1.0})


def test_standardised_errors_are_standard_normal():
    # (yi - theta_true) / sqrt(true vi) over many trials: independent check of the sampling model
    z = []
    for seed in range(30):
        df = simulate_review(seed=seed, sd=20.0, rho=0.5)
        cross = df.design == "crossover"
        v_true = np.where(cross, 2 * 20.0**2 * (1 - 0.5) / df.n1i, 20.0**2 / df.n1i + 20.0**2 / df.n2i)
        z.append((df.yi - df.theta_true) / np.sqrt(v_true))
    z = np.concatenate(z)
    assert stats.kstest(z, "norm").pvalue > 0.001


def test_binary_events():
    df = simulate_review(seed=2, binary={"mu": -0.5})
    assert {"ai", "ci"} <= set(df.columns)
    assert (df.ai <= df.n1i).all() and (df.ci <= df.n2i).all()
    assert df.attrs["truth"]["binary"]["mu"] == -0.5
