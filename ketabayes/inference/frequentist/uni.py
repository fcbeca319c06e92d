"""Univariate random- and common-effect meta-analysis equal to metafor's ``rma.uni``.

Estimators of the between-study variance tau^2 (``method``), as metafor defines them:

``"FE"`` (aliases ``"EE"``, ``"CE"``)
    Inverse-variance common-effect model, tau^2 = 0.
``"DL"`` DerSimonian-Laird, ``"HE"`` Hedges, ``"HS"`` Hunter-Schmidt, ``"SJ"`` Sidik-Jonkman
    Closed-form (method-of-moments type) estimators, truncated at 0 (SJ is never negative).
``"ML"``, ``"REML"``, ``"EB"``
    Maximum likelihood, restricted maximum likelihood and empirical Bayes, by metafor's Fisher scoring
    (started at the Hedges estimate, step halving at 0, metafor's check of the boundary tau^2 = 0) but
    iterated until the change in tau^2 is below 1e-12 instead of metafor's default 1e-5.
``"PM"``
    Paule-Mandel: the root of Q(tau^2) = k - p (Brent's method to machine precision; the bracket
    ``[0, max(100, 10 mad(yi)^2)]`` is widened where metafor stops with "tau2.max too low").

Tests and intervals for the coefficients (``test``): ``"z"`` (normal quantiles), ``"t"`` (t quantiles with
k - p degrees of freedom), ``"knha"`` (Hartung-Knapp / Sidik-Jonkman, HKSJ: the variance is multiplied by
the weighted residual mean square ``s2w`` and t quantiles are used) and ``"adhoc"`` (HKSJ with
``s2w`` truncated below at 1, so the interval is never narrower than the t interval).

Heterogeneity: Cochran's Q always uses the fixed-effect weights ``1/vi``; I^2 and H^2 use the "typical"
within-study variance ``vt = (k - p) / tr(P)`` (for FE models they come from Q). The Q-profile interval
of tau^2 (Viechtbauer 2007) gives the I^2 / H^2 intervals through ``vt``. The prediction interval is
``estimate +/- crit * sqrt(se^2 + tau2)`` with the same quantile ``crit`` as the confidence interval
(t-based under ``"t"``, ``"knha"`` and ``"adhoc"``), metafor's default ``predict()`` rule.

RevMan (Cochrane, since January 2025) pools random effects with REML, HKSJ intervals, Q-profile
intervals for tau^2 and t-based prediction intervals: ``rma(yi, vi, preset="revman")`` is
``method="REML", test="knha"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from ketabayes.errors import KetabayesError
from ketabayes.inference.frequentist import _core
from ketabayes.inference.frequentist._core import Fit

__all__ = ["RmaResult", "rma", "rma_all", "REVMAN"]

#: RevMan's current (2025) random-effects defaults: REML with Hartung-Knapp-Sidik-Jonkman intervals.
REVMAN: dict[str, str] = {"method": "REML", "test": "knha"}
_PRESETS = {"revman": REVMAN}
_NAN = float("nan")


@dataclass(frozen=True, eq=False)
class RmaResult:
    """Result of a frequentist (metafor ``rma.uni``-style) meta-analysis.

    Scalar attributes are plain Python ``int``/``float``/``str`` values; a value that is undefined for
    the fit (``tau2_se`` of a fixed-effect model, ``Q_pval`` when ``k == 1``, ``df`` under ``test="z"``)
    is ``nan``.

    Attributes
    ----------
    method : str
        Estimator of tau^2 (``"FE"``/``"EE"``/``"CE"``, ``"DL"``, ``"HE"``, ``"HS"``, ``"SJ"``, ``"ML"``,
        ``"REML"``, ``"EB"``, ``"PM"``).
    k : int
        Number of studies.
    estimate, se, ci_low, ci_high, zval, pval : float
        Pooled effect of the intercept-only model, its standard error, confidence interval, test
        statistic (z, or t under ``test`` "t"/"knha"/"adhoc") and two-sided p-value. ``nan`` for a model
        with moderators: see ``coefficients``.
    tau2, tau2_se, tau : float
        (Residual) between-study variance, its standard error (metafor's formula) and square root.
    I2, H2 : float
        (Residual) I^2 in percent and H^2.
    Q, Q_df, Q_pval : float, int, float
        Cochran's Q (the residual QE test with moderators), degrees of freedom ``k - p``, p-value.
    pi_low, pi_high : float
        Prediction interval for the true effect in a new study; ``nan`` for FE models and for models
        with moderators.
    level : float
        Confidence / prediction level, e.g. ``0.95``.
    test : str
        ``"z"``, ``"t"``, ``"knha"`` or ``"adhoc"``.
    df : float
        Degrees of freedom of the t quantiles (``k - p``); ``nan`` under ``test="z"``.
    p : int
        Number of coefficients (1 for the intercept-only model).
    tau2_ci_low, tau2_ci_high, I2_ci_low, I2_ci_high, H2_ci_low, H2_ci_high : float
        Q-profile confidence interval of tau^2 and the matching I^2 / H^2 intervals (``nan`` for FE).
        The search runs over ``[0, max(100, 10 tau2)]`` as in metafor: a bound that reaches the end of
        that range is reported as the end (metafor prints it with ``>``); both bounds are 0 when even
        tau^2 = 0 is rejected towards homogeneity.
    QM, QM_df, QM_df2, QM_pval : float, int, float, float
        Omnibus test of the moderators (of the intercept for the intercept-only model): chi-square with
        ``QM_df`` degrees of freedom under ``test="z"``, else an F statistic with ``(QM_df, QM_df2)``.
    coefficients : pandas.DataFrame
        One row per coefficient (index ``intrcpt`` and the moderator names) with columns ``estimate, se,
        zval`` (``tval`` under t tests) ``, pval, ci_low, ci_high``. Not part of equality or ``to_dict``
        for the intercept-only model (it repeats the scalar fields there).
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
    test: str = "z"
    df: float = _NAN
    p: int = 1
    tau2_ci_low: float = _NAN
    tau2_ci_high: float = _NAN
    I2_ci_low: float = _NAN
    I2_ci_high: float = _NAN
    H2_ci_low: float = _NAN
    H2_ci_high: float = _NAN
    QM: float = _NAN
    QM_df: int = 1
    QM_df2: float = _NAN
    QM_pval: float = _NAN
    coefficients: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        coef = self.coefficients
        if isinstance(coef, dict):  # from to_dict() / JSON
            coef = pd.DataFrame(coef).set_index("term")
            coef.index.name = None
        elif coef is None:
            stat = "zval" if self.test == "z" else "tval"
            coef = pd.DataFrame({"estimate": [self.estimate], "se": [self.se], stat: [self.zval],
                                 "pval": [self.pval], "ci_low": [self.ci_low], "ci_high": [self.ci_high]},
                                index=["intrcpt"])
        object.__setattr__(self, "coefficients", coef)

    def _key(self) -> tuple:
        return tuple("nan" if isinstance(x, float) and math.isnan(x) else x
                     for x in (getattr(self, f.name) for f in fields(self) if f.name != "coefficients"))

    def __eq__(self, other: object) -> bool:
        """Equal when every scalar field is equal (NaN equals NaN) and the coefficient tables agree."""
        if not isinstance(other, RmaResult):
            return NotImplemented
        return self._key() == other._key() and self.coefficients.equals(other.coefficients)

    def __hash__(self) -> int:
        return hash(self._key())

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a plain ``dict`` (JSON-serialisable except for NaN).

        The coefficient table is included (as ``{"term": [...], column: [...]}``) only for models with
        moderators; ``RmaResult(**d)`` rebuilds the result.
        """
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "coefficients"}
        if self.p > 1:
            c = self.coefficients
            out["coefficients"] = {"term": [str(i) for i in c.index],
                                   **{col: [float(x) for x in c[col]] for col in c.columns}}
        return out


def _resolve(method: str | None, test: str | None, preset: str | None) -> tuple[str, str]:
    if preset is not None:
        key = str(preset).lower()
        if key not in _PRESETS:
            raise KetabayesError(f"preset must be one of {', '.join(_PRESETS)}; got {preset!r}")
        want = _PRESETS[key]
        for name, given in (("method", method), ("test", test)):
            if given is not None and str(given).upper() != want[name].upper():
                raise KetabayesError(f"preset={preset!r} sets {name}={want[name]!r}; got {name}={given!r}")
        method, test = want["method"], want["test"]
    return _core.check_method("REML" if method is None else method), _core.check_test("z" if test is None else test)


def result_from_fit(f: Fit, y: np.ndarray, v: np.ndarray, X: np.ndarray) -> RmaResult:
    """Build the public result from an internal fit (adds the Q-profile and prediction intervals)."""
    lb, ub = _core.q_profile(f, y, v, X)
    if math.isnan(lb):
        i2l = i2u = h2l = h2u = _NAN
    else:
        i2l, i2u = 100 * lb / (f.vt + lb), 100 * ub / (f.vt + ub)
        h2l, h2u = lb / f.vt + 1, ub / f.vt + 1
    stat = "zval" if f.test == "z" else "tval"
    coef = pd.DataFrame({"estimate": f.beta, "se": f.se, stat: f.stat, "pval": f.pval, "ci_low": f.ci_low,
                         "ci_high": f.ci_high}, index=f.names)
    if f.p == 1:
        est, se = float(f.beta[0]), float(f.se[0])
        scal = (est, se, float(f.ci_low[0]), float(f.ci_high[0]), float(f.stat[0]), float(f.pval[0]))
        if f.method in _core.FE_ALIASES:
            pi = (_NAN, _NAN)
        else:
            half = f.crit * math.sqrt(se**2 + f.tau2)
            pi = (est - half, est + half)
    else:
        scal = (_NAN,) * 6
        pi = (_NAN, _NAN)
    return RmaResult(method=f.method, k=f.k, estimate=scal[0], se=scal[1], ci_low=scal[2], ci_high=scal[3],
                     zval=scal[4], pval=scal[5], tau2=f.tau2, tau2_se=f.tau2_se, tau=math.sqrt(f.tau2), I2=f.I2,
                     H2=f.H2, Q=f.QE, Q_df=int(f.QE_df), Q_pval=f.QE_pval, pi_low=float(pi[0]),
                     pi_high=float(pi[1]), level=f.level, test=f.test, df=f.ddf, p=f.p, tau2_ci_low=float(lb),
                     tau2_ci_high=float(ub), I2_ci_low=float(i2l), I2_ci_high=float(i2u), H2_ci_low=float(h2l),
                     H2_ci_high=float(h2u), QM=f.QM, QM_df=int(f.QM_df), QM_df2=f.QM_df2, QM_pval=f.QM_pval,
                     coefficients=coef)


def rma(
    yi: Any,
    vi: Any,
    *,
    mods: Any = None,
    method: str | None = None,
    test: str | None = None,
    level: float = 0.95,
    study: Sequence[Any] | None = None,
    preset: str | None = None,
) -> RmaResult:
    """Fit metafor's ``rma.uni()``: random- or common-effect meta-analysis or meta-regression.

    Parameters
    ----------
    yi : array-like of float
        Observed effect sizes, one per study (e.g. log risk ratios).
    vi : array-like of float
        Their sampling variances (not standard errors), all positive.
    mods : array-like or pandas.DataFrame, optional
        Moderators, one row per study (numeric; code categories as 0/1 dummies). An intercept is added.
    method : str, default "REML"
        Estimator of tau^2: ``"FE"`` (aliases ``"EE"``, ``"CE"``), ``"DL"``, ``"HE"``, ``"HS"``,
        ``"SJ"``, ``"ML"``, ``"REML"``, ``"EB"`` or ``"PM"`` (see the module docstring).
    test : {"z", "t", "knha", "adhoc"}, default "z"
        Inference for the coefficients: normal, t, Hartung-Knapp-Sidik-Jonkman, or its never-narrower
        ad hoc variant.
    level : float, default 0.95
        Level of the confidence and prediction intervals, in (0, 1).
    study : sequence, optional
        Study labels, used in error messages. Defaults to ``"Study 1"``, ...
    preset : {"revman"}, optional
        ``"revman"`` is RevMan's current default, ``method="REML", test="knha"``.

    Returns
    -------
    RmaResult
        Frozen dataclass: estimate, SE, CI, test, tau^2 with SE and Q-profile CI, I^2 / H^2 with CIs,
        Q test, omnibus moderator test, prediction interval and the ``coefficients`` table.

    Raises
    ------
    ketabayes.errors.DataError
        Mismatched lengths, empty input, a non-finite effect, a non-positive / non-finite variance,
        a non-numeric or non-finite moderator (the message names the study and the column).
    ketabayes.errors.KetabayesError
        Unknown ``method`` / ``test`` / ``preset``, a ``level`` outside (0, 1), a singular moderator
        matrix, or too few studies (k <= p with moderators, k < 2 for a t-based test).

    Notes
    -----
    With ``k == 1`` the estimate is ``yi[0]`` with ``se = sqrt(vi[0])`` and ``tau2 = 0``; there is no
    heterogeneity test, so ``Q = 0`` with ``Q_df = 0`` and ``Q_pval``, ``I2``, ``H2``, ``tau2_se`` are NaN
    (metafor prints ``QEp = 1``, ``I2 = 0``, ``H2 = 1``). For identical ``yi`` under ``method="FE"``
    (Q = 0), ``I2`` is reported as 0 where metafor's formula gives 0/0.

    References
    ----------
    .. [1] DerSimonian R, Laird N (1986). Controlled Clinical Trials 7:177-188. doi:10.1016/0197-2456(86)90046-2
    .. [2] Viechtbauer W (2005). J Educ Behav Stat 30:261-293. doi:10.3102/10769986030003261
    .. [3] Viechtbauer W (2007). Confidence intervals for the amount of heterogeneity in meta-analysis.
       Stat Med 26:37-52. doi:10.1002/sim.2514
    .. [4] Hartung J, Knapp G (2001). Stat Med 20:3875-3889. doi:10.1002/sim.1009
    .. [5] Sidik K, Jonkman JN (2002). Stat Med 21:3153-3159. doi:10.1002/sim.1262
    .. [6] Paule RC, Mandel J (1982). J Res Natl Bur Stand 87:377-385. doi:10.6028/jres.087.022
    .. [7] Viechtbauer W (2010). J Stat Softw 36(3):1-48. doi:10.18637/jss.v036.i03

    Examples
    --------
    >>> from ketabayes.inference.frequentist import rma
    >>> yi, vi = [-0.9, -1.6, -0.2, 0.0], [0.33, 0.19, 0.05, 0.004]
    >>> res = rma(yi, vi, method="DL")
    >>> round(res.estimate, 4), round(res.tau2, 4), round(res.I2, 2)
    (-0.5185, 0.2475, 81.14)
    >>> hksj = rma(yi, vi, preset="revman")
    >>> hksj.method, hksj.test, hksj.df
    ('REML', 'knha', 3.0)
    >>> list(rma(yi, vi, mods=[1, 2, 3, 4], method="FE").coefficients.index)
    ['intrcpt', 'mod1']
    """
    method, test = _resolve(method, test, preset)
    level = _core.check_level(level)
    y, v, labs = _core.validate(yi, vi, study)
    X, names = _core.design_matrix(mods, y.size, labs)
    # data of extreme magnitude (e.g. 1e150 or 1e-150) would overflow the variance formulas: fit on a
    # power-of-two rescaled copy (exact in floating point) and scale back; every estimator is scale-equivariant
    sc = _rescale(v)
    if sc != 1.0:
        f = _core.fit(y / sc, v / sc**2, X, names, method, test, level)
        return _scale_back(result_from_fit(f, y / sc, v / sc**2, X), sc)
    f = _core.fit(y, v, X, names, method, test, level)
    return result_from_fit(f, y, v, X)


def _rescale(v: np.ndarray) -> float:
    """A power of two near ``sqrt(median(v))`` when that lies outside [1e-20, 1e20], else 1."""
    s = math.sqrt(float(np.median(v)))
    if 1e-20 <= s <= 1e20:
        return 1.0
    return 2.0 ** round(math.log2(s))


def _scale_back(r: RmaResult, sc: float) -> RmaResult:
    """``r`` fitted to ``y / sc, v / sc^2``, on the original scale (statistics and I^2/H^2 are invariant)."""

    coef = r.coefficients.copy()
    for c in ("estimate", "se", "ci_low", "ci_high"):
        coef[c] = coef[c] * sc
    lin = {k: getattr(r, k) * sc for k in ("estimate", "se", "ci_low", "ci_high", "pi_low", "pi_high", "tau")}
    sq = {k: getattr(r, k) * sc**2 for k in ("tau2", "tau2_se", "tau2_ci_low", "tau2_ci_high")}
    return replace(r, **lin, **sq, coefficients=coef)


def rma_all(
    yi: Any,
    vi: Any,
    level: float = 0.95,
    *,
    study: Sequence[Any] | None = None,
) -> dict[str, RmaResult]:
    """Fit the FE, DL and REML models of :func:`rma` (``test="z"``) to the same data.

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
        Keys ``"FE"``, ``"DL"``, ``"REML"`` (z-based intervals, as metafor's defaults) and
        ``"REML-HKSJ"`` (REML with the Hartung-Knapp-Sidik-Jonkman interval and a t prediction
        interval: RevMan's default since 2025, ``preset="revman"``), in that order.

    Examples
    --------
    >>> from ketabayes.inference.frequentist import rma_all
    >>> fits = rma_all([-0.9, -1.6, -0.2, 0.0], [0.33, 0.19, 0.05, 0.004])
    >>> list(fits)
    ['FE', 'DL', 'REML', 'REML-HKSJ']
    """
    out = {m: rma(yi, vi, method=m, level=level, study=study) for m in ("FE", "DL", "REML")}
    if len(np.atleast_1d(np.asarray(yi))) >= 2:  # a t-based interval needs k >= 2
        out["REML-HKSJ"] = rma(yi, vi, preset="revman", level=level, study=study)
    return out
