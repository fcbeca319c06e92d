"""Frequentist reference analyses matching metafor's ``rma.uni``.

The Bayesian models in ketabayes are always reported next to the classical
random-effects analysis a reader already knows. This module reproduces
metafor's ``rma.uni()`` (with its defaults ``test="z"``, no moderators) for
three estimators of the between-study variance tau^2:

``"FE"``
    Inverse-variance common (fixed / equal) effect model; metafor also calls
    it ``"EE"`` or ``"CE"``, and those names are accepted as aliases.
``"DL"``
    DerSimonian-Laird method-of-moments estimator, truncated at 0.
``"REML"``
    Restricted maximum likelihood over tau^2 >= 0, found like metafor does
    (Fisher scoring started at the Hedges estimate, step halving to stay
    non-negative, a check of the boundary tau^2 = 0) but iterated to a
    relative change below 1e-12 instead of metafor's default 1e-5.

Definitions follow metafor's source (``R/rma.uni.r``, ``R/predict.rma.r``):

* Q is always Cochran's Q with fixed-effect weights ``w = 1/vi``.
* I^2 and H^2 use the "typical" within-study variance
  ``s^2 = (k - 1) / (sum(w) - sum(w^2) / sum(w))``:
  ``I2 = 100 tau2 / (tau2 + s2)``, ``H2 = (tau2 + s2) / s2``;
  for the FE model they come from Q: ``I2 = max(0, 100 (Q - (k-1)) / Q)``,
  ``H2 = Q / (k - 1)``.
* Confidence and prediction intervals use normal quantiles; the prediction
  interval is ``estimate +/- z * sqrt(se^2 + tau2)``. metafor's ``predict()``
  reports no prediction interval for FE models, so ``pi_low``/``pi_high``
  are NaN there.
* SE of tau^2: REML ``sqrt(2 / tr(P P))`` (inverse Fisher information);
  DL ``sqrt((2 (k-1) + 4 tau2 tr(P) + 2 tau2^2 tr(P P))) / tr(P)`` with P
  built from the fixed-effect weights; NaN for FE.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

from ketabayes.errors import DataError, DataWarning, KetabayesError

__all__ = ["RmaResult", "rma", "rma_all"]

_FE_ALIASES = ("FE", "EE", "CE")
_METHODS = (*_FE_ALIASES, "DL", "REML")

# Fisher scoring settings (metafor: threshold 1e-5, maxiter 100).
_REML_REL_TOL = 1e-12
_REML_MAXITER = 1000
# metafor warns when max(vi) / min(vi) >= 1 / evtol with evtol = 1e-7.
_VI_RATIO_WARN = 1e7


@dataclass(frozen=True)
class RmaResult:
    """Result of a frequentist (metafor-style) meta-analysis.

    All attributes are plain Python ``int``/``float``/``str`` values; a value
    that is undefined for the fit (for example ``tau2_se`` of a fixed-effect
    model or ``Q_pval`` when ``k == 1``) is ``nan``.

    Attributes
    ----------
    method : str
        ``"FE"`` (or the alias it was called with, ``"EE"``/``"CE"``),
        ``"DL"`` or ``"REML"``.
    k : int
        Number of studies.
    estimate, se : float
        Pooled effect and its standard error.
    ci_low, ci_high : float
        Wald confidence interval at ``level`` (normal quantiles).
    zval, pval : float
        Wald z statistic and two-sided p-value for ``estimate == 0``.
    tau2, tau2_se, tau : float
        Between-study variance, its standard error (metafor's formula) and
        its square root. ``tau2`` is 0 for the FE model.
    I2, H2 : float
        Higgins & Thompson's I^2 (in percent) and H^2.
    Q, Q_df, Q_pval : float, int, float
        Cochran's Q (fixed-effect weights), its degrees of freedom ``k - 1``
        and the chi-square p-value.
    pi_low, pi_high : float
        Prediction interval for the true effect in a new study (metafor's
        ``predict()``); ``nan`` for the FE model.
    level : float
        Confidence / prediction level, e.g. ``0.95``.
    """

    method: str
    k: int
    estimate: float
    se: float
    ci_low: float
    ci_high: float
    zval: float
    pval: float
    tau2: float
    tau2_se: float
    tau: float
    I2: float
    H2: float
    Q: float
    Q_df: int
    Q_pval: float
    pi_low: float
    pi_high: float
    level: float

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a plain ``dict`` (JSON-serialisable except for NaN)."""
        return asdict(self)


# ---------------------------------------------------------------------------
# input validation


def _labels(study: Sequence[Any] | None, k: int) -> list[str]:
    if study is None:
        return [f"Study {i + 1}" for i in range(k)]
    labels = [str(s) for s in np.asarray(study, dtype=object).reshape(-1)]
    if len(labels) != k:
        raise DataError(
            f"got {len(labels)} study labels for {k} studies; give one label per study",
            column="study",
        )
    return labels


def _as_vector(values: Any, column: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{column} must be numeric", column=column) from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise DataError(
            f"{column} must be one-dimensional (one value per study), got shape {arr.shape}",
            column=column,
        )
    return arr


def _validate(
    yi: Any, vi: Any, study: Sequence[Any] | None
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y = _as_vector(yi, "yi")
    v = _as_vector(vi, "vi")
    if y.size == 0:
        raise DataError("no studies: yi is empty (need k >= 1)", column="yi")
    if v.size != y.size:
        raise DataError(
            f"yi has {y.size} values but vi has {v.size}; give one sampling variance per study",
            column="vi",
        )
    labels = _labels(study, y.size)
    for i in range(y.size):
        if not math.isfinite(y[i]):
            raise DataError(f"yi must be a finite number, got {y[i]!r}", study=labels[i], column="yi")
        if not (math.isfinite(v[i]) and v[i] > 0):
            raise DataError(
                f"vi must be a positive, finite sampling variance, got {v[i]!r}",
                study=labels[i],
                column="vi",
            )
    ratio = v.max() / v.min()
    if ratio >= _VI_RATIO_WARN:
        warnings.warn(
            f"ratio of largest to smallest sampling variance is {ratio:.3g}; "
            "results may be numerically unstable (metafor gives the same warning)",
            DataWarning,
            stacklevel=3,
        )
    return y, v, labels


def _check_level(level: float) -> float:
    try:
        level = float(level)
    except (TypeError, ValueError):
        raise KetabayesError(f"level must be a number in (0, 1), e.g. 0.95; got {level!r}") from None
    if not 0.0 < level < 1.0:
        raise KetabayesError(f"level must be in (0, 1), e.g. 0.95 (not a percentage); got {level!r}")
    return level


def _check_method(method: str) -> str:
    if not isinstance(method, str) or method.upper() not in _METHODS:
        raise KetabayesError(f"method must be one of {', '.join(_METHODS)}; got {method!r}")
    return method.upper()


# ---------------------------------------------------------------------------
# estimators (intercept-only model, so the projection matrix P is explicit)


def _trace_p(w: np.ndarray) -> float:
    """tr(P) for P = W - w w' / sum(w)."""
    sw = w.sum()
    return float(sw - (w**2).sum() / sw)


def _trace_pp(w: np.ndarray) -> float:
    """tr(P P) = sum(P * P) for P = W - w w' / sum(w)."""
    sw = w.sum()
    sw2 = (w**2).sum()
    return float(sw2 - 2.0 * (w**3).sum() / sw + (sw2 / sw) ** 2)


def _weighted_mean(y: np.ndarray, w: np.ndarray) -> float:
    return float((w * y).sum() / w.sum())


def _reml_score_info(tau2: float, y: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Twice the REML score and twice the Fisher information at ``tau2``.

    Score: ``(y'PPy - tr(P)) / 2``; information: ``tr(PP) / 2``
    (Viechtbauer 2005, eqs. for the REML estimator).
    """
    w = 1.0 / (v + tau2)
    r = y - _weighted_mean(y, w)
    ypppy = float(((w * r) ** 2).sum())
    return ypppy - _trace_p(w), _trace_pp(w)


def _reml_loglik(tau2: float, y: np.ndarray, v: np.ndarray) -> float:
    """Restricted log-likelihood (up to a constant) at ``tau2``."""
    w = 1.0 / (v + tau2)
    r = y - _weighted_mean(y, w)
    return float(-0.5 * np.log(v + tau2).sum() - 0.5 * math.log(w.sum()) - 0.5 * (w * r**2).sum())


def _reml_tau2(y: np.ndarray, v: np.ndarray) -> float:
    """REML estimate of tau^2 >= 0 (metafor's algorithm, tighter tolerance)."""
    k = y.size
    yc = y - y.mean()  # metafor centres y for stability
    # Hedges (HE) estimator as the starting value: var(y) - mean(vi)
    tau2 = max(0.0, float((yc**2).sum() / (k - 1) - v.mean()))
    converged = False
    for _ in range(_REML_MAXITER):
        score2, info2 = _reml_score_info(tau2, yc, v)
        adj = score2 / info2
        while tau2 + adj < 0.0:  # step halving keeps tau2 >= 0
            adj /= 2.0
        new = tau2 + adj
        change = abs(new - tau2)
        tau2 = new
        if change <= _REML_REL_TOL * max(1.0, tau2):
            converged = True
            break
    if not converged:  # pragma: no cover - Fisher scoring is very reliable here
        tau2 = _reml_tau2_bracketed(yc, v)
    # metafor's 'll0check': the boundary can beat a local maximum
    if tau2 > 0.0 and _reml_loglik(0.0, yc, v) > _reml_loglik(tau2, yc, v):
        tau2 = 0.0
    return tau2


def _reml_tau2_bracketed(y: np.ndarray, v: np.ndarray) -> float:  # pragma: no cover
    """Fallback: root of the REML score by Brent's method on a bracket."""

    def score(t: float) -> float:
        return _reml_score_info(t, y, v)[0]

    if score(0.0) <= 0.0:
        return 0.0
    hi = max(1.0, float(np.var(y, ddof=1)))
    while score(hi) > 0.0:
        hi *= 2.0
    return float(optimize.brentq(score, 0.0, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps))


# ---------------------------------------------------------------------------
# public API


def rma(
    yi: Any,
    vi: Any,
    *,
    method: str = "REML",
    level: float = 0.95,
    study: Sequence[Any] | None = None,
) -> RmaResult:
    """Fit metafor's ``rma.uni()`` random- or common-effect model (no moderators).

    Parameters
    ----------
    yi : array-like of float
        Observed effect sizes, one per study (e.g. log risk ratios).
    vi : array-like of float
        Their sampling variances (not standard errors), all positive.
    method : {"REML", "DL", "FE"}, default "REML"
        Estimator of tau^2. ``"EE"`` and ``"CE"`` are accepted as aliases of
        ``"FE"`` (the inverse-variance common-effect model).
    level : float, default 0.95
        Level of the confidence and prediction intervals, in (0, 1).
    study : sequence, optional
        Study labels, used in error messages. Defaults to ``"Study 1"``, ...

    Returns
    -------
    RmaResult
        Frozen dataclass with the estimate, its SE, CI, z-test, tau^2 (and
        SE), I^2, H^2, Cochran's Q test and the prediction interval.

    Raises
    ------
    ketabayes.errors.DataError
        If ``yi``/``vi`` differ in length, are empty, or a study has a
        non-finite effect or a non-positive / non-finite variance (the message
        names the study and the column).
    ketabayes.errors.KetabayesError
        For an unknown ``method`` or a ``level`` outside (0, 1).

    Notes
    -----
    With ``k == 1`` the estimate is ``yi[0]`` with ``se = sqrt(vi[0])`` and
    ``tau2 = 0``; there is no heterogeneity test, so ``Q = 0`` with
    ``Q_df = 0`` and ``Q_pval``, ``I2``, ``H2``, ``tau2_se`` are NaN (metafor
    prints ``QEp = 1``, ``I2 = 0``, ``H2 = 1`` in this case). For ``k >= 2``
    identical ``yi`` under ``method="FE"`` (Q = 0), ``I2`` is reported as 0
    where metafor's formula gives 0/0.

    References
    ----------
    .. [1] DerSimonian R, Laird N (1986). Meta-analysis in clinical trials.
       Controlled Clinical Trials 7(3):177-188. doi:10.1016/0197-2456(86)90046-2
    .. [2] Viechtbauer W (2005). Bias and efficiency of meta-analytic variance
       estimators in the random-effects model. Journal of Educational and
       Behavioral Statistics 30(3):261-293. doi:10.3102/10769986030003261
    .. [3] Higgins JPT, Thompson SG (2002). Quantifying heterogeneity in a
       meta-analysis. Statistics in Medicine 21(11):1539-1558. doi:10.1002/sim.1186
    .. [4] Viechtbauer W (2010). Conducting meta-analyses in R with the metafor
       package. Journal of Statistical Software 36(3):1-48. doi:10.18637/jss.v036.i03

    Examples
    --------
    >>> from ketabayes.inference.frequentist import rma
    >>> res = rma([-0.9, -1.6, -0.2, 0.0], [0.33, 0.19, 0.05, 0.004], method="DL")
    >>> round(res.estimate, 4), round(res.tau2, 4), round(res.I2, 2)
    (-0.5185, 0.2475, 81.14)
    >>> res.Q_df
    3
    """
    method = _check_method(method)
    level = _check_level(level)
    y, v, _ = _validate(yi, vi, study)
    k = int(y.size)
    crit = float(stats.norm.isf((1.0 - level) / 2.0))
    is_fe = method in _FE_ALIASES
    # computed on a standardised scale (the estimators are location/scale equivariant), so that
    # data of any magnitude (e.g. 1e150 or 1e-150) neither overflow nor underflow
    c, sc = float(np.median(y)), math.sqrt(float(np.median(v)))
    y, v = (y - c) / sc, v / sc**2

    w_fe = 1.0 / v
    nan = float("nan")
    if k >= 2:
        mu_fe = _weighted_mean(y, w_fe)
        Q = max(0.0, float((w_fe * (y - mu_fe) ** 2).sum()))
        Q_df = k - 1
        Q_pval = float(stats.chi2.sf(Q, Q_df))
        trP = _trace_p(w_fe)
        s2 = Q_df / trP  # "typical" within-study variance
    else:
        Q, Q_df, Q_pval, trP, s2 = 0.0, 0, nan, nan, nan

    # between-study variance and its standard error
    if is_fe or k == 1:
        tau2, tau2_se = 0.0, nan
    elif method == "DL":
        tau2 = max(0.0, (Q - Q_df) / trP)
        trPP = _trace_pp(w_fe)
        tau2_se = math.sqrt(2.0 * Q_df + 4.0 * tau2 * trP + 2.0 * tau2**2 * trPP) / trP
    else:  # REML
        tau2 = _reml_tau2(y, v)
        tau2_se = math.sqrt(2.0 / _trace_pp(1.0 / (v + tau2)))

    # pooled estimate (back on the original scale)
    w = 1.0 / (v + tau2)
    se_std = 1.0 / math.sqrt(float(w.sum()))
    estimate = c + sc * _weighted_mean(y, w)
    se = sc * se_std
    zval = estimate / se
    pval = float(2.0 * stats.norm.sf(abs(zval)))

    # heterogeneity summaries
    if k == 1:
        I2 = H2 = nan
    elif is_fe:
        I2 = max(0.0, 100.0 * (Q - Q_df) / Q) if Q > 0.0 else 0.0
        H2 = Q / Q_df
    else:
        I2 = 100.0 * tau2 / (s2 + tau2)
        H2 = tau2 / s2 + 1.0

    if is_fe:
        pi_low = pi_high = nan
    else:
        pi_se = sc * math.sqrt(se_std**2 + tau2)
        pi_low, pi_high = estimate - crit * pi_se, estimate + crit * pi_se
    tau2, tau2_se, tau = sc**2 * tau2, sc**2 * tau2_se, sc * math.sqrt(tau2)

    return RmaResult(
        method=method,
        k=k,
        estimate=float(estimate),
        se=float(se),
        ci_low=float(estimate - crit * se),
        ci_high=float(estimate + crit * se),
        zval=float(zval),
        pval=pval,
        tau2=float(tau2),
        tau2_se=float(tau2_se),
        tau=float(tau),
        I2=float(I2),
        H2=float(H2),
        Q=float(Q),
        Q_df=int(Q_df),
        Q_pval=float(Q_pval),
        pi_low=float(pi_low),
        pi_high=float(pi_high),
        level=level,
    )


def rma_all(
    yi: Any,
    vi: Any,
    level: float = 0.95,
    *,
    study: Sequence[Any] | None = None,
) -> dict[str, RmaResult]:
    """Fit the FE, DL and REML models of :func:`rma` to the same data.

    Parameters
    ----------
    yi, vi : array-like of float
        Effect sizes and sampling variances, as for :func:`rma`.
    level : float, default 0.95
        Confidence / prediction level in (0, 1).
    study : sequence, optional
        Study labels used in error messages.

    Returns
    -------
    dict of str to RmaResult
        Keys ``"FE"``, ``"DL"`` and ``"REML"``, in that order.

    Examples
    --------
    >>> from ketabayes.inference.frequentist import rma_all
    >>> fits = rma_all([-0.9, -1.6, -0.2, 0.0], [0.33, 0.19, 0.05, 0.004])
    >>> list(fits)
    ['FE', 'DL', 'REML']
    """
    return {m: rma(yi, vi, method=m, level=level, study=study) for m in ("FE", "DL", "REML")}
