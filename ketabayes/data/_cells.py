"""Reading optional numeric cells and range checks for the conversion helpers.

The converters of :mod:`ketabayes.data.paired`, :mod:`ketabayes.data.crossover`
and :mod:`ketabayes.data.conversions` read tables in which a blank cell means
"not reported" (a trial reports a median *or* a mean), so unlike
:func:`ketabayes.data.validation.numeric_column` a missing value is allowed
here and becomes NaN; anything else that is not a finite number is still a
:class:`~ketabayes.errors.DataError` naming the study and the column.
:class:`ProvenanceTable` keeps the per-study ``conversion`` (text) and
``converted`` (bool) columns that every converter appends to.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from ketabayes.data.validation import as_dataframe, check_not_empty, check_unique_labels, require_column, study_labels
from ketabayes.errors import DataError

__all__ = ["blank", "optional_numeric", "fail", "check_where", "ProvenanceTable"]


def blank(x: object) -> bool:
    """None, NaN, pd.NA or a blank string."""
    if x is None:
        return True
    if isinstance(x, str):
        return not x.strip()
    return np.ndim(x) == 0 and bool(pd.isna(x))


def optional_numeric(df: pd.DataFrame, column: Hashable | None, labels: Sequence[str], *, what: str) -> np.ndarray:
    """Values of ``column`` as floats, blanks as NaN; all NaN when ``column`` is None.

    Raises
    ------
    DataError
        For a cell that is not blank and not a finite number (e.g. ``"<0.05"``,
        ``True``, ``inf``), naming the study and the column.
    """
    if column is None:
        return np.full(len(df), np.nan)
    raw = df[column].tolist()
    out = np.full(len(raw), np.nan)
    for i, x in enumerate(raw):
        if blank(x):
            continue
        if isinstance(x, (bool, np.bool_)):
            ok = False
        else:
            try:
                out[i] = float(x)
                ok = bool(np.isfinite(out[i]))
            except (TypeError, ValueError):
                ok = False
        if not ok:
            raise DataError(
                f"value {x!r} is not a finite number (expected {what}; leave the cell blank if "
                "it was not reported)",
                study=labels[i],
                column=str(column),
            )
    return out


def fail(message: str, labels: Sequence[str], mask: np.ndarray, column: Hashable, values=None) -> None:
    """Raise a DataError for the first study where ``mask`` is true, if any."""
    bad = np.flatnonzero(np.asarray(mask, dtype=bool))
    if bad.size == 0:
        return
    i = bad[0]
    value = "" if values is None else f" (got {float(np.asarray(values)[i]):.10g})"
    more = ""
    if bad.size > 1:
        rest = [labels[j] for j in bad[1:6]]
        more = f" (also in {bad.size - 1} other stud{'y' if bad.size == 2 else 'ies'}: " + ", ".join(
            map(repr, rest)
        ) + ("..." if bad.size > 6 else "") + ")"
    raise DataError(f"{message}{value}{more}", study=labels[i], column=str(column))


def check_where(values: np.ndarray, ok: np.ndarray, labels: Sequence[str], column: Hashable, message: str) -> None:
    """Raise where ``values`` is present (not NaN) and ``ok`` is false."""
    values = np.asarray(values, dtype=float)
    with np.errstate(invalid="ignore"):
        fail(message, labels, ~np.isnan(values) & ~np.asarray(ok, dtype=bool), column, values)


class ProvenanceTable:
    """A copy of the user's table with study labels and provenance columns."""

    def __init__(self, data, study):
        df = as_dataframe(data)
        check_not_empty(df)
        self.labels = study_labels(df, study)
        check_unique_labels(self.labels, study)
        self.out = df.copy(deep=True)
        self.out.attrs = dict(df.attrs)
        if "conversion" in self.out.columns:
            self.conv = ["" if pd.isna(x) else str(x) for x in self.out["conversion"].tolist()]
        else:
            self.conv = [""] * len(df)
        if "converted" in self.out.columns:
            self.flag = np.array([bool(x) if not pd.isna(x) else False for x in self.out["converted"].tolist()])
        else:
            self.flag = np.zeros(len(df), dtype=bool)

    def read(self, column, what, required=False):
        if column is None:
            return np.full(len(self.labels), np.nan)
        if required or column in self.out.columns:
            require_column(self.out, column, purpose=what)
            return optional_numeric(self.out, column, self.labels, what=what)
        raise DataError(
            f"column not found in the data (needed for {what}); available columns: "
            f"{', '.join(map(repr, list(self.out.columns)[:20]))}",
            column=str(column),
        )

    def target(self, column):
        """Current values of a target column (all NaN when it does not exist yet)."""
        if column in self.out.columns:
            return optional_numeric(self.out, column, self.labels, what=f"the values of {column!r}")
        return np.full(len(self.labels), np.nan)

    def record(self, mask, texts):
        for i in np.flatnonzero(mask):
            self.conv[i] = f"{self.conv[i]}; {texts[i]}" if self.conv[i] else texts[i]
            self.flag[i] = True

    def done(self):
        self.out["conversion"] = pd.Series(self.conv, index=self.out.index, dtype=str)
        self.out["converted"] = pd.Series(self.flag, index=self.out.index, dtype=bool)
        return self.out
