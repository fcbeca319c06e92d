r"""Paired (within-person) effect sizes: metafor's ``MC``, ``SMCC`` and ``SMCR``.

Each study measured the same ``ni`` people twice (before/after, or under two
treatments as in a crossover trial) and reports the two means ``m1i``,
``m2i``, the two standard deviations ``sd1i``, ``sd2i`` and the correlation
``ri`` between the two measurements. The definitions are those of
``metafor::escalc`` (version 3.8, ``R/escalc.r``) with its default
``vtype="LS"``; ``vtype="LS2"`` is available in :func:`paired_effect`.

:func:`ketabayes.effect_sizes` dispatches the three measures here; the
correlation comes from an ``ri`` column or from the explicit ``r=`` argument,
never from a silent default.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from ketabayes.data._cells import check_where, fail, optional_numeric
from ketabayes.data.validation import check_positive
from ketabayes.errors import DataError

__all__ = ["PAIRED_MEASURES", "paired_effect", "check_correlation", "assumed_r_note"]

#: metafor's measures for paired designs.
PAIRED_MEASURES: tuple[str, ...] = ("MC", "SMCC", "SMCR")

#: columns each paired measure reads (``ri`` may instead come from ``r=``)
PAIRED_USES: dict[str, tuple[str, ...]] = {
    "MC": ("m1i", "m2i", "sd1i", "sd2i", "ni", "ri"),
    "SMCC": ("m1i", "m2i", "sd1i", "sd2i", "ni", "ri"),
    "SMCR": ("m1i", "m2i", "sd1i", "ni", "ri"),
}

PAIRED_WHAT: dict[str, str] = {
    "ni": "the number of people measured twice (metafor's ni)",
    "ri": "the correlation between the two measurements (metafor's ri), in [-1, 1]",
}


def _cmi(mi: np.ndarray) -> np.ndarray:
    """Hedges' exact bias correction c(m), as metafor's ``.cmicalc``."""
    return np.exp(gammaln(mi / 2) - np.log(np.sqrt(mi / 2)) - gammaln((mi - 1) / 2))


def check_correlation(r: object, *, name: str = "r") -> float:
    """Return ``r`` as a float after checking it is a finite number in [-1, 1].

    Raises
    ------
    DataError
        Naming the argument.

    Examples
    --------
    >>> check_correlation(0.5)
    0.5
    """
    if isinstance(r, (bool, np.bool_)) or not isinstance(r, (int, float, np.integer, np.floating)):
        raise DataError(f"{name} must be a correlation, a number in [-1, 1]; got {r!r}")
    r = float(r)
    if not (np.isfinite(r) and -1 <= r <= 1):
        raise DataError(f"{name} must be a correlation, a number in [-1, 1]; got {r!r}")
    return r


def paired_effect(m1i, m2i, sd1i, sd2i, ni, ri, measure: str = "MC", vtype: str = "LS"):
    r"""Paired-design effect sizes and sampling variances, as ``metafor::escalc``.

    Parameters
    ----------
    m1i, m2i : array_like
        Means of the two measurements (e.g. under treatment and under control,
        or after and before).
    sd1i, sd2i : array_like
        Their standard deviations (``sd2i`` is not used by ``"SMCR"``; pass
        ``None`` then).
    ni : array_like
        Number of people measured twice.
    ri : array_like
        Correlation between the two measurements.
    measure : {"MC", "SMCC", "SMCR"}
        Raw mean change, standardized mean change using the change-score SD,
        standardized mean change using the raw-score SD of measurement 1.
    vtype : {"LS", "LS2"}
        Variance of ``"SMCC"``/``"SMCR"`` (metafor's default is ``"LS"``).

    Returns
    -------
    yi, vi : numpy.ndarray

    Notes
    -----
    With :math:`m = n - 1`, :math:`c(m) = \Gamma(m/2)/(\sqrt{m/2}\,\Gamma((m-1)/2))`
    and :math:`s_d^2 = s_1^2 + s_2^2 - 2 r s_1 s_2`:

    * MC: :math:`y = \bar x_1 - \bar x_2`, :math:`v = s_d^2 / n`;
    * SMCC: :math:`d = (\bar x_1 - \bar x_2)/s_d`, :math:`y = c(m) d`,
      LS: :math:`v = 1/n + y^2/(2n)`; LS2: :math:`v = c(m)^2 (1/n + d^2/(2n))`;
    * SMCR: :math:`d = (\bar x_1 - \bar x_2)/s_1`, :math:`y = c(m) d`,
      LS: :math:`v = 2(1-r)/n + y^2/(2n)`; LS2: :math:`v = c(m)^2 (2(1-r)/n + d^2/(2n))`.

    References
    ----------
    Morris, S. B., & DeShon, R. P. (2002). Combining effect size estimates in
    meta-analysis with repeated measures and independent-groups designs.
    *Psychological Methods*, 7(1), 105-125. https://doi.org/10.1037/1082-989X.7.1.105

    Becker, B. J. (1988). Synthesizing standardized mean-change measures.
    *British Journal of Mathematical and Statistical Psychology*, 41, 257-278.
    https://doi.org/10.1111/j.2044-8317.1988.tb00901.x

    Examples
    --------
    >>> yi, vi = paired_effect([30.6], [38.5], [15.0], [11.6], [20], [0.47], "MC")
    >>> round(float(yi[0]), 4), round(float(vi[0]), 4)
    (-7.9, 9.8)
    """
    if measure not in PAIRED_MEASURES:
        raise DataError(f"measure must be one of {', '.join(PAIRED_MEASURES)}; got {measure!r}")
    if vtype not in ("LS", "LS2"):
        raise DataError(f"vtype must be 'LS' or 'LS2' for paired measures; got {vtype!r}")
    m1, m2, s1, n, r = (np.asarray(x, dtype=float) for x in (m1i, m2i, sd1i, ni, ri))
    if measure == "SMCR":
        cmi = _cmi(n - 1)
        di = (m1 - m2) / s1
        yi = cmi * di
        if vtype == "LS":
            vi = 2 * (1 - r) / n + yi**2 / (2 * n)
        else:
            vi = cmi**2 * (2 * (1 - r) / n + di**2 / (2 * n))
        return yi, vi
    s2 = np.asarray(sd2i, dtype=float)
    var_d = s1**2 + s2**2 - 2 * r * s1 * s2
    if measure == "MC":
        return m1 - m2, var_d / n
    cmi = _cmi(n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        di = (m1 - m2) / np.sqrt(var_d)
    yi = cmi * di
    if vtype == "LS":
        vi = 1 / n + yi**2 / (2 * n)
    else:
        vi = cmi**2 * (1 / n + di**2 / (2 * n))
    return yi, vi


def assumed_r_note(r: float) -> str:
    """The ``note`` recorded for a study whose correlation was assumed (``r=``), e.g. for :func:`with_assumed_r`.

    Examples
    --------
    >>> assumed_r_note(0.5)
    'correlation r=0.5 assumed (r= argument; no ri reported)'
    """
    return f"correlation r={r:g} assumed (r= argument; no ri reported)"


def correlations(cols, measure: str, r: float | None):
    """The ``ri`` of every study (from the data, else ``r=``), one note per study and the assumed ``r``.

    ``cols`` is effect_sizes' column resolver. A study without a correlation
    is a DataError naming it and the ``ri`` column. The third value is the
    correlation assumed for each study (NaN where ``ri`` was reported).
    """
    labels = cols.labels
    ri_col = cols.name("ri")
    ri = optional_numeric(cols.df, ri_col, labels, what=PAIRED_WHAT["ri"])
    check_where(ri, np.abs(ri) <= 1, labels, ri_col, "correlation ri must be in [-1, 1]")
    notes: list[list[str]] = [[] for _ in labels]
    missing = np.isnan(ri)
    assumed = np.where(missing, np.nan if r is None else r, np.nan)
    if r is not None and missing.any():
        for i in np.flatnonzero(missing):
            notes[i].append(assumed_r_note(r))
        ri = np.where(missing, r, ri)
        missing = np.zeros(len(labels), dtype=bool)
    if missing.any():
        where = "is blank" if ri_col is not None else "was not given (no 'ri' column)"
        fail(
            f"measure {measure!r} needs the correlation between the two measurements, which "
            f"{where}; there is no silent default: give an ri column (ri='column') or an "
            "assumed value r=... (CLI: --r) and vary it in a sensitivity analysis",
            labels,
            missing,
            ri_col if ri_col is not None else "ri",
        )
    return ri, notes, assumed


def paired_from_columns(cols, measure: str, r: float | None):
    """yi, vi, notes and the assumed correlations for effect_sizes() (``cols`` is its column resolver)."""
    labels = cols.labels
    got = {}
    for arg in PAIRED_USES[measure]:
        if arg == "ri":
            continue
        col = cols.required(arg, measure)
        got[arg] = (col, cols.values(arg, col))
    for arg in ("sd1i", "sd2i"):
        if arg in got:
            check_positive(got[arg][1], got[arg][0], labels, what=f"standard deviation ({arg})")
    n_col, n = got["ni"]
    least = 2 if measure == "MC" else 3
    check_where(
        n,
        n >= least,
        labels,
        n_col,
        f"measure {measure!r} needs at least {least} people measured twice (ni >= {least})",
    )
    ri, notes, assumed = correlations(cols, measure, r)
    if measure == "SMCC":
        s1, s2 = got["sd1i"][1], got["sd2i"][1]
        check_where(
            ri,
            s1**2 + s2**2 - 2 * ri * s1 * s2 > 0,
            labels,
            cols.name("ri") or "ri",
            "the SD of the differences sqrt(sd1i^2 + sd2i^2 - 2 ri sd1i sd2i) is 0 (ri = 1 and "
            "sd1i = sd2i), so SMCC is undefined",
        )
    sd2 = got["sd2i"][1] if "sd2i" in got else None
    yi, vi = paired_effect(got["m1i"][1], got["m2i"][1], got["sd1i"][1], sd2, n, ri, measure)
    return yi, vi, notes, assumed
