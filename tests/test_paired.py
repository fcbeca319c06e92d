"""Paired measures MC, SMCC, SMCR (ketabayes.data.paired via effect_sizes).

Expected values: metafor 3.8.1's escalc, produced by the committed script
scripts/reference/metafor_escalc_paired.R into tests/data/metafor_escalc_paired.json
(compared at rtol 1e-10), and the closed forms written out below with :mod:`math`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ketabayes.data.effect_sizes import effect_sizes
from ketabayes.data.paired import paired_effect
from ketabayes.errors import DataError

REF = json.loads((Path(__file__).parent / "data" / "metafor_escalc_paired.json").read_text())
RTOL = 1e-10


@pytest.mark.parametrize("dataset", ["morris2008", "constructed"])
@pytest.mark.parametrize("measure", ["MC", "SMCC", "SMCR"])
def test_effect_sizes_equal_metafor_default_vtype(dataset, measure):
    block = REF[dataset]
    df = pd.DataFrame(block["input"])
    if measure == "SMCR":
        df = df.drop(columns="sd2i")  # SMCR does not use sd2i
    out = effect_sizes(df, measure)
    np.testing.assert_allclose(out["yi"], block[f"{measure}_LS"]["yi"], rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(out["vi"], block[f"{measure}_LS"]["vi"], rtol=RTOL)
    assert out["estimable"].all()
    assert out.attrs["measure"] == measure


@pytest.mark.parametrize("dataset", ["morris2008", "constructed"])
@pytest.mark.parametrize("key", ["SMCC_LS2", "SMCR_LS2", "SMCC_LS", "SMCR_LS", "MC_LS"])
def test_paired_effect_equals_metafor_all_vtypes(dataset, key):
    block = REF[dataset]
    x = block["input"]
    measure, vtype = key.split("_")
    yi, vi = paired_effect(x["m1i"], x["m2i"], x["sd1i"], x["sd2i"], x["ni"], x["ri"], measure, vtype)
    np.testing.assert_allclose(yi, block[key]["yi"], rtol=RTOL, atol=1e-300)
    np.testing.assert_allclose(vi, block[key]["vi"], rtol=RTOL)


def test_closed_forms():
    m1, m2, s1, s2, n, r = 12.0, 9.5, 4.0, 5.0, 16, 0.6
    sd_d = math.sqrt(s1**2 + s2**2 - 2 * r * s1 * s2)
    c = math.exp(math.lgamma((n - 1) / 2) - math.lgamma((n - 2) / 2)) / math.sqrt((n - 1) / 2)
    df = pd.DataFrame({"m1i": [m1], "m2i": [m2], "sd1i": [s1], "sd2i": [s2], "ni": [n], "ri": [r]})
    mc = effect_sizes(df, "MC").iloc[0]
    assert mc["yi"] == pytest.approx(2.5, rel=1e-14)
    assert mc["vi"] == pytest.approx(sd_d**2 / n, rel=1e-14)
    g = c * 2.5 / sd_d
    smcc = effect_sizes(df, "SMCC").iloc[0]
    assert smcc["yi"] == pytest.approx(g, rel=1e-13)
    assert smcc["vi"] == pytest.approx(1 / n + g**2 / (2 * n), rel=1e-13)
    g = c * 2.5 / s1
    smcr = effect_sizes(df, "SMCR").iloc[0]
    assert smcr["yi"] == pytest.approx(g, rel=1e-13)
    assert smcr["vi"] == pytest.approx(2 * (1 - r) / n + g**2 / (2 * n), rel=1e-13)


def test_r_argument_fills_missing_correlations_and_is_recorded():
    df = pd.DataFrame(
        {"study": ["A", "B"], "m1i": [1.0, 2.0], "m2i": [0.0, 0.5], "sd1i": [1.0, 2.0],
         "sd2i": [1.5, 2.0], "ni": [10, 20], "ri": [0.3, np.nan]}
    )
    before = df.copy(deep=True)
    out = effect_sizes(df, "MC", r=0.5)
    pd.testing.assert_frame_equal(df, before)  # caller's frame untouched
    assert out.loc[0, "vi"] == pytest.approx((1 + 2.25 - 2 * 0.3 * 1.5) / 10, rel=1e-14)
    assert out.loc[1, "vi"] == pytest.approx((4 + 4 - 2 * 0.5 * 4) / 20, rel=1e-14)
    assert out.loc[0, "note"] == ""
    assert "r=0.5 assumed" in out.loc[1, "note"]
    # no ri column at all: r= used for every study
    out2 = effect_sizes(df.drop(columns="ri"), "SMCC", r=0.5)
    assert all("r=0.5 assumed" in s for s in out2["note"])


def test_missing_correlation_is_an_error_naming_study_and_column():
    df = pd.DataFrame(
        {"study": ["A", "B"], "m1i": [1.0, 2.0], "m2i": [0.0, 0.5], "sd1i": [1.0, 2.0],
         "sd2i": [1.5, 2.0], "ni": [10, 20], "ri": [0.3, None]}
    )
    with pytest.raises(DataError, match="study 'B', column 'ri'.*no silent default") as exc:
        effect_sizes(df, "MC")
    assert exc.value.study == "B" and exc.value.column == "ri"
    with pytest.raises(DataError, match="study 'A', column 'ri'"):
        effect_sizes(df.drop(columns="ri"), "SMCR")
    with pytest.raises(DataError, match="study 'B', column 'corr'"):
        effect_sizes(df.rename(columns={"ri": "corr"}), "SMCC", ri="corr")


@pytest.mark.parametrize(
    ("column", "value", "pattern"),
    [
        ("ri", 1.2, r"column 'ri'.*\[-1, 1\]"),
        ("ri", "high", r"column 'ri'.*not a finite number"),
        ("sd1i", -1.0, r"column 'sd1i'.*> 0"),
        ("sd2i", 0.0, r"column 'sd2i'.*> 0"),
        ("ni", 1, r"column 'ni'.*ni >= 2"),
        ("m1i", "12a", r"column 'm1i'.*not a number"),
    ],
)
def test_bad_input(column, value, pattern):
    df = pd.DataFrame(
        {"study": ["A", "B"], "m1i": [1.0, 2.0], "m2i": [0.0, 0.5], "sd1i": [1.0, 2.0],
         "sd2i": [1.5, 2.0], "ni": [10, 20], "ri": [0.3, 0.4]}
    ).astype(object)
    df.loc[1, column] = value
    with pytest.raises(DataError, match="study 'B', " + pattern):
        effect_sizes(df, "MC")


def test_bad_r_argument_and_small_n_for_standardized():
    df = pd.DataFrame({"m1i": [1.0], "m2i": [0.0], "sd1i": [1.0], "sd2i": [1.0], "ni": [2]})
    with pytest.raises(DataError, match="r must be a correlation"):
        effect_sizes(df, "MC", r=1.5)
    with pytest.raises(DataError, match="only used by the paired measures"):
        effect_sizes(df.rename(columns={"ni": "n1i"}), "MD", r=0.5)
    with pytest.raises(DataError, match="column 'ni'.*ni >= 3"):
        effect_sizes(df, "SMCC", r=0.5)
    with pytest.raises(DataError, match="not used by measure 'SMCR'"):
        effect_sizes(df.assign(ni=5), "SMCR", r=0.5, sd2i="sd2i")
    with pytest.raises(DataError, match="SD of the differences.*is 0"):
        effect_sizes(df.assign(ni=5), "SMCC", r=1.0)


def test_output_feeds_the_random_effects_model():
    from ketabayes.model.random_effects import RandomEffectsModel

    out = effect_sizes(pd.DataFrame(REF["morris2008"]["input"]), "SMCR")
    # the model's default tau prior does not know SMCC/SMCR (model layer): give one
    model = RandomEffectsModel(out, prior_tau="halfnormal(0.5)")
    assert model.k == 5 and model.measure == "SMCR"
    np.testing.assert_allclose(model.yi, REF["morris2008"]["SMCR_LS"]["yi"], rtol=RTOL)
