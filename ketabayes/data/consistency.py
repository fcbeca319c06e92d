"""Table-level consistency of a study table: repeated labels, identical rows, one effect measure.

Used by :func:`~ketabayes.data.effect_sizes.effect_sizes`, :func:`~ketabayes.data.validation.validate_yi_vi`
and the models. Repeated study labels are made unique as metafor does (with a warning), rows identical in
every column are reported (possible double entry), and a ``measure`` column that mixes measures is refused:
effects on different scales are never pooled.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from ketabayes.data.validation import _MAX_LISTED, _is_blank, _listing
from ketabayes.dims import STUDY_COL
from ketabayes.errors import DataError, DataWarning

__all__ = ["unique_labels", "measure_from_column"]


def unique_labels(labels: Sequence[str], column: Hashable = STUDY_COL, df: pd.DataFrame | None = None) -> list[str]:
    """Study labels made unique as metafor does, with a warning naming them.

    metafor (``.make.unique``, used for ``slab``) gives *every* instance of a repeated label a
    suffix ``.1``, ``.2``, ... in row order: two rows labelled ``"Shechter"`` become
    ``"Shechter.1"`` and ``"Shechter.2"``. Rows that are identical in every column of ``df`` get a
    second :class:`~ketabayes.errors.DataWarning` (possibly the same study entered twice); all
    rows are kept.

    Parameters
    ----------
    labels : sequence of str
        Labels in row order (from :func:`study_labels`).
    column : hashable
        The column the labels came from (named in the messages).
    df : pandas.DataFrame, optional
        The user's table, to look for rows identical in every column.

    Returns
    -------
    list of str
        ``labels`` itself (as a list) when they are already unique.

    Raises
    ------
    DataError
        If a suffixed label collides with another label of the table (e.g. ``"A"``, ``"A"`` and
        ``"A.1"``).

    Warns
    -----
    DataWarning
        Once for the renamed labels, once for identical rows.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     unique_labels(["Shechter", "Aronson", "Shechter"])
    ['Shechter.1', 'Aronson', 'Shechter.2']
    """
    labels = [str(x) for x in labels]
    if df is not None:
        _warn_identical_rows(df, labels)
    positions: dict[str, list[int]] = {}
    for i, lab in enumerate(labels):
        positions.setdefault(lab, []).append(i)
    dups = {lab: pos for lab, pos in positions.items() if len(pos) > 1}
    if not dups:
        return labels
    out = list(labels)
    for lab, pos in dups.items():
        for n, i in enumerate(pos, start=1):
            out[i] = f"{lab}.{n}"
    clash = sorted({x for x in out if out.count(x) > 1})
    if clash:
        raise DataError(
            f"study labels {_listing(list(dups))} repeat, and making them unique with metafor's suffixes "
            f"(.1, .2, ...) gives labels that already exist: {_listing(clash)}; make the labels distinct "
            "(e.g. add the year)",
            study=clash[0], column=str(column))
    renamed = "; ".join(f"{lab!r} (rows {', '.join(str(p + 1) for p in pos)}) -> "
                        + ", ".join(repr(out[p]) for p in pos) for lab, pos in list(dups.items())[:_MAX_LISTED])
    more = f"; and {len(dups) - _MAX_LISTED} more" if len(dups) > _MAX_LISTED else ""
    warnings.warn(
        f"column {str(column)!r}: {len(dups)} study label(s) repeat and were made unique as metafor does "
        f"(rows counted from 1): {renamed}{more}. If these are the same study, keep one row per analysis.",
        DataWarning, stacklevel=3)
    return out


def _warn_identical_rows(df: pd.DataFrame, labels: Sequence[str]) -> None:
    try:
        dup = df.duplicated(keep=False).to_numpy()
    except TypeError:  # unhashable cells (e.g. lists): nothing to compare reliably
        return
    if not dup.any():
        return
    groups: dict[tuple, list[int]] = {}
    for i in np.flatnonzero(dup):
        key = tuple(map(repr, df.iloc[i].tolist()))
        groups.setdefault(key, []).append(int(i))
    listed = "; ".join(f"rows {', '.join(str(i + 1) for i in rows)} ({labels[rows[0]]!r})"
                       for rows in list(groups.values())[:_MAX_LISTED])
    more = f"; and {len(groups) - _MAX_LISTED} more" if len(groups) > _MAX_LISTED else ""
    warnings.warn(
        f"{len(groups)} group(s) of rows are identical in every column, possibly the same study entered twice "
        f"(rows counted from 1): {listed}{more}. All are kept; delete the copies if they are double entries.",
        DataWarning, stacklevel=4)


def measure_from_column(df: pd.DataFrame, measure: str | None, labels: Sequence[str],
                        column: Hashable = "measure") -> str | None:
    """The measure of a table with a ``measure`` column, refusing to pool effects on different scales.

    Returns ``measure`` (upper case) when given, else the column's single value, else None. A column
    that mixes measures (OR and MD rows) is an error: filter first, e.g. ``df[df["measure"] == "OR"]``.
    So is a column that names another measure than ``measure`` (``"GEN"`` rows, precomputed effects,
    go with any measure).

    Examples
    --------
    >>> import pandas as pd
    >>> measure_from_column(pd.DataFrame({"measure": ["OR", "OR"]}), None, ["A", "B"])
    'OR'
    """
    given = str(measure).upper() if measure is not None else None
    if column not in df.columns:
        return given
    values = [(lab, str(x).strip().upper()) for lab, x in zip(labels, df[column].tolist()) if not _is_blank(x)]
    found: dict[str, list[str]] = {}
    for lab, v in values:
        found.setdefault(v, []).append(lab)
    concrete = {m: labs for m, labs in found.items() if m != "GEN"}
    if len(concrete) > 1:
        listed = "; ".join(f"{m}: {_listing(labs, 3)}" for m, labs in concrete.items())
        first = next(iter(concrete))
        raise DataError(
            f"the rows hold effects on {len(concrete)} different measures ({listed}); effects on different "
            f"scales cannot be pooled. Analyse one measure at a time, e.g. df[df[{str(column)!r}] == {first!r}]",
            column=str(column))
    if given is not None and concrete and given not in concrete and given != "GEN":
        (m, labs), = concrete.items()
        raise DataError(f"the rows say measure {m} ({_listing(labs, 3)}), but measure {given!r} was given",
                        study=labs[0], column=str(column))
    if given is not None:
        return given
    if concrete:
        return next(iter(concrete))
    return "GEN" if found else None
