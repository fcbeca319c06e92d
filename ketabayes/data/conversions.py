r"""Converted summaries: what trials report, turned into what a meta-analysis needs.

* :func:`mean_sd_from_quantiles` / :func:`fill_mean_sd`: sample mean and SD from
  the median with the range and/or the quartiles (Wan et al. 2014; Luo et al.
  2018; Shi et al. 2020), under the three scenarios

  - S1: ``{min, median, max, n}``,
  - S2: ``{q1, median, q3, n}``,
  - S3: ``{min, q1, median, q3, max, n}``;

* :func:`se_from_ci`, :func:`se_from_p`, :func:`se_from_t` / :func:`fill_se`:
  standard errors from a confidence interval (normal or *t* quantiles), a
  two-sided p-value or a *t* statistic;
* :func:`sd_change` / :func:`fill_sd_change`: the SD of change scores from the
  baseline and final SDs and their correlation (Cochrane Handbook 6.5.2.8), and
  :func:`correlation_from_sds`, the correlation implied by a trial that
  reports all three SDs.

The ``fill_*`` functions work on a study table: they fill the blank cells of a
target column, leave reported values alone, never modify the caller's table,
and record every conversion per study in two provenance columns that travel
with the table through :func:`ketabayes.effect_sizes`:

* ``conversion`` (str): what was converted, how, and any assumed value, e.g.
  ``"m1i, sd1i from median/quartiles (S2: mean Luo 2018, SD Wan 2014)"``;
  several conversions are joined with ``"; "``;
* ``converted`` (bool): True when any value of the study was converted, so a
  sensitivity analysis can keep only the trials that reported means and SDs:
  ``table[~table["converted"]]``.

All quantile-based estimators assume roughly normal data; they are
approximations (documented in the references) and the ``converted`` flag is
what lets the analysis show how much they matter.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd
from scipy import stats

from ketabayes.data._cells import ProvenanceTable as _Table
from ketabayes.data._cells import check_where, fail
from ketabayes.data.paired import check_correlation
from ketabayes.dims import STUDY_COL
from ketabayes.errors import DataError

__all__ = [
    "mean_sd_from_quantiles",
    "se_from_ci",
    "se_from_p",
    "se_from_t",
    "sd_change",
    "correlation_from_sds",
    "fill_mean_sd",
    "fill_se",
    "fill_sd_change",
]

_SD_METHODS = ("default", "wan", "shi")


# --------------------------------------------------------------------------- formulas


def _xi(n):
    """Wan et al. (2014) eq. (7): 2 Phi^-1((n - 0.375)/(n + 0.25)), approximating 2 E[Z_(n)]."""
    return 2 * stats.norm.ppf((n - 0.375) / (n + 0.25))


def _eta(n):
    """Wan et al. (2014) eq. (13): 2 Phi^-1((0.75 n - 0.125)/(n + 0.25)), approximating E[Z_(3Q+1) - Z_(Q+1)]."""
    return 2 * stats.norm.ppf((0.75 * n - 0.125) / (n + 0.25))


def mean_sd_from_quantiles(n, median, *, min=None, max=None, q1=None, q3=None, sd_method: str = "default"):
    r"""Sample mean and SD from the median, range and/or quartiles (normal data).

    Parameters
    ----------
    n : array_like
        Sample size (> 2 for S1 and S3; > 1 for S2... see Notes).
    median : array_like
    min, max : array_like, optional
        Minimum and maximum (scenarios S1, S3).
    q1, q3 : array_like, optional
        First and third quartiles (scenarios S2, S3).
    sd_method : {"default", "wan", "shi"}
        SD estimator under S3: ``"default"`` and ``"shi"`` use Shi et al.
        (2020); ``"wan"`` uses Wan et al. (2014) eq. (9). S1 and S2 always use
        Wan et al. (2014).

    Returns
    -------
    mean, sd : numpy.ndarray
    scenario : numpy.ndarray of str
        ``"S1"``, ``"S2"`` or ``"S3"`` per element (the richest one the
        given values allow).

    Notes
    -----
    With :math:`\xi(n) = 2\Phi^{-1}((n-0.375)/(n+0.25))` and
    :math:`\eta(n) = 2\Phi^{-1}((0.75n-0.125)/(n+0.25))` (Wan et al. 2014,
    eqs. 7 and 13, approximations of :math:`2E[Z_{(n)}]` and of the expected
    interquartile range of a standard normal sample):

    * S1: mean :math:`= w\,(a+b)/2 + (1-w)\,m`, :math:`w = 4/(4+n^{0.75})`
      (Luo et al. 2018); SD :math:`= (b-a)/\xi(n)` (Wan).
    * S2: mean :math:`= w\,(q_1+q_3)/2 + (1-w)\,m`, :math:`w = 0.7 + 0.39/n`
      (Luo); SD :math:`= (q_3-q_1)/\eta(n)` (Wan).
    * S3: mean :math:`= w_1 (a+b)/2 + w_2 (q_1+q_3)/2 + (1-w_1-w_2)\,m`,
      :math:`w_1 = 2.2/(2.2+n^{0.75})`, :math:`w_2 = 0.7 - 0.72/n^{0.55}`
      (Luo); SD :math:`= w_3 (b-a)/\xi(n) + (1-w_3)(q_3-q_1)/\eta(n)`,
      :math:`w_3 = 1/(1+0.07 n^{0.6})` (Shi et al. 2020, eq. 11 in its
      equivalent shortcut form), or Wan's
      :math:`\tfrac12[(b-a)/\xi(n) + (q_3-q_1)/\eta(n)]`.

    Wan et al. also tabulate the exact :math:`2E[Z_{(n)}]` for n <= 50 (and
    the exact quartile expectations for n <= 201); like the papers' formulas
    and the online calculators of the authors, ketabayes uses the
    approximations for every n (the R package ``meta`` uses the tables for
    small n, so its SDs differ slightly there).

    References
    ----------
    Wan X, Wang W, Liu J, Tong T (2014). Estimating the sample mean and
    standard deviation from the sample size, median, range and/or
    interquartile range. *BMC Med Res Methodol* 14:135.
    https://doi.org/10.1186/1471-2288-14-135

    Luo D, Wan X, Liu J, Tong T (2018). Optimally estimating the sample mean
    from the sample size, median, mid-range, and/or mid-quartile range.
    *Stat Methods Med Res* 27(6):1785-1805. https://doi.org/10.1177/0962280216669183

    Shi J, Luo D, Weng H, Zeng X-T, Lin L, Chu H, Tong T (2020). Optimally
    estimating the sample standard deviation from the five-number summary.
    *Res Synth Methods* 11(5):641-654. https://doi.org/10.1002/jrsm.1429

    Examples
    --------
    >>> mean, sd, s = mean_sd_from_quantiles([41], [5.0], q1=[3.0], q3=[8.0])
    >>> str(s[0]), round(float(mean[0]), 4), round(float(sd[0]), 4)
    ('S2', 5.3548, 3.8412)
    """
    if sd_method not in _SD_METHODS:
        raise DataError(f"sd_method must be one of {', '.join(_SD_METHODS)}; got {sd_method!r}")
    n = np.asarray(n, dtype=float)
    m = np.asarray(median, dtype=float)

    def arr(x):
        return np.full(n.shape, np.nan) if x is None else np.asarray(x, dtype=float)

    a, b, lq, uq = arr(min), arr(max), arr(q1), arr(q3)
    has_range = ~np.isnan(a) & ~np.isnan(b)
    has_iqr = ~np.isnan(lq) & ~np.isnan(uq)
    s3 = has_range & has_iqr
    s2 = has_iqr & ~s3
    s1 = has_range & ~s3
    with np.errstate(invalid="ignore", divide="ignore"):
        xi = _xi(n)
        eta = _eta(n)
        w1 = 4 / (4 + n**0.75)
        mean1 = w1 * (a + b) / 2 + (1 - w1) * m
        sd1 = (b - a) / xi
        w2 = 0.7 + 0.39 / n
        mean2 = w2 * (lq + uq) / 2 + (1 - w2) * m
        sd2 = (uq - lq) / eta
        w31 = 2.2 / (2.2 + n**0.75)
        w32 = 0.7 - 0.72 / n**0.55
        mean3 = w31 * (a + b) / 2 + w32 * (lq + uq) / 2 + (1 - w31 - w32) * m
        w3 = 0.5 if sd_method == "wan" else 1 / (1 + 0.07 * n**0.6)
        sd3 = w3 * (b - a) / xi + (1 - w3) * (uq - lq) / eta
    mean = np.select([s3, s2, s1], [mean3, mean2, mean1], np.nan)
    sd = np.select([s3, s2, s1], [sd3, sd2, sd1], np.nan)
    scenario = np.select([s3, s2, s1], ["S3", "S2", "S1"], "")
    return mean, sd, scenario


def _quantile(level: float, df):
    """Two-sided critical value: normal when df is None/NaN, else Student t."""
    q = 1 - (1 - level) / 2
    if df is None:
        return stats.norm.ppf(q)
    df = np.asarray(df, dtype=float)
    return np.where(np.isnan(df), stats.norm.ppf(q), stats.t.ppf(q, np.where(np.isnan(df), 1.0, df)))


def se_from_ci(lower, upper, *, level: float = 0.95, df=None, log: bool = False):
    r"""Standard error from a confidence interval: :math:`(u - l) / (2 q)`.

    ``q`` is the normal quantile :math:`z_{1-\alpha/2}` or, when ``df`` is
    given (e.g. ``n - 1`` for a mean, ``n1 + n2 - 2`` for a difference of
    means), Student's :math:`t_{df,\,1-\alpha/2}` (Cochrane Handbook 6.5.2.2-3).
    ``log=True`` takes logs of the limits first (ratios: OR, RR, HR).

    Examples
    --------
    >>> round(float(se_from_ci(-1.0, 3.0)), 6)
    1.020427
    """
    lo, up = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    if log:
        lo, up = np.log(lo), np.log(up)
    return (up - lo) / (2 * _quantile(level, df))


def se_from_p(estimate, p, *, df=None):
    r"""Standard error from a two-sided p-value: :math:`|y| / q_{1-p/2}`.

    ``q`` is the normal quantile, or Student's *t* with ``df`` degrees of
    freedom (Cochrane Handbook 6.5.2.3). ``estimate`` is on the analysis scale
    (log scale for ratios).

    Examples
    --------
    >>> round(float(se_from_p(1.96, 0.05)), 4)
    1.0
    """
    y, p = np.asarray(estimate, dtype=float), np.asarray(p, dtype=float)
    if df is None:
        q = stats.norm.isf(p / 2)
    else:
        df = np.asarray(df, dtype=float)
        q = np.where(np.isnan(df), stats.norm.isf(p / 2), stats.t.isf(p / 2, np.where(np.isnan(df), 1.0, df)))
    return np.abs(y) / q


def se_from_t(estimate, t):
    r"""Standard error from a *t* (or *z*) statistic: :math:`|y / t|`.

    Examples
    --------
    >>> float(se_from_t(3.0, -2.0))
    1.5
    """
    return np.abs(np.asarray(estimate, dtype=float) / np.asarray(t, dtype=float))


def sd_change(sd_baseline, sd_final, r):
    r"""SD of change scores: :math:`\sqrt{s_b^2 + s_f^2 - 2 r s_b s_f}` (Cochrane Handbook 6.5.2.8).

    Examples
    --------
    >>> float(sd_change(3.0, 4.0, 0.0))
    5.0
    """
    sb, sf, r = (np.asarray(x, dtype=float) for x in (sd_baseline, sd_final, r))
    return np.sqrt(sb**2 + sf**2 - 2 * r * sb * sf)


def correlation_from_sds(sd_baseline, sd_final, sd_change):
    r"""Correlation implied by baseline, final and change SDs:
    :math:`(s_b^2 + s_f^2 - s_c^2) / (2 s_b s_f)` (Cochrane Handbook 6.5.2.8).

    Use it on the trials that report all three SDs to choose the correlation
    assumed for the others (and vary it in a sensitivity analysis).

    Examples
    --------
    >>> float(correlation_from_sds(3.0, 4.0, 5.0))
    0.0
    """
    sb, sf, sc = (np.asarray(x, dtype=float) for x in (sd_baseline, sd_final, sd_change))
    return (sb**2 + sf**2 - sc**2) / (2 * sb * sf)


# --------------------------------------------------------------------------- tables


def fill_mean_sd(
    data: pd.DataFrame | dict,
    *,
    mean: Hashable,
    sd: Hashable,
    n: Hashable,
    median: Hashable,
    min: Hashable | None = None,
    max: Hashable | None = None,
    q1: Hashable | None = None,
    q3: Hashable | None = None,
    sd_method: str = "default",
    study: Hashable = STUDY_COL,
) -> pd.DataFrame:
    """Fill blank means and SDs of one arm from its median, range and/or quartiles.

    Rows whose ``mean`` and ``sd`` are both reported are left alone. For the
    others, both are estimated with :func:`mean_sd_from_quantiles` from
    whatever the row reports (S3 if all five numbers, else S2, else S1) and
    the conversion is recorded in ``conversion``/``converted`` (see the module
    docstring). Call once per arm (e.g. ``mean="m1i", sd="sd1i", n="n1i"``,
    then the same for arm 2); the result goes to :func:`ketabayes.effect_sizes`.

    Parameters
    ----------
    data : pandas.DataFrame or dict
        One row per study; not modified.
    mean, sd, n : str
        Columns of the arm's mean (created if absent), SD (created if absent)
        and size.
    median, min, max, q1, q3 : str
        Columns of the reported median, range and quartiles (blank where not
        reported); ``min``/``max`` or ``q1``/``q3`` may be omitted.
    sd_method : {"default", "wan", "shi"}
        See :func:`mean_sd_from_quantiles`.
    study : str, default ``"study"``
        Column of study labels.

    Returns
    -------
    pandas.DataFrame
        A copy with ``mean`` and ``sd`` filled, and the provenance columns.

    Raises
    ------
    DataError
        Naming the study and column: a row with only one of mean/SD, a row
        that reports neither mean/SD nor a usable median summary, values out
        of order (``min <= q1 <= median <= q3 <= max``, with ``min < max`` and
        ``q1 < q3``), ``n`` below 3 (S1, S3) or 2 (S2), negative SDs,
        non-numeric cells.

    Examples
    --------
    >>> import pandas as pd
    >>> arm = pd.DataFrame({"study": ["A", "B"], "m1i": [4.0, None], "sd1i": [2.0, None],
    ...                     "n1i": [20, 41], "med1": [None, 5.0], "q1_1": [None, 3.0],
    ...                     "q3_1": [None, 8.0]})
    >>> out = fill_mean_sd(arm, mean="m1i", sd="sd1i", n="n1i", median="med1", q1="q1_1", q3="q3_1")
    >>> out[["study", "m1i", "sd1i", "converted"]].round(4)
      study     m1i    sd1i  converted
    0     A  4.0000  2.0000      False
    1     B  5.3548  3.8412       True
    >>> out.loc[1, "conversion"]
    'm1i, sd1i from median and quartiles (S2: mean Luo 2018, SD Wan 2014; n=41)'
    """
    if sd_method not in _SD_METHODS:
        raise DataError(f"sd_method must be one of {', '.join(_SD_METHODS)}; got {sd_method!r}")
    t = _Table(data, study)
    labels = t.labels
    m_now, s_now = t.target(mean), t.target(sd)
    check_where(s_now, s_now > 0, labels, sd, "standard deviation must be > 0")
    nn = t.read(n, "the arm's sample size", required=True)
    med = t.read(median, "the median", required=True)
    a, b = t.read(min, "the minimum"), t.read(max, "the maximum")
    lq, uq = t.read(q1, "the first quartile"), t.read(q3, "the third quartile")

    for blank_col, blank, other in ((sd, np.isnan(s_now) & ~np.isnan(m_now), mean),
                                    (mean, np.isnan(m_now) & ~np.isnan(s_now), sd)):
        fail(
            f"blank, but {other!r} is reported; converting only one of mean and SD from the median would "
            "mix sources: fill in both or leave both blank",
            labels,
            blank,
            blank_col,
        )
    need = np.isnan(m_now) & np.isnan(s_now)
    has_range = ~np.isnan(a) & ~np.isnan(b)
    has_iqr = ~np.isnan(lq) & ~np.isnan(uq)
    usable = ~np.isnan(med) & (has_range | has_iqr) & ~np.isnan(nn)
    fail(
        f"no mean/SD ({mean!r}, {sd!r}) and no median with the range ({min!r}, {max!r}) or the "
        f"quartiles ({q1!r}, {q3!r}) and n ({n!r}) to convert from",
        labels,
        need & ~usable,
        mean,
    )
    rows = need & usable
    # order checks on the rows that will be converted
    with np.errstate(invalid="ignore"):
        for lo, hi, c_lo, c_hi, strict in (
            (a, med, min, median, False),
            (med, b, median, max, False),
            (lq, med, q1, median, False),
            (med, uq, median, q3, False),
            (a, lq, min, q1, False),
            (uq, b, q3, max, False),
            (a, b, min, max, True),
            (lq, uq, q1, q3, True),
        ):
            bad = rows & ~np.isnan(lo) & ~np.isnan(hi) & ((lo >= hi) if strict else (lo > hi))
            rel = "<" if strict else "<="
            fail(
                f"values out of order: expected {c_lo} {rel} {c_hi} ({c_lo!r} {rel} {c_hi!r})",
                labels,
                bad,
                c_lo,
            )
    least = np.where(has_range, 3, 2)
    check_where(np.where(rows, nn, np.nan), nn >= least, labels, n,
                "converting a median summary needs n >= 3 with a range (n >= 2 with quartiles only)")
    est_m, est_s, scen = mean_sd_from_quantiles(
        nn, med, min=np.where(has_range, a, np.nan), max=np.where(has_range, b, np.nan),
        q1=np.where(has_iqr, lq, np.nan), q3=np.where(has_iqr, uq, np.nan), sd_method=sd_method,
    )
    t.out[mean] = np.where(rows, est_m, m_now)
    t.out[sd] = np.where(rows, est_s, s_now)
    sd_src = {"S1": "Wan 2014", "S2": "Wan 2014", "S3": "Wan 2014" if sd_method == "wan" else "Shi 2020"}
    what = {"S1": "median and range", "S2": "median and quartiles", "S3": "median, quartiles and range"}
    texts = [
        f"{mean}, {sd} from {what[s]} ({s}: mean Luo 2018, SD {sd_src[s]}; n={nn[i]:g})" if rows[i] else ""
        for i, s in enumerate(scen)
    ]
    t.record(rows, texts)
    return t.done()


def fill_se(
    data: pd.DataFrame | dict,
    *,
    yi: Hashable = "yi",
    sei: Hashable = "sei",
    lower: Hashable | None = None,
    upper: Hashable | None = None,
    p: Hashable | None = None,
    t: Hashable | None = None,
    df: Hashable | None = None,
    level: float = 0.95,
    log: bool = False,
    study: Hashable = STUDY_COL,
) -> pd.DataFrame:
    """Fill blank standard errors ``sei`` from a CI, else a p-value, else a t statistic.

    For each study whose ``sei`` is blank, the first available route is used:
    the confidence interval (``lower``, ``upper``; :func:`se_from_ci`), the
    two-sided p-value (``p``; :func:`se_from_p`), the *t* statistic (``t``;
    :func:`se_from_t`). With a ``df`` column, CI and p-value use Student's *t*
    with those degrees of freedom where ``df`` is not blank (normal quantiles
    elsewhere). ``log=True``: the CI limits are ratios (OR, RR, HR) and are
    logged; ``yi`` must already be on the log scale. Each conversion is
    recorded in ``conversion``/``converted``. The result goes to
    :func:`ketabayes.effect_sizes` with ``measure="GEN"``.

    Raises
    ------
    DataError
        Naming the study and column: blank ``yi``; no route for a blank
        ``sei``; ``upper <= lower``; ``p`` outside (0, 1); ``t = 0``; a p-value
        with ``yi = 0``; ``df <= 0``; non-positive ratio limits with ``log=True``.

    Examples
    --------
    >>> import pandas as pd
    >>> tab = pd.DataFrame({"study": ["A", "B"], "yi": [1.0, 2.0], "sei": [0.5, None],
    ...                     "lo": [None, 0.04], "hi": [None, 3.96]})
    >>> out = fill_se(tab, lower="lo", upper="hi")
    >>> round(float(out.loc[1, "sei"]), 4), out.loc[1, "conversion"]
    (1.0, 'sei from the 95% CI (normal quantile)')
    """
    if not (isinstance(level, float) and 0 < level < 1):
        raise DataError(f"level must be a number in (0, 1), e.g. 0.95; got {level!r}")
    tb = _Table(data, study)
    labels = tb.labels
    y = tb.read(yi, "the effect size yi", required=True)
    s_now = tb.target(sei)
    check_where(s_now, s_now > 0, labels, sei, "standard error must be > 0")
    lo, up = tb.read(lower, "the lower confidence limit"), tb.read(upper, "the upper confidence limit")
    pv, tv = tb.read(p, "the two-sided p-value"), tb.read(t, "the t statistic")
    dof = tb.read(df, "the degrees of freedom")
    need = np.isnan(s_now)
    fail("effect size is blank; it is needed for every study", labels, np.isnan(y), yi)
    check_where(dof, dof > 0, labels, df, "degrees of freedom must be > 0")
    has_ci = ~np.isnan(lo) & ~np.isnan(up)
    has_p = ~np.isnan(pv) & ~has_ci
    has_t = ~np.isnan(tv) & ~has_ci & ~has_p
    fail(
        f"standard error is blank and there is no confidence interval ({lower!r}, {upper!r}), "
        f"p-value ({p!r}) or t statistic ({t!r}) to compute it from",
        labels,
        need & ~(has_ci | has_p | has_t),
        sei,
    )
    if log:
        check_where(np.where(need & has_ci, lo, np.nan), lo > 0, labels, lower,
                    "ratio confidence limits must be > 0 (log=True)")
        check_where(np.where(need & has_ci, up, np.nan), up > 0, labels, upper,
                    "ratio confidence limits must be > 0 (log=True)")
    fail("upper confidence limit is not above the lower one", labels, need & has_ci & ~(up > lo), upper)
    check_where(np.where(need & has_p, pv, np.nan), (pv > 0) & (pv < 1), labels, p,
                "p-value must be in (0, 1) (a two-sided p-value of 1 carries no SE)")
    fail("a p-value gives no SE for an effect size of exactly 0", labels, need & has_p & (y == 0), yi)
    check_where(np.where(need & has_t, tv, np.nan), tv != 0, labels, t, "t statistic must not be 0")
    with np.errstate(invalid="ignore", divide="ignore"):
        s_ci = se_from_ci(lo, up, level=level, df=dof if df is not None else None, log=log)
        s_p = se_from_p(y, pv, df=dof if df is not None else None)
        s_t = se_from_t(y, tv)
    new = np.select([need & has_ci, need & has_p, need & has_t], [s_ci, s_p, s_t], np.nan)
    tb.out[sei] = np.where(need, new, s_now)
    pct = f"{100 * level:g}%"

    def q(i):
        return f"t quantile, df={dof[i]:g}" if not np.isnan(dof[i]) else "normal quantile"

    texts = []
    for i in range(len(labels)):
        if not need[i]:
            texts.append("")
        elif has_ci[i]:
            texts.append(f"{sei} from the {pct} CI{' of the ratio (log scale)' if log else ''} ({q(i)})")
        elif has_p[i]:
            texts.append(f"{sei} from the two-sided p-value {pv[i]:g} ({q(i)})")
        else:
            texts.append(f"{sei} from the t statistic {tv[i]:g}")
    tb.record(need, texts)
    return tb.done()


def fill_sd_change(
    data: pd.DataFrame | dict,
    *,
    sd: Hashable,
    sd_baseline: Hashable,
    sd_final: Hashable,
    ri: Hashable | None = None,
    r: float | None = None,
    study: Hashable = STUDY_COL,
) -> pd.DataFrame:
    """Fill blank change-score SDs from baseline and final SDs and a correlation.

    :func:`sd_change` with the correlation from the ``ri`` column, or, where
    that is blank or absent, the assumed ``r`` (no silent default: without
    either the row is an error). Each conversion, with the correlation used
    and where it came from, is recorded in ``conversion``/``converted``. Use
    :func:`correlation_from_sds` on trials that report all three SDs to choose
    ``r``, and vary ``r`` in a sensitivity analysis (Cochrane Handbook 6.5.2.8).

    Raises
    ------
    DataError
        Naming the study and column: no correlation, correlation outside
        [-1, 1], SDs <= 0, no baseline/final SD for a blank change SD.

    Examples
    --------
    >>> import pandas as pd
    >>> tab = pd.DataFrame({"study": ["A"], "sd_b": [3.0], "sd_f": [4.0]})
    >>> out = fill_sd_change(tab, sd="sd1i", sd_baseline="sd_b", sd_final="sd_f", r=0.5)
    >>> round(float(out.loc[0, "sd1i"]), 6), out.loc[0, "conversion"]
    (3.605551, 'sd1i: change-score SD from baseline and final SDs, r=0.5 assumed (r= argument)')
    """
    if r is not None:
        r = check_correlation(r)
    tb = _Table(data, study)
    labels = tb.labels
    s_now = tb.target(sd)
    check_where(s_now, s_now > 0, labels, sd, "standard deviation must be > 0")
    sb = tb.read(sd_baseline, "the baseline SD", required=True)
    sf = tb.read(sd_final, "the final SD", required=True)
    rr = tb.read(ri, "the baseline-final correlation")
    check_where(rr, np.abs(rr) <= 1, labels, ri, "correlation must be in [-1, 1]")
    need = np.isnan(s_now)
    fail(f"change-score SD is blank and the baseline SD ({sd_baseline!r}) is blank too", labels,
         need & np.isnan(sb), sd_baseline)
    fail(f"change-score SD is blank and the final SD ({sd_final!r}) is blank too", labels,
         need & np.isnan(sf), sd_final)
    check_where(np.where(need, sb, np.nan), sb > 0, labels, sd_baseline, "standard deviation must be > 0")
    check_where(np.where(need, sf, np.nan), sf > 0, labels, sd_final, "standard deviation must be > 0")
    from_data = ~np.isnan(rr)
    if r is None:
        fail(
            "no correlation between baseline and final values: give an ri column or an assumed "
            "r=... (there is no silent default) and vary it in a sensitivity analysis",
            labels,
            need & ~from_data,
            ri if ri is not None else "ri",
        )
    used = np.where(from_data, rr, r if r is not None else np.nan)
    new = sd_change(sb, sf, used)
    tb.out[sd] = np.where(need, new, s_now)
    texts = [
        (
            f"{sd}: change-score SD from baseline and final SDs, "
            + (f"r={used[i]:g} from column {ri!r}" if from_data[i] else f"r={used[i]:g} assumed (r= argument)")
        )
        if need[i]
        else ""
        for i in range(len(labels))
    ]
    tb.record(need, texts)
    return tb.done()
