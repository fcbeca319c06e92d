"""Mantel-Haenszel and Peto pooling of 2x2 tables, equal to metafor's ``rma.mh`` and ``rma.peto``.

Both are common-effect methods computed from the counts, with metafor's defaults: the pooled estimate
uses the counts as given (no continuity correction; a study with no events in either arm simply adds
nothing), while the heterogeneity test uses the study effect sizes of ``escalc`` (1/2 added to every cell
of a table with a zero cell, ``to="only0"``; tables with no events, or only events, in both arms left
out, ``drop00=TRUE``), so ``Q_df = k_yi - 1``.

* MH odds ratio: Mantel & Haenszel (1959) with the Robins-Breslow-Greenland (1986) variance; the
  Cochran-Mantel-Haenszel test (with continuity correction) and Tarone's (1985) heterogeneity test.
* MH risk ratio and risk difference: Greenland & Robins (1985) variances.
* Peto's one-step odds ratio (Yusuf et al. 1985); its Q uses the hypergeometric variances.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

from ketabayes.errors import DataError, KetabayesError
from ketabayes.inference.frequentist import _core

__all__ = ["MhResult", "rma_mh", "rma_peto"]

_NAN = float("nan")


@dataclass(frozen=True)
class MhResult:
    """Result of :func:`rma_mh` or :func:`rma_peto` (all fields plain Python scalars).

    Attributes
    ----------
    method : {"MH", "PETO"}
    measure : {"OR", "RR", "RD"}
        The estimate is a log odds ratio, log risk ratio or risk difference.
    k, k_yi : int
        Number of tables, and of tables with an estimable effect size (used by the Q test).
    estimate, se, zval, pval, ci_low, ci_high : float
        Pooled estimate (log scale for OR/RR), SE, Wald test and confidence interval.
    Q, Q_df, Q_pval, I2, H2 : float, int, float, float, float
        Heterogeneity test (metafor's definitions) and the Q-based I^2 (percent) and H^2.
    CO, CO_pval, CMH, CMH_pval, TA, TA_pval : float
        MH odds ratio only (``nan`` otherwise): Cochran's and the Cochran-Mantel-Haenszel test of OR = 1
        (with continuity correction) and Tarone's test of homogeneity.
    level : float
    """

    method: str
    measure: str
    k: int
    k_yi: int
    estimate: float
    se: float
    zval: float
    pval: float
    ci_low: float
    ci_high: float
    Q: float
    Q_df: int
    Q_pval: float
    I2: float
    H2: float
    level: float
    CO: float = _NAN
    CO_pval: float = _NAN
    CMH: float = _NAN
    CMH_pval: float = _NAN
    TA: float = _NAN
    TA_pval: float = _NAN

    def to_dict(self) -> dict[str, Any]:
        """Return the result as a plain ``dict``."""
        return asdict(self)


def _counts(ai, bi, ci, di, n1i, n2i, study) -> tuple[np.ndarray, ...]:
    if (bi is None) != (di is None) or (bi is None and (n1i is None or n2i is None)):
        raise DataError("give the 2x2 tables as ai, bi, ci, di or as ai, n1i, ci, n2i", column="bi")
    a = _core.as_vector(ai, "ai")
    c = _core.as_vector(ci, "ci")
    if bi is None:
        n1 = _core.as_vector(n1i, "n1i")
        n2 = _core.as_vector(n2i, "n2i")
        b, d = n1 - a, n2 - c
        names = {"bi": "n1i", "di": "n2i"}
    else:
        b = _core.as_vector(bi, "bi")
        d = _core.as_vector(di, "di")
        names = {"bi": "bi", "di": "di"}
    k = a.size
    if k == 0:
        raise DataError("no studies: ai is empty", column="ai")
    for col, x in (("ai", a), ("bi", b), ("ci", c), ("di", d)):
        if x.size != k:
            raise DataError(f"{names.get(col, col)} has {x.size} values but ai has {k}", column=names.get(col, col))
    labs = _core.labels(study, k)
    for col, x in (("ai", a), ("bi", b), ("ci", c), ("di", d)):
        for i in range(k):
            if not (math.isfinite(x[i]) and x[i] >= 0):
                what = "a count" if names.get(col, col) == col else "a group size at least the events"
                raise DataError(f"must be {what} (finite, >= 0); got {x[i]!r} for {col}", study=labs[i],
                                column=names.get(col, col))
    for i in range(k):
        if a[i] + b[i] == 0 or c[i] + d[i] == 0:
            raise DataError("an arm has no participants", study=labs[i], column="n1i" if a[i] + b[i] == 0 else "n2i")
    return a, b, c, d


def _escalc_yi_vi(a, b, c, d, measure: str) -> tuple[np.ndarray, np.ndarray]:
    """escalc's yi/vi with add=1/2, to="only0", drop00=TRUE (the dropped tables removed)."""
    keep = ~(((a == 0) & (c == 0)) | ((b == 0) & (d == 0)))
    a, b, c, d = (x[keep].astype(float) for x in (a, b, c, d))
    z = (a == 0) | (b == 0) | (c == 0) | (d == 0)
    a, b, c, d = (np.where(z, x + 0.5, x) for x in (a, b, c, d))
    n1, n2 = a + b, c + d
    if measure == "OR":
        return np.log(a * d / (b * c)), 1 / a + 1 / b + 1 / c + 1 / d
    if measure == "RR":
        return np.log(a / n1) - np.log(c / n2), 1 / a - 1 / n1 + 1 / c - 1 / n2
    p1, p2 = a / n1, c / n2
    return p1 - p2, p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2


def _wald(beta: float, se: float, level: float) -> tuple[float, float, float, float]:
    if not math.isfinite(se) or se <= 0:
        return _NAN, _NAN, _NAN, _NAN
    z = beta / se
    crit = float(stats.norm.isf((1 - level) / 2))
    return z, float(2 * stats.norm.sf(abs(z))), beta - crit * se, beta + crit * se


def _het(Q: float, k_yi: int) -> tuple[float, int, float, float, float]:
    if k_yi > 1:
        df = k_yi - 1
        return Q, df, float(stats.chi2.sf(Q, df)), max(0.0, 100 * (Q - df) / Q) if Q > 0 else 0.0, Q / df
    return 0.0, 0, _NAN, _NAN, _NAN


def rma_mh(ai: Any, bi: Any = None, ci: Any = None, di: Any = None, *, n1i: Any = None, n2i: Any = None,
           measure: str = "OR", level: float = 0.95, study: Sequence[Any] | None = None) -> MhResult:
    """Mantel-Haenszel common-effect meta-analysis of 2x2 tables (metafor's ``rma.mh``).

    Parameters
    ----------
    ai, bi, ci, di : array-like
        Events and non-events in group 1 (``ai``, ``bi``) and group 2 (``ci``, ``di``). Instead of
        ``bi``/``di`` the group sizes ``n1i``/``n2i`` may be given.
    measure : {"OR", "RR", "RD"}
    level : float, default 0.95
    study : sequence, optional
        Study labels for error messages.

    Returns
    -------
    MhResult

    Raises
    ------
    ketabayes.errors.DataError
        Negative or non-finite counts, mismatched lengths, an empty arm (names the study and column).
    ketabayes.errors.KetabayesError
        Unknown measure, or no events in one group of every table (the OR / RR is then undefined).

    References
    ----------
    .. [1] Mantel N, Haenszel W (1959). J Natl Cancer Inst 22:719-748. doi:10.1093/jnci/22.4.719
    .. [2] Robins J, Breslow N, Greenland S (1986). Biometrics 42:311-323. doi:10.2307/2531052
    .. [3] Greenland S, Robins JM (1985). Biometrics 41:55-68. doi:10.2307/2530643

    Examples
    --------
    >>> from ketabayes.inference.frequentist import rma_mh
    >>> res = rma_mh([4, 6, 3], [119, 300, 228], [11, 29, 11], [128, 274, 209], measure="RR")
    >>> round(res.estimate, 4), res.Q_df
    (-1.3509, 2)
    """
    measure = str(measure).upper()
    if measure not in ("OR", "RR", "RD"):
        raise KetabayesError(f"measure must be OR, RR or RD; got {measure!r}")
    level = _core.check_level(level)
    a, b, c, d = _counts(ai, bi, ci, di, n1i, n2i, study)
    n1, n2 = a + b, c + d
    N = n1 + n2
    extra: dict[str, float] = {}
    if measure == "OR":
        Pi, Qi = (a + d) / N, (b + c) / N
        Ri, Si = a * d / N, b * c / N
        R, S = Ri.sum(), Si.sum()
        if R == 0 or S == 0:
            raise KetabayesError("the Mantel-Haenszel odds ratio is undefined: sum(ai di / N) or "
                                 "sum(bi ci / N) is 0")
        beta_exp = R / S
        beta = math.log(beta_exp)
        se = math.sqrt(0.5 * ((Pi * Ri).sum() / R**2 + (Pi * Si + Qi * Ri).sum() / (R * S) + (Qi * Si).sum() / S**2))
        xt, yt = a + c, b + d
        if xt.sum() > 0 and yt.sum() > 0:
            num = (abs((a - n1 / N * xt).sum()) - 0.5) ** 2
            CO = num / ((n1 / N) * (n2 / N) * (xt * (yt / N))).sum()
            CMH = num / ((n1 / N) * (n2 / N) * (xt * (yt / (N - 1)))).sum()
            extra.update(CO=float(CO), CO_pval=float(stats.chi2.sf(CO, 1)), CMH=float(CMH),
                         CMH_pval=float(stats.chi2.sf(CMH, 1)))
        if beta_exp == 1:
            N11 = n1 / N * xt
        else:
            A = beta_exp * (n1 + xt) + (n2 - xt)
            B = np.sqrt(A**2 - 4 * n1 * xt * beta_exp * (beta_exp - 1))
            N11 = (A - B) / (2 * (beta_exp - 1))
        pos = (N11 > 0) & (xt > 0) & (yt > 0)
        N11 = N11[pos]
        N12, N21 = n1[pos] - N11, xt[pos] - N11
        N22 = N11 - n1[pos] - xt[pos] + N[pos]
        inv = 1 / (1 / N11 + 1 / N12 + 1 / N21 + 1 / N22)
        BD = max(0.0, float(((a[pos] - N11) ** 2 / inv).sum()))
        TA = max(0.0, BD - float((a[pos] - N11).sum()) ** 2 / float(inv.sum()))
        if pos.sum() > 1:
            extra.update(TA=TA, TA_pval=float(stats.chi2.sf(TA, int(pos.sum()) - 1)))
    elif measure == "RR":
        R, S = (a * n2 / N).sum(), (c * n1 / N).sum()
        if a.sum() == 0 or c.sum() == 0:
            raise KetabayesError("the Mantel-Haenszel risk ratio is undefined: no events in one group of every study")
        beta = math.log(R / S)
        se = math.sqrt(((n1 / N) * (n2 / N) * (a + c) - (a / N) * c).sum() / (R * S))
    else:
        denom = (n1 * (n2 / N)).sum()
        beta = float((a * (n2 / N) - c * (n1 / N)).sum() / denom)
        se = math.sqrt((beta * ((c * (n1 / N) ** 2 - a * (n2 / N) ** 2 + (n1 / N) * (n2 / N) * (n2 - n1) / 2).sum())
                        + ((a * (n2 - c) / N + c * (n1 - a) / N).sum()) / 2) / denom**2)
    zval, pval, lo, hi = _wald(beta, se, level)
    yi, vi = _escalc_yi_vi(a, b, c, d, measure)
    Q = max(0.0, float((1 / vi * (yi - beta) ** 2).sum())) if yi.size > 1 else 0.0
    Q, Q_df, Q_pval, I2, H2 = _het(Q, int(yi.size))
    return MhResult(method="MH", measure=measure, k=int(a.size), k_yi=int(yi.size), estimate=float(beta),
                    se=float(se), zval=zval, pval=pval, ci_low=lo, ci_high=hi, Q=Q, Q_df=Q_df, Q_pval=Q_pval,
                    I2=I2, H2=H2, level=level, **extra)


def rma_peto(ai: Any, bi: Any = None, ci: Any = None, di: Any = None, *, n1i: Any = None, n2i: Any = None,
             level: float = 0.95, study: Sequence[Any] | None = None) -> MhResult:
    """Peto's one-step odds ratio (metafor's ``rma.peto``).

    ``estimate = sum(ai - Ei) / sum(Vi)`` (log odds ratio) with ``Ei`` and ``Vi`` the hypergeometric
    mean and variance of ``ai``, ``se = 1 / sqrt(sum(Vi))``;
    ``Q = sum((ai - Ei)^2 / Vi) - sum(ai - Ei)^2 / sum(Vi)`` over tables with ``Vi > 0``.

    Parameters
    ----------
    ai, bi, ci, di : array-like
        As for :func:`rma_mh` (or ``n1i``/``n2i`` instead of ``bi``/``di``).
    level : float, default 0.95
    study : sequence, optional

    Returns
    -------
    MhResult
        With ``method="PETO"``, ``measure="OR"``.

    References
    ----------
    .. [1] Yusuf S, Peto R, Lewis J, Collins R, Sleight P (1985). Prog Cardiovasc Dis 27:335-371.
       doi:10.1016/s0033-0620(85)80003-7

    Examples
    --------
    >>> from ketabayes.inference.frequentist import rma_peto
    >>> res = rma_peto([4, 6, 3], [119, 300, 228], [11, 29, 11], [128, 274, 209])
    >>> round(res.estimate, 4)
    -1.2373
    """
    level = _core.check_level(level)
    a, b, c, d = _counts(ai, bi, ci, di, n1i, n2i, study)
    n1, n2 = a + b, c + d
    N = n1 + n2
    xt, yt = a + c, b + d
    E = xt * n1 / N
    with np.errstate(invalid="ignore", divide="ignore"):
        V = np.where(N > 1, xt * yt * (n1 / N) * (n2 / N) / (N - 1), 0.0)
    if V.sum() == 0:
        raise KetabayesError("one of the two outcomes never occurred in any table: Peto's method cannot be used")
    beta = float((a - E).sum() / V.sum())
    se = 1 / math.sqrt(V.sum())
    zval, pval, lo, hi = _wald(beta, se, level)
    pos = V > 0
    Q = max(0.0, float(((a - E)[pos] ** 2 / V[pos]).sum() - (a - E).sum() ** 2 / V.sum()))
    k_yi = int((~(((a == 0) & (c == 0)) | ((b == 0) & (d == 0)))).sum())
    if pos.sum() > 1:
        Q, Q_df, Q_pval, I2, H2 = _het(Q, k_yi)
    else:
        Q, Q_df, Q_pval, I2, H2 = 0.0, 0, _NAN, _NAN, _NAN
    return MhResult(method="PETO", measure="OR", k=int(a.size), k_yi=k_yi, estimate=beta, se=float(se), zval=zval,
                    pval=pval, ci_low=lo, ci_high=hi, Q=Q, Q_df=Q_df, Q_pval=Q_pval, I2=I2, H2=H2, level=level)
