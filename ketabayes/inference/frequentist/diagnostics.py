"""Leave-one-out, influence diagnostics and subgroup analyses equal to metafor's.

* :func:`leave1out` -- ``leave1out.rma.uni``: the model refitted without each study in turn.
* :func:`influence` -- ``influence.rma.uni``: externally standardised residuals, DFFITS, Cook's distances,
  covariance ratios, leave-one-out tau^2 and Q, hat values, weights, DFBETAS and metafor's flag of
  influential studies (Viechtbauer & Cheung 2010).
* :func:`subgroup` -- separate pooled estimates per subgroup and the test for subgroup differences
  (Q-between: a common-effect Q test across the subgroup estimates, as RevMan and metafor's
  "subgrouping" approach compute it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ketabayes.errors import DataError, KetabayesError
from ketabayes.inference.frequentist import _core
from ketabayes.inference.frequentist.uni import RmaResult, _resolve, result_from_fit

__all__ = ["leave1out", "influence", "subgroup", "SubgroupResult"]


def _prepare(yi, vi, mods, method, test, level, study, preset):
    method, test = _resolve(method, test, preset)
    level = _core.check_level(level)
    y, v, labs = _core.validate(yi, vi, study, stacklevel=4)
    X, names = _core.design_matrix(mods, y.size, labs)
    return y, v, labs, X, names, method, test, level


def leave1out(yi: Any, vi: Any, *, method: str | None = None, test: str | None = None, level: float = 0.95,
              study: Sequence[Any] | None = None, preset: str | None = None) -> pd.DataFrame:
    """The intercept-only model refitted with each study left out (metafor's ``leave1out``).

    Parameters
    ----------
    yi, vi, method, test, level, study, preset
        As for :func:`~ketabayes.inference.frequentist.rma`.

    Returns
    -------
    pandas.DataFrame
        One row per left-out study: ``study, estimate, se, zval, pval, ci_low, ci_high, Q, Q_pval, tau2,
        I2, H2`` (``zval`` holds the t statistic under t-based tests).

    Raises
    ------
    ketabayes.errors.KetabayesError
        Bad input as for :func:`rma`, or ``k < 2`` (or ``k < 3`` for a t-based test).

    Examples
    --------
    >>> from ketabayes.inference.frequentist import leave1out
    >>> tab = leave1out([-0.9, -1.6, -0.2, 0.0], [0.33, 0.19, 0.05, 0.004], method="FE")
    >>> tab["k"].tolist()
    [3, 3, 3, 3]
    """
    y, v, labs, X, names, method, test, level = _prepare(yi, vi, None, method, test, level, study, preset)
    k = y.size
    if k < (3 if test != "z" else 2):
        raise KetabayesError(f"leave-one-out needs k >= {3 if test != 'z' else 2} studies with test={test!r}; "
                             f"got k = {k}")
    rows = []
    for i in range(k):
        keep = np.arange(k) != i
        r = result_from_fit(_core.fit(y[keep], v[keep], X[keep], names, method, test, level), y[keep], v[keep],
                            X[keep])
        rows.append({"study": labs[i], "k": r.k, "estimate": r.estimate, "se": r.se, "zval": r.zval, "pval": r.pval,
                     "ci_low": r.ci_low, "ci_high": r.ci_high, "Q": r.Q, "Q_pval": r.Q_pval, "tau2": r.tau2,
                     "I2": r.I2, "H2": r.H2})
    return pd.DataFrame(rows)


def influence(yi: Any, vi: Any, *, mods: Any = None, method: str | None = None, test: str | None = None,
              level: float = 0.95, study: Sequence[Any] | None = None, preset: str | None = None) -> pd.DataFrame:
    """Case-deletion influence diagnostics (metafor's ``influence.rma.uni``).

    Parameters
    ----------
    yi, vi, mods, method, test, level, study, preset
        As for :func:`~ketabayes.inference.frequentist.rma`.

    Returns
    -------
    pandas.DataFrame
        One row per study: ``study, rstudent, dffits, cook_d, cov_r, tau2_del, QE_del, hat, weight``
        (percent), one ``dfbetas_<coefficient>`` column per coefficient and ``influential`` (metafor's
        ``*`` flag: ``|dffits| > 3 sqrt(p / (k - p))``, or ``pchisq(cook_d, m) > 0.5``, or
        ``hat > 3 p / k``, or any ``|dfbetas| > 1``). A row whose deletion fit fails is NaN.

    References
    ----------
    .. [1] Viechtbauer W, Cheung MWL (2010). Outlier and influence diagnostics for meta-analysis.
       Res Synth Methods 1:112-125. doi:10.1002/jrsm.11

    Examples
    --------
    >>> from ketabayes.inference.frequentist import influence
    >>> tab = influence([-0.9, -1.6, -0.2, 0.0, 0.3], [0.33, 0.19, 0.05, 0.004, 0.1], method="DL")
    >>> round(float(tab["weight"].sum()), 6)
    100.0
    """
    y, v, labs, X, names, method, test, level = _prepare(yi, vi, mods, method, test, level, study, preset)
    k, p = X.shape
    if k < p + 2:
        raise KetabayesError(f"influence diagnostics need k >= p + 2 studies; got k = {k}, p = {p}")
    full = _core.fit(y, v, X, names, method, test, level)
    w = full.weights
    WX = X * w[:, None]
    hat = np.einsum("ij,ij->i", X @ np.linalg.inv(X.T @ WX), WX)
    btt = np.arange(1, p) if p > 1 else np.array([0])
    vb_btt = full.vb[np.ix_(btt, btt)]
    pred = X @ full.beta
    nan = np.full(k, np.nan)
    tau2_del, QE_del, delpred, vdelpred, s2w_del = nan.copy(), nan.copy(), nan.copy(), nan.copy(), nan.copy()
    dffits, cook, cov_r = nan.copy(), nan.copy(), nan.copy()
    dfbs = np.full((k, p), np.nan)
    for i in range(k):
        keep = np.arange(k) != i
        try:
            r = _core.fit(y[keep], v[keep], X[keep], names, method, test, level)
        except KetabayesError:  # pragma: no cover - metafor leaves the row NA too
            continue
        tau2_del[i], QE_del[i], s2w_del[i] = r.tau2, r.QE, r.s2w
        delpred[i] = X[i] @ r.beta
        vdelpred[i] = X[i] @ r.vb @ X[i]
        dffits[i] = (pred[i] - delpred[i]) / np.sqrt(r.s2w * hat[i] * (r.tau2 + v[i]))
        vb_del = np.linalg.inv(X.T @ (X / (v + r.tau2)[:, None]))
        dfbs[i] = (full.beta - r.beta) / np.sqrt(r.s2w * np.diag(vb_del))
        dfb = full.beta[btt] - r.beta[btt]
        cook[i] = dfb @ np.linalg.solve(vb_btt, dfb)
        cov_r[i] = np.linalg.det(r.vb[np.ix_(btt, btt)]) / np.linalg.det(vb_btt)
    resid = y - delpred
    resid[np.abs(resid) < 100 * np.finfo(float).eps] = 0.0
    rstudent = resid / np.sqrt(v * s2w_del + vdelpred + tau2_del * s2w_del)
    out = pd.DataFrame({"study": labs, "rstudent": rstudent, "dffits": dffits, "cook_d": cook, "cov_r": cov_r,
                        "tau2_del": tau2_del, "QE_del": QE_del, "hat": hat, "weight": 100 * w / w.sum()})
    for j, name in enumerate(names):
        out[f"dfbetas_{name}"] = dfbs[:, j]
    with np.errstate(invalid="ignore"):
        flag = ((np.abs(dffits) > 3 * np.sqrt(p / (k - p))) | (stats.chi2.cdf(cook, btt.size) > 0.5)
                | (hat > 3 * p / k) | (np.abs(dfbs) > 1).any(axis=1))
    out["influential"] = flag
    return out


@dataclass(frozen=True)
class SubgroupResult:
    """Separate pooled estimates per subgroup and the test for subgroup differences.

    Attributes
    ----------
    fits : dict of str to RmaResult
        The model fitted within each subgroup (sorted by subgroup label).
    Q_between, Q_df, Q_pval : float, int, float
        Test for subgroup differences: ``sum w_g (b_g - b)^2`` with ``w_g = 1 / se_g^2`` over the
        subgroup estimates ``b_g``, chi-square with ``G - 1`` degrees of freedom.
    """

    fits: dict[str, RmaResult]
    Q_between: float
    Q_df: int
    Q_pval: float

    def table(self) -> pd.DataFrame:
        """One row per subgroup: ``group, k, estimate, se, ci_low, ci_high, pval, tau2, I2, Q, Q_pval``."""
        cols = ["k", "estimate", "se", "ci_low", "ci_high", "pval", "tau2", "I2", "Q", "Q_pval"]
        return pd.DataFrame([{"group": g, **{c: getattr(r, c) for c in cols}} for g, r in self.fits.items()])


def subgroup(yi: Any, vi: Any, groups: Any, *, method: str | None = None, test: str | None = None,
             level: float = 0.95, study: Sequence[Any] | None = None, preset: str | None = None) -> SubgroupResult:
    """Subgroup analysis: one model per subgroup and the Q-between test of their difference.

    Parameters
    ----------
    yi, vi, method, test, level, study, preset
        As for :func:`~ketabayes.inference.frequentist.rma`; the same model is fitted within each subgroup.
    groups : array-like
        Subgroup label of each study (no missing labels).

    Returns
    -------
    SubgroupResult

    Raises
    ------
    ketabayes.errors.DataError
        ``groups`` of the wrong length or with a missing label (names the study), fewer than 2 subgroups.
    ketabayes.errors.KetabayesError
        A subgroup too small for the chosen test (the message names the subgroup).

    Examples
    --------
    >>> from ketabayes.inference.frequentist import subgroup
    >>> res = subgroup([-0.9, -1.6, -0.2, 0.0], [0.33, 0.19, 0.05, 0.004], ["a", "a", "b", "b"], method="FE")
    >>> list(res.fits), res.Q_df
    (['a', 'b'], 1)
    """
    method, test = _resolve(method, test, preset)
    level = _core.check_level(level)
    y, v, labs = _core.validate(yi, vi, study)
    g = pd.Series(np.asarray(groups, dtype=object).reshape(-1))
    if g.size != y.size:
        raise DataError(f"groups has {g.size} labels for {y.size} studies", column="groups")
    missing = np.flatnonzero(g.isna().to_numpy())
    if missing.size:
        raise DataError("missing subgroup label", study=labs[missing[0]], column="groups")
    g = g.astype(str)
    levels = sorted(g.unique())
    if len(levels) < 2:
        raise DataError(f"need at least 2 subgroups, got {levels}", column="groups")
    fits = {}
    for lev in levels:
        keep = (g == lev).to_numpy()
        X = np.ones((int(keep.sum()), 1))
        try:
            f = _core.fit(y[keep], v[keep], X, ["intrcpt"], method, test, level)
        except KetabayesError as err:
            raise KetabayesError(f"subgroup {lev!r}: {err}") from None
        fits[lev] = result_from_fit(f, y[keep], v[keep], X)
    b = np.array([r.estimate for r in fits.values()])
    w = 1 / np.array([r.se for r in fits.values()]) ** 2
    Q = float((w * (b - (w * b).sum() / w.sum()) ** 2).sum())
    df = len(levels) - 1
    return SubgroupResult(fits=fits, Q_between=Q, Q_df=df, Q_pval=float(stats.chi2.sf(Q, df)))
