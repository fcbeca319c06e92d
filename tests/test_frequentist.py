"""Tests of ketabayes.inference.frequentist against independent references.

Expected numbers come from (1) published metafor output, (2) closed forms
written out here, (3) a different algorithm for REML (bounded Brent
minimisation of the restricted likelihood written in matrix form).
Nothing is taken from the code under test.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from ketabayes.errors import DataError, DataWarning, KetabayesError
from ketabayes.inference.frequentist import RmaResult, rma, rma_all

# ---------------------------------------------------------------------------
# BCG vaccine data (Colditz et al. 1994), metafor's dat.bcg. The 2x2 counts are
# printed in metafor's README (github.com/wviechtb/metafor, README.md, "dat.bcg"
# table) and in the metadat/metafor help page for dat.bcg.
TPOS = np.array([4, 6, 3, 62, 33, 180, 8, 505, 29, 17, 186, 5, 27], dtype=float)
TNEG = np.array([119, 300, 228, 13536, 5036, 1361, 2537, 87886, 7470, 1699, 50448, 2493, 16886], dtype=float)
CPOS = np.array([11, 29, 11, 248, 47, 372, 10, 499, 45, 65, 141, 3, 29], dtype=float)
CNEG = np.array([128, 274, 209, 12619, 5761, 1079, 619, 87892, 7232, 1600, 27197, 2338, 17825], dtype=float)


def bcg_log_rr():
    """Log risk ratios and variances by the textbook formulas (escalc measure="RR")."""
    a, b, c, d = TPOS, TNEG, CPOS, CNEG
    yi = np.log((a / (a + b)) / (c / (c + d)))
    vi = 1 / a - 1 / (a + b) + 1 / c - 1 / (c + d)
    return yi, vi


def bcg_log_or():
    """Log odds ratios and variances by the textbook formulas (escalc measure="OR"; no zero cells)."""
    a, b, c, d = TPOS, TNEG, CPOS, CNEG
    return np.log(a * d / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d


def assert_printed(value, printed: str, units: float = 0.5):
    """``value`` agrees with the published ``printed`` number to ``units`` of its last digit.

    The default (half a unit) means ``value`` rounds to ``printed``.
    """
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    tol = units * 10.0**-decimals
    assert value == pytest.approx(float(printed), abs=tol * (1 + 1e-9)), (value, printed)


def test_bcg_effect_sizes_match_metafor_readme():
    # yi / vi columns printed by escalc(measure="RR", ...) in metafor's README.md
    yi, vi = bcg_log_rr()
    printed_yi = "-0.8893 -1.5854 -1.3481 -1.4416 -0.2175 -0.7861 -1.6209 0.0120 -0.4694 -1.3713 -0.3394 0.4459 -0.0173"
    printed_vi = "0.3256 0.1946 0.4154 0.0200 0.0512 0.0069 0.2230 0.0040 0.0564 0.0730 0.0124 0.5325 0.0714"
    for value, p in zip(yi, printed_yi.split(), strict=True):
        assert_printed(value, p)
    for value, p in zip(vi, printed_vi.split(), strict=True):
        assert_printed(value, p)


# ---------------------------------------------------------------------------
# 1. published metafor output


def test_bcg_reml_matches_published_metafor_output():
    # metafor README.md (github.com/wviechtb/metafor): rma(yi, vi, data=dat, test="knha")
    #   tau^2 0.3132 (SE = 0.1664), tau 0.5597, I^2 92.22%, H^2 12.86,
    #   Q(df = 12) = 152.2330, estimate -0.7145
    # z-test columns (default test="z") of the same fit, printed in the RoBMA
    # vignette "Bayesian Meta-Analysis" (github.com/FBartos/RoBMA, vignettes,
    # metafor::rma(yi, vi, data = dat, method = "REML") on dat.bcg):
    #   estimate -0.7145  se 0.1798  zval -3.9744  ci.lb -1.0669  ci.ub -0.3622
    res = rma(*bcg_log_rr(), method="REML")
    assert res.method == "REML" and res.k == 13
    assert_printed(res.tau2, "0.3132")
    assert_printed(res.tau2_se, "0.1664")
    assert_printed(res.tau, "0.5597")
    assert_printed(res.I2, "92.22")
    assert_printed(res.H2, "12.86")
    assert_printed(res.Q, "152.2330")
    assert res.Q_df == 12
    assert_printed(res.estimate, "-0.7145")
    assert_printed(res.se, "0.1798")
    assert_printed(res.zval, "-3.9744")
    assert_printed(res.ci_low, "-1.0669")
    assert_printed(res.ci_high, "-0.3622")
    assert res.pval < 1e-4  # printed "<.0001"


def test_bcg_fe_and_dl_match_metafor_tests_against_stata_metan():
    # metafor tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r
    # (numbers cross-checked there against Stata's metan):
    yi, vi = bcg_log_rr()
    fe = rma(yi, vi, method="FE")
    assert_printed(fe.estimate, "-0.4303")
    assert_printed(fe.ci_low, "-0.5097")
    assert_printed(fe.ci_high, "-0.3509")
    assert_printed(fe.zval, "-10.6247")
    assert_printed(fe.Q, "152.2330")
    assert fe.tau2 == 0.0
    dl = rma(yi, vi, method="DL")
    assert_printed(dl.estimate, "-0.7141")
    assert_printed(dl.ci_low, "-1.0644")
    assert_printed(dl.ci_high, "-0.3638")
    assert_printed(dl.zval, "-3.9952")
    assert_printed(dl.tau2, "0.3088")
    assert_printed(dl.I2, "92.1173")
    # same file, measure="OR", method="DL"
    dl_or = rma(*bcg_log_or(), method="DL")
    assert_printed(dl_or.estimate, "-0.7474")
    assert_printed(dl_or.tau2, "0.3663")
    assert_printed(dl_or.I2, "92.6455")
    fe_or = rma(*bcg_log_or(), method="FE")
    assert_printed(fe_or.estimate, "-0.4361")
    assert_printed(fe_or.zval, "-10.3190")
    assert_printed(fe_or.Q, "163.1649")


def test_bcg_log_or_dl_matches_published_summary_and_leave1out():
    # knitr output of metafor in github.com/STUST-ZhuYuXiang/CGMH_R, 06MetaAnalysis.md:
    # rma(ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg, measure="OR", method="DL")
    #   tau^2 0.3663 (SE = 0.2659), tau 0.6053, I^2 92.65%, H^2 13.60, Q 163.1649,
    #   estimate -0.7474 se 0.1923 zval -3.8873 pval 0.0001 ci -1.1242 -0.3706
    #   result$I2 = 92.64548, result$H2 = 13.59708
    yi, vi = bcg_log_or()
    res = rma(yi, vi, method="DL")
    assert_printed(res.tau2_se, "0.2659")
    assert_printed(res.tau, "0.6053")
    assert_printed(res.I2, "92.64548")
    assert_printed(res.H2, "13.59708")
    assert_printed(res.se, "0.1923")
    assert_printed(res.zval, "-3.8873")
    assert_printed(res.pval, "0.0001")
    assert_printed(res.ci_low, "-1.1242")
    assert_printed(res.ci_high, "-0.3706")
    # leave1out(result.ormr) table in the same file (7 significant digits):
    #   estimate, se, zval, ci.lb, ci.ub, Q, tau2, I2, H2 with study i left out.
    # knitr::kable rounds twice (round(x, 7), then format to 7 significant digits),
    # e.g. ci.lb -1.23532750 is printed -1.235327, so allow one unit in the last digit.
    leave1out = {
        0: ("-0.7373485", "0.1982353", "-3.719563", "-1.125882", "-0.3488145", "162.45415", "0.3702077", "93.22886", "14.768559"),
        3: ("-0.6591438", "0.1795794", "-3.670486", "-1.011113", "-0.3071746", "106.97867", "0.2711545", "89.71758", "9.725334"),
        7: ("-0.8258572", "0.1750651", "-4.717428", "-1.168979", "-0.4827359", "72.71742", "0.2514517", "84.87295", "6.610674"),
        10: ("-0.7962835", "0.2240062", "-3.554739", "-1.235327", "-0.3572394", "162.31937", "0.4705305", "93.22324", "14.756307"),
    }
    for drop, printed in leave1out.items():
        keep = np.arange(yi.size) != drop
        r = rma(yi[keep], vi[keep], method="DL")
        got = (r.estimate, r.se, r.zval, r.ci_low, r.ci_high, r.Q, r.tau2, r.I2, r.H2)
        for value, p in zip(got, printed, strict=True):
            assert_printed(value, p, units=1.0)


# ---------------------------------------------------------------------------
# 2. closed forms


@pytest.fixture(params=[0, 1, 2])
def random_data(request):
    rng = np.random.default_rng(20240611 + request.param)
    k = 5 + 4 * request.param
    vi = rng.uniform(0.01, 0.5, size=k)
    yi = rng.normal(0.2, np.sqrt(vi + 0.15))
    return yi, vi


def test_fe_closed_form(random_data):
    yi, vi = random_data
    w = 1 / vi
    mu = np.sum(w * yi) / np.sum(w)
    se = 1 / math.sqrt(np.sum(w))
    q = np.sum(w * (yi - mu) ** 2)
    k = yi.size
    z = stats.norm.ppf(0.975)
    res = rma(yi, vi, method="FE")
    assert res.estimate == pytest.approx(mu, rel=1e-10, abs=1e-12)
    assert res.se == pytest.approx(se, rel=1e-10)
    assert res.ci_low == pytest.approx(mu - z * se, rel=1e-10)
    assert res.ci_high == pytest.approx(mu + z * se, rel=1e-10)
    assert res.zval == pytest.approx(mu / se, rel=1e-10)
    assert res.pval == pytest.approx(2 * stats.norm.sf(abs(mu / se)), rel=1e-9)
    assert res.Q == pytest.approx(q, rel=1e-10)
    assert res.Q_df == k - 1
    assert res.Q_pval == pytest.approx(stats.chi2.sf(q, k - 1), rel=1e-9)
    assert res.I2 == pytest.approx(max(0.0, 100 * (q - (k - 1)) / q), rel=1e-10, abs=1e-12)
    assert res.H2 == pytest.approx(q / (k - 1), rel=1e-10)
    assert res.tau2 == 0.0 and res.tau == 0.0
    assert math.isnan(res.tau2_se)


def test_dl_closed_form(random_data):
    yi, vi = random_data
    k = yi.size
    w = 1 / vi
    mu_fe = np.sum(w * yi) / np.sum(w)
    q = np.sum(w * (yi - mu_fe) ** 2)
    c = np.sum(w) - np.sum(w**2) / np.sum(w)
    tau2 = max(0.0, (q - (k - 1)) / c)  # DerSimonian & Laird (1986)
    ws = 1 / (vi + tau2)
    mu = np.sum(ws * yi) / np.sum(ws)
    s2 = (k - 1) * np.sum(w) / (np.sum(w) ** 2 - np.sum(w**2))  # Higgins & Thompson (2002)
    res = rma(yi, vi, method="DL")
    assert res.tau2 == pytest.approx(tau2, rel=1e-10, abs=1e-14)
    assert res.estimate == pytest.approx(mu, rel=1e-10, abs=1e-12)
    assert res.se == pytest.approx(1 / math.sqrt(np.sum(ws)), rel=1e-10)
    assert res.Q == pytest.approx(q, rel=1e-10)
    assert res.I2 == pytest.approx(100 * tau2 / (tau2 + s2), rel=1e-10, abs=1e-12)
    assert res.H2 == pytest.approx((tau2 + s2) / s2, rel=1e-10)


def test_dl_tau2_se_matches_matrix_formula():
    # metafor R/rma.uni.r: se.tau2 = sqrt(1/trP^2 * (2(k-p) + 4 tau2 trP + 2 tau2^2 sum(P*P)))
    # with P = W - W X (X'WX)^-1 X'W, W = diag(1/vi); written here with explicit matrices.
    yi, vi = bcg_log_rr()
    k = yi.size
    W = np.diag(1 / vi)
    X = np.ones((k, 1))
    P = W - W @ X @ np.linalg.inv(X.T @ W @ X) @ X.T @ W
    trP = np.trace(P)
    tau2 = max(0.0, (yi @ P @ yi - (k - 1)) / trP)
    se = math.sqrt((2 * (k - 1) + 4 * tau2 * trP + 2 * tau2**2 * np.sum(P * P)) / trP**2)
    res = rma(yi, vi, method="DL")
    assert res.tau2 == pytest.approx(tau2, rel=1e-10)
    assert res.tau2_se == pytest.approx(se, rel=1e-10)


# ---------------------------------------------------------------------------
# 3. REML by a different algorithm


def reml_loglik_matrix(tau2, yi, vi):
    """Restricted log-likelihood in matrix form (Harville 1977; Viechtbauer 2005)."""
    k = yi.size
    X = np.ones((k, 1))
    Vinv = np.diag(1 / (vi + tau2))
    XtVX = X.T @ Vinv @ X
    beta = np.linalg.solve(XtVX, X.T @ Vinv @ yi)
    r = yi - X @ beta
    _, logdet_v = np.linalg.slogdet(np.diag(vi + tau2))
    _, logdet_x = np.linalg.slogdet(XtVX)
    return -0.5 * (logdet_v + logdet_x + r @ Vinv @ r)


def reml_score_matrix(tau2, yi, vi):
    """dl/dtau2 = (y'PPy - tr(P)) / 2 with P = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1."""
    k = yi.size
    X = np.ones((k, 1))
    Vinv = np.diag(1 / (vi + tau2))
    P = Vinv - Vinv @ X @ np.linalg.inv(X.T @ Vinv @ X) @ X.T @ Vinv
    return 0.5 * (yi @ P @ P @ yi - np.trace(P)), 0.5 * np.sum(P * P)


def reml_by_brent(yi, vi):
    upper = 10 * (np.var(yi) + vi.max())
    opt = optimize.minimize_scalar(
        lambda t: -reml_loglik_matrix(t, yi, vi),
        bounds=(0.0, upper),
        method="bounded",
        options={"xatol": 1e-13, "maxiter": 2000},
    )
    assert opt.success
    return opt.x


def test_reml_equals_brent_maximiser_bcg():
    yi, vi = bcg_log_rr()
    res = rma(yi, vi, method="REML")
    assert res.tau2 == pytest.approx(reml_by_brent(yi, vi), abs=1e-7)
    score, info = reml_score_matrix(res.tau2, yi, vi)
    assert abs(score) / info < 1e-10  # Newton step from the estimate is negligible
    # tau2_se is the inverse Fisher information: sqrt(2 / sum(P*P))
    assert res.tau2_se == pytest.approx(1 / math.sqrt(info), rel=1e-10)
    # the estimate uses weights 1 / (vi + tau2)
    w = 1 / (vi + res.tau2)
    assert res.estimate == pytest.approx(np.sum(w * yi) / np.sum(w), rel=1e-12)


def test_reml_equals_brent_maximiser_random(random_data):
    yi, vi = random_data
    res = rma(yi, vi, method="REML")
    brent = reml_by_brent(yi, vi)
    assert res.tau2 == pytest.approx(brent, abs=1e-7)
    assert reml_loglik_matrix(res.tau2, yi, vi) >= reml_loglik_matrix(brent, yi, vi) - 1e-12
    if res.tau2 > 0:
        score, info = reml_score_matrix(res.tau2, yi, vi)
        assert abs(score) / info < 1e-9


def test_reml_boundary_at_zero_with_homogeneous_data():
    yi = np.array([0.10, 0.12, 0.11, 0.09, 0.105])
    vi = np.array([0.05, 0.04, 0.06, 0.05, 0.03])
    # the REML score at tau2 = 0 is negative, so the constrained maximum is tau2 = 0
    score0, _ = reml_score_matrix(0.0, yi, vi)
    assert score0 < 0
    assert reml_by_brent(yi, vi) < 1e-7
    for method in ("REML", "DL"):
        res = rma(yi, vi, method=method)
        assert res.tau2 == 0.0
        assert res.I2 == 0.0 and res.H2 == 1.0
        fe = rma(yi, vi, method="FE")
        assert res.estimate == pytest.approx(fe.estimate, rel=1e-12)
        assert res.se == pytest.approx(fe.se, rel=1e-12)
        # with tau2 = 0 the prediction interval is the confidence interval
        assert res.pi_low == pytest.approx(res.ci_low, rel=1e-12)
        assert res.pi_high == pytest.approx(res.ci_high, rel=1e-12)


def test_reml_is_shift_invariant():
    yi, vi = bcg_log_rr()
    a, b = rma(yi, vi), rma(yi + 3.0, vi)
    assert b.tau2 == pytest.approx(a.tau2, rel=1e-9)
    assert b.estimate == pytest.approx(a.estimate + 3.0, rel=1e-12)


# ---------------------------------------------------------------------------
# 4. prediction interval, k = 1, result object, bad input


@pytest.mark.parametrize("method", ["DL", "REML"])
@pytest.mark.parametrize("level", [0.95, 0.8])
def test_prediction_interval_formula(method, level):
    yi, vi = bcg_log_rr()
    res = rma(yi, vi, method=method, level=level)
    z = stats.norm.ppf(1 - (1 - level) / 2)
    half = z * math.sqrt(res.se**2 + res.tau2)
    assert res.pi_low == pytest.approx(res.estimate - half, rel=1e-12)
    assert res.pi_high == pytest.approx(res.estimate + half, rel=1e-12)
    assert res.ci_high - res.ci_low == pytest.approx(2 * z * res.se, rel=1e-12)
    assert res.level == level


def test_fe_has_no_prediction_interval():
    # metafor's predict() drops pi.lb / pi.ub for FE/EE/CE models (R/predict.rma.r)
    res = rma(*bcg_log_rr(), method="FE")
    assert math.isnan(res.pi_low) and math.isnan(res.pi_high)


@pytest.mark.parametrize("method", ["FE", "DL", "REML"])
def test_single_study(method):
    res = rma([0.3], [0.04], method=method)
    assert res.k == 1
    assert res.estimate == 0.3
    assert res.se == pytest.approx(0.2, rel=1e-15)
    assert res.tau2 == 0.0 and res.tau == 0.0
    assert res.Q == 0.0 and res.Q_df == 0
    assert math.isnan(res.Q_pval) and math.isnan(res.I2) and math.isnan(res.H2)
    assert math.isnan(res.tau2_se)
    z = stats.norm.ppf(0.975)
    assert res.ci_low == pytest.approx(0.3 - z * 0.2, rel=1e-12)
    if method != "FE":
        assert res.pi_low == pytest.approx(res.ci_low, rel=1e-12)


def test_fe_aliases_and_rma_all():
    yi, vi = bcg_log_rr()
    fits = rma_all(yi, vi)
    assert list(fits) == ["FE", "DL", "REML", "REML-HKSJ"]
    assert fits["REML"] == rma(yi, vi)
    assert fits["REML-HKSJ"] == rma(yi, vi, method="REML", test="knha")
    for alias in ("EE", "CE", "fe"):
        r = rma(yi, vi, method=alias)
        assert r.estimate == fits["FE"].estimate and r.Q == fits["FE"].Q


def test_result_is_frozen_and_round_trips():
    res = rma(*bcg_log_rr())
    d = res.to_dict()
    assert set(d) == {f.name for f in dataclasses.fields(RmaResult)} - {"coefficients"}
    assert all(isinstance(v, (int, float, str)) for v in d.values())
    assert RmaResult(**d) == res
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.tau2 = 0.0


def test_accepts_lists_and_pandas():
    pd = pytest.importorskip("pandas")
    yi, vi = bcg_log_rr()
    a = rma(list(yi), list(vi))
    b = rma(pd.Series(yi), pd.Series(vi))
    assert a == b == rma(yi, vi)


@pytest.mark.parametrize(
    ("yi", "vi", "study", "match", "where"),
    [
        ([0.1, float("nan"), 0.3], [0.1, 0.1, 0.1], None, "yi must be a finite", ("Study 2", "yi")),
        ([0.1, 0.2, float("inf")], [0.1, 0.1, 0.1], ["A", "B", "C"], "yi must be a finite", ("C", "yi")),
        ([0.1, 0.2, 0.3], [0.1, 0.0, 0.1], ["A", "B", "C"], "vi must be a positive", ("B", "vi")),
        ([0.1, 0.2, 0.3], [-0.1, 0.1, 0.1], None, "vi must be a positive", ("Study 1", "vi")),
        ([0.1, 0.2, 0.3], [0.1, 0.1, float("inf")], None, "vi must be a positive", ("Study 3", "vi")),
        ([0.1, 0.2, 0.3], [0.1, 0.1, float("nan")], None, "vi must be a positive", ("Study 3", "vi")),
    ],
)
def test_bad_values_name_the_study(yi, vi, study, match, where):
    with pytest.raises(DataError, match=match) as info:
        rma(yi, vi, study=study)
    assert (info.value.study, info.value.column) == where
    assert repr(where[0]) in str(info.value)


@pytest.mark.parametrize(
    ("yi", "vi", "kwargs", "match"),
    [
        ([0.1, 0.2], [0.1, 0.1, 0.1], {}, "yi has 2 values but vi has 3"),
        ([], [], {}, "no studies"),
        ([[0.1, 0.2]], [[0.1, 0.1]], {}, "one-dimensional"),
        (["a", "b"], [0.1, 0.1], {}, "yi must be numeric"),
        ([0.1, 0.2], [0.1, 0.1], {"study": ["only one"]}, "1 study labels for 2 studies"),
    ],
)
def test_bad_shapes(yi, vi, kwargs, match):
    with pytest.raises(DataError, match=match):
        rma(yi, vi, **kwargs)


def test_bad_arguments():
    yi, vi = bcg_log_rr()
    with pytest.raises(KetabayesError, match="method must be one of"):
        rma(yi, vi, method="XX")
    with pytest.raises(KetabayesError, match="not a percentage"):
        rma(yi, vi, level=95)
    with pytest.raises(ValueError):  # KetabayesError is a ValueError
        rma(yi, vi, level=0.0)


def test_extreme_variance_ratio_warns():
    with pytest.warns(DataWarning, match="ratio of largest to smallest"):
        rma([0.1, 0.2, 0.3], [1e-9, 0.1, 0.1])


# ---------------------------------------------------------------------------
# 5. HKSJ, presets, moderators, bad input (issue #9)


def test_hksj_closed_form_and_adhoc(random_data):
    # Hartung & Knapp (2001) / Sidik & Jonkman (2002): var = sum w (y - mu)^2 / ((k - 1) sum w), t_{k-1}
    yi, vi = random_data
    k = yi.size
    w0 = 1 / vi
    mu0 = np.sum(w0 * yi) / np.sum(w0)
    c = np.sum(w0) - np.sum(w0**2) / np.sum(w0)
    tau2 = max(0.0, (np.sum(w0 * (yi - mu0) ** 2) - (k - 1)) / c)
    w = 1 / (vi + tau2)
    mu = np.sum(w * yi) / np.sum(w)
    q = np.sum(w * (yi - mu) ** 2) / (k - 1)
    se = math.sqrt(q / np.sum(w))
    t = stats.t.ppf(0.975, k - 1)
    res = rma(yi, vi, method="DL", test="knha")
    assert res.test == "knha" and res.df == k - 1
    assert res.se == pytest.approx(se, rel=1e-10)
    assert res.ci_low == pytest.approx(mu - t * se, rel=1e-10)
    assert res.pval == pytest.approx(2 * stats.t.sf(abs(mu / se), k - 1), rel=1e-9)
    assert res.coefficients.loc["intrcpt", "tval"] == pytest.approx(mu / se, rel=1e-10)
    # t-based prediction interval: mu +/- t_{k-1} sqrt(se^2 + tau2)
    assert res.pi_high == pytest.approx(mu + t * math.sqrt(se**2 + tau2), rel=1e-10)
    adhoc = rma(yi, vi, method="DL", test="adhoc")
    assert adhoc.se == pytest.approx(max(se, 1 / math.sqrt(np.sum(w))), rel=1e-10)
    plain_t = rma(yi, vi, method="DL", test="t")
    assert plain_t.se == pytest.approx(1 / math.sqrt(np.sum(w)), rel=1e-10)
    assert adhoc.ci_high - adhoc.ci_low >= plain_t.ci_high - plain_t.ci_low - 1e-12


def test_revman_preset():
    from ketabayes.inference.frequentist import REVMAN

    yi, vi = bcg_log_rr()
    assert REVMAN == {"method": "REML", "test": "knha"}
    assert rma(yi, vi, preset="revman") == rma(yi, vi, method="REML", test="knha")
    assert rma(yi, vi, preset="RevMan", method="reml") == rma(yi, vi, method="REML", test="knha")
    with pytest.raises(KetabayesError, match="sets test='knha'"):
        rma(yi, vi, preset="revman", test="z")
    with pytest.raises(KetabayesError, match="preset must be one of"):
        rma(yi, vi, preset="cochrane-2008")


def test_meta_regression_closed_form_fe():
    # weighted least squares by hand: beta = (X'WX)^-1 X'Wy, vb = (X'WX)^-1, QE = sum w (y - Xb)^2
    yi, vi = bcg_log_rr()
    lat = np.array([44, 55, 42, 52, 13, 44, 19, 13, 27, 42, 18, 33, 33], dtype=float)  # dat.bcg$ablat
    X = np.column_stack([np.ones(13), lat])
    W = np.diag(1 / vi)
    vb = np.linalg.inv(X.T @ W @ X)
    beta = vb @ X.T @ W @ yi
    res = rma(yi, vi, mods=pd.DataFrame({"ablat": lat}), method="FE")
    coef = res.coefficients
    assert list(coef.index) == ["intrcpt", "ablat"]
    np.testing.assert_allclose(coef["estimate"], beta, rtol=1e-10)
    np.testing.assert_allclose(coef["se"], np.sqrt(np.diag(vb)), rtol=1e-10)
    assert res.Q == pytest.approx(np.sum((yi - X @ beta) ** 2 / vi), rel=1e-10)
    assert res.QM == pytest.approx((beta[1] / math.sqrt(vb[1, 1])) ** 2, rel=1e-10) and res.QM_df == 1
    assert math.isnan(res.estimate) and math.isnan(res.pi_low)  # scalar fields are for intercept-only models
    # an affine change of a moderator changes the intercept, not the slope, tau2 or QE
    shifted = rma(yi, vi, mods={"ablat": lat * 2 - 30}, method="REML")
    orig = rma(yi, vi, mods={"ablat": lat}, method="REML")
    assert shifted.tau2 == pytest.approx(orig.tau2, rel=1e-9)
    assert shifted.coefficients["estimate"].iloc[1] * 2 == pytest.approx(orig.coefficients["estimate"].iloc[1],
                                                                         rel=1e-9)


def test_mods_result_round_trips_through_dict():
    import json

    yi, vi = bcg_log_rr()
    res = rma(yi, vi, mods=np.arange(13.0), method="DL", test="knha")
    d = json.loads(json.dumps(res.to_dict()))
    back = RmaResult(**d)
    assert back == res
    pd.testing.assert_frame_equal(back.coefficients, res.coefficients)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"mods": [1.0, 2.0]}, DataError, "mods has 2 rows for 13 studies"),
        ({"mods": pd.DataFrame({"alloc": ["random"] * 13})}, DataError, "column 'alloc': moderators must be numeric"),
        ({"mods": ["a"] * 13}, DataError, "moderators must be numeric"),
        ({"mods": [1.0] * 12 + [float("nan")]}, DataError, "study 'Study 13', column 'mod1'"),
        ({"mods": np.ones(13)}, KetabayesError, "singular"),
        ({"mods": np.column_stack([np.arange(13.0), 2 * np.arange(13.0)])}, KetabayesError, "singular"),
        ({"test": "hksj"}, KetabayesError, "test must be one of"),
    ],
)
def test_bad_moderators_and_tests(kwargs, error, match):
    yi, vi = bcg_log_rr()
    with pytest.raises(error, match=match):
        rma(yi, vi, **kwargs)


def test_too_few_studies():
    with pytest.raises(KetabayesError, match="needs k > p"):
        rma([0.3], [0.04], test="knha")
    with pytest.raises(KetabayesError, match="no residual degrees of freedom"):
        rma([0.1, 0.3], [0.04, 0.05], mods=[1.0, 2.0])
    with pytest.raises(KetabayesError, match="cannot estimate 3 coefficients"):
        rma([0.1, 0.3], [0.04, 0.05], mods=[[1.0, 0.0], [2.0, 1.0]])
    from ketabayes.inference.frequentist import leave1out, ranktest, regtest, subgroup, trimfill

    with pytest.raises(KetabayesError, match="k >= 3"):
        leave1out([0.1, 0.3], [0.04, 0.05], test="knha")
    for fn in (regtest, ranktest, trimfill):
        with pytest.raises(KetabayesError, match="k >= 3"):
            fn([0.1, 0.3], [0.04, 0.05])
    with pytest.raises(KetabayesError, match="subgroup 'b'"):
        subgroup([0.1, 0.3, 0.2], [0.04, 0.05, 0.03], ["a", "a", "b"], test="knha")
    with pytest.raises(DataError, match="missing subgroup label"):
        subgroup([0.1, 0.3, 0.2], [0.04, 0.05, 0.03], ["a", None, "b"])
    with pytest.raises(DataError, match="groups has 2 labels"):
        subgroup([0.1, 0.3, 0.2], [0.04, 0.05, 0.03], ["a", "b"])


def test_bad_counts_name_the_study():
    from ketabayes.inference.frequentist import rma_mh, rma_peto

    with pytest.raises(DataError, match="study 'B', column 'ci'"):
        rma_mh([1, 2], [10, 10], [3, -1], [9, 9], study=["A", "B"])
    with pytest.raises(DataError, match="column 'n1i'"):
        rma_peto([1, 12], n1i=[10, 10], ci=[3, 1], n2i=[9, 9])
    with pytest.raises(DataError, match="ci has 3 values"):
        rma_mh([1, 2], [10, 10], [3, 1, 1], [9, 9])
    with pytest.raises(KetabayesError, match="measure must be"):
        rma_mh([1, 2], [10, 10], [3, 1], [9, 9], measure="HR")
    with pytest.raises(KetabayesError, match="undefined"):
        rma_mh([0, 0], [10, 10], [3, 1], [9, 9], measure="RR")
