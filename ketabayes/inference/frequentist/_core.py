"""Shared numerics of the frequentist sub-package: input checks and metafor's ``rma.uni`` fit.

Everything here follows metafor's source (``R/rma.uni.r``, ``R/confint.rma.uni.r``,
``R/predict.rma.r``; metafor 3.8). Matrices are small (k studies x p coefficients),
so the projection matrices are formed explicitly, as metafor does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ketabayes.errors import DataError, DataWarning, KetabayesError

FE_ALIASES = ("FE", "EE", "CE")
METHODS = (*FE_ALIASES, "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM")
TESTS = ("z", "t", "knha", "adhoc")
# Iterative estimators stop when the change in tau^2 is below this (metafor's default: 1e-5).
THRESHOLD = 1e-12
MAXITER = 10000
# metafor warns when max(vi) / min(vi) >= 1 / evtol with evtol = 1e-7.
VI_RATIO_WARN = 1e7
_EPS = np.finfo(float).eps


# ---------------------------------------------------------------------------
# input validation


def labels(study: Sequence[Any] | None, k: int) -> list[str]:
    if study is None:
        return [f"Study {i + 1}" for i in range(k)]
    out = [str(s) for s in np.asarray(study, dtype=object).reshape(-1)]
    if len(out) != k:
        raise DataError(f"got {len(out)} study labels for {k} studies; give one label per study", column="study")
    return out


def as_vector(values: Any, column: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{column} must be numeric", column=column) from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise DataError(f"{column} must be one-dimensional (one value per study), got shape {arr.shape}",
                        column=column)
    return arr


def validate(yi: Any, vi: Any, study: Sequence[Any] | None, stacklevel: int = 3
             ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Check ``yi``/``vi`` (finite effects, positive finite variances, equal lengths)."""
    y = as_vector(yi, "yi")
    v = as_vector(vi, "vi")
    if y.size == 0:
        raise DataError("no studies: yi is empty (need k >= 1)", column="yi")
    if v.size != y.size:
        raise DataError(f"yi has {y.size} values but vi has {v.size}; give one sampling variance per study",
                        column="vi")
    labs = labels(study, y.size)
    for i in range(y.size):
        if not math.isfinite(y[i]):
            raise DataError(f"yi must be a finite number, got {y[i]!r}", study=labs[i], column="yi")
        if not (math.isfinite(v[i]) and v[i] > 0):
            raise DataError(f"vi must be a positive, finite sampling variance, got {v[i]!r}", study=labs[i],
                            column="vi")
    ratio = v.max() / v.min()
    if ratio >= VI_RATIO_WARN:
        warnings.warn(f"ratio of largest to smallest sampling variance is {ratio:.3g}; results may be "
                      "numerically unstable (metafor gives the same warning)", DataWarning, stacklevel=stacklevel)
    return y, v, labs


def check_level(level: float) -> float:
    try:
        level = float(level)
    except (TypeError, ValueError):
        raise KetabayesError(f"level must be a number in (0, 1), e.g. 0.95; got {level!r}") from None
    if not 0.0 < level < 1.0:
        raise KetabayesError(f"level must be in (0, 1), e.g. 0.95 (not a percentage); got {level!r}")
    return level


def check_method(method: str) -> str:
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise KetabayesError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    return method.upper()


def check_test(test: str) -> str:
    if not isinstance(test, str) or test.lower() not in TESTS:
        raise KetabayesError(f"test must be one of {', '.join(TESTS)}; got {test!r}")
    return test.lower()


def design_matrix(mods: Any, k: int, labs: list[str]) -> tuple[np.ndarray, list[str]]:
    """Intercept plus the moderators, with checks (numeric, finite, one row per study, full rank)."""
    if mods is None:
        return np.ones((k, 1)), ["intrcpt"]
    if isinstance(mods, dict):
        try:
            mods = pd.DataFrame(mods)
        except ValueError as err:
            raise DataError(f"mods: {err}", column="mods") from None
    if isinstance(mods, pd.Series):
        mods = mods.to_frame(name=mods.name if mods.name is not None else "mod1")
    if isinstance(mods, pd.DataFrame):
        names = [str(c) for c in mods.columns]
        cols = []
        for c in mods.columns:
            s = mods[c]
            if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
                raise DataError(f"moderators must be numeric (code categories as 0/1 dummies); got dtype "
                                f"{s.dtype}", column=str(c))
            cols.append(s.to_numpy(dtype=float))
        M = np.column_stack(cols) if cols else np.empty((len(mods), 0))
    else:
        try:
            M = np.asarray(mods, dtype=float)
        except (TypeError, ValueError):
            raise DataError("moderators must be numeric (code categories as 0/1 dummies)", column="mods") from None
        if M.ndim == 1:
            M = M[:, None]
        if M.ndim != 2:
            raise DataError(f"mods must be a vector or a 2-d array, got shape {M.shape}", column="mods")
        names = [f"mod{j + 1}" for j in range(M.shape[1])]
    if M.shape[0] != k:
        raise DataError(f"mods has {M.shape[0]} rows for {k} studies; give one row per study", column="mods")
    for j, name in enumerate(names):
        bad = np.flatnonzero(~np.isfinite(M[:, j]))
        if bad.size:
            raise DataError(f"moderator must be a finite number, got {M[bad[0], j]!r}", study=labs[bad[0]],
                            column=name)
    X = np.column_stack([np.ones(k), M])
    if X.shape[1] > k:
        raise KetabayesError(f"k = {k} studies cannot estimate {X.shape[1]} coefficients (intercept + moderators)")
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise KetabayesError(f"the moderator matrix (intercept + {', '.join(names)}) is singular: a moderator is "
                             "constant or a linear combination of the others; drop it")
    return X, ["intrcpt", *names]


# ---------------------------------------------------------------------------
# the fit


def _proj(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """P = W - W X (X'WX)^-1 X'W."""
    WX = X * w[:, None]
    return np.diag(w) - WX @ np.linalg.solve(X.T @ WX, WX.T)


def q_stat(tau2: float, y: np.ndarray, v: np.ndarray, X: np.ndarray) -> float:
    """Generalised Q statistic y'P(tau2)y (metafor's ``.QE.func`` without the objective)."""
    P = _proj(X, 1.0 / (v + tau2))
    return float(y @ P @ y)


def _ll(tau2: float, y: np.ndarray, v: np.ndarray, X: np.ndarray, reml: bool) -> float:
    w = 1.0 / (v + tau2)
    WX = X * w[:, None]
    beta = np.linalg.solve(X.T @ WX, WX.T @ y)
    rss = float((w * (y - X @ beta) ** 2).sum())
    k, p = X.shape
    ll = -0.5 * np.log(v + tau2).sum() - 0.5 * rss
    if reml:
        ll += -0.5 * (k - p) * math.log(2 * math.pi) - 0.5 * np.linalg.slogdet(X.T @ WX)[1]
    else:
        ll += -0.5 * k * math.log(2 * math.pi)
    return float(ll)


def _mad(y: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(y - np.median(y))))


def _scoring(method: str, y: np.ndarray, v: np.ndarray, X: np.ndarray, tau2: float) -> float:
    """Fisher scoring for ML / REML / EB as metafor (step halving at 0), iterated to THRESHOLD."""
    k, p = X.shape

    def adj(t: float) -> float:
        w = 1.0 / (v + t)
        P = _proj(X, w)
        Py = P @ y
        if method == "ML":
            return (float(Py @ Py) - w.sum()) / float((w**2).sum())
        if method == "REML":
            return (float(Py @ Py) - np.trace(P)) / float((P * P).sum())
        return (float(y @ Py) * k / (k - p) - k) / w.sum()  # EB

    for _ in range(MAXITER):
        a = adj(tau2)
        while tau2 + a < 0.0:
            a /= 2.0
        new = tau2 + a
        change = abs(new - tau2)
        tau2 = new
        if change <= THRESHOLD:
            return tau2
    raise KetabayesError(f"{method}: Fisher scoring did not converge in {MAXITER} iterations")  # pragma: no cover


def _root(f, target: float, hi: float) -> float:
    """Root of f(tau2) = target for a decreasing f on [0, hi] (hi doubled until bracketed)."""
    for _ in range(200):
        if f(hi) <= target:
            break
        hi *= 2.0
    return float(optimize.brentq(lambda t: f(t) - target, 0.0, hi, xtol=1e-15, rtol=4 * _EPS, maxiter=10000))


def estimate_tau2(method: str, y: np.ndarray, v: np.ndarray, X: np.ndarray) -> tuple[float, float]:
    """tau^2 and its standard error by metafor's definition of ``method`` (not FE)."""
    k, p = X.shape
    y = y - y.mean()  # metafor centres y (estimates are shift invariant with an intercept)
    nan = float("nan")
    V = np.diag(v)
    if method in ("HS", "DL"):
        w = 1.0 / v
        P = _proj(X, w)
        rss = float(y @ P @ y)
        trP = float(np.trace(P))
        tau2 = (rss - k) / w.sum() if method == "HS" else (rss - (k - p)) / trP
        tau2 = max(0.0, tau2)
        denom = w.sum() if method == "HS" else trP
        se = math.sqrt((2 * (k - p) + 4 * tau2 * trP + 2 * tau2**2 * float((P * P).sum())) / denom**2)
        return tau2, se
    if method in ("HE", "ML", "REML", "EB"):
        Pols = np.eye(k) - X @ np.linalg.solve(X.T @ X, X.T)
        PV = Pols @ V
        trPV = float(np.trace(PV))
        tau2 = (float(y @ Pols @ y) - trPV) / (k - p)
        if method == "HE":
            tau2 = max(0.0, tau2)
            se = math.sqrt((2 * float((PV * PV.T).sum()) + 4 * tau2 * trPV + 2 * tau2**2 * (k - p)) / (k - p) ** 2)
            return tau2, se
        tau2 = _scoring(method, y, v, X, max(0.0, tau2))
        if method in ("ML", "REML") and tau2 > 0.0:
            reml = method == "REML"
            if _ll(0.0, y, v, X, reml) > _ll(tau2, y, v, X, reml):  # metafor's ll0check
                tau2 = 0.0
        w = 1.0 / (v + tau2)
        if method == "ML":
            return tau2, math.sqrt(2.0 / float((w**2).sum()))
        if method == "REML":
            P = _proj(X, w)
            return tau2, math.sqrt(2.0 / float((P * P).sum()))
        return tau2, math.sqrt(2 * k**2 / (k - p) / w.sum() ** 2)
    if method == "SJ":
        tau0 = float(np.mean(y**2))  # var(y) (k - 1) / k of the centred y
        if tau0 <= 0.0:
            return 0.0, nan
        P = _proj(X, 1.0 / (v + tau0))
        tau2 = tau0 * float(y @ P @ y) / (k - p)
        PV = P @ V
        se = math.sqrt(tau0**2 / (k - p) ** 2 * (2 * float((PV * PV.T).sum()) + 4 * tau2 * float((PV * P).sum())
                                                 + 2 * tau2**2 * float((P * P).sum())))
        return tau2, se
    if method == "PM":
        target = k - p
        if q_stat(0.0, y, v, X) < target:
            tau2 = 0.0
        else:
            tau2 = _root(lambda t: q_stat(t, y, v, X), target, max(100.0, 10 * _mad(y) ** 2))
        w = 1.0 / (v + tau2)
        return tau2, math.sqrt(2 * k**2 / (k - p) / w.sum() ** 2)
    raise AssertionError(method)  # pragma: no cover


@dataclass
class Fit:
    """Everything one rma.uni fit produces (internal; the public results are built from it)."""

    method: str
    test: str
    level: float
    k: int
    p: int
    names: list[str]
    beta: np.ndarray
    vb: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    pval: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    crit: float
    ddf: float
    s2w: float
    tau2: float
    tau2_se: float
    QE: float
    QE_df: int
    QE_pval: float
    vt: float
    I2: float
    H2: float
    QM: float
    QM_df: int
    QM_df2: float
    QM_pval: float
    weights: np.ndarray  # 1 / (vi + tau2)


def fit(y: np.ndarray, v: np.ndarray, X: np.ndarray, names: list[str], method: str, test: str,
        level: float) -> Fit:
    """Fit metafor's rma.uni (validated inputs; ``method`` / ``test`` canonical)."""
    k, p = X.shape
    is_fe = method in FE_ALIASES
    nan = float("nan")
    if k < p:
        raise KetabayesError(f"k = {k} studies cannot estimate {p} coefficients (intercept + moderators)")
    if p > 1 and k == p:
        raise KetabayesError(f"k = {k} studies for {p} coefficients leave no residual degrees of freedom; "
                             "drop moderators")
    if test != "z" and k - p < 1:
        raise KetabayesError(f"test={test!r} needs k > p (t quantiles with k - p degrees of freedom); "
                             f"got k = {k}, p = {p}")
    if is_fe or k == 1:
        tau2, tau2_se = 0.0, nan
    else:
        tau2, tau2_se = estimate_tau2(method, y, v, X)
    w = 1.0 / (v + tau2)
    WX = X * w[:, None]
    vb = np.linalg.inv(X.T @ WX)
    beta = vb @ (WX.T @ y)
    s2w = 1.0
    if test in ("knha", "adhoc"):
        if is_fe:
            warnings.warn(f"the Knapp & Hartung method is not meant to be used with {method} models "
                          "(metafor gives the same warning)", UserWarning, stacklevel=4)
        rss = float((w * (y - X @ beta) ** 2).sum())
        s2w = 0.0 if rss <= _EPS else rss / (k - p)
        if test == "adhoc":
            s2w = max(1.0, s2w)
    vb = s2w * vb
    se = np.sqrt(np.diag(vb))
    stat = beta / se
    btt = np.arange(1, p) if p > 1 else np.array([0])
    m = btt.size
    QM = float(beta[btt] @ np.linalg.solve(vb[np.ix_(btt, btt)], beta[btt]))
    alpha = 1.0 - level
    if test == "z":
        ddf = nan
        crit = float(stats.norm.isf(alpha / 2))
        pval = 2 * stats.norm.sf(np.abs(stat))
        QM_df2, QM_pval = nan, float(stats.chi2.sf(QM, m))
    else:
        ddf = float(k - p)
        crit = float(stats.t.isf(alpha / 2, ddf))
        pval = 2 * stats.t.sf(np.abs(stat), ddf)
        QM = QM / m
        QM_df2, QM_pval = ddf, float(stats.f.sf(QM, m, ddf))
    if k > p:
        P = _proj(X, 1.0 / v)
        QE = max(0.0, float(y @ P @ y))
        QE_df = k - p
        QE_pval = float(stats.chi2.sf(QE, QE_df))
        vt = QE_df / float(np.trace(P))
        if is_fe:
            I2 = max(0.0, 100 * (QE - QE_df) / QE) if QE > 0 else 0.0
            H2 = QE / QE_df
        else:
            I2 = 100 * tau2 / (vt + tau2)
            H2 = tau2 / vt + 1
    else:  # k == 1, intercept only: no heterogeneity test
        QE, QE_df, QE_pval, vt, I2, H2 = 0.0, 0, nan, nan, nan, nan
    return Fit(method=method, test=test, level=level, k=k, p=p, names=names, beta=beta, vb=vb, se=se, stat=stat,
               pval=np.asarray(pval, dtype=float), ci_low=beta - crit * se, ci_high=beta + crit * se, crit=crit,
               ddf=ddf, s2w=s2w, tau2=float(tau2), tau2_se=float(tau2_se), QE=QE, QE_df=QE_df, QE_pval=QE_pval,
               vt=vt, I2=float(I2), H2=float(H2), QM=QM, QM_df=m, QM_df2=QM_df2, QM_pval=QM_pval, weights=w)


def q_profile(f: Fit, y: np.ndarray, v: np.ndarray, X: np.ndarray) -> tuple[float, float]:
    """Q-profile confidence interval of tau^2 (Viechtbauer 2007), searched on [0, max(100, 10 tau2)] as metafor."""
    nan = float("nan")
    if f.method in FE_ALIASES or f.k <= f.p:
        return nan, nan
    alpha = 1.0 - f.level
    df = f.k - f.p
    crit_u = float(stats.chi2.isf(alpha / 2, df))
    crit_l = float(stats.chi2.ppf(alpha / 2, df))
    hi = max(100.0, 10 * f.tau2)

    def q(t: float) -> float:
        return q_stat(t, y, v, X)

    def root(target: float) -> float:
        return float(optimize.brentq(lambda t: q(t) - target, 0.0, hi, xtol=1e-15, rtol=4 * _EPS, maxiter=10000))

    q0, qhi = q(0.0), q(hi)
    if q0 < crit_l:
        lb = ub = 0.0
    else:
        ub = hi if qhi > crit_l else root(crit_l)
        if qhi > crit_u:
            lb = ub = hi
        else:
            lb = 0.0 if q0 < crit_u else root(crit_u)
    return lb, ub
