"""Converted summaries (ketabayes.data.conversions).

Independent sources of the expected values:
* the formulas of Wan et al. (2014), Luo et al. (2018) and Shi et al. (2020, eq. 11 in its printed
  theta1/theta2 form) typed out below with :mod:`math` and :class:`statistics.NormalDist`
  (not scipy, which the module uses);
* the exact expected order statistics of normal samples by numerical integration
  (scipy.integrate.quad), which Wan's xi(n) and eta(n) approximate, checked themselves against
  the closed forms E[Z_(2)] = 1/sqrt(pi) and E[Z_(3)] = 3/(2 sqrt(pi)) and Harter's (1961) table;
* a seeded simulation of normal samples (the estimators are nearly unbiased for normal data);
* the worked crossover example of the Cochrane Handbook 5.1, section 16.4.6.4
  (SD of differences from SDs 2.38, 2.21 and r = 0.68, n = 10: SE 0.583), which is
  the change-score formula of section 16.1.3.2 / 6.5.2.8 of version 6.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from ketabayes.data.conversions import (
    correlation_from_sds,
    fill_mean_sd,
    fill_sd_change,
    fill_se,
    mean_sd_from_quantiles,
    sd_change,
    se_from_ci,
    se_from_p,
    se_from_t,
)
from ketabayes.data.effect_sizes import effect_sizes
from ketabayes.errors import DataError

Z = NormalDist()


def xi(n):
    return 2 * Z.inv_cdf((n - 0.375) / (n + 0.25))


def eta(n):
    return 2 * Z.inv_cdf((0.75 * n - 0.125) / (n + 0.25))


def by_hand(n, a=None, q1=None, m=None, q3=None, b=None):
    """(mean, sd) of Luo 2018 / Wan 2014 / Shi 2020 (eq. 11, theta form), scalar."""
    if a is not None and q1 is not None:
        w1 = 2.2 / (2.2 + n**0.75)
        w2 = 0.7 - 0.72 / n**0.55
        mean = w1 * (a + b) / 2 + w2 * (q1 + q3) / 2 + (1 - w1 - w2) * m
        theta1 = (2 + 0.14 * n**0.6) * Z.inv_cdf((n - 0.375) / (n + 0.25))
        theta2 = (2 + 2 / (0.07 * n**0.6)) * Z.inv_cdf((0.75 * n - 0.125) / (n + 0.25))
        return mean, (b - a) / theta1 + (q3 - q1) / theta2
    if a is not None:
        w = 4 / (4 + n**0.75)
        return w * (a + b) / 2 + (1 - w) * m, (b - a) / xi(n)
    w = 0.7 + 0.39 / n
    return w * (q1 + q3) / 2 + (1 - w) * m, (q3 - q1) / eta(n)


def expected_order_statistic(k, n):
    """E[Z_(k)] of a standard normal sample of size n, by numerical integration."""
    logc = math.lgamma(n + 1) - math.lgamma(k) - math.lgamma(n - k + 1)

    def f(z):
        return z * math.exp(
            logc + (k - 1) * stats.norm.logcdf(z) + (n - k) * stats.norm.logsf(z) + stats.norm.logpdf(z)
        )

    return integrate.quad(f, -12, 12, epsabs=1e-13, epsrel=1e-12, limit=200)[0]


# --------------------------------------------------------------------------- formulas


@pytest.mark.parametrize("n", [3, 5, 12, 41, 100, 1000])
def test_three_scenarios_equal_the_published_formulas(n):
    a, q1, m, q3, b = 1.0, 3.5, 5.0, 8.0, 16.0
    cases = {
        "S1": dict(min=[a], max=[b]),
        "S2": dict(q1=[q1], q3=[q3]),
        "S3": dict(min=[a], max=[b], q1=[q1], q3=[q3]),
    }
    hand = {
        "S1": by_hand(n, a=a, m=m, b=b),
        "S2": by_hand(n, q1=q1, m=m, q3=q3),
        "S3": by_hand(n, a=a, q1=q1, m=m, q3=q3, b=b),
    }
    for scen, kw in cases.items():
        mean, sd, s = mean_sd_from_quantiles([n], [m], **kw)
        assert s[0] == scen
        assert mean[0] == pytest.approx(hand[scen][0], rel=1e-12)
        assert sd[0] == pytest.approx(hand[scen][1], rel=1e-12)
    # Wan's S3 SD (eq. 9): the average of the two single-summary estimates
    _, sd, _ = mean_sd_from_quantiles([n], [m], min=[a], max=[b], q1=[q1], q3=[q3], sd_method="wan")
    assert sd[0] == pytest.approx(0.5 * ((b - a) / xi(n) + (q3 - q1) / eta(n)), rel=1e-12)


def test_integration_reproduces_closed_form_order_statistics():
    assert expected_order_statistic(2, 2) == pytest.approx(1 / math.sqrt(math.pi), rel=1e-10)
    assert expected_order_statistic(3, 3) == pytest.approx(3 / (2 * math.sqrt(math.pi)), rel=1e-10)
    assert expected_order_statistic(1, 3) == pytest.approx(-3 / (2 * math.sqrt(math.pi)), rel=1e-10)


@pytest.mark.parametrize(
    ("n", "published"), [(5, 1.16296), (10, 1.53875), (20, 1.86748), (50, 2.24907), (100, 2.50759)]
)
def test_integration_reproduces_harter_table(n, published):
    """E[Z_(n)] of Harter (1961), Biometrika 48:151-165 (5 decimals), the quantity Wan's Table 1 doubles."""
    assert expected_order_statistic(n, n) == pytest.approx(published, abs=6e-6)


@pytest.mark.parametrize("n", [9, 21, 41, 101, 401])
def test_wan_denominators_approximate_expected_order_statistics(n):
    """S1 and S2 SDs are unbiased for normal data up to Wan's approximation of E[Z_(k)]."""
    q = (n - 1) // 4
    exact_range = 2 * expected_order_statistic(n, n)
    exact_iqr = expected_order_statistic(3 * q + 1, n) - expected_order_statistic(q + 1, n)
    # a normal sample with sigma = 1 whose summaries equal their expectations
    _, sd1, _ = mean_sd_from_quantiles([n], [0.0], min=[-exact_range / 2], max=[exact_range / 2])
    _, sd2, _ = mean_sd_from_quantiles([n], [0.0], q1=[-exact_iqr / 2], q3=[exact_iqr / 2])
    assert sd1[0] == pytest.approx(1.0, abs=0.01)
    assert sd2[0] == pytest.approx(1.0, abs=0.01)


def test_estimators_nearly_unbiased_for_normal_samples():
    """Seeded simulation (SIMULATED normal data): mean and SD recovered within 1.5%."""
    rng = np.random.default_rng(20260101)
    n, mu, sigma, reps = 101, 10.0, 2.0, 4000
    x = np.sort(rng.normal(mu, sigma, size=(reps, n)), axis=1)
    a, q1, m, q3, b = x[:, 0], x[:, 25], x[:, 50], x[:, 75], x[:, 100]
    nn = np.full(reps, n)
    for kw in (dict(min=a, max=b), dict(q1=q1, q3=q3), dict(min=a, max=b, q1=q1, q3=q3)):
        mean, sd, _ = mean_sd_from_quantiles(nn, m, **kw)
        assert mean.mean() == pytest.approx(mu, rel=0.002)
        assert sd.mean() == pytest.approx(sigma, rel=0.015)


def test_symmetric_summaries_give_the_median_as_mean():
    mean, _, _ = mean_sd_from_quantiles([7, 30, 30], [4.0, 4.0, 4.0], min=[0.0, 0.0, 0.0],
                                        max=[8.0, 8.0, 8.0], q1=[np.nan, 2.0, 3.0], q3=[np.nan, 6.0, 5.0])
    np.testing.assert_allclose(mean, 4.0, rtol=1e-14)


def test_se_conversions_closed_forms():
    z = Z.inv_cdf(0.975)
    assert float(se_from_ci(0.2, 1.4)) == pytest.approx(1.2 / (2 * z), rel=1e-12)
    assert float(se_from_ci(0.2, 1.4, level=0.9)) == pytest.approx(1.2 / (2 * Z.inv_cdf(0.95)), rel=1e-12)
    # t quantile: t_{0.975, 10} = 2.228138852 (standard tables)
    assert float(se_from_ci(0.2, 1.4, df=10)) == pytest.approx(1.2 / (2 * 2.228138852), rel=1e-8)
    assert float(se_from_ci(0.5, 2.0, log=True)) == pytest.approx(math.log(4) / (2 * z), rel=1e-12)
    assert float(se_from_p(-0.8, 0.01)) == pytest.approx(0.8 / Z.inv_cdf(0.995), rel=1e-12)
    assert float(se_from_p(0.8, 0.05, df=10)) == pytest.approx(0.8 / 2.228138852, rel=1e-8)
    assert float(se_from_t(-1.5, 3.0)) == 0.5


def test_change_score_sd_handbook_example():
    # Cochrane Handbook 5.1, 16.4.6.4: SDs 2.38 and 2.21, Corr = 0.68, n = 10 -> SE 0.583
    sd = float(sd_change(2.38, 2.21, 0.68))
    assert sd / math.sqrt(10) == pytest.approx(0.583, abs=5e-4)
    assert sd == pytest.approx(math.sqrt(2.38**2 + 2.21**2 - 2 * 0.68 * 2.38 * 2.21), rel=1e-14)
    assert float(correlation_from_sds(2.38, 2.21, sd)) == pytest.approx(0.68, rel=1e-12)


# --------------------------------------------------------------------------- tables and provenance


def arms():
    return pd.DataFrame(
        {
            "study": ["Reported", "Range", "IQR", "Five"],
            "m1i": [4.0, None, None, None],
            "sd1i": [2.0, None, None, None],
            "n1i": [20, 15, 41, 60],
            "med1": [None, 5.0, 5.0, 5.0],
            "min1": [None, 1.0, None, 1.0],
            "max1": [None, 12.0, None, 14.0],
            "q1_1": [None, None, 3.0, 3.0],
            "q3_1": [None, None, 8.0, 8.5],
            "m2i": [3.0, 3.5, 4.0, 4.5],
            "sd2i": [2.0, 2.5, 3.0, 3.5],
            "n2i": [20, 15, 40, 60],
        }
    )


def test_fill_mean_sd_records_every_conversion_and_feeds_effect_sizes():
    df = arms()
    before = df.copy(deep=True)
    out = fill_mean_sd(df, mean="m1i", sd="sd1i", n="n1i", median="med1", min="min1", max="max1",
                       q1="q1_1", q3="q3_1")
    pd.testing.assert_frame_equal(df, before)
    assert out["converted"].tolist() == [False, True, True, True]
    assert out.loc[0, "conversion"] == ""
    assert "S1" in out.loc[1, "conversion"] and "Wan 2014" in out.loc[1, "conversion"]
    assert "S2" in out.loc[2, "conversion"]
    assert "S3" in out.loc[3, "conversion"] and "Shi 2020" in out.loc[3, "conversion"]
    assert out.loc[0, "m1i"] == 4.0 and out.loc[0, "sd1i"] == 2.0
    exp = [by_hand(15, a=1.0, m=5.0, b=12.0), by_hand(41, q1=3.0, m=5.0, q3=8.0),
           by_hand(60, a=1.0, q1=3.0, m=5.0, q3=8.5, b=14.0)]
    for i, (mu, sd) in enumerate(exp, start=1):
        assert out.loc[i, "m1i"] == pytest.approx(mu, rel=1e-12)
        assert out.loc[i, "sd1i"] == pytest.approx(sd, rel=1e-12)
    es = effect_sizes(out, "MD")
    assert es["converted"].tolist() == [False, True, True, True]  # provenance travels
    only_reported = es[~es["converted"]]
    assert only_reported["study"].tolist() == ["Reported"]


def test_conversions_chain_in_one_provenance_column():
    df = pd.DataFrame({"study": ["A"], "yi": [0.4], "sei": [None], "lo": [0.1], "hi": [0.7],
                       "conversion": ["earlier step"], "converted": [True]})
    out = fill_se(df, lower="lo", upper="hi")
    assert out.loc[0, "conversion"] == "earlier step; sei from the 95% CI (normal quantile)"
    assert bool(out.loc[0, "converted"])


def test_fill_se_routes():
    df = pd.DataFrame({
        "study": list("ABCDE"),
        "yi": [0.5, 0.5, -0.5, 0.5, 0.5],
        "sei": [0.2, None, None, None, None],
        "lo": [None, 0.1, None, None, 0.1],
        "hi": [None, 0.9, None, None, 0.9],
        "p": [None, None, 0.02, None, None],
        "t": [None, None, None, 2.5, None],
        "dof": [None, None, 18, None, 18],
    })
    out = fill_se(df, lower="lo", upper="hi", p="p", t="t", df="dof")
    z = Z.inv_cdf(0.975)
    assert out.loc[0, "sei"] == 0.2
    assert out.loc[1, "sei"] == pytest.approx(0.8 / (2 * z), rel=1e-12)
    assert out.loc[2, "sei"] == pytest.approx(0.5 / stats.t.isf(0.01, 18), rel=1e-12)
    assert out.loc[3, "sei"] == pytest.approx(0.2, rel=1e-12)
    assert out.loc[4, "sei"] == pytest.approx(0.8 / (2 * stats.t.ppf(0.975, 18)), rel=1e-12)
    assert out["converted"].tolist() == [False, True, True, True, True]
    assert "df=18" in out.loc[2, "conversion"] and "t statistic" in out.loc[3, "conversion"]
    es = effect_sizes(out, "GEN")
    assert es["estimable"].all()


def test_fill_sd_change_correlation_sources():
    df = pd.DataFrame({"study": ["A", "B", "C"], "sd1i": [None, None, 1.0], "sdb": [3.0, 3.0, 3.0],
                       "sdf": [4.0, 4.0, 4.0], "r": [0.0, None, None]})
    out = fill_sd_change(df, sd="sd1i", sd_baseline="sdb", sd_final="sdf", ri="r", r=0.5)
    assert out.loc[0, "sd1i"] == pytest.approx(5.0, rel=1e-14)
    assert out.loc[1, "sd1i"] == pytest.approx(math.sqrt(9 + 16 - 12), rel=1e-14)
    assert out.loc[2, "sd1i"] == 1.0
    assert "from column 'r'" in out.loc[0, "conversion"]
    assert "r=0.5 assumed" in out.loc[1, "conversion"]
    assert out["converted"].tolist() == [True, True, False]
    with pytest.raises(DataError, match="study 'B', column 'r'.*no silent default"):
        fill_sd_change(df, sd="sd1i", sd_baseline="sdb", sd_final="sdf", ri="r")


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("column", "value", "pattern"),
    [
        ("min1", 6.0, r"column 'min1'.*out of order"),
        ("q1_1", 9.0, r"column '(q1_1|med1)'.*out of order"),
        ("n1i", 2, r"column 'n1i'.*n >= 3"),
        ("med1", "five", r"column 'med1'.*not a finite number"),
        ("sd1i", -1.0, r"column 'sd1i'.*> 0"),
    ],
)
def test_fill_mean_sd_bad_input(column, value, pattern):
    df = arms().astype(object)
    df.loc[3, column] = value
    with pytest.raises(DataError, match="study 'Five', " + pattern):
        fill_mean_sd(df, mean="m1i", sd="sd1i", n="n1i", median="med1", min="min1", max="max1",
                     q1="q1_1", q3="q3_1")


def test_fill_mean_sd_nothing_to_convert_or_half_reported():
    df = arms().astype(object)
    df.loc[1, ["min1", "max1"]] = None
    with pytest.raises(DataError, match="study 'Range', column 'm1i'.*no mean/SD"):
        fill_mean_sd(df, mean="m1i", sd="sd1i", n="n1i", median="med1", min="min1", max="max1")
    df = arms().astype(object)
    df.loc[1, "m1i"] = 4.0
    with pytest.raises(DataError, match="study 'Range', column 'sd1i': blank, but 'm1i' is reported"):
        fill_mean_sd(df, mean="m1i", sd="sd1i", n="n1i", median="med1", min="min1", max="max1")


@pytest.mark.parametrize(
    ("column", "value", "pattern"),
    [
        ("p", 1.0, r"column 'p'.*\(0, 1\)"),
        ("p", "<0.05", r"column 'p'.*not a finite number"),
        ("t", 0.0, r"column 't'.*not be 0"),
        ("hi", 0.0, r"column 'hi'.*not above"),
        ("dof", -3, r"column 'dof'.*> 0"),
    ],
)
def test_fill_se_bad_input(column, value, pattern):
    df = pd.DataFrame({"study": ["A", "B"], "yi": [0.5, 0.5], "sei": [0.2, None], "lo": [None, None],
                       "hi": [None, None], "p": [None, 0.2], "t": [None, 2.0], "dof": [None, 10]}).astype(object)
    if column == "hi":
        df.loc[1, "lo"] = 0.5
    if column == "t":
        df.loc[1, "p"] = None  # the p-value route would come first
    df.loc[1, column] = value
    with pytest.raises(DataError, match="study 'B', " + pattern):
        fill_se(df, lower="lo", upper="hi", p="p", t="t", df="dof")


def test_fill_se_no_route():
    df = pd.DataFrame({"study": ["A"], "yi": [0.5], "sei": [None]})
    with pytest.raises(DataError, match="study 'A', column 'sei'.*no confidence interval"):
        fill_se(df)
