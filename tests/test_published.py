"""Published pooled estimates: back-calculated standard errors and the conjugate re-analysis.

Expected values: the Wald relation se = (U - L) / (2 z) with z = 1.959963984540054
(the 97.5% normal quantile, typed here), and the conjugate normal-normal posterior
written out in the test. Numbers are those of Ferraro et al. 2025 (Cochrane
CD015373), IV ketamine vs placebo: pain MD -15.79 (-32.09 to 0.51), any adverse
event RR 3.26 (1.05 to 10.09).
"""

from __future__ import annotations

import math

import pytest
from scipy import stats

from ketabayes.data.published import from_published
from ketabayes.errors import DataError
from ketabayes.reporting.panel import reanalyse_published

Z975 = 1.959963984540054
Z95 = 1.6448536269514722


def test_md_standard_error():
    row = from_published(-15.79, -32.09, 0.51, "MD")
    assert len(row) == 1
    se = (0.51 - (-32.09)) / (2 * Z975)
    assert float(row["sei"].iloc[0]) == pytest.approx(se, rel=1e-14)
    assert float(row["sei"].iloc[0]) == pytest.approx(8.316479, abs=5e-7)  # 32.6 / 3.919928, by hand
    assert float(row["vi"].iloc[0]) == pytest.approx(se * se, rel=1e-14)
    assert float(row["yi"].iloc[0]) == -15.79  # the published estimate, not the CI midpoint (-15.79)
    assert row.attrs["measure"] == "MD"
    assert row["measure"].iloc[0] == "MD"
    assert (row["estimate"].iloc[0], row["ci_low"].iloc[0], row["ci_high"].iloc[0]) == (-15.79, -32.09, 0.51)
    assert row["study"].iloc[0] == "published pooled estimate"


def test_from_published_docstring_example():
    import doctest

    import ketabayes.data.published as mod

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(mod.from_published, "from_published", globs={}):
        runner.run(test, out=lambda _: None)
    assert runner.summarize(verbose=False).failed == 0


def test_rr_standard_error_on_the_log_scale():
    row = from_published(3.26, 1.05, 10.09, "RR", label="IV ketamine, AE")
    se = (math.log(10.09) - math.log(1.05)) / (2 * Z975)
    assert float(row["sei"].iloc[0]) == pytest.approx(se, rel=1e-14)
    assert float(row["yi"].iloc[0]) == pytest.approx(math.log(3.26), rel=1e-15)
    assert row.attrs["measure"] == "RR"
    assert row["study"].iloc[0] == "IV ketamine, AE"


@pytest.mark.parametrize("measure", ["OR", "HR", "or"])
def test_other_ratio_measures_use_the_log_scale(measure):
    row = from_published(0.7, 0.5, 0.98, measure)
    assert float(row["sei"].iloc[0]) == pytest.approx((math.log(0.98) - math.log(0.5)) / (2 * Z975), rel=1e-14)
    assert float(row["yi"].iloc[0]) == pytest.approx(math.log(0.7), rel=1e-15)


def test_other_confidence_levels():
    row = from_published(-15.79, -29.47, -2.11, "MD", level=0.90)
    assert float(row["sei"].iloc[0]) == pytest.approx((-2.11 + 29.47) / (2 * Z95), rel=1e-14)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((5.0, 0.0, 20.0, "MD"), {}, r"not symmetric around 5"),
        ((3.26, 1.05, 30.0, "RR"), {}, r"not symmetric.*log scale"),
        ((25.0, 0.0, 20.0, "MD"), {}, r"estimate 25.0 lies outside its CI"),
        ((0.5, 1.05, 10.09, "RR"), {}, r"lies outside its CI"),
        ((3.26, 0.0, 10.09, "RR"), {}, r"column 'ci_low': a RR must be positive, got 0"),
        ((-1.0, 0.5, 2.0, "OR"), {}, r"column 'estimate': a OR must be positive"),
        ((1.0, 2.0, 1.5, "MD"), {}, r"ci_low \(2.0\) must be below ci_high \(1.5\)"),
        ((1.0, 0.5, 1.5, "XYZ"), {}, r"column 'measure': unknown measure 'XYZ'"),
        ((1.0, 0.5, 1.5, "MD"), {"level": 95}, r"level must be in \(0, 1\), got 95"),
        ((1.0, 0.5, 1.5, "MD"), {"level": 0}, r"level must be in \(0, 1\)"),
        ((math.nan, 0.5, 1.5, "MD"), {}, r"column 'estimate': must be a finite number"),
        (("1.0", 0.5, 1.5, "MD"), {}, r"column 'estimate': must be a finite number"),
    ],
)
def test_errors(args, kwargs, match):
    with pytest.raises(DataError, match=match):
        from_published(*args, **kwargs)


def test_errors_name_the_label():
    with pytest.raises(DataError, match=r"study 'my review'"):
        from_published(25.0, 0.0, 20.0, "MD", label="my review")


# ---------------------------------------------------------------------------
# conjugate re-analysis under the prior panel
# ---------------------------------------------------------------------------
def _conjugate(y, se, m0, s0):
    prec = 1 / s0**2 + 1 / se**2
    return (m0 / s0**2 + y / se**2) / prec, math.sqrt(1 / prec)


def test_reanalyse_published_md_equals_conjugate_normal_posterior():
    y, se = -15.79, (0.51 + 32.09) / (2 * Z975)
    mcid = 10.0
    pa = reanalyse_published(-15.79, -32.09, 0.51, "MD", mcid=mcid, benefit="lower", seed=1)
    t = pa.table.set_index("prior")
    assert list(t.index) == ["sceptical", "neutral", "enthusiastic"]
    assert set(t["target"]) == {"mean"}
    priors = {"sceptical": (0.0, mcid / Z95), "neutral": (0.0, 5 * mcid), "enthusiastic": (-mcid, mcid / Z95)}
    for name, (m0, s0) in priors.items():
        pm_, ps = _conjugate(y, se, m0, s0)
        r = t.loc[name]
        assert r["mean"] == pytest.approx(pm_, abs=1e-10)
        assert r["sd"] == pytest.approx(ps, abs=1e-10)
        assert r["p_benefit"] == pytest.approx(stats.norm.cdf(-mcid, pm_, ps), abs=1e-10)  # P(MD < -10)
        assert r["p_trivial"] == pytest.approx(stats.norm.cdf(mcid, pm_, ps) - stats.norm.cdf(-mcid, pm_, ps),
                                               abs=1e-10)  # P(|MD| <= 10)
        assert r["p_harm"] == pytest.approx(stats.norm.sf(mcid, pm_, ps), abs=1e-10)  # P(MD > 10)
        assert r["p_any_benefit"] == pytest.approx(stats.norm.cdf(0.0, pm_, ps), abs=1e-10)
        assert r["ci_low"] == pytest.approx(pm_ - Z975 * ps, abs=1e-8)
        assert r["ci_high"] == pytest.approx(pm_ + Z975 * ps, abs=1e-8)
        assert r["median"] == pytest.approx(pm_, abs=1e-8)
        assert bool(r["exact"])
    # plain-number check of one row: neutral prior N(0, 50^2) barely moves the likelihood
    assert t.loc["neutral", "mean"] == pytest.approx(-15.79 * 50**2 / (50**2 + se**2), abs=1e-10)


def test_reanalyse_published_rr_on_the_log_scale():
    y, se = math.log(3.26), (math.log(10.09) - math.log(1.05)) / (2 * Z975)
    d = math.log(1.25)
    pa = reanalyse_published(3.26, 1.05, 10.09, "RR", mcid=1.25, benefit="lower", seed=1)
    assert pa.measure == "RR"
    t = pa.table.set_index("prior")
    priors = {"sceptical": (0.0, d / Z95), "neutral": (0.0, 5 * d), "enthusiastic": (-d, d / Z95)}
    for name, (m0, s0) in priors.items():
        pm_, ps = _conjugate(y, se, m0, s0)
        assert t.loc[name, "mean"] == pytest.approx(pm_, abs=1e-10)
        assert t.loc[name, "sd"] == pytest.approx(ps, abs=1e-10)
        assert t.loc[name, "p_benefit"] == pytest.approx(stats.norm.cdf(-d, pm_, ps), abs=1e-10)
        assert t.loc[name, "p_harm"] == pytest.approx(stats.norm.sf(d, pm_, ps), abs=1e-10)
        p_harm = stats.norm.sf(d, pm_, ps)
        p_ben = stats.norm.cdf(-d, pm_, ps)
        expected = ("probable harm" if p_harm >= 0.8 else "probable benefit" if p_ben >= 0.8
                    else "practically no effect" if 1 - p_harm - p_ben >= 0.8 else "uncertain")
        assert t.loc[name, "verdict"] == expected


def test_reanalyse_published_higher_is_better_and_harm_threshold():
    y, se = 4.0, (9.0 - -1.0) / (2 * Z975)
    pa = reanalyse_published(4.0, -1.0, 9.0, "MD", mcid=5.0, benefit="higher", harm=2.0, seed=1)
    t = pa.table.set_index("prior")
    s0 = 5.0 / Z95
    pm_, ps = _conjugate(y, se, 5.0, s0)  # enthusiastic: centred on +MCID when higher is better
    assert t.loc["enthusiastic", "mean"] == pytest.approx(pm_, abs=1e-10)
    assert t.loc["enthusiastic", "p_benefit"] == pytest.approx(stats.norm.sf(5.0, pm_, ps), abs=1e-10)
    assert t.loc["enthusiastic", "p_harm"] == pytest.approx(stats.norm.cdf(-2.0, pm_, ps), abs=1e-10)


def test_reanalyse_published_hr_uses_ratio_thresholds():
    y, se = math.log(0.7), (math.log(0.98) - math.log(0.5)) / (2 * Z975)
    d = math.log(1.25)
    pa = reanalyse_published(0.7, 0.5, 0.98, "HR", mcid=1.25, benefit="lower", seed=1)
    assert pa.thresholds.ratio
    t = pa.table.set_index("prior")
    pm_, ps = _conjugate(y, se, 0.0, d / Z95)
    assert t.loc["sceptical", "mean"] == pytest.approx(pm_, abs=1e-10)
    assert t.loc["sceptical", "p_benefit"] == pytest.approx(stats.norm.cdf(-d, pm_, ps), abs=1e-10)


def test_hksj_interval_needs_df():
    # A RevMan-style REML + HKSJ result (t quantiles, k - 1 df) on the BCG log risk ratios (dat.bcg);
    # rma() itself is checked against metafor in tests/test_frequentist_metafor.py.
    import numpy as np
    from scipy import stats

    from ketabayes.inference.frequentist import rma

    a = np.array([4, 6, 3, 62, 33, 180, 8, 505, 29, 17, 186, 5, 27], dtype=float)
    n1 = a + np.array([119, 300, 228, 13536, 5036, 1361, 2537, 87886, 7470, 1699, 50448, 2493, 16886])
    c = np.array([11, 29, 11, 248, 47, 372, 10, 499, 45, 65, 141, 3, 29], dtype=float)
    n2 = c + np.array([128, 274, 209, 12619, 5761, 1079, 619, 87892, 7232, 1600, 27197, 2338, 17825])
    yi, vi = np.log(a / n1) - np.log(c / n2), 1 / a - 1 / n1 + 1 / c - 1 / n2
    res = rma(yi, vi, preset="revman")
    assert res.df == 12
    args = (math.exp(res.estimate), math.exp(res.ci_low), math.exp(res.ci_high), "RR")
    row = from_published(*args, df=res.df)
    assert row.sei.iloc[0] == pytest.approx(res.se, rel=1e-9)
    assert row.yi.iloc[0] == pytest.approx(res.estimate, rel=1e-12)
    wald = from_published(*args)  # treating the t interval as a z interval overstates the SE by t/z
    assert wald.sei.iloc[0] / row.sei.iloc[0] == pytest.approx(stats.t.ppf(0.975, 12) / stats.norm.ppf(0.975))
    for bad in (0, -1, float("nan"), "4", True):
        with pytest.raises(DataError, match="df must be a positive number"):
            from_published(*args, df=bad)


def test_reanalyse_published_passes_the_degrees_of_freedom():
    # a t-based (HKSJ) interval with 9 df: SE = half-width / t_{0.975, 9}, not / z_{0.975}
    from scipy import stats

    from ketabayes.reporting.panel import reanalyse_published

    pa = reanalyse_published(-10.0, -20.0, 0.0, "MD", mcid=5, df=9)
    se = 10.0 / stats.t.ppf(0.975, 9)
    neutral = pa.results["neutral"]
    assert float(neutral.tree["constant_data"]["vi"].values[0]) == pytest.approx(se**2, rel=1e-12)
