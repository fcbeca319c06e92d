"""Study-level effect sizes ``yi`` and sampling variances ``vi``, as metafor's ``escalc``.

The definitions are those of ``metafor::escalc`` with its default settings
(``vtype="LS"``, ``add=1/2``, ``to="only0"``), checked line by line against
metafor's source (``R/escalc.r`` and ``.cmicalc`` in
``R/misc.func.hidden.r``). The one default that differs, ``drop00``, is
explained in :func:`effect_sizes`.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable

import numpy as np
import pandas as pd
from scipy.special import gammaln

from ketabayes.data.consistency import measure_from_column, unique_labels
from ketabayes.data.paired import PAIRED_MEASURES, PAIRED_USES, PAIRED_WHAT, check_correlation, paired_from_columns
from ketabayes.data.validation import (
    as_dataframe,
    check_counts,
    check_measure,
    check_not_empty,
    check_not_greater,
    check_positive,
    closest,
    numeric_column,
    require_column,
    study_labels,
)
from ketabayes.dims import STUDY_COL
from ketabayes.errors import DataError, DataWarning

__all__ = ["effect_sizes", "MEASURES"]

#: Supported measures (canonical, upper-case names as in metafor).
MEASURES: tuple[str, ...] = ("MD", "SMD", "OR", "RR", "RD", "GEN") + PAIRED_MEASURES

_DICHOTOMOUS = ("ai", "bi", "ci", "di", "n1i", "n2i")
_CONTINUOUS = ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")
_GENERIC = ("yi", "vi", "sei")
_ARGUMENTS = ("ai", "bi", "ci", "di", "n1i", "n2i", "m1i", "sd1i", "m2i", "sd2i", "yi", "vi", "sei", "ni", "ri")
_USES = {
    "OR": _DICHOTOMOUS,
    "RR": _DICHOTOMOUS,
    "RD": _DICHOTOMOUS,
    "MD": _CONTINUOUS,
    "SMD": _CONTINUOUS,
    "GEN": _GENERIC,
    **PAIRED_USES,
}
_TO = ("only0", "all", "if0all", "none")

_WHAT = {
    "ai": "the number of events in group 1 (metafor's ai)",
    "bi": "the number of non-events in group 1 (metafor's bi)",
    "ci": "the number of events in group 2 (metafor's ci)",
    "di": "the number of non-events in group 2 (metafor's di)",
    "n1i": "the size of group 1 (metafor's n1i)",
    "n2i": "the size of group 2 (metafor's n2i)",
    "m1i": "the mean of group 1 (metafor's m1i)",
    "m2i": "the mean of group 2 (metafor's m2i)",
    "sd1i": "the standard deviation of group 1 (metafor's sd1i)",
    "sd2i": "the standard deviation of group 2 (metafor's sd2i)",
    "yi": "the effect size (metafor's yi)",
    "vi": "the sampling variance (metafor's vi)",
    "sei": "the standard error (metafor's sei)",
    **PAIRED_WHAT,
}
_SHORT = {
    "ai": "events in group 1",
    "bi": "non-events in group 1",
    "ci": "events in group 2",
    "di": "non-events in group 2",
    "n1i": "size of group 1",
    "n2i": "size of group 2",
    "sd1i": "standard deviation of group 1",
    "sd2i": "standard deviation of group 2",
    "vi": "sampling variance",
    "sei": "standard error",
}


def _check_arguments(columns: dict[str, object], measure: str) -> None:
    for name, value in columns.items():
        if name not in _ARGUMENTS:
            best = closest(name, _ARGUMENTS)
            hint = f"; did you mean {best}=...?" if best is not None else "."
            raise DataError(
                f"unknown argument {name}={value!r}{hint} Column arguments use metafor's names: "
                f"{', '.join(_ARGUMENTS)}"
            )
        if name not in _USES[measure]:
            raise DataError(
                f"argument {name}={value!r} is not used by measure {measure!r}, which takes "
                f"{', '.join(_USES[measure])}; check the measure or remove the argument"
            )
        try:
            hash(value)
        except TypeError:
            raise DataError(
                f"argument {name} must be the name of a column of data, got a "
                f"{type(value).__name__}; put the values in a column and pass its name, "
                f"e.g. {name}='my_column'"
            ) from None


class _Columns:
    """Resolve metafor argument names to the user's columns and read them."""

    def __init__(self, df: pd.DataFrame, mapping: dict[str, Hashable], labels: list[str]):
        self.df = df
        self.mapping = mapping
        self.labels = labels

    def suggest(self, *args: str) -> str:
        """' Did you mean arg='col'?' for a missing argument, from the unused columns."""
        used = set(self.mapping.values()) | set(_ARGUMENTS)
        free = [c for c in self.df.columns if c not in used]
        for arg in args:
            best = closest(arg, free)
            if best is not None:
                return f" Did you mean {arg}={best!r}?"
        return ""

    def name(self, arg: str) -> Hashable | None:
        """The user's column for ``arg``, or None if neither mapped nor present."""
        if arg in self.mapping:
            return require_column(self.df, self.mapping[arg], purpose=f"{arg}: {_WHAT[arg]}")
        return arg if arg in self.df.columns else None

    def required(self, arg: str, measure: str) -> Hashable:
        col = self.name(arg)
        if col is None:
            cols = list(self.df.columns)
            hint = self.suggest(arg)
            raise DataError(
                f"measure {measure!r} needs {_WHAT[arg]}, but there is no column {arg!r} and no "
                f"{arg}=... argument naming one.{hint} Available columns: "
                f"{', '.join(map(repr, cols[:20]))}",
                column=arg,
            )
        return col

    def values(self, arg: str, col: Hashable) -> np.ndarray:
        return numeric_column(self.df, col, self.labels, what=_WHAT[arg])


# --------------------------------------------------------------------------- measures


def _two_by_two(cols: _Columns, measure: str):
    """Cell counts a, b, c, d and the columns they came from, after checks."""
    labels = cols.labels
    ai_col = cols.required("ai", measure)
    ci_col = cols.required("ci", measure)
    a = cols.values("ai", ai_col)
    c = cols.values("ci", ci_col)
    check_counts(a, ai_col, labels, what=_SHORT["ai"])
    check_counts(c, ci_col, labels, what=_SHORT["ci"])
    out = []
    for events, ev_col, non, n_arg in ((a, ai_col, "bi", "n1i"), (c, ci_col, "di", "n2i")):
        non_col = cols.name(non)
        n_col = cols.name(n_arg)
        if non_col is None and n_col is None:
            df_cols = list(cols.df.columns)
            hint = cols.suggest(n_arg, non)
            raise DataError(
                f"measure {measure!r} needs either {_WHAT[non]} or {_WHAT[n_arg]}, but there is "
                f"no column {non!r} or {n_arg!r} and no {non}=... or {n_arg}=... argument.{hint} "
                f"Available columns: {', '.join(map(repr, df_cols[:20]))}",
                column=n_arg,
            )
        if n_col is not None:
            n = cols.values(n_arg, n_col)
            check_counts(n, n_col, labels, what=_SHORT[n_arg])
            ev_arg = "ai" if non == "bi" else "ci"
            check_not_greater(
                events, n, ev_col, n_col, labels, what=f"{_SHORT[ev_arg]} exceed the group size"
            )
        if non_col is not None:
            b = cols.values(non, non_col)
            check_counts(b, non_col, labels, what=_SHORT[non])
            if n_col is not None:
                bad = np.flatnonzero(events + b != n)
                if bad.size:
                    i = bad[0]
                    raise DataError(
                        f"{_SHORT[n_arg]} is {n[i]:g} but events + non-events = {events[i]:g} + "
                        f"{b[i]:g} = {events[i] + b[i]:g} (columns {str(ev_col)!r} and "
                        f"{str(non_col)!r}); give either {non} or {n_arg}, or make them agree",
                        study=labels[i],
                        column=str(n_col),
                    )
        else:
            b = n - events
        size_col = n_col if n_col is not None else non_col
        check_positive(events + b, size_col, labels, what=_SHORT[n_arg])
        out.append(b)
    return a, out[0], c, out[1]


def _double_zero(no_events: bool) -> str:
    return "no events in either arm" if no_events else "every participant had the event in both arms"


def _dichotomous(cols: _Columns, measure: str, add: float, to: str, drop00: bool):
    a, b, c, d = _two_by_two(cols, measure)
    k = len(a)
    notes: list[list[str]] = [[] for _ in range(k)]

    no_events = (a == 0) & (c == 0)
    all_events = (b == 0) & (d == 0)
    double = no_events | all_events
    # metafor's drop00 (ai=ci=0 or bi=di=0) applied to the ratio measures only; see docstring
    dropped = double & drop00 & (measure in ("OR", "RR"))

    a, b, c, d = (x.astype(float).copy() for x in (a, b, c, d))
    for x in (a, b, c, d):
        x[dropped] = np.nan

    kept = ~dropped
    if to == "all":
        adjusted = kept.copy()
        why = "to='all'"
    elif to in ("only0", "if0all"):
        id0 = kept & ((a == 0) | (b == 0) | (c == 0) | (d == 0))
        if to == "only0":
            adjusted = id0
            why = "zero cell"
        else:
            adjusted = kept & id0.any()
            why = "to='if0all'"
    else:  # "none"
        adjusted = np.zeros(k, dtype=bool)
        why = ""
    if add != 0:
        for x in (a, b, c, d):
            x[adjusted] += add
        for i in np.flatnonzero(adjusted):
            notes[i].append(f"{add:g} added to each cell ({why})")

    with np.errstate(divide="ignore", invalid="ignore"):
        n1 = a + b
        n2 = c + d
        p1 = a / n1
        p2 = c / n2
        if measure == "OR":
            yi = np.log(p1 / (1 - p1)) - np.log(p2 / (1 - p2))
            vi = 1 / a + 1 / b + 1 / c + 1 / d
        elif measure == "RR":
            yi = np.log(p1) - np.log(p2)
            vi = 1 / a - 1 / n1 + 1 / c - 1 / n2
        else:  # RD
            yi = p1 - p2
            vi = p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2

    for i in range(k):
        if dropped[i]:
            notes[i].append(f"{_double_zero(no_events[i])}: not estimable on the log scale (drop00=True)")
        elif double[i]:
            notes[i].append(_double_zero(no_events[i]))
    return yi, vi, notes


def _continuous(cols: _Columns, measure: str):
    labels = cols.labels
    got = {}
    for arg in _CONTINUOUS:
        col = cols.required(arg, measure)
        got[arg] = (col, cols.values(arg, col))
    for arg in ("sd1i", "sd2i", "n1i", "n2i"):
        col, v = got[arg]
        check_positive(v, col, labels, what=_SHORT[arg])
    m1, sd1, n1 = got["m1i"][1], got["sd1i"][1], got["n1i"][1]
    m2, sd2, n2 = got["m2i"][1], got["sd2i"][1], got["n2i"][1]
    k = len(m1)
    if measure == "MD":
        yi = m1 - m2
        vi = sd1**2 / n1 + sd2**2 / n2
    else:  # SMD (Hedges' g)
        mi = n1 + n2 - 2
        bad = np.flatnonzero(~(mi > 1))
        if bad.size:
            i = bad[0]
            raise DataError(
                f"group sizes {n1[i]:g} and {n2[i]:g} are too small for an SMD: the bias "
                "correction needs n1i + n2i - 2 > 1",
                study=labels[i],
                column=str(got["n1i"][0]),
            )
        sdpi = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / mi)
        di = (m1 - m2) / sdpi
        cmi = np.exp(gammaln(mi / 2) - np.log(np.sqrt(mi / 2)) - gammaln((mi - 1) / 2))
        yi = cmi * di
        vi = 1 / n1 + 1 / n2 + yi**2 / (2 * (n1 + n2))
    return yi, vi, [[] for _ in range(k)]


def _generic(cols: _Columns):
    labels = cols.labels
    y_col = cols.required("yi", "GEN")
    yi = cols.values("yi", y_col)
    v_col = cols.name("vi")
    if v_col is not None:  # as metafor: vi is used when given, sei only otherwise
        vi = cols.values("vi", v_col)
        check_positive(vi, v_col, labels, what=_SHORT["vi"])
    else:
        s_col = cols.name("sei")
        if s_col is None:
            df_cols = list(cols.df.columns)
            hint = cols.suggest("sei", "vi")
            raise DataError(
                "measure 'GEN' needs the sampling variance (vi) or the standard error (sei) of "
                "each effect size, but there is no column 'vi' or 'sei' and no vi=... or sei=... "
                f"argument.{hint} Available columns: {', '.join(map(repr, df_cols[:20]))}",
                column="sei",
            )
        sei = cols.values("sei", s_col)
        check_positive(sei, s_col, labels, what=_SHORT["sei"])
        vi = sei**2
    return yi, vi, [[] for _ in range(len(yi))]


# --------------------------------------------------------------------------- public


def effect_sizes(
    data: pd.DataFrame | dict,
    measure: str,
    *,
    study: Hashable = STUDY_COL,
    add: float = 0.5,
    to: str = "only0",
    drop00: bool = True,
    r: float | None = None,
    **columns: Hashable,
) -> pd.DataFrame:
    r"""Compute effect sizes ``yi`` and sampling variances ``vi``, as metafor's ``escalc``.

    Parameters
    ----------
    data : pandas.DataFrame or dict
        One row per study. A dict mapping column names to equal-length
        columns is also accepted; other inputs (lists of rows, arrays) are
        rejected because every check needs named columns. ``data`` is never
        modified.
    measure : {"MD", "SMD", "OR", "RR", "RD", "GEN", "MC", "SMCC", "SMCR"}
        Case-insensitive.

        * ``"MD"``: raw mean difference, group 1 minus group 2.
        * ``"SMD"``: standardized mean difference with Hedges' exact small
          sample correction (Hedges' *g*).
        * ``"OR"``: log odds ratio; ``"RR"``: log risk ratio; ``"RD"``: risk
          difference (group 1 minus group 2).
        * ``"GEN"``: generic inverse variance: precomputed ``yi`` with either
          ``vi`` or ``sei`` (passed through; ``vi = sei**2`` when only ``sei``
          is given, and ``vi`` wins when both are). This is how results from
          paired designs enter, e.g. **crossover trials**: enter the mean
          difference from the paired (within-patient) analysis as ``yi`` and
          its standard error as ``sei``. Do not enter the two periods of a
          crossover trial as if they were independent groups with ``"MD"``:
          that ignores the within-patient correlation (Elbourne et al. 2002);
          :func:`ketabayes.data.crossover.crossover` builds ``yi``/``vi`` from
          what crossover reports give.
        * ``"MC"``, ``"SMCC"``, ``"SMCR"``: paired designs (metafor's raw mean
          change, standardized mean change with the change-score SD, and with
          the raw-score SD of measurement 1), from ``m1i, m2i, sd1i, sd2i, ni``
          and the correlation ``ri`` (``sd2i`` not used by SMCR). Formulas in
          :func:`ketabayes.data.paired.paired_effect`.
    study : str, default ``"study"``
        Column holding the study labels (converted to ``str``; they must be
        present). Repeated labels are made unique as metafor does (``"Shechter"``
        twice becomes ``"Shechter.1"``, ``"Shechter.2"``) with a
        :class:`~ketabayes.errors.DataWarning`; rows identical in every column get
        a second warning (possible double entry). If this column does not exist and ``study`` was
        left at its default, the studies are labelled ``"Study 1"``,
        ``"Study 2"``, ... in row order. A column named explicitly must exist.
    add : float, default 0.5
        Amount added to the cells of 2x2 tables (OR, RR, RD) as chosen by
        ``to``; metafor's default.
    to : {"only0", "all", "if0all", "none"}, default ``"only0"``
        When ``add`` is added, as in metafor: ``"only0"`` to every cell of the
        tables that have a zero cell; ``"all"`` to every table; ``"if0all"``
        to every table if any table has a zero cell; ``"none"`` never.
    drop00 : bool, default True
        For OR and RR, whether studies with no events in either arm
        (``ai = ci = 0``), or with events in every participant of both arms
        (``bi = di = 0``), are declared not estimable. They are kept in the
        returned table with ``yi``, ``vi``, ``sei`` = NaN, ``estimable=False``
        and a ``note``, and a :class:`~ketabayes.errors.DataWarning` is
        issued. **metafor's default is** ``drop00=FALSE``; pass
        ``drop00=False`` to reproduce metafor exactly (``add`` is then added to
        such studies too, and they get a value). ``drop00`` has no effect on
        RD, for which a double-zero study is informative (see Notes).
    r : float, optional
        For MC, SMCC, SMCR only: the assumed correlation between the two
        measurements, used for the studies whose ``ri`` is blank (or for all
        studies when there is no ``ri`` column); each such study gets a
        ``note``. There is no default: a paired measure without ``ri`` or
        ``r`` raises a DataError naming the study and the column ``ri``.
    **columns : str
        Map metafor's argument names to your column names, e.g.
        ``ai="events_drug"``. Columns already named like metafor's arguments
        need no mapping. Accepted names:

        * OR, RR, RD: ``ai, bi, ci, di`` or ``ai, n1i, ci, n2i`` (then
          ``bi = n1i - ai`` and ``di = n2i - ci``; if both ``bi`` and ``n1i``
          are given they must agree).
        * MD, SMD: ``m1i, sd1i, n1i, m2i, sd2i, n2i``.
        * GEN: ``yi`` with ``vi`` or ``sei``.
        * MC, SMCC: ``m1i, m2i, sd1i, sd2i, ni, ri``; SMCR: ``m1i, m2i, sd1i, ni, ri``.

        An unknown name, or one the measure does not use, is an error.

    Returns
    -------
    pandas.DataFrame
        A new table with all of the caller's columns, plus (replacing any
        existing columns of the same names):

        * ``study`` : str, the study label;
        * ``yi``, ``vi``, ``sei`` : float, the effect size, its sampling
          variance and standard error ``sqrt(vi)``; NaN where they cannot
          be computed (e.g. double-zero studies dropped by ``drop00``);
        * ``estimable`` : bool, True when ``yi`` and ``vi`` are finite and
          ``vi > 0``; fit models to ``out[out["estimable"]]``;
        * ``note`` : str, ``""`` or what was done to the study, e.g.
          ``"0.5 added to each cell (zero cell)"`` or ``"no events in either
          arm: not estimable on the log scale (drop00=True)"``;
        * ``measure`` : str, the canonical measure name, also stored in
          ``out.attrs["measure"]``;
        * ``assumed_r`` : float (MC, SMCC, SMCR only), the correlation assumed
          from ``r=`` for the study, NaN where ``ri`` was reported; the
          sensitivity grid's ``r`` factor re-derives these studies
          (:func:`~ketabayes.data.crossover.with_assumed_r`).

    Raises
    ------
    DataError
        For bad input (missing or misspelled columns, non-numeric or missing
        values, SD/n/SE/vi <= 0, negative or non-integer counts, more events
        than participants, no studies, unknown measure or
        argument); the message names the study and the column.

    Warns
    -----
    DataWarning
        When some studies are not estimable (they stay in the table with
        ``estimable=False``); when study labels repeat (they are made unique) or
        rows are identical in every column.

    Notes
    -----
    With group 1 (e.g. treatment) and group 2 (e.g. control), the definitions
    are those of ``metafor::escalc`` with ``vtype="LS"`` (Viechtbauer 2010):

    * MD: :math:`y = \bar x_1 - \bar x_2`,
      :math:`v = s_1^2/n_1 + s_2^2/n_2` (no assumption of equal variances).
    * SMD: :math:`m = n_1 + n_2 - 2`,
      :math:`s_p = \sqrt{((n_1-1)s_1^2 + (n_2-1)s_2^2)/m}`,
      :math:`d = (\bar x_1 - \bar x_2)/s_p`,
      :math:`c(m) = \Gamma(m/2) / (\sqrt{m/2}\,\Gamma((m-1)/2))` (exact, Hedges
      1981; computed on the log scale), :math:`y = g = c(m)\,d`,
      :math:`v = 1/n_1 + 1/n_2 + g^2 / (2(n_1+n_2))` (the large-sample
      variance with *g*, not *d*, plugged in, and :math:`n_1+n_2` in the
      denominator, as metafor's default ``vtype="LS"``). Requires
      :math:`m > 1`.
    * 2x2 tables, after the ``add``/``to`` adjustment, with
      :math:`n_1 = a+b`, :math:`n_2 = c+d`, :math:`p_1 = a/n_1`,
      :math:`p_2 = c/n_2`:

      - OR: :math:`y = \log(p_1/(1-p_1)) - \log(p_2/(1-p_2))`,
        :math:`v = 1/a + 1/b + 1/c + 1/d`;
      - RR: :math:`y = \log p_1 - \log p_2`,
        :math:`v = 1/a - 1/n_1 + 1/c - 1/n_2`;
      - RD: :math:`y = p_1 - p_2`,
        :math:`v = p_1(1-p_1)/n_1 + p_2(1-p_2)/n_2`.

    * :math:`\mathrm{sei} = \sqrt{v}`.

    Zero cells. As in metafor, ``add``/``to`` apply to all three 2x2 measures,
    RD included: with the defaults, a table with any zero cell (in ``a``,
    ``b``, ``c`` or ``d``) gets 0.5 added to each of its four cells before
    ``y`` and ``v`` are computed. For RD a double-zero study is estimable and
    kept whatever ``drop00`` says: it gets
    :math:`y = 0.5/(n_1+1) - 0.5/(n_2+1)` (0 when the arms are equal in size)
    and a positive variance, exactly metafor's value. (metafor's
    ``drop00=TRUE`` would also set RD to NA; ketabayes does not, because
    double-zero studies carry information about a risk *difference*.)
    When no correction is made (``add=0`` or ``to="none"``) and a ratio is
    undefined, ``yi``/``vi`` are NaN as in metafor (which recodes +-Inf to
    NA); when the variance is exactly 0 (possible for RD without correction)
    the values are kept as metafor gives them but ``estimable`` is False.

    Other deviations from metafor, all stricter: missing values are an error
    rather than an NA result; standard deviations must be > 0 (metafor allows
    0); the counts of 2x2 tables must be whole numbers and the group sizes
    > 0. Duplicate study labels are made unique with metafor's rule.
    Group sizes of continuous outcomes may be non-integer (e.g. effective
    sample sizes after a design-effect adjustment).

    References
    ----------
    Viechtbauer, W. (2010). Conducting meta-analyses in R with the metafor
    package. *Journal of Statistical Software*, 36(3), 1-48.
    https://doi.org/10.18637/jss.v036.i03

    Hedges, L. V. (1981). Distribution theory for Glass's estimator of effect
    size and related estimators. *Journal of Educational Statistics*, 6(2),
    107-128. https://doi.org/10.3102/10769986006002107

    Elbourne, D. R., Altman, D. G., Higgins, J. P. T., Curtin, F.,
    Worthington, H. V., & Vail, A. (2002). Meta-analyses involving cross-over
    trials: methodological issues. *International Journal of Epidemiology*,
    31(1), 140-149. https://doi.org/10.1093/ije/31.1.140

    Examples
    --------
    The first two trials of the BCG vaccine data (``dat.bcg`` in metafor), log
    risk ratios:

    >>> import pandas as pd
    >>> from ketabayes.data.effect_sizes import effect_sizes
    >>> bcg = pd.DataFrame({
    ...     "author": ["Aronson", "Ferguson & Simes"],
    ...     "tpos": [4, 6], "tneg": [119, 300], "cpos": [11, 29], "cneg": [128, 274],
    ... })
    >>> out = effect_sizes(bcg, "RR", study="author", ai="tpos", bi="tneg", ci="cpos", di="cneg")
    >>> out[["study", "yi", "vi"]].round(4)
                  study      yi      vi
    0           Aronson -0.8893  0.3256
    1  Ferguson & Simes -1.5854  0.1946
    >>> out.attrs["measure"]
    'RR'
    """
    df = as_dataframe(data)
    m = check_measure(measure, MEASURES)
    _check_arguments(columns, m)
    if not (isinstance(to, str) and to in _TO):
        best = closest(to, _TO) if isinstance(to, str) else None
        hint = f"; did you mean {best!r}?" if best is not None else ""
        raise DataError(f"to={to!r} is not one of {', '.join(map(repr, _TO))}{hint}")
    if isinstance(add, bool) or not isinstance(add, (int, float, np.integer, np.floating)) or not (
        np.isfinite(add) and add >= 0
    ):
        raise DataError(f"add must be a finite number >= 0 (metafor's default is 0.5); got {add!r}")
    if not isinstance(drop00, (bool, np.bool_)):
        raise DataError(f"drop00 must be True or False; got {drop00!r}")
    add = float(add)
    if r is not None:
        if m not in PAIRED_MEASURES:
            raise DataError(f"r= is only used by the paired measures {', '.join(PAIRED_MEASURES)}, not {m!r}")
        r = check_correlation(r)

    check_not_empty(df)
    labels = study_labels(df, study)
    labels = unique_labels(labels, study, df)
    measure_from_column(df, m, labels)  # a 'measure' column mixing OR and MD rows, or naming another measure
    cols = _Columns(df, dict(columns), labels)

    assumed_r = None
    if m in ("OR", "RR", "RD"):
        yi, vi, notes = _dichotomous(cols, m, add, to, bool(drop00))
    elif m in ("MD", "SMD"):
        yi, vi, notes = _continuous(cols, m)
    elif m in PAIRED_MEASURES:
        yi, vi, notes, assumed_r = paired_from_columns(cols, m, r)
    else:
        yi, vi, notes = _generic(cols)

    yi = np.asarray(yi, dtype=float).copy()
    vi = np.asarray(vi, dtype=float).copy()
    # as metafor: +-Inf and NaN become missing, negative variances become missing
    bad = ~np.isfinite(yi) | ~np.isfinite(vi)
    yi[bad] = np.nan
    vi[bad] = np.nan
    vi[vi < 0] = np.nan
    estimable = np.isfinite(yi) & np.isfinite(vi) & (vi > 0)
    for i in np.flatnonzero(~estimable):
        if not any("not estimable" in s for s in notes[i]):
            if np.isfinite(vi[i]) and vi[i] == 0:
                notes[i].append("sampling variance is 0: not estimable")
            else:
                notes[i].append("zero cell and no continuity correction: not estimable")
    with np.errstate(invalid="ignore"):
        sei = np.sqrt(vi)

    out = df.copy(deep=True)
    out[STUDY_COL] = pd.Series(labels, index=df.index, dtype=str)
    out["yi"] = yi
    out["vi"] = vi
    out["sei"] = sei
    out["estimable"] = estimable
    out["note"] = pd.Series(["; ".join(n) for n in notes], index=df.index, dtype=str)
    out["measure"] = pd.Series([m] * len(df), index=df.index, dtype=str)
    if assumed_r is not None:  # paired measures: the correlation assumed per study (NaN: ri reported)
        out["assumed_r"] = np.asarray(assumed_r, dtype=float)
    out.attrs["measure"] = m  # attrs of the deep copy, not the caller's

    if not estimable.all():
        idx = np.flatnonzero(~estimable)
        listed = "; ".join(f"{labels[i]!r} ({notes[i][-1]})" for i in idx[:5])
        more = f"; and {len(idx) - 5} more" if len(idx) > 5 else ""
        warnings.warn(
            f"{len(idx)} of {len(labels)} studies are not estimable for measure {m!r}: "
            f"{listed}{more}. They are kept in the table with estimable=False and must be "
            "left out of the model (out[out['estimable']]).",
            DataWarning,
            stacklevel=2,
        )
    return out
