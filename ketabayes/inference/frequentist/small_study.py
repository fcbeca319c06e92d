"""Small-study (publication bias) diagnostics equal to metafor's ``regtest``, ``ranktest`` and ``trimfill``.

* :func:`regtest` -- Egger's regression test: the standard error (or the variance) as a moderator of
  the meta-analytic model (``model="rma"``, metafor's default) or in a weighted linear regression with a
  multiplicative dispersion term (``model="lm"``, Egger's original test); the intercept is the
  "limit estimate" for a study with SE 0.
* :func:`ranktest` -- Begg & Mazumdar's rank correlation between standardised effects and variances
  (Kendall's tau; exact p-value for k < 50 without ties, as R's ``cor.test``).
* :func:`trimfill` -- Duval & Tweedie's trim-and-fill with the L0 or R0 estimator of the number of
  missing studies (metafor's algorithm, side chosen from the sign of Egger's slope).

The funnel plot lives in :mod:`ketabayes.reporting.funnel`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ketabayes.errors import KetabayesError
from ketabayes.inference.frequentist import _core
from ketabayes.inference.frequentist.uni import RmaResult, _resolve, result_from_fit

__all__ = ["regtest", "ranktest", "trimfill", "RegtestResult", "RanktestResult", "TrimfillResult"]


@dataclass(frozen=True)
class RegtestResult:
    """Egger's regression test.

    Attributes
    ----------
    model, predictor : str
    zval, pval : float
        Test statistic of the predictor's coefficient (t statistic when ``df`` is finite) and p-value.
    df : float
        Degrees of freedom of the t test (``nan`` for a z test).
    est, ci_low, ci_high : float
        Limit estimate (the intercept: the effect at SE 0) and its confidence interval.
    """

    model: str
    predictor: str
    zval: float
    pval: float
    df: float
    est: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class RanktestResult:
    """Begg's rank correlation test: Kendall's ``tau`` and its two-sided ``pval``."""

    tau: float
    pval: float


@dataclass(frozen=True)
class TrimfillResult:
    """Trim-and-fill.

    Attributes
    ----------
    k0, se_k0 : int, float
        Estimated number of missing studies and its standard error.
    side : {"left", "right"}
        Side of the funnel on which studies were filled in.
    estimator : {"L0", "R0"}
    p_k0 : float
        p-value of the test k0 = 0 (R0 only; ``nan`` for L0).
    fit : RmaResult
        The model fitted to the observed plus the filled studies (the original model when ``k0 == 0``).
    yi, vi : numpy.ndarray
        Observed effects followed by the filled ones (mirror images ``2 b - y``).
    filled : numpy.ndarray of bool
        True for the filled-in studies.
    """

    k0: int
    se_k0: float
    side: str
    estimator: str
    p_k0: float
    fit: RmaResult
    yi: np.ndarray
    vi: np.ndarray
    filled: np.ndarray


def regtest(yi: Any, vi: Any, *, model: str = "rma", predictor: str = "sei", method: str | None = None,
            test: str | None = None, level: float = 0.95, study: Sequence[Any] | None = None,
            preset: str | None = None) -> RegtestResult:
    """Egger's regression test for funnel-plot asymmetry (metafor's ``regtest``).

    Parameters
    ----------
    yi, vi : array-like of float
        Effect sizes and sampling variances.
    model : {"rma", "lm"}, default "rma"
        ``"rma"``: the predictor as a moderator in :func:`rma` with ``method``/``test``; ``"lm"``: weighted
        least squares with weights ``1/vi`` and a dispersion term, t test with ``k - 2`` degrees of freedom
        (Egger et al. 1997).
    predictor : {"sei", "vi"}, default "sei"
    method, test, level, study, preset
        As for :func:`rma` (``model="rma"`` only; ``level`` for both).

    Returns
    -------
    RegtestResult

    References
    ----------
    .. [1] Egger M, Davey Smith G, Schneider M, Minder C (1997). BMJ 315:629-634. doi:10.1136/bmj.315.7109.629
    .. [2] Sterne JAC, Egger M (2005). Regression methods to detect publication and other bias in
       meta-analysis. In: Publication Bias in Meta-Analysis, Wiley, 99-110. doi:10.1002/0470870168.ch6

    Examples
    --------
    >>> from ketabayes.inference.frequentist import regtest
    >>> r = regtest([-0.9, -1.6, -0.2, 0.0, 0.3], [0.33, 0.19, 0.05, 0.004, 0.1], model="lm")
    >>> r.df
    3.0
    """
    if model not in ("rma", "lm"):
        raise KetabayesError(f"model must be 'rma' or 'lm'; got {model!r}")
    if predictor not in ("sei", "vi"):
        raise KetabayesError(f"predictor must be 'sei' or 'vi'; got {predictor!r}")
    if model == "lm":
        if method is not None or test is not None or preset is not None:
            raise KetabayesError("method / test / preset apply to model='rma' only")
        method, test = "FE", "knha"  # weighted least squares with a dispersion term = FE with the KH factor
    else:
        method, test = _resolve(method, test, preset)
    level = _core.check_level(level)
    y, v, labs = _core.validate(yi, vi, study)
    k = y.size
    if k < 3:
        raise KetabayesError(f"Egger's test needs k >= 3 studies; got k = {k}")
    x = np.sqrt(v) if predictor == "sei" else v
    X = np.column_stack([np.ones(k), x])
    if np.ptp(x) == 0:
        raise KetabayesError(f"Egger's test needs studies of different precision: every {predictor} is equal")
    with warnings.catch_warnings():
        if model == "lm":
            warnings.filterwarnings("ignore", message="the Knapp & Hartung method", category=UserWarning)
        f = _core.fit(y, v, X, ["intrcpt", predictor], method, test, level)
    return RegtestResult(model=model, predictor=predictor, zval=float(f.stat[1]), pval=float(f.pval[1]), df=f.ddf,
                         est=float(f.beta[0]), ci_low=float(f.ci_low[0]), ci_high=float(f.ci_high[0]))


def ranktest(yi: Any, vi: Any, *, study: Sequence[Any] | None = None) -> RanktestResult:
    """Begg and Mazumdar's rank correlation test (metafor's ``ranktest``).

    Kendall's tau between the standardised deviates ``(yi - b) / sqrt(vi - vb)`` (``b``, ``vb`` the
    common-effect estimate and its variance) and ``vi``.

    Parameters
    ----------
    yi, vi : array-like of float
    study : sequence, optional

    Returns
    -------
    RanktestResult

    References
    ----------
    .. [1] Begg CB, Mazumdar M (1994). Biometrics 50:1088-1101. doi:10.2307/2533446

    Examples
    --------
    >>> from ketabayes.inference.frequentist import ranktest
    >>> r = ranktest([-0.9, -1.6, -0.2, 0.0, 0.3], [0.33, 0.19, 0.05, 0.004, 0.1])
    >>> round(r.tau, 4)
    -0.6
    """
    y, v, _ = _core.validate(yi, vi, study)
    k = y.size
    if k < 3:
        raise KetabayesError(f"the rank correlation test needs k >= 3 studies; got k = {k}")
    w = 1 / v
    b = (w * y).sum() / w.sum()
    ystar = (y - b) / np.sqrt(v - 1 / w.sum())
    ties = len(np.unique(ystar)) < k or len(np.unique(v)) < k
    res = stats.kendalltau(ystar, v, method="exact" if (k < 50 and not ties) else "asymptotic")
    return RanktestResult(tau=float(res.statistic), pval=float(res.pvalue))


def trimfill(yi: Any, vi: Any, *, method: str | None = None, test: str | None = None, estimator: str = "L0",
             side: str | None = None, level: float = 0.95, maxiter: int = 100, study: Sequence[Any] | None = None,
             preset: str | None = None) -> TrimfillResult:
    """Duval and Tweedie's trim-and-fill (metafor's ``trimfill``).

    Parameters
    ----------
    yi, vi : array-like of float
    method, test, level, study, preset
        As for :func:`rma`; ``method`` is used in every step, ``test``/``level`` in the final model.
    estimator : {"L0", "R0"}, default "L0"
    side : {"left", "right"}, optional
        Side on which studies are missing; by default the side opposite the sign of Egger's slope
        (``"left"`` when the slope of yi on sqrt(vi) is positive), as metafor chooses it.
    maxiter : int, default 100

    Returns
    -------
    TrimfillResult

    References
    ----------
    .. [1] Duval S, Tweedie R (2000). Biometrics 56:455-463. doi:10.1111/j.0006-341x.2000.00455.x

    Examples
    --------
    >>> from ketabayes.inference.frequentist import trimfill
    >>> tf = trimfill([0.1, 0.3, 0.35, 0.6, 0.8, 0.9], [0.01, 0.03, 0.05, 0.1, 0.2, 0.3], method="FE")
    >>> tf.side, tf.k0, int(tf.filled.sum())
    ('left', 3, 3)
    """
    method, test = _resolve(method, test, preset)
    level = _core.check_level(level)
    if estimator not in ("L0", "R0"):
        raise KetabayesError(f"estimator must be 'L0' or 'R0'; got {estimator!r}")
    y0, v0, labs = _core.validate(yi, vi, study)
    k = y0.size
    if k < 3:
        raise KetabayesError(f"trim-and-fill needs k >= 3 studies; got k = {k}")
    one = ["intrcpt"]
    if side is None:
        X = np.column_stack([np.ones(k), np.sqrt(v0)])
        if np.ptp(X[:, 1]) == 0:
            raise KetabayesError("cannot choose the side: every vi is equal; give side='left' or 'right'")
        slope = _core.fit(y0, v0, X, ["intrcpt", "sei"], method, "z", level).beta[1]
        side = "right" if slope < 0 else "left"
    elif side not in ("left", "right"):
        raise KetabayesError(f"side must be 'left' or 'right'; got {side!r}")
    sign = -1.0 if side == "right" else 1.0
    ys = sign * y0
    order = np.argsort(ys, kind="stable")
    ys, vs = ys[order], v0[order]
    k0, k0_prev, it = 0, -1, 0
    beta = se_k0 = math.nan
    while k0 != k0_prev:
        k0_prev = k0
        it += 1
        if it > maxiter:
            raise KetabayesError("trim-and-fill did not converge")
        n = k - k0
        beta = float(_core.fit(ys[:n], vs[:n], np.ones((n, 1)), one, method, "z", level).beta[0])
        yc = ys - beta
        r = stats.rankdata(np.abs(yc), method="ordinal")
        signed = np.sign(yc) * r
        if estimator == "R0":
            neg = signed[signed < 0]
            k0_raw = (k - (np.max(-neg) if neg.size else 0)) - 1
            se_k0 = math.sqrt(2 * max(0.0, k0_raw) + 2)
        else:
            Sr = float(signed[signed > 0].sum())
            k0_raw = (4 * Sr - k * (k + 1)) / (2 * k - 1)
            var = (k * (k + 1) * (2 * k + 1) + 10 * k0_raw**3 + 27 * k0_raw**2 + 17 * k0_raw - 18 * k * k0_raw**2
                   - 18 * k * k0_raw + 6 * k**2 * k0_raw) / 24
            se_k0 = 4 * math.sqrt(var) / (2 * k - 1)
        k0 = int(max(0, round(k0_raw)))  # R's round: half to even, as Python's
        se_k0 = max(0.0, se_k0)
    if k0 > 0:
        fill_y = sign * (2 * beta - ys[k - k0:])
        y_all = np.concatenate([y0, fill_y])
        v_all = np.concatenate([v0, vs[k - k0:]])
    else:
        y_all, v_all = y0.copy(), v0.copy()
    X = np.ones((y_all.size, 1))
    fit = result_from_fit(_core.fit(y_all, v_all, X, one, method, test, level), y_all, v_all, X)
    p_k0 = math.nan
    if estimator == "R0":
        m = np.arange(-1, k0)
        p_k0 = float(1 - np.sum([math.comb(int(j) + 1, int(j) + 1) * 0.5 ** (j + 2) for j in m]))
    filled = np.r_[np.zeros(k, bool), np.ones(k0, bool)]
    return TrimfillResult(k0=k0, se_k0=float(se_k0), side=side, estimator=estimator, p_k0=p_k0, fit=fit, yi=y_all,
                          vi=v_all, filled=filled)
