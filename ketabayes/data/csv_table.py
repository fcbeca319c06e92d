"""Read a plain CSV table of studies (metafor's column names) with its shape checked before its values.

:func:`pandas.read_csv` guesses silently where a table is malformed: a row with more fields than the
header shifts its values into an index (``A,0,1,0,04`` under ``study,yi,vi`` -- decimal commas -- becomes a
study ``0`` with ``yi = 1``), and two columns with one name become ``x`` and ``x.1``. :func:`read_csv_table`
checks the header and the number of fields of every row with :mod:`csv` first, and only then lets pandas
parse the values.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pandas as pd

from ketabayes.errors import DataError

__all__ = ["read_csv_table"]


def read_csv_table(path: str | os.PathLike[str], *, encoding: str = "utf-8-sig") -> pd.DataFrame:
    """Read a CSV file of studies (one row per study, a header line with column names).

    Parameters
    ----------
    path : str or path-like
    encoding : str, default ``"utf-8-sig"``
        UTF-8 with or without a byte-order mark.

    Returns
    -------
    pandas.DataFrame
        As :func:`pandas.read_csv` reads it, once the shape checks passed.

    Raises
    ------
    DataError
        The file is empty or cannot be decoded; the header names a column twice; a row has more fields
        than the header (e.g. unquoted decimal commas, ``0,04``). The message names the line and the study.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.csv"
    >>> _ = p.write_text("study,yi,vi\\nA,0,1,0,04\\n")
    >>> read_csv_table(p)
    Traceback (most recent call last):
    ...
    ketabayes.errors.DataError: study 'A': t.csv, line 2 has 5 fields but the header has 3 (study, yi, vi); \
an unquoted comma in a value? Decimal commas (0,04) must be written 0.04, or the value quoted ("0,04")
    """
    path = Path(path)
    name = path.name
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{name}, line {line}: cannot be decoded as {encoding} ({exc.reason}); save the file "
                        "as UTF-8") from None
    rows = csv.reader(io.StringIO(text, newline=""))
    header = None
    for header in rows:
        if any(field.strip() for field in header):
            break
    if header is None or not any(field.strip() for field in header):
        raise DataError(f"{name}: the file is empty")
    names = [h.strip() for h in header]
    seen: dict[str, int] = {}
    for i, h in enumerate(names):
        if h in seen:
            raise DataError(f"{name}: the header names column {h!r} twice (fields {seen[h] + 1} and {i + 1}); "
                            "every column name must be unique", column=h)
        seen[h] = i
    study_at = names.index("study") if "study" in names else 0
    for row in rows:
        if len(row) > len(names):  # pandas would silently turn the first column(s) into an index
            label = row[study_at].strip() if study_at < len(row) else ""
            raise DataError(
                f"{name}, line {rows.line_num} has {len(row)} fields but the header has {len(names)} "
                f"({', '.join(names)}); an unquoted comma in a value? Decimal commas (0,04) must be written "
                '0.04, or the value quoted ("0,04")', study=label or None)
    try:
        return pd.read_csv(io.StringIO(text))
    except pd.errors.ParserError as exc:
        raise DataError(f"{name}: not a readable CSV file ({exc})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: the file is empty") from None
