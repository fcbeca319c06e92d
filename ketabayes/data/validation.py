"""Checks of user-supplied data, shared by the data, import and model layers.

Every check raises :class:`ketabayes.errors.DataError` (a :class:`ValueError`)
whose message names the study label and the column *as the user spelled it*,
says what was found and what was expected, so the table can be fixed without
reading a traceback. When several studies are wrong, the first one is named
in ``DataError.study`` and the message lists the others.

Conventions
-----------
* ``labels`` is the list of study labels (strings) in row order, as returned
  by :func:`study_labels`; checks that look at values use it to name studies.
* ``what`` is a short phrase describing the expected content of a column
  (e.g. ``"the number of events in group 1 (metafor's ai)"``); it is put in the
  message after "expected".
* Missing values (NaN, None, empty strings) are errors in every required
  column: ketabayes never drops a study silently. Remove the row, or fill it
  in, before calling.
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import pandas as pd

from ketabayes.dims import STUDY_COL
from ketabayes.errors import DataError

__all__ = [
    "closest",
    "as_dataframe",
    "check_not_empty",
    "check_measure",
    "require_column",
    "study_labels",
    "check_unique_labels",
    "numeric_column",
    "check_positive",
    "vi_from_sei",
    "check_counts",
    "check_not_greater",
    "validate_yi_vi",
]

_MAX_LISTED = 5


# --------------------------------------------------------------------------- helpers


def closest(name: object, candidates: Sequence[object], *, cutoff: float = 0.5) -> object | None:
    """Closest candidate to ``name`` (case-insensitive, :func:`difflib.get_close_matches`).

    Parameters
    ----------
    name : object
        The misspelled name (converted with ``str``).
    candidates : sequence
        Possible names (any hashables; compared through ``str``).

    Returns
    -------
    object or None
        The best candidate, in its original form, or ``None`` if nothing is
        close enough (similarity ratio below ``cutoff``; 0.5 rather than
        difflib's 0.6 so that short names such as ``"ax"`` -> ``"ai"`` match).
    """
    by_key: dict[str, object] = {}
    for c in candidates:
        by_key.setdefault(str(c).lower(), c)
    match = difflib.get_close_matches(str(name).lower(), list(by_key), n=1, cutoff=cutoff)
    return by_key[match[0]] if match else None


def _did_you_mean(name: object, candidates: Sequence[object]) -> str:
    best = closest(name, candidates)
    return f"; did you mean {best!r}?" if best is not None else "."


def _listing(items: Sequence[object], limit: int = _MAX_LISTED) -> str:
    shown = ", ".join(repr(x) for x in items[:limit])
    more = len(items) - limit
    return shown + (f" and {more} more" if more > 0 else "")


def _others(labels: Sequence[str], positions: np.ndarray) -> str:
    """' (also: 'B', 'C')' for the offending studies after the first one."""
    rest = [labels[i] for i in positions[1:]]
    return f" (also in {len(rest)} other stud{'y' if len(rest) == 1 else 'ies'}: {_listing(rest)})" if rest else ""


def _fmt(x: object) -> str:
    """A number as the user would write it (12 rather than 12.0)."""
    if isinstance(x, (float, np.floating)):
        return f"{x:.10g}"
    return repr(x)


# --------------------------------------------------------------------------- table level


def as_dataframe(data: object) -> pd.DataFrame:
    """Accept a :class:`pandas.DataFrame` or a mapping of column name -> values.

    A DataFrame is returned as is (callers that add columns must copy it);
    a mapping (e.g. a ``dict`` of lists) is turned into a new DataFrame.
    Anything else (a list of rows, a NumPy array, ``None``, a file name, ...)
    is rejected: the checks and messages need named columns.

    Parameters
    ----------
    data : pandas.DataFrame or Mapping
        The table, one row per study.

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        If ``data`` is of another type, if the columns of a mapping have
        different lengths, or if two columns share one name.
    """
    if isinstance(data, pd.DataFrame):
        df = data
    elif isinstance(data, Mapping):
        try:
            df = pd.DataFrame(dict(data))
        except (ValueError, TypeError) as exc:
            lengths = {}
            for k, v in data.items():
                try:
                    lengths[k] = len(v)  # type: ignore[arg-type]
                except TypeError:
                    lengths[k] = "scalar"
            raise DataError(
                "data must be a pandas DataFrame or a dict whose values are columns of equal "
                f"length; got column lengths {lengths} ({exc})"
            ) from None
    else:
        raise DataError(
            "data must be a pandas DataFrame (one row per study) or a dict mapping column "
            f"names to equal-length columns; got {type(data).__name__}. For a CSV file, "
            "use pandas.read_csv(path) first."
        )
    dup = df.columns[df.columns.duplicated()].unique().tolist()
    if dup:
        raise DataError(
            f"the data has more than one column named {_listing(dup)}; rename them so every "
            "column name is unique",
            column=str(dup[0]),
        )
    return df


def check_not_empty(df: pd.DataFrame) -> None:
    """Raise :class:`DataError` if ``df`` has no rows (no studies)."""
    if len(df) == 0:
        cols = list(df.columns)
        raise DataError(
            "no studies: the data has 0 rows"
            + (f" (columns {_listing(cols)})" if cols else "")
            + "; a meta-analysis needs at least one study"
        )


def check_measure(measure: object, allowed: Sequence[str]) -> str:
    """Return the canonical (upper-case) name of ``measure``.

    Parameters
    ----------
    measure : str
        The requested effect measure, case-insensitive (``"or"`` is ``"OR"``).
    allowed : sequence of str
        Canonical (upper-case) names of the supported measures.

    Raises
    ------
    DataError
        If ``measure`` is not a string or not one of ``allowed``; the message
        suggests the closest supported measure.
    """
    if not isinstance(measure, str):
        raise DataError(
            f"measure must be a string, one of {', '.join(allowed)}; got {type(measure).__name__}"
        )
    m = measure.strip().upper()
    if m not in allowed:
        raise DataError(
            f"unknown measure {measure!r}{_did_you_mean(m, allowed)} "
            f"Supported measures: {', '.join(allowed)}."
        )
    return m


def require_column(
    df: pd.DataFrame, column: Hashable, *, purpose: str | None = None, exclude: Sequence[Hashable] = ()
) -> Hashable:
    """Return ``column`` if it is a column of ``df``; otherwise raise.

    Parameters
    ----------
    df : pandas.DataFrame
    column : hashable
        The column name as the user gave it.
    purpose : str, optional
        What the column is for, used in the message (e.g. ``"ai (events, group 1)"``).
    exclude : sequence, optional
        Columns already used for something else, never suggested as the
        closest match.

    Raises
    ------
    DataError
        Naming the missing column, suggesting the closest existing column
        name and listing the available columns.
    """
    if column in df.columns:
        return column
    cols = list(df.columns)
    why = f" (needed for {purpose})" if purpose else ""
    free = [c for c in cols if c not in set(exclude)]
    raise DataError(
        f"column not found in the data{why}{_did_you_mean(column, free)} "
        f"Available columns: {_listing(cols, limit=20)}",
        column=str(column),
    )


# --------------------------------------------------------------------------- study labels


def _is_blank(x: object) -> bool:
    """None, NaN, pd.NA, NaT or a blank string (a cell holding a list is not blank)."""
    if x is None:
        return True
    if isinstance(x, str):
        return not x.strip()
    return np.ndim(x) == 0 and bool(pd.isna(x))


def study_labels(df: pd.DataFrame, study: Hashable = STUDY_COL, *, generate: bool | None = None) -> list[str]:
    """Study labels (as strings), one per row of ``df``.

    Parameters
    ----------
    df : pandas.DataFrame
    study : hashable, default ``"study"``
        Name of the column holding the labels.
    generate : bool, optional
        What to do when ``study`` is not a column of ``df``: if true, label the
        studies ``"Study 1"``, ``"Study 2"``, ... in row order; if false, raise.
        By default labels are generated only when ``study`` is the default
        name ``"study"`` (a column the user named explicitly must exist).

    Returns
    -------
    list of str

    Raises
    ------
    DataError
        If the column is absent (and labels are not generated), or a label is
        missing or blank.
    """
    if generate is None:
        generate = study == STUDY_COL
    if study not in df.columns:
        if generate:
            return [f"Study {i}" for i in range(1, len(df) + 1)]
        require_column(df, study, purpose="the study labels")
    col = df[study]
    blank = [i for i, x in enumerate(col.tolist()) if _is_blank(x)]
    if blank:
        where = _listing([df.index[i] for i in blank])
        raise DataError(
            f"missing study label in the row(s) with index {where}; every study needs a label",
            column=str(study),
        )
    return [str(x).strip() if isinstance(x, str) else str(x) for x in col.tolist()]


def check_unique_labels(labels: Sequence[str], column: Hashable = STUDY_COL) -> None:
    """Raise :class:`DataError` if a study label occurs more than once.

    Parameters
    ----------
    labels : sequence of str
        Labels in row order.
    column : hashable
        The column the labels came from (named in the message).
    """
    seen: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        seen.setdefault(lab, []).append(i)
    dups = {lab: pos for lab, pos in seen.items() if len(pos) > 1}
    if dups:
        first = next(iter(dups))
        rows = ", ".join(str(p + 1) for p in dups[first]) + " of the table, counting from 1"
        more = f" (other duplicated labels: {_listing(list(dups)[1:])})" if len(dups) > 1 else ""
        raise DataError(
            f"study label appears {len(dups[first])} times (rows {rows}){more}; labels must be "
            "unique within one analysis. If these are different studies, make the labels "
            "distinct (e.g. add the year); if they are the same study, keep one row per analysis.",
            study=first,
            column=str(column),
        )


# --------------------------------------------------------------------------- values


def numeric_column(
    df: pd.DataFrame, column: Hashable, labels: Sequence[str], *, what: str = "a number"
) -> np.ndarray:
    """The values of ``column`` as a float array, after checking them.

    Numbers stored as text (``"12"``) are accepted; anything that is not a
    number (``"12a"``, ``True``), a missing value or an infinite value is an
    error naming the study, the column and the offending value.

    Parameters
    ----------
    df : pandas.DataFrame
    column : hashable
        Column name as the user gave it.
    labels : sequence of str
        Study labels in row order (from :func:`study_labels`).
    what : str
        What the column should contain, for the message.

    Returns
    -------
    numpy.ndarray of float64
        A new array; ``df`` is not modified.

    Raises
    ------
    DataError
    """
    require_column(df, column, purpose=what)
    s = df[column]
    raw = s.tolist()
    col = str(column)
    _check_not_temporal_or_complex(s, raw, col, labels, what)
    is_bool = np.array([isinstance(x, (bool, np.bool_)) for x in raw], dtype=bool)
    if is_bool.any():
        pos = np.flatnonzero(is_bool)
        raise DataError(
            f"value {raw[pos[0]]!r} is not a number (expected {what}){_others(labels, pos)}",
            study=labels[pos[0]],
            column=col,
        )
    missing = np.array([_is_blank(x) for x in raw], dtype=bool)
    values = pd.to_numeric(s.where(~missing), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = np.flatnonzero(~missing & np.isnan(values))
    if bad.size:
        raise DataError(
            f"value {raw[bad[0]]!r} is not a number (expected {what}){_others(labels, bad)}",
            study=labels[bad[0]],
            column=col,
        )
    miss = np.flatnonzero(missing)
    if miss.size:
        raise DataError(
            f"missing value (expected {what}){_others(labels, miss)}; fill it in, or remove the "
            "study from the table if the value is not available",
            study=labels[miss[0]],
            column=col,
        )
    inf = np.flatnonzero(np.isinf(values))
    if inf.size:
        raise DataError(
            f"value {raw[inf[0]]!r} is infinite (expected {what}){_others(labels, inf)}",
            study=labels[inf[0]],
            column=col,
        )
    return values


def check_positive(values: np.ndarray, column: Hashable, labels: Sequence[str], *, what: str) -> None:
    """Raise :class:`DataError` unless every value is strictly positive.

    Used for standard deviations, group sizes, standard errors and sampling
    variances; ``what`` names the quantity (e.g. ``"standard deviation"``).
    """
    bad = np.flatnonzero(~(np.asarray(values, dtype=float) > 0))
    if bad.size:
        v = values[bad[0]]
        raise DataError(
            f"{what} is {_fmt(v)}; expected a number > 0{_others(labels, bad)}",
            study=labels[bad[0]],
            column=str(column),
        )


def _check_not_temporal_or_complex(s: pd.Series, raw: list, col: str, labels: Sequence[str], what: str) -> None:
    """Complex numbers, dates and durations are not numbers here (pandas would turn dates into nanoseconds)."""
    kind = getattr(s.dtype, "kind", "O")
    names = {"c": "a complex number", "M": "a date/time", "m": "a time duration"}
    if kind in names:
        raise DataError(f"is {names[kind]} column ({s.dtype}), not numbers (expected {what})", column=col)
    odd = [i for i, x in enumerate(raw) if isinstance(x, (complex, np.complexfloating, np.datetime64, np.timedelta64,
                                                           pd.Timestamp, pd.Timedelta))
           or type(x).__module__ == "datetime"]
    if odd:
        raise DataError(f"value {raw[odd[0]]!r} is not a number (expected {what}){_others(labels, np.array(odd))}",
                        study=labels[odd[0]], column=col)


def vi_from_sei(df: pd.DataFrame, sei: Hashable, labels: Sequence[str]) -> np.ndarray:
    """Sampling variances ``sei**2`` after checking that every ``sei`` is a finite number > 0.

    A negative standard error is an error, not squared into a valid variance.

    Examples
    --------
    >>> import pandas as pd
    >>> vi_from_sei(pd.DataFrame({"sei": [0.1, 0.2]}), "sei", ["A", "B"]).round(4).tolist()
    [0.01, 0.04]
    """
    values = numeric_column(df, sei, labels, what="a finite standard error sei > 0")
    check_positive(values, sei, labels, what="standard error")
    return values**2


#: the largest whole number a float64 holds exactly; larger counts (2^63, 1e30) are an overflow
MAX_COUNT = 2**53


def check_counts(values: np.ndarray, column: Hashable, labels: Sequence[str], *, what: str) -> None:
    """Raise :class:`DataError` unless every value is a non-negative whole number below 2^53."""
    values = np.asarray(values, dtype=float)
    big = np.flatnonzero(values >= MAX_COUNT)
    if big.size:
        raise DataError(
            f"{what} is {values[big[0]]:.6g}: too large for a count (overflow; counts must be below 2^53 = "
            f"{MAX_COUNT:,}){_others(labels, big)}",
            study=labels[big[0]],
            column=str(column),
        )
    neg = np.flatnonzero(values < 0)
    if neg.size:
        raise DataError(
            f"{what} is {_fmt(values[neg[0]])}; counts cannot be negative{_others(labels, neg)}",
            study=labels[neg[0]],
            column=str(column),
        )
    frac = np.flatnonzero(values != np.floor(values))
    if frac.size:
        raise DataError(
            f"{what} is {_fmt(values[frac[0]])}; counts must be whole numbers"
            f"{_others(labels, frac)}",
            study=labels[frac[0]],
            column=str(column),
        )


def check_not_greater(
    x: np.ndarray,
    y: np.ndarray,
    x_column: Hashable,
    y_column: Hashable,
    labels: Sequence[str],
    *,
    what: str,
) -> None:
    """Raise :class:`DataError` where ``x > y`` (e.g. more events than participants).

    The error names ``x_column`` as the offending column and mentions
    ``y_column`` in the message.
    """
    bad = np.flatnonzero(np.asarray(x, dtype=float) > np.asarray(y, dtype=float))
    if bad.size:
        i = bad[0]
        raise DataError(
            f"{what}: {_fmt(x[i])} is larger than {_fmt(y[i])} in column {str(y_column)!r}"
            f"{_others(labels, bad)}",
            study=labels[i],
            column=str(x_column),
        )


# --------------------------------------------------------------------------- model input


def validate_yi_vi(
    df: object, yi: Hashable = "yi", vi: Hashable = "vi", study: Hashable = STUDY_COL
) -> pd.DataFrame:
    """Check precomputed effect sizes before a model is fitted.

    Checks that ``df`` is a table with at least one study, that the ``yi`` and
    ``vi`` columns exist and hold finite numbers with ``vi > 0``, and that the
    study labels are present (repeated labels are made unique as metafor does, see
    :func:`~ketabayes.data.consistency.unique_labels`, with a :class:`~ketabayes.errors.DataWarning`). Studies that
    :func:`ketabayes.data.effect_sizes.effect_sizes` marked ``estimable=False``
    have ``yi = NaN`` and must be removed first (``df[df["estimable"]]``).

    Parameters
    ----------
    df : pandas.DataFrame or Mapping
        One row per study.
    yi, vi : hashable
        Columns with the effect sizes and their sampling variances.
    study : hashable, default ``"study"``
        Column with the study labels. If it is absent and left at its default,
        studies are labelled ``"Study 1"``, ``"Study 2"``, ...

    Returns
    -------
    pandas.DataFrame
        A new table with columns ``study`` (str), ``yi`` and ``vi`` (float64),
        in the input order, with a fresh ``RangeIndex``.

    Raises
    ------
    DataError
        Naming the study and column at fault.

    Examples
    --------
    >>> import pandas as pd
    >>> from ketabayes.data.validation import validate_yi_vi
    >>> validate_yi_vi(pd.DataFrame({"yi": [0.1, -0.3], "vi": [0.04, 0.09]}))
         study   yi    vi
    0  Study 1  0.1  0.04
    1  Study 2 -0.3  0.09
    """
    frame = as_dataframe(df)
    check_not_empty(frame)
    labels = study_labels(frame, study)
    from ketabayes.data.consistency import unique_labels  # consistency builds on this module's helpers

    labels = unique_labels(labels, study, frame)
    hint = ""
    if "estimable" in frame.columns:
        hint = " (remove studies with estimable=False first: df[df['estimable']])"
    require_column(frame, yi, purpose="the effect sizes", exclude=[vi, study])
    require_column(frame, vi, purpose="the sampling variances", exclude=[yi, study])
    y = numeric_column(frame, yi, labels, what="a finite effect size yi" + hint)
    v = numeric_column(frame, vi, labels, what="a finite sampling variance vi > 0" + hint)
    check_positive(v, vi, labels, what="sampling variance")
    return pd.DataFrame({STUDY_COL: labels, "yi": y, "vi": v})
