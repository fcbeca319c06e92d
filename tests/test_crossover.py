"""Crossover helper (ketabayes.data.crossover).

Expected values: the worked example of the Cochrane Handbook 5.1, section 16.4.6.4
(n = 10, ME = 7.0, SDE = 2.38, MC = 6.5, SDC = 2.21: MD 0.5; SE 0.632 with an imputed SD of
differences of 2; SE 0.583 with an imputed correlation of 0.68), the Student t quantile
t_{0.95, 9} = 1.833113 from standard tables, and closed forms written out with :mod:`math`.
The numbers in the tables below are CONSTRUCTED for the tests (not trial data).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ketabayes.data.crossover import crossover
from ketabayes.errors import DataError


def handbook():
    return pd.DataFrame({"study": ["Example"], "m1i": [7.0], "sd1i": [2.38], "m2i": [6.5], "sd2i": [2.21],
                         "ni": [10]})


def test_handbook_example_imputed_correlation():
    out = crossover(handbook(), r=0.68)
    row = out.iloc[0]
    assert row["yi"] == pytest.approx(0.5, rel=1e-14)
    assert row["sei"] == pytest.approx(0.583, abs=5e-4)
    assert row["route"] == "periods" and row["assumed_r"] == 0.68 and bool(row["converted"])
    assert "r=0.68 assumed" in row["conversion"]
    assert out.attrs["measure"] == "MD" and row["measure"] == "MD"


def test_handbook_example_imputed_sd_of_differences():
    out = crossover(handbook().assign(mdi=0.5, sddi=2.0))
    row = out.iloc[0]
    assert row["route"] == "differences"  # preferred over 'periods' by method='auto'
    assert row["sei"] == pytest.approx(0.632, abs=5e-4)
    assert row["sei"] == pytest.approx(2 / math.sqrt(10), rel=1e-14)
    assert not bool(row["converted"]) and np.isnan(row["assumed_r"])


def test_correlation_column_wins_over_r_and_r_zero_is_parallel_analysis():
    out = crossover(handbook().assign(ri=0.5), r=0.9)
    assert out.loc[0, "vi"] == pytest.approx((2.38**2 + 2.21**2 - 2 * 0.5 * 2.38 * 2.21) / 10, rel=1e-14)
    assert np.isnan(out.loc[0, "assumed_r"]) and "from column 'ri'" in out.loc[0, "conversion"]
    out0 = crossover(handbook(), r=0.0)
    assert out0.loc[0, "vi"] == pytest.approx(2.38**2 / 10 + 2.21**2 / 10, rel=1e-14)


def test_all_routes_in_one_table_auto():
    df = pd.DataFrame({
        "study": ["D", "T", "P", "R", "F"],
        "mdi": [1.0, -2.0, 1.5, None, None],
        "sddi": [3.0, None, None, None, None],
        "ti": [None, -4.0, None, None, None],
        "pi": [None, None, 0.1, None, None],
        "ni": [12, 20, 10, 16, None],
        "m1i": [None, None, None, 5.0, None],
        "sd1i": [None, None, None, 2.0, None],
        "m2i": [None, None, None, 4.0, None],
        "sd2i": [None, None, None, 3.0, None],
        "m1i_p1": [None] * 4 + [3.0],
        "sd1i_p1": [None] * 4 + [1.0],
        "n1i_p1": [None] * 4 + [8],
        "m2i_p1": [None] * 4 + [2.0],
        "sd2i_p1": [None] * 4 + [1.5],
        "n2i_p1": [None] * 4 + [9],
    })
    before = df.copy(deep=True)
    out = crossover(df, r=0.4)
    pd.testing.assert_frame_equal(df, before)
    assert out["route"].tolist() == ["differences", "t", "p", "periods", "first_period"]
    exp_y = [1.0, -2.0, 1.5, 1.0, 1.0]
    exp_v = [9 / 12, 0.25, (1.5 / 1.833113) ** 2, (4 + 9 - 2 * 0.4 * 6) / 16, 1 / 8 + 2.25 / 9]
    np.testing.assert_allclose(out["yi"], exp_y, rtol=1e-14)
    np.testing.assert_allclose(out["vi"], exp_v, rtol=2e-6)  # t table value has 7 digits
    assert out["converted"].tolist() == [False, True, True, True, False]
    assert "df=9" in out.loc[2, "conversion"]


def test_forced_route_and_first_period_option():
    df = handbook().assign(m1i_p1=7.2, sd1i_p1=2.0, n1i_p1=5, m2i_p1=6.0, sd2i_p1=2.5, n2i_p1=5)
    out = crossover(df, method="first_period", r=0.5)
    assert out.loc[0, "route"] == "first_period"
    assert out.loc[0, "yi"] == pytest.approx(1.2, rel=1e-14)
    assert out.loc[0, "vi"] == pytest.approx(4 / 5 + 6.25 / 5, rel=1e-14)
    with pytest.raises(DataError, match="study 'Example'.*differences: no 'sddi'"):
        crossover(handbook(), method="differences")


def test_sensitivity_over_r_is_monotone_and_feeds_the_model():
    from ketabayes.model.random_effects import RandomEffectsModel

    df = pd.DataFrame({"study": ["A", "B", "C"], "m1i": [7.0, 5.0, 3.0], "sd1i": [2.0, 1.5, 2.5],
                       "m2i": [6.0, 4.5, 3.5], "sd2i": [2.2, 1.4, 2.4], "ni": [10, 14, 22]})
    v = [crossover(df, r=r)["vi"].to_numpy() for r in (0.0, 0.3, 0.6, 0.9)]
    assert all((a > b).all() for a, b in zip(v, v[1:]))
    model = RandomEffectsModel(crossover(df, r=0.5), prior_tau="halfnormal(1)")
    assert model.k == 3 and model.measure == "MD"


def test_missing_correlation_is_an_error_not_a_default():
    with pytest.raises(DataError, match="study 'Example'.*correlation \\(ri or r=\\).*no silent default"):
        crossover(handbook())


@pytest.mark.parametrize(
    ("column", "value", "pattern"),
    [
        ("sd1i", -2.0, r"column 'sd1i'.*> 0"),
        ("ni", 1, r"column 'ni'.*at least 2"),
        ("ri", 1.5, r"column 'ri'.*\[-1, 1\]"),
        ("pi", 1.0, r"column 'pi'.*\(0, 1\)"),
        ("pi", "<0.05", r"column 'pi'.*not a finite number"),
        ("m1i", "seven", r"column 'm1i'.*not a finite number"),
    ],
)
def test_bad_input(column, value, pattern):
    df = pd.concat([handbook().assign(study="Ok"), handbook()], ignore_index=True).astype(object)
    df["ri"] = 0.5
    df["pi"] = None
    df.loc[1, column] = value
    with pytest.raises(DataError, match="study 'Example', " + pattern):
        crossover(df)


def test_bad_arguments():
    with pytest.raises(DataError, match="did you mean 'periods'"):
        crossover(handbook(), method="period", r=0.5)
    with pytest.raises(DataError, match="unknown argument sdd=.*did you mean sddi"):
        crossover(handbook(), r=0.5, sdd="x")
    with pytest.raises(DataError, match="r must be a correlation"):
        crossover(handbook(), r=2)
    with pytest.raises(DataError, match="column 't'.*t statistic is 0"):
        crossover(pd.DataFrame({"study": ["A"], "mdi": [1.0], "t": [0.0]}), ti="t")


# --------------------------------------------------------------------------- sizes and re-derivation at another r
def test_output_carries_the_patients_each_estimate_uses():
    df = pd.DataFrame({"study": ["T", "F", "D"], "mdi": [-2.0, None, 1.0], "ti": [-4.0, None, None],
                       "sddi": [None, None, 3.0], "ni": [None, None, 12],
                       "m1i_p1": [None, 3.0, None], "sd1i_p1": [None, 1.0, None], "n1i_p1": [None, 8, None],
                       "m2i_p1": [None, 2.0, None], "sd2i_p1": [None, 1.5, None], "n2i_p1": [None, 9, None]})
    out = crossover(df)
    assert np.isnan(out.loc[0, "ni"])  # the t route does not need n, and none was reported
    assert out.loc[1, "ni"] == 17 and out.loc[2, "ni"] == 12  # first period: 8 + 9 patients


def test_unit_information_default_prior_for_crossover_trials():
    from ketabayes.errors import PriorError
    from ketabayes.model.random_effects import RandomEffectsModel

    df = pd.DataFrame({"study": ["A", "B", "C"], "m1i": [7.0, 5.0, 3.0], "sd1i": [2.0, 1.5, 2.5],
                       "m2i": [6.0, 4.5, 3.5], "sd2i": [2.2, 1.4, 2.4], "ni": [10, 14, 22]})
    out = crossover(df, r=0.5)
    vd = [(2.0**2 + 2.2**2 - 2.2 * 2.0) / 10, (1.5**2 + 1.4**2 - 1.5 * 1.4) / 14, (2.5**2 + 2.4**2 - 2.5 * 2.4) / 22]
    uisd = math.sqrt((10 + 14 + 22) / sum(1 / v for v in vd))  # Röver et al. 2021, written out
    prior = RandomEffectsModel(out).prior_tau
    assert prior.sigma == pytest.approx(0.5 * uisd, rel=5e-4)
    no_n = crossover(pd.DataFrame({"study": ["A", "T"], "mdi": [1.0, -2.0], "sddi": [3.0, None], "ni": [12, None],
                                   "ti": [None, -4.0]}))
    with pytest.raises(PriorError, match=r"MD scale.*\(columns n1i \+ n2i, or ni.*missing for 'T'"):
        RandomEffectsModel(no_n)


def mixed_table():
    """Crossover trials by three routes plus a parallel trial (CONSTRUCTED numbers)."""
    from ketabayes.data.effect_sizes import effect_sizes

    cross = pd.DataFrame({"study": ["Assumed", "Reported", "Diffs"], "m1i": [7.0, 5.0, None],
                          "sd1i": [2.38, 2.0, None], "m2i": [6.5, 4.0, None], "sd2i": [2.21, 2.0, None],
                          "ni": [10, 12, 15], "ri": [None, 0.3, None], "mdi": [None, None, 0.8],
                          "sddi": [None, None, 2.5]})
    par = effect_sizes(pd.DataFrame({"study": ["Parallel"], "m1i": [3.0], "sd1i": [2.0], "n1i": [20],
                                     "m2i": [4.0], "sd2i": [2.5], "n2i": [22]}), "MD")
    return pd.concat([crossover(cross, r=0.68), par], ignore_index=True)


def test_with_assumed_r_rederives_only_the_assumed_trials():
    from ketabayes.data.crossover import with_assumed_r

    tab = mixed_table()
    before = tab.copy(deep=True)
    out = with_assumed_r(tab, 0.2)
    pd.testing.assert_frame_equal(tab, before)  # not modified
    assert out.loc[0, "vi"] == pytest.approx((2.38**2 + 2.21**2 - 2 * 0.2 * 2.38 * 2.21) / 10, rel=1e-14)
    assert out.loc[0, "sei"] == pytest.approx(math.sqrt(out.loc[0, "vi"]), rel=1e-15)
    assert out.loc[0, "yi"] == 0.5 and out.loc[0, "assumed_r"] == 0.2
    assert "r=0.2 assumed" in out.loc[0, "conversion"] and "0.68" not in out.loc[0, "conversion"]
    assert "r=0.2 assumed" in out.loc[0, "note"]
    pd.testing.assert_frame_equal(out.iloc[1:], tab.iloc[1:])  # reported ri, other route, parallel: unchanged
    # the same as building the crossover trial at r = 0.2 in the first place
    direct = crossover(pd.DataFrame({"study": ["Assumed"], "m1i": [7.0], "sd1i": [2.38], "m2i": [6.5],
                                     "sd2i": [2.21], "ni": [10]}), r=0.2)
    for c in ("yi", "vi", "sei", "assumed_r", "conversion", "note"):
        assert out.loc[0, c] == direct.loc[0, c]


def test_with_assumed_r_for_paired_measures_equals_the_closed_form():
    from scipy.special import gamma

    from ketabayes.data.crossover import with_assumed_r
    from ketabayes.data.effect_sizes import effect_sizes

    d = pd.DataFrame({"study": ["A", "B"], "m1i": [30.6, 23.5], "m2i": [38.5, 26.8], "sd1i": [15.0, 3.1],
                      "sd2i": [11.6, 4.1], "ni": [20, 50], "ri": [None, 0.64]})
    out = with_assumed_r(effect_sizes(d, "SMCC", r=0.5), 0.8)
    m = 19
    c = gamma(m / 2) / (math.sqrt(m / 2) * gamma((m - 1) / 2))  # Hedges' correction, written out
    y = c * (30.6 - 38.5) / math.sqrt(15**2 + 11.6**2 - 2 * 0.8 * 15 * 11.6)
    assert out.loc[0, "yi"] == pytest.approx(y, rel=1e-12)
    assert out.loc[0, "vi"] == pytest.approx(1 / 20 + y**2 / 40, rel=1e-12)
    assert out.loc[0, "assumed_r"] == 0.8 and "r=0.8 assumed" in out.loc[0, "note"]
    assert np.isnan(out.loc[1, "assumed_r"])
    ref = effect_sizes(d, "SMCC", r=0.5)
    assert out.loc[1, "yi"] == ref.loc[1, "yi"]  # reported ri: untouched


def test_with_assumed_r_errors_name_the_study_and_column():
    from ketabayes.data.crossover import with_assumed_r

    with pytest.raises(DataError, match="column 'assumed_r'.*no study has an assumed correlation"):
        with_assumed_r(crossover(handbook().assign(ri=0.5)), 0.3)
    with pytest.raises(DataError, match="no study has an assumed correlation"):
        with_assumed_r(handbook(), 0.3)
    renamed = crossover(handbook().rename(columns={"sd1i": "SD_T"}), r=0.5, sd1i="SD_T")
    with pytest.raises(DataError, match="study 'Example', column 'sd1i'.*is missing"):
        with_assumed_r(renamed, 0.3)
    with pytest.raises(DataError, match="r must be a correlation"):
        with_assumed_r(mixed_table(), 1.5)


def test_a_route_column_with_another_meaning_is_not_overwritten():
    with pytest.raises(DataError, match="study 'Example', column 'route'.*holds 'IV'.*rename your column"):
        crossover(handbook().assign(route="IV"), r=0.5)
    again = crossover(crossover(handbook(), r=0.5), r=0.3)  # its own output: the same meaning
    assert again.loc[0, "route"] == "periods"
