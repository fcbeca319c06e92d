"""Tests of ketabayes.data.effect_sizes against independent values.

Every expected number comes from either
* a published escalc output table (source and tolerance given next to it), or
* the scalar formula worked out in this file with :mod:`math` (closed forms,
  compared with ``rel=1e-12``); the formulas are metafor's (R/escalc.r,
  vtype="LS"), written out independently of the code under test (which uses
  NumPy/SciPy).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pytest

from ketabayes.data.effect_sizes import effect_sizes
from ketabayes.errors import DataError, DataWarning

REL = 1e-12

# --------------------------------------------------------------------------- scalar formulas


def md(m1, sd1, n1, m2, sd2, n2):
    return m1 - m2, sd1**2 / n1 + sd2**2 / n2


def smd(m1, sd1, n1, m2, sd2, n2):
    """Hedges' g with the exact correction (Hedges 1981) and metafor's LS variance."""
    m = n1 + n2 - 2
    sp = math.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / m)
    d = (m1 - m2) / sp
    c = math.exp(math.lgamma(m / 2) - math.lgamma((m - 1) / 2)) / math.sqrt(m / 2)
    g = c * d
    return g, 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))


def log_or(a, b, c, d):
    return math.log((a * d) / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d


def log_rr(a, b, c, d):
    n1, n2 = a + b, c + d
    return math.log((a / n1) / (c / n2)), 1 / a - 1 / n1 + 1 / c - 1 / n2


def rd(a, b, c, d):
    n1, n2 = a + b, c + d
    p1, p2 = a / n1, c / n2
    return p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2


FORMULA = {"OR": log_or, "RR": log_rr, "RD": rd}


def assert_closed_form(row, expected):
    y, v = expected
    assert row["yi"] == pytest.approx(y, rel=REL, abs=1e-15)
    assert row["vi"] == pytest.approx(v, rel=REL)
    assert row["sei"] == pytest.approx(math.sqrt(v), rel=REL)


# --------------------------------------------------------------------------- published tables

# dat.bcg / dat.colditz1994 (Colditz et al. 1994): tpos, tneg, cpos, cneg
BCG = pd.DataFrame(
    {
        "author": [
            "Aronson", "Ferguson & Simes", "Rosenthal et al 1960", "Hart & Sutherland",
            "Frimodt-Moller et al", "Stein & Aronson", "Vandiviere et al", "TPT Madras",
            "Coetzee & Berjak", "Rosenthal et al 1961", "Comstock et al 1974",
            "Comstock & Webster", "Comstock et al 1976",
        ],
        "tpos": [4, 6, 3, 62, 33, 180, 8, 505, 29, 17, 186, 5, 27],
        "tneg": [119, 300, 228, 13536, 5036, 1361, 2537, 87886, 7470, 1699, 50448, 2493, 16886],
        "cpos": [11, 29, 11, 248, 47, 372, 10, 499, 45, 65, 141, 3, 29],
        "cneg": [128, 274, 209, 12619, 5761, 1079, 619, 87892, 7232, 1600, 27197, 2338, 17825],
    }
)
BCG_MAP = dict(study="author", ai="tpos", bi="tneg", ci="cpos", di="cneg")


def test_rr_matches_published_bcg():
    # metafor's README.md (github.com/wviechtb/metafor), output of
    # escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg), printed to 4
    # decimals -> tolerance 5e-5. The same table is in Viechtbauer (2010, JSS 36(3),
    # doi:10.18637/jss.v036.i03); metafor's tests/testthat/test_misc_cumul.r has -0.889311
    # for the first trial.
    published_yi = [-0.8893, -1.5854, -1.3481, -1.4416, -0.2175, -0.7861, -1.6209,
                    0.0120, -0.4694, -1.3713, -0.3394, 0.4459, -0.0173]
    published_vi = [0.3256, 0.1946, 0.4154, 0.0200, 0.0512, 0.0069, 0.2230,
                    0.0040, 0.0564, 0.0730, 0.0124, 0.5325, 0.0714]
    out = effect_sizes(BCG, "RR", **BCG_MAP)
    np.testing.assert_allclose(out["yi"], published_yi, rtol=0, atol=5.01e-5)
    np.testing.assert_allclose(out["vi"], published_vi, rtol=0, atol=5.01e-5)
    assert out["estimable"].all() and (out["note"] == "").all()
    assert out["study"].tolist() == BCG["author"].tolist()


def test_or_matches_published_bcg():
    # metafor-project.org/doku.php/analyses:vanhouwelingen2002: escalc(measure="OR",
    # ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.colditz1994), 4 decimals -> tol 5e-5.
    published = [
        (-0.9387, 0.3571), (-1.6662, 0.2081), (-1.3863, 0.4334), (-1.4564, 0.0203),
        (-0.2191, 0.0520), (-0.9581, 0.0099), (-1.6338, 0.2270),
    ]
    out = effect_sizes(BCG.iloc[:7], "OR", **BCG_MAP)
    np.testing.assert_allclose(out["yi"], [p[0] for p in published], rtol=0, atol=5.01e-5)
    np.testing.assert_allclose(out["vi"], [p[1] for p in published], rtol=0, atol=5.01e-5)


@pytest.mark.parametrize("measure", ["OR", "RR", "RD"])
def test_2x2_closed_forms_bcg(measure):
    out = effect_sizes(BCG, measure, **BCG_MAP)
    for (_, row), (_, d) in zip(out.iterrows(), BCG.iterrows(), strict=True):
        assert_closed_form(row, FORMULA[measure](d.tpos, d.tneg, d.cpos, d.cneg))


# dat.normand1999 (Normand 1999), length of hospital stay
NORMAND = pd.DataFrame(
    {
        "source": [
            "Edinburgh", "Orpington-Mild", "Orpington-Moderate", "Orpington-Severe",
            "Montreal-Home", "Montreal-Transfer", "Newcastle", "Umea", "Uppsala",
        ],
        "n1i": [155, 31, 75, 18, 8, 57, 34, 110, 60],
        "m1i": [55, 27, 64, 66, 14, 19, 52, 21, 30],
        "sd1i": [47, 7, 17, 20, 8, 7, 45, 16, 27],
        "n2i": [156, 32, 71, 18, 13, 52, 33, 183, 52],
        "m2i": [75, 29, 119, 137, 18, 18, 41, 31, 23],
        "sd2i": [64, 4, 29, 48, 11, 4, 34, 27, 20],
    }
)


def test_smd_matches_published_normand1999():
    # escalc(measure="SMD", ..., data=dat.normand1999) as printed (7 decimals) in
    # https://cjvanlissa.github.io/Doing-Meta-Analysis-in-R/fixed.html, section 4.1
    # -> tolerance 5e-8 (rounding) + 1e-9.
    published_yi = [-0.3551696, -0.3479400, -2.3175692, -1.8879823, -0.3839641,
                    0.1721487, 0.2720521, -0.4245963, 0.2895562]
    published_vi = [0.0130647, 0.0644689, 0.0458121, 0.1606177, 0.2054333,
                    0.0369106, 0.0602671, 0.0148630, 0.0362717]
    out = effect_sizes(NORMAND, "SMD", study="source")
    np.testing.assert_allclose(out["yi"], published_yi, rtol=0, atol=5.1e-8)
    np.testing.assert_allclose(out["vi"], published_vi, rtol=0, atol=5.1e-8)
    assert list(out["study"]) == list(NORMAND["source"])


@pytest.mark.parametrize("measure, formula", [("MD", md), ("SMD", smd)])
def test_continuous_closed_forms(measure, formula):
    out = effect_sizes(NORMAND, measure, study="source")
    for (_, row), (_, d) in zip(out.iterrows(), NORMAND.iterrows(), strict=True):
        assert_closed_form(row, formula(d.m1i, d.sd1i, d.n1i, d.m2i, d.sd2i, d.n2i))


def _exact_c_even(m):
    """c(m) for even m from factorials, to 50 digits (no floating-point gamma).

    With k = m/2 - 1: Gamma(m/2) = k! and Gamma((m-1)/2) = Gamma(k + 1/2) = (2k)! sqrt(pi) / (4^k k!).
    """
    from decimal import Decimal, localcontext

    k = m // 2 - 1
    with localcontext() as ctx:
        ctx.prec = 50
        pi = Decimal("3.14159265358979323846264338327950288419716939937510")
        c = (Decimal(math.factorial(k)) ** 2 * Decimal(4) ** k) / (
            Decimal(math.factorial(2 * k)) * pi.sqrt() * (Decimal(m) / 2).sqrt()
        )
    return float(c)


def test_smd_exact_correction_large_groups_no_overflow():
    # Gamma(m/2) overflows for m >= 344 (metafor's comment in .cmicalc); the log-gamma form
    # must not. Reference c(m) from exact factorials. Tolerance 1e-11: log-gamma values are
    # ~1.7e4 here, so their difference in double precision keeps only ~1e-12 relative accuracy.
    n1, n2 = 2500, 2600
    df = pd.DataFrame({"m1i": [10.5], "sd1i": [3.0], "n1i": [n1], "m2i": [10.0], "sd2i": [3.5], "n2i": [n2]})
    row = effect_sizes(df, "SMD").iloc[0]
    m = n1 + n2 - 2
    d = 0.5 / math.sqrt(((n1 - 1) * 9 + (n2 - 1) * 12.25) / m)
    g = _exact_c_even(m) * d
    assert row["yi"] == pytest.approx(g, rel=1e-11)
    assert row["vi"] == pytest.approx(1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2)), rel=1e-11)
    # Hedges' (1981) approximation c(m) ~ 1 - 3/(4m - 1) is accurate to O(m^-2) here
    assert row["yi"] == pytest.approx((1 - 3 / (4 * m - 1)) * d, rel=1e-7)


def test_smd_correction_exact_for_moderate_m():
    # c(m) from factorials for a few even m, against the code (via d = 1: m1i - m2i = pooled SD)
    for n in (3, 6, 21, 100):
        m = 2 * n - 2
        df = pd.DataFrame({"m1i": [1.0], "sd1i": [1.0], "n1i": [n], "m2i": [0.0], "sd2i": [1.0], "n2i": [n]})
        assert effect_sizes(df, "SMD").iloc[0]["yi"] == pytest.approx(_exact_c_even(m), rel=REL)


def test_smd_small_groups():
    # m = 2: c(2) = Gamma(1) / (1 * Gamma(1/2)) = 1/sqrt(pi)
    df = pd.DataFrame({"m1i": [3.0], "sd1i": [1.0], "n1i": [2], "m2i": [1.0], "sd2i": [1.0], "n2i": [2]})
    row = effect_sizes(df, "SMD").iloc[0]
    g = (1 / math.sqrt(math.pi)) * 2.0
    assert row["yi"] == pytest.approx(g, rel=REL)
    assert row["vi"] == pytest.approx(1 / 2 + 1 / 2 + g**2 / 8, rel=REL)


# --------------------------------------------------------------------------- input forms


@pytest.mark.parametrize("measure", ["OR", "RR", "RD"])
def test_two_dichotomous_input_forms_agree(measure):
    cells = BCG.rename(columns={"tpos": "ai", "tneg": "bi", "cpos": "ci", "cneg": "di"})
    totals = pd.DataFrame(
        {"author": cells.author, "ai": cells.ai, "n1i": cells.ai + cells.bi,
         "ci": cells.ci, "n2i": cells.ci + cells.di}
    )
    a = effect_sizes(cells, measure, study="author")
    b = effect_sizes(totals, measure, study="author")
    for col in ("yi", "vi", "sei"):
        np.testing.assert_array_equal(a[col].to_numpy(), b[col].to_numpy())


def test_mixed_forms_and_consistent_bi_and_n1i():
    df = pd.DataFrame({"ai": [4], "bi": [119], "n1i": [123], "ci": [11], "n2i": [139]})
    row = effect_sizes(df, "RR").iloc[0]
    assert_closed_form(row, log_rr(4, 119, 11, 128))


def test_column_mapping_to_user_names():
    df = pd.DataFrame(
        {"trial": ["X", "Y"], "events_drug": [10, 3], "n_drug": [50, 40],
         "events_pbo": [20, 9], "n_pbo": [52, 41]}
    )
    out = effect_sizes(df, "or", study="trial", ai="events_drug", n1i="n_drug", ci="events_pbo", n2i="n_pbo")
    assert list(out["study"]) == ["X", "Y"]
    assert_closed_form(out.iloc[0], log_or(10, 40, 20, 32))
    assert_closed_form(out.iloc[1], log_or(3, 37, 9, 32))
    assert out.attrs["measure"] == "OR"
    assert (out["measure"] == "OR").all()


def test_dict_input_is_accepted():
    out = effect_sizes({"yi": [0.2, -0.1], "vi": [0.01, 0.04]}, "GEN")
    assert list(out["study"]) == ["Study 1", "Study 2"]


# --------------------------------------------------------------------------- zero cells


@pytest.mark.parametrize("measure", ["OR", "RR", "RD"])
def test_single_zero_cell_gets_half_added(measure):
    df = pd.DataFrame({"study": ["zero", "plain"], "ai": [0, 5], "n1i": [20, 20], "ci": [4, 6], "n2i": [21, 22]})
    out = effect_sizes(df, measure)
    zero, plain = out.iloc[0], out.iloc[1]
    # metafor, to="only0": 0.5 added to all four cells of a table with a zero cell (also for RD)
    assert_closed_form(zero, FORMULA[measure](0.5, 20.5, 4.5, 17.5))
    assert zero["note"] == "0.5 added to each cell (zero cell)"
    assert zero["estimable"]
    assert_closed_form(plain, FORMULA[measure](5, 15, 6, 16))
    assert plain["note"] == ""


def test_zero_non_event_cell_also_triggers_correction():
    # bi = 0 (every participant in group 1 had the event) is a zero cell too
    df = pd.DataFrame({"ai": [10], "n1i": [10], "ci": [4], "n2i": [12]})
    assert_closed_form(effect_sizes(df, "OR").iloc[0], log_or(10.5, 0.5, 4.5, 8.5))


@pytest.mark.parametrize("measure", ["OR", "RR"])
def test_double_zero_dropped_by_default(measure):
    df = pd.DataFrame({"study": ["none", "some"], "ai": [0, 2], "n1i": [15, 30], "ci": [0, 5], "n2i": [14, 31]})
    with pytest.warns(DataWarning, match="'none'"):
        out = effect_sizes(df, measure)
    row = out.iloc[0]
    assert math.isnan(row["yi"]) and math.isnan(row["vi"]) and math.isnan(row["sei"])
    assert not row["estimable"]
    assert row["note"] == "no events in either arm: not estimable on the log scale (drop00=True)"
    assert len(out) == 2  # kept in the table
    assert_closed_form(out.iloc[1], FORMULA[measure](2, 28, 5, 26))


@pytest.mark.parametrize("measure", ["OR", "RR"])
def test_all_events_in_both_arms_dropped_by_default(measure):
    # metafor's drop00 also covers bi = di = 0
    df = pd.DataFrame({"ai": [15], "n1i": [15], "ci": [14], "n2i": [14]})
    with pytest.warns(DataWarning):
        row = effect_sizes(df, measure).iloc[0]
    assert not row["estimable"] and math.isnan(row["yi"])
    assert "every participant had the event in both arms" in row["note"]


@pytest.mark.parametrize("measure", ["OR", "RR"])
def test_double_zero_with_drop00_false_reproduces_metafor(measure):
    df = pd.DataFrame({"ai": [0], "n1i": [15], "ci": [0], "n2i": [14]})
    row = effect_sizes(df, measure, drop00=False).iloc[0]  # no warning: estimable
    # metafor drop00=FALSE: 0.5 added to every cell -> a=0.5, b=15.5, c=0.5, d=14.5
    assert_closed_form(row, FORMULA[measure](0.5, 15.5, 0.5, 14.5))
    assert row["estimable"]
    assert row["note"] == "0.5 added to each cell (zero cell); no events in either arm"


@pytest.mark.parametrize("drop00", [True, False])
def test_rd_double_zero_is_estimable(drop00):
    df = pd.DataFrame({"ai": [0, 0], "n1i": [15, 20], "ci": [0, 0], "n2i": [14, 20]})
    out = effect_sizes(df, "RD", drop00=drop00)  # no warning
    assert out["estimable"].all()
    # metafor (to="only0" applies to RD): a=0.5, b=n1+0.5, c=0.5, d=n2+0.5
    assert_closed_form(out.iloc[0], rd(0.5, 15.5, 0.5, 14.5))
    assert out.iloc[0]["yi"] == pytest.approx(0.5 / 16 - 0.5 / 15, rel=REL)
    assert out.iloc[1]["yi"] == 0.0  # equal arms: RD = 0 exactly
    assert_closed_form(out.iloc[1], rd(0.5, 20.5, 0.5, 20.5))


def test_to_all_and_if0all():
    df = pd.DataFrame({"ai": [0, 5], "n1i": [20, 20], "ci": [4, 6], "n2i": [21, 22]})
    for to in ("all", "if0all"):
        out = effect_sizes(df, "OR", to=to)
        assert_closed_form(out.iloc[0], log_or(0.5, 20.5, 4.5, 17.5))
        assert_closed_form(out.iloc[1], log_or(5.5, 15.5, 6.5, 16.5))
        assert out.iloc[1]["note"] == f"0.5 added to each cell (to='{to}')"
    # if0all without any zero cell: nothing added
    out = effect_sizes(df.iloc[[1]], "OR", to="if0all")
    assert_closed_form(out.iloc[0], log_or(5, 15, 6, 16))
    # to="all" always adds, with a custom amount
    out = effect_sizes(df.iloc[[1]], "OR", to="all", add=0.25)
    assert_closed_form(out.iloc[0], log_or(5.25, 15.25, 6.25, 16.25))


@pytest.mark.parametrize("kwargs", [{"to": "none"}, {"add": 0}])
def test_no_correction_leaves_zero_cell_not_estimable(kwargs):
    df = pd.DataFrame({"study": ["z", "ok"], "ai": [0, 5], "n1i": [20, 20], "ci": [4, 6], "n2i": [21, 22]})
    with pytest.warns(DataWarning, match="'z'"):
        out = effect_sizes(df, "OR", **kwargs)
    assert not out.iloc[0]["estimable"] and math.isnan(out.iloc[0]["yi"])
    assert "not estimable" in out.iloc[0]["note"]
    assert_closed_form(out.iloc[1], log_or(5, 15, 6, 16))


def test_rd_without_correction_zero_variance_flagged():
    # no events in either arm, no correction: RD = 0 with variance 0 (metafor's values)
    df = pd.DataFrame({"ai": [0], "n1i": [20], "ci": [0], "n2i": [20]})
    with pytest.warns(DataWarning):
        row = effect_sizes(df, "RD", to="none").iloc[0]
    assert row["yi"] == 0.0 and row["vi"] == 0.0
    assert not row["estimable"]
    assert row["note"] == "no events in either arm; sampling variance is 0: not estimable"


# --------------------------------------------------------------------------- GEN


def test_gen_with_vi_and_with_sei():
    # a crossover trial enters as its paired MD and SE
    df = pd.DataFrame({"trial": ["cross", "par"], "md": [-1.2, 0.4], "se": [0.5, 0.25]})
    out = effect_sizes(df, "GEN", study="trial", yi="md", sei="se")
    np.testing.assert_array_equal(out["yi"], [-1.2, 0.4])
    assert out["vi"].tolist() == pytest.approx([0.25, 0.0625], rel=REL)
    assert out["sei"].tolist() == pytest.approx([0.5, 0.25], rel=REL)

    df2 = pd.DataFrame({"yi": [0.3], "vi": [0.02]})
    row = effect_sizes(df2, "GEN").iloc[0]
    assert row["yi"] == 0.3 and row["vi"] == 0.02
    assert row["sei"] == pytest.approx(math.sqrt(0.02), rel=REL)


def test_gen_prefers_vi_when_both_given():
    df = pd.DataFrame({"yi": [0.3], "vi": [0.02], "sei": [99.0]})
    assert effect_sizes(df, "GEN").iloc[0]["vi"] == 0.02


def test_output_of_effect_sizes_can_be_fed_back_as_gen():
    first = effect_sizes(BCG, "RR", **BCG_MAP)
    again = effect_sizes(first, "GEN")
    np.testing.assert_array_equal(again["yi"], first["yi"])
    np.testing.assert_array_equal(again["vi"], first["vi"])
    assert list(again["study"]) == list(first["study"])


# --------------------------------------------------------------------------- labels and output table


def test_default_labels_when_no_study_column():
    df = pd.DataFrame({"yi": [0.1, 0.2, 0.3], "vi": [0.1, 0.1, 0.1]})
    assert effect_sizes(df, "GEN")["study"].tolist() == ["Study 1", "Study 2", "Study 3"]


def test_labels_are_strings():
    df = pd.DataFrame({"study": [101, 102], "yi": [0.1, 0.2], "vi": [0.1, 0.1]})
    assert effect_sizes(df, "GEN")["study"].tolist() == ["101", "102"]


def test_explicit_missing_study_column_is_an_error():
    df = pd.DataFrame({"trial_name": ["a"], "yi": [0.1], "vi": [0.1]})
    with pytest.raises(DataError, match="trial_nam"):
        effect_sizes(df, "GEN", study="trialname")


def test_output_columns_index_and_types():
    df = BCG.copy()
    df.index = range(100, 100 + 10 * len(BCG), 10)
    out = effect_sizes(df, "RR", **BCG_MAP)
    assert list(out.columns[: len(BCG.columns)]) == list(BCG.columns)
    for col in ("study", "yi", "vi", "sei", "estimable", "note", "measure"):
        assert col in out.columns
    assert list(out.index) == list(df.index)
    assert out["estimable"].dtype == bool
    assert all(isinstance(x, str) for x in out["note"])
    assert out is not df


def test_input_not_mutated():
    df = BCG.copy()
    df.loc[0, "tpos"] = 0  # a zero cell, so the correction path runs too
    df.attrs["source"] = "Colditz 1994"
    before = copy.deepcopy(df)
    for measure in ("OR", "RR", "RD"):
        effect_sizes(df, measure, **BCG_MAP)
    pd.testing.assert_frame_equal(df, before)
    assert df.attrs == before.attrs
    assert list(df.columns) == list(before.columns)

    cont = NORMAND.copy()
    before = copy.deepcopy(cont)
    effect_sizes(cont, "SMD", study="source")
    pd.testing.assert_frame_equal(cont, before)

    d = {"yi": [0.1], "sei": [0.2]}
    effect_sizes(d, "GEN")
    assert d == {"yi": [0.1], "sei": [0.2]}


def test_measure_case_insensitive():
    a = effect_sizes(NORMAND, "smd", study="source")
    b = effect_sizes(NORMAND, "SMD", study="source")
    pd.testing.assert_frame_equal(a, b)


# --------------------------------------------------------------------------- argument errors


def test_unknown_keyword_suggests_metafor_name():
    with pytest.raises(DataError, match=r"ax=.*did you mean ai="):
        effect_sizes(BCG, "RR", study="author", ax="tpos", bi="tneg", ci="cpos", di="cneg")


def test_keyword_not_used_by_measure():
    with pytest.raises(DataError, match="m1i"):
        effect_sizes(BCG, "RR", m1i="tpos", **BCG_MAP)


def test_column_values_instead_of_name():
    with pytest.raises(DataError, match="name of a column"):
        effect_sizes(BCG, "RR", study="author", ai=BCG["tpos"], bi="tneg", ci="cpos", di="cneg")


@pytest.mark.parametrize("kwargs", [{"to": "only"}, {"add": -0.5}, {"add": float("nan")}, {"drop00": "yes"}])
def test_bad_options(kwargs):
    with pytest.raises(DataError):
        effect_sizes(BCG, "RR", **BCG_MAP, **kwargs)


def test_inconsistent_bi_and_n1i():
    df = pd.DataFrame({"study": ["s"], "ai": [4], "bi": [119], "n1i": [124], "ci": [11], "n2i": [139]})
    with pytest.raises(DataError, match=r"study 's', column 'n1i'"):
        effect_sizes(df, "RR")


def test_smd_too_small_groups():
    df = pd.DataFrame({"study": ["tiny"], "m1i": [1.0], "sd1i": [1.0], "n1i": [1], "m2i": [0.0], "sd2i": [1.0], "n2i": [2]})
    with pytest.raises(DataError, match="tiny"):
        effect_sizes(df, "SMD")
