"""Approximate normal likelihood from a published pooled estimate and its CI.

A review's pooled result "MD -15.79 (95% CI -32.09 to 0.51)" or
"RR 3.26 (1.05 to 10.09)" is turned into ``yi`` and ``sei`` on the analysis
scale (log scale for ratios), assuming the interval was a Wald interval
``estimate +/- z * se`` on that scale -- true for inverse-variance and
DerSimonian-Laird pooled results as Cochrane reported them before 2025.
RevMan's current random-effects default (REML with Hartung-Knapp-Sidik-Jonkman
intervals) uses t quantiles with ``k - 1`` degrees of freedom instead: pass
``df=k - 1`` and the SE is computed with the t quantile.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ketabayes.errors import DataError

__all__ = ["from_published"]

_RATIO = {"OR", "RR", "HR"}
_DIFF = {"MD", "SMD", "RD", "GEN"}


def from_published(estimate: float, ci_low: float, ci_high: float, measure: str, *, level: float = 0.95,
                   label: str = "published pooled estimate", symmetry_tol: float = 0.05,
                   df: float | None = None) -> pd.DataFrame:
    """One-row effect-size table from a published estimate and confidence interval.

    Parameters
    ----------
    estimate, ci_low, ci_high : float
        Point estimate and CI bounds as published (ratios for OR/RR/HR).
    measure : {"MD", "SMD", "RD", "GEN", "OR", "RR", "HR"}
    level : float
        Confidence level of the interval.
    label : str
        Label of the row (the "study" column).
    symmetry_tol : float
        The estimate must lie within this fraction of the CI width of the
        interval's midpoint on the analysis scale; otherwise the interval was
        not a Wald interval on that scale and a :class:`~ketabayes.errors.DataError`
        says so.
    df : float, optional
        Degrees of freedom of a t-based interval: a random-effects result with a Hartung-Knapp-Sidik-Jonkman
        (HKSJ) interval, RevMan's default since 2025, uses ``df = k - 1`` (k studies). ``None`` (default)
        means a normal-quantile (Wald) interval. Using z for an HKSJ interval overstates the SE
        (by 15% with k = 10, 42% with k = 5 at 95%).

    Returns
    -------
    pandas.DataFrame
        Columns ``study, yi, vi, sei, measure, estimate, ci_low, ci_high, level``;
        ``yi``/``sei`` on the analysis scale (log for ratios); ``attrs["measure"]``.

    Notes
    -----
    ``sei = (U - L) / (2 z)`` with ``z = Phi^{-1}((1 + level)/2)`` (or the t quantile
    ``t_{df}^{-1}((1 + level)/2)`` when ``df`` is given), where ``L, U`` are
    the CI bounds on the analysis scale, and ``yi`` is the published estimate on
    that scale (not the midpoint, which differs only by rounding).

    Examples
    --------
    >>> from ketabayes.data.published import from_published
    >>> row = from_published(-15.79, -32.09, 0.51, "MD")
    >>> round(float(row.sei.iloc[0]), 4)
    8.3165
    >>> hksj = from_published(-15.79, -32.09, 0.51, "MD", df=4)  # HKSJ interval from 5 trials
    >>> round(float(hksj.sei.iloc[0]), 4)
    5.8708
    """
    m = str(measure).upper()
    if m not in _RATIO | _DIFF:
        raise DataError(f"unknown measure {measure!r}; use one of {sorted(_RATIO | _DIFF)}", column="measure")
    vals = {"estimate": estimate, "ci_low": ci_low, "ci_high": ci_high}
    for k, v in vals.items():
        if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v):
            raise DataError(f"must be a finite number, got {v!r}", study=label, column=k)
        if m in _RATIO and v <= 0:
            raise DataError(f"a {m} must be positive, got {v!r}", study=label, column=k)
    if not 0 < level < 1:
        raise DataError(f"level must be in (0, 1), got {level!r}", study=label, column="level")
    if not ci_low < ci_high:
        raise DataError(f"ci_low ({ci_low}) must be below ci_high ({ci_high})", study=label, column="ci_low")
    f = np.log if m in _RATIO else (lambda x: float(x))
    y, lo, hi = float(f(estimate)), float(f(ci_low)), float(f(ci_high))
    if not lo <= y <= hi:
        raise DataError(f"estimate {estimate} lies outside its CI ({ci_low}, {ci_high})", study=label,
                        column="estimate")
    if abs(y - 0.5 * (lo + hi)) > symmetry_tol * (hi - lo):
        raise DataError(
            f"the CI ({ci_low}, {ci_high}) is not symmetric around {estimate} on the "
            f"{'log' if m in _RATIO else 'natural'} scale, so it is not a Wald interval for {m}; "
            "check the measure (ratios are analysed on the log scale)", study=label, column="ci_low")
    if df is None:
        z = float(stats.norm.ppf(0.5 + level / 2.0))
    else:
        if isinstance(df, bool) or not isinstance(df, (int, float, np.integer, np.floating)) or not (
                math.isfinite(df) and df > 0):
            raise DataError(f"df must be a positive number (k - 1 for an HKSJ interval), got {df!r}", study=label,
                            column="df")
        z = float(stats.t.ppf(0.5 + level / 2.0, float(df)))
    se = (hi - lo) / (2.0 * z)
    out = pd.DataFrame({"study": [label], "yi": [y], "vi": [se * se], "sei": [se], "measure": [m],
                        "estimate": [float(estimate)], "ci_low": [float(ci_low)], "ci_high": [float(ci_high)],
                        "level": [float(level)]})
    out.attrs["measure"] = m
    return out
