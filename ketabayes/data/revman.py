"""Import the analysis data of a RevMan 5 review.

Two formats are read, and the same data give the same table from both:

* the RevMan 5 review file (``.rm5``, XML), parsed with the standard
  library's :mod:`xml.etree.ElementTree` after a pass over the prolog that
  refuses entity declarations and external DTDs (RevMan files have neither;
  this keeps XXE, billion-laughs and quadratic blow-up files inert);
* the RevMan 5 "Data and analyses" CSV export (File > Export > Data and
  analyses), parsed with :mod:`csv`.

:func:`read_revman` returns one tidy table with one row per study x outcome
(x subgroup), with metafor's argument names for the data columns, and
:func:`split_analyses` cuts it into one table per meta-analysis, ready for
the effect-size step.
"""

from __future__ import annotations

import codecs
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from ketabayes.data._revman_common import _FIELDS, _RATIO_MEASURES, _number, _ratio_note, _text, _year
from ketabayes.data._revman_csv import _read_csv
from ketabayes.data._xml_guard import parse_review
from ketabayes.data.revman_trials import TRIAL_COL, find_repeated_trials, repeated_trials_message
from ketabayes.dims import STUDY_COL
from ketabayes.errors import DataError, DataWarning, RevManError

__all__ = ["read_revman", "split_analyses", "Analysis", "COLUMNS", "DATA_COLUMNS"]

#: Data columns (metafor names) used by each RevMan data type.
DATA_COLUMNS: dict[str, tuple[str, ...]] = {
    "continuous": ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"),
    "dichotomous": ("ai", "n1i", "ci", "n2i"),
    "generic": ("yi", "sei", "n1i", "n2i"),
}

_DTYPES: dict[str, str] = {
    "comparison_no": "Int64",
    "comparison": "str",
    "outcome_no": "Int64",
    "outcome": "str",
    "subgroup_no": "Int64",
    "subgroup": "str",
    "data_type": "str",
    "effect_measure": "str",
    "method": "str",
    "random": "boolean",
    "group_label_1": "str",
    "group_label_2": "str",
    STUDY_COL: "str",
    TRIAL_COL: "str",
    "year": "Int64",
    "m1i": "float64",
    "sd1i": "float64",
    "n1i": "Int64",
    "m2i": "float64",
    "sd2i": "float64",
    "n2i": "Int64",
    "ai": "Int64",
    "ci": "Int64",
    "yi": "float64",
    "sei": "float64",
}

#: Columns of the table returned by :func:`read_revman`, in order.
COLUMNS: tuple[str, ...] = tuple(_DTYPES)

# RevMan 5 outcome element prefix -> data type
_XML_TYPES = {"CONT": "continuous", "DICH": "dichotomous", "IV": "generic"}

# RevMan 5 spells some effect measures out in an <EFFECT_MEASURE> element
_MEASURE_NAMES = {
    "odds ratio": "OR",
    "peto odds ratio": "PETO_OR",
    "risk ratio": "RR",
    "risk difference": "RD",
    "mean difference": "MD",
    "std. mean difference": "SMD",
    "standardized mean difference": "SMD",
    "hazard ratio": "HR",
}
_ESCALC_MEASURES = {"MD", "SMD", "OR", "RR", "RD"}

_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_YEAR_AT_END = re.compile(r"(?:^|\D)(\d{4})[a-z]?$")


class Analysis(NamedTuple):
    """Identifies one meta-analysis (one outcome, or one subgroup of it) in a review."""

    comparison_no: int
    comparison: str | None
    outcome_no: int
    outcome: str | None
    subgroup_no: int | None
    subgroup: str | None
    data_type: str
    effect_measure: str | None
    #: measure for the effect-size step (metafor's ``escalc`` names): ``"GEN"`` for
    #: generic inverse-variance outcomes, else RevMan's measure if it is one of
    #: MD, SMD, OR, RR, RD, and None otherwise (e.g. Peto OR)
    measure: str | None


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------


def read_revman(path: str | os.PathLike[str], *, encoding: str | None = None,
                risk_of_bias: bool = False) -> pd.DataFrame:
    r"""Read the study-level analysis data of a RevMan 5 review.

    Parameters
    ----------
    path : str or path-like
        A RevMan 5 review file (``.rm5``, XML) or a RevMan 5 "Data and
        analyses" CSV export. The format is recognised from the content (XML
        starts with ``<``); a file named ``*.rm5`` that is not XML is an error.
    encoding : str, optional
        Override the text encoding. By default an ``.rm5`` file is decoded as
        its XML declaration says (RevMan 5 writes ISO-8859-1 or UTF-8) and a
        CSV export as UTF-8 with or without byte-order mark (``"utf-8-sig"``).
    risk_of_bias : bool, default False
        Add the review's risk-of-bias (RoB 1) judgements as columns
        ``rob_<domain>`` (``"low"``, ``"unclear"``, ``"high"``), matched on
        ``trial_id`` (see :mod:`ketabayes.data.revman_rob`; ``.rm5`` files
        only: a CSV export holds no judgements).

    Returns
    -------
    pandas.DataFrame
        One row per study x outcome (x subgroup), in file order, with columns

        ``comparison_no``, ``comparison``, ``outcome_no``, ``outcome``
            RevMan's numbers (Int64) and names.
        ``subgroup_no``, ``subgroup``
            Subgroup number and name; missing (``<NA>``/NaN) when the outcome
            has no subgroups.
        ``data_type``
            ``"continuous"``, ``"dichotomous"`` or ``"generic"`` (generic
            inverse variance).
        ``effect_measure``, ``method``, ``random``
            RevMan's effect measure (e.g. ``"MD"``, ``"SMD"``, ``"RR"``,
            ``"OR"``, ``"RD"``), pooling method (``"IV"``, ``"MH"``,
            ``"PETO"``) and whether it used a random-effects model (boolean).
        ``group_label_1``, ``group_label_2``
            RevMan's labels of the experimental and control groups.
        ``study``, ``trial_id``, ``year``
            Study label (e.g. ``"Alpha 2001"``), the trial's identity and year
            (Int64). ``trial_id`` is RevMan's ``STUDY_ID`` in an ``.rm5`` file
            (e.g. ``"STD-Alpha-2001"``), the same in every outcome, comparison
            and subgroup the trial appears in; a CSV export has no IDs, so
            there it is the study name (unique within a RevMan review).
        ``m1i, sd1i, n1i, m2i, sd2i, n2i``
            Continuous outcomes: mean, SD and size of groups 1 and 2.
        ``ai, n1i, ci, n2i``
            Dichotomous outcomes: events and totals of groups 1 and 2.
        ``yi, sei`` (and ``n1i, n2i`` when given)
            Generic inverse-variance outcomes: estimate and standard error.

        Means, SDs, ``yi`` and ``sei`` are float64; counts are Int64. Columns
        that do not apply to a row's data type are missing.
        ``df.attrs`` holds ``source_file`` (file name), ``source_path``,
        ``format`` (``"rm5"`` or ``"csv"``) and, for ``.rm5`` files, the
        review ``title``.

    Raises
    ------
    RevManError
        The file is empty, not well-formed XML (e.g. truncated), has an
        unknown root element, a data element without a required attribute
        (e.g. ``CONT_DATA`` without ``SD_1``), a non-numeric value, a CSV
        header without the required columns, or a CSV study row before its
        outcome (or subgroup) header, a count of 2^53 or more (overflow), or
        an XML entity declaration or external DTD. The message names the
        file, the line or element, and the study.

    Warns
    -----
    DataWarning
        When a data row references a ``STUDY_ID`` that is not in the review's
        list of studies (the row is kept, see Notes), when an outcome of an
        unsupported type (O-E, "other data") is skipped, when a generic
        inverse-variance outcome uses a ratio measure (see Notes), when a CSV
        header row has the wrong number of fields (its group labels are left
        missing), when the file holds no analysis data at all, or when an
        ``.rm5`` file declares ISO-8859-1 (or cp1252) but is UTF-8 (it is then
        read as UTF-8), and when one outcome (over its subgroups: what RevMan
        pools) holds the same trial in more than one row -- its patients
        would be counted more than once. The warning names the trial, its rows
        and subgroups, says whether the rows share one control group, and
        points to the alternatives (:mod:`ketabayes.data.revman_trials`).

    Notes
    -----
    *Unknown study IDs.* A data row whose ``STUDY_ID`` is not in the
    ``<STUDY>`` list is still imported, with a :class:`DataWarning`, because
    dropping it would silently change the pooled estimate, and refusing the
    whole file would block reviews whose study list was edited. Its label is
    decoded from the ID the way RevMan builds IDs from names: the ``STD-``
    prefix is removed, ``-`` becomes a space and ``_xHHHH_`` escapes become
    the character with that code (``STD-Gamma_x002d_A-2010`` ->
    ``"Gamma-A 2010"``); the year is read from the end of that label.

    *Generic inverse variance with a ratio measure (OR, RR, HR).* ``yi`` is
    taken exactly as stored in the file. Whether RevMan stored the log ratio
    or the ratio depends on how the data were entered, so a
    :class:`DataWarning` asks you to check the scale before pooling.

    *CSV exports* carry no separate study year and name: ``study`` is the
    ``Name`` column and ``year`` the ``Year of study`` column. Rows with a
    ``Data Type`` are header rows (an outcome when ``Subgroup Number`` is 0,
    a subgroup otherwise); rows with ``Outcome Number`` 0 are comparison
    headers; all other rows are studies. Numbers may use ``,`` as a thousands
    separator (``1,159``); a decimal comma is rejected as non-numeric. A study
    row whose number of fields differs from the header line is an error (its
    values cannot be matched to columns); a header row with the wrong number
    of fields is read for its leading fields (name, data type, method,
    measure, model) and its group labels are left missing, with a
    :class:`DataWarning`.

    The importer checks the format, not plausibility (negative SDs, more
    events than participants): that is the job of the validation step.

    References
    ----------
    Review Manager (RevMan) [Computer program]. Version 5.4. The Cochrane
    Collaboration, 2020.

    Examples
    --------
    A (reduced) CSV export with one dichotomous outcome:

    >>> import pathlib, tempfile
    >>> from ketabayes.data.revman import read_revman, split_analyses
    >>> text = (
    ...     "Comparison Number,Outcome Number,Subgroup Number,Name,Data Type,"
    ...     "Effect Measure,Events 1,Total 1,Events 2,Total 2,Year of study\n"
    ...     "1,0,0,Drug X versus placebo,,,,,,,\n"
    ...     "1,1,0,Death,DIC,RR,,,,,\n"
    ...     "1,1,0,Alpha 2001,,,12,25,5,24,2001\n"
    ...     "1,1,0,Beta 2005,,,9,30,4,30,2005\n"
    ... )
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "export.csv"
    >>> _ = path.write_text(text, encoding="utf-8")
    >>> df = read_revman(path)
    >>> df[["outcome", "study", "year", "ai", "n1i", "ci", "n2i"]]
      outcome       study  year  ai  n1i  ci  n2i
    0   Death  Alpha 2001  2001  12   25   5   24
    1   Death   Beta 2005  2005   9   30   4   30
    >>> [(a.outcome, a.measure, len(data)) for a, data in split_analyses(df)]
    [('Death', 'RR', 2)]
    """
    path = Path(path)
    raw = path.read_bytes()
    name = path.name
    notes: list[str] = []

    body = raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw
    if not body.strip():
        raise RevManError(f"{name}: the file is empty")

    rob = None
    if _looks_like_xml(raw):
        records, attrs, root = _read_rm5(raw, name, encoding, notes)
        fmt = "rm5"
        if risk_of_bias:
            rob = _rob_columns(root, name, notes)
    elif path.suffix.lower() in (".rm5", ".xml"):
        start = body.lstrip()[:40].decode("latin-1")
        raise RevManError(
            f"{name}: not an XML file (a RevMan 5 .rm5 file starts with '<?xml'); "
            f"it starts with {start!r}"
        )
    else:
        if risk_of_bias:
            raise RevManError(f"{name}: risk-of-bias judgements are read from RevMan 5 review files (.rm5) only; "
                              "a 'Data and analyses' CSV export does not hold them")
        records, attrs = _read_csv(raw, name, encoding, notes)
        fmt = "csv"

    if not records and not notes:
        notes.append(f"{name}: no study-level analysis data found")
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=2)

    df = _frame(records)
    if rob is not None:
        merged = df[[TRIAL_COL]].merge(rob.drop(columns=STUDY_COL), on=TRIAL_COL, how="left")
        for col in rob.columns[2:]:
            df[col] = merged[col].to_numpy(dtype=object)
        attrs.update({"risk_of_bias": rob.attrs["risk_of_bias"], "rob_domains": rob.attrs["rob_domains"]})
    df.attrs.update({"source_file": name, "source_path": str(path), "format": fmt, **attrs})
    repeated = find_repeated_trials(df)
    if repeated:
        warnings.warn(repeated_trials_message(repeated, name), DataWarning, stacklevel=2)
    return df


def split_analyses(
    df: pd.DataFrame, *, by_subgroup: bool = False
) -> Iterator[tuple[Analysis, pd.DataFrame]]:
    """Iterate over the meta-analyses in a table from :func:`read_revman`.

    Parameters
    ----------
    df : pandas.DataFrame
        The output of :func:`read_revman` (or a row subset of it).
    by_subgroup : bool, default False
        If False, yield one table per outcome (RevMan's overall analysis) and
        keep ``subgroup_no``/``subgroup`` as columns when the outcome has
        subgroups. If True, yield one table per subgroup.

    Yields
    ------
    analysis : Analysis
        Comparison, outcome, subgroup, data type, RevMan's effect measure and
        the ``measure`` to pass to the effect-size step (``"GEN"`` for generic
        inverse-variance outcomes).
    data : pandas.DataFrame
        ``study``, ``trial_id``, ``year`` (and the subgroup columns, see above) and only the
        data columns of the analysis' data type (:data:`DATA_COLUMNS`; for
        generic outcomes ``n1i``/``n2i`` only when given) and the ``rob_``
        risk-of-bias columns when ``df`` has them, with a fresh index.
        ``data.attrs`` holds the file attributes and the fields of
        ``analysis``.

    Raises
    ------
    DataError
        If ``df`` lacks columns that :func:`read_revman` provides.

    Warns
    -----
    DataWarning
        When a yielded analysis holds one trial (``trial_id``) in more than
        one row, naming the trial and its rows; with ``by_subgroup=True``
        only repeats within a subgroup count. See
        :func:`~ketabayes.data.revman_trials.revman_contrasts` for turning arms
        that share a control group into correlated contrasts.

    Examples
    --------
    >>> from ketabayes.data.effect_sizes import effect_sizes               # doctest: +SKIP
    >>> for analysis, data in split_analyses(read_revman("review.rm5")):  # doctest: +SKIP
    ...     if analysis.measure is not None:
    ...         es = effect_sizes(data, analysis.measure)
    """
    needed = ["comparison_no", "outcome_no", "subgroup_no", "data_type", STUDY_COL, "year"]
    missing = [c for c in needed if c not in df.columns]
    if missing:
        raise DataError(
            f"split_analyses needs the table returned by read_revman; missing {missing}",
            column=missing[0],
        )
    keys = ["comparison_no", "outcome_no"] + (["subgroup_no"] if by_subgroup else [])
    for _, group in df.groupby(keys, sort=False, dropna=False):
        first = group.iloc[0]
        data_type = str(first["data_type"])
        cols = [STUDY_COL] + ([TRIAL_COL] if TRIAL_COL in group.columns else []) + ["year"]
        has_subgroups = bool(group["subgroup_no"].notna().any())
        if has_subgroups and not by_subgroup:
            cols += ["subgroup_no", "subgroup"]
        for col in DATA_COLUMNS[data_type]:
            if data_type == "generic" and col in ("n1i", "n2i") and group[col].isna().all():
                continue
            cols.append(col)
        cols += [c for c in df.columns if str(c).startswith("rob_")]  # risk-of-bias judgements travel along
        measure = _none_if_na(first.get("effect_measure"))
        analysis = Analysis(
            comparison_no=int(first["comparison_no"]),
            comparison=_none_if_na(first.get("comparison")),
            outcome_no=int(first["outcome_no"]),
            outcome=_none_if_na(first.get("outcome")),
            subgroup_no=int(first["subgroup_no"]) if by_subgroup and has_subgroups else None,
            subgroup=_none_if_na(first.get("subgroup")) if by_subgroup else None,
            data_type=data_type,
            effect_measure=measure,
            measure="GEN" if data_type == "generic" else (
                measure if measure in _ESCALC_MEASURES else None
            ),
        )
        data = group[cols].reset_index(drop=True)
        data.attrs = {**df.attrs, **analysis._asdict()}
        repeated = find_repeated_trials(data) if TRIAL_COL in data.columns else []
        if repeated:
            where = f"{df.attrs.get('source_file', 'RevMan table')}, outcome {analysis.comparison_no}." \
                    f"{analysis.outcome_no} {analysis.outcome!r}" + (
                        f", subgroup {analysis.subgroup!r}" if analysis.subgroup_no is not None else "")
            warnings.warn(repeated_trials_message(repeated, where), DataWarning, stacklevel=2)
        yield analysis, data


# ---------------------------------------------------------------------------
# helpers shared by both formats
# ---------------------------------------------------------------------------


def _none_if_na(value):
    return None if value is None or pd.isna(value) else value


def _frame(records: list[dict]) -> pd.DataFrame:
    columns = {}
    for col, dtype in _DTYPES.items():
        values = [r.get(col) for r in records]
        if dtype == "float64":
            columns[col] = np.array([np.nan if v is None else v for v in values], dtype=float)
        else:
            columns[col] = pd.array(values, dtype=dtype)
    return pd.DataFrame(columns)


def _looks_like_xml(raw: bytes) -> bool:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        head = raw[:2048].decode("utf-16", errors="ignore")
    else:
        if raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8):]
        head = raw[:2048].decode("latin-1")
    return head.lstrip("\ufeff \t\r\n").startswith("<")


def _decode_study_id(study_id: str) -> str:
    """Study label from a RevMan study ID: ``STD-Gamma_x002d_A-2010`` -> ``Gamma-A 2010``."""
    label = study_id[4:] if study_id.startswith("STD-") else study_id
    label = label.replace("-", " ")
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), label)


# ---------------------------------------------------------------------------
# RevMan 5 review file (.rm5, XML)
# ---------------------------------------------------------------------------


def _read_rm5(raw: bytes, name: str, encoding: str | None, notes: list[str]):
    root = parse_review(raw, name, encoding, notes)

    studies: dict[str, tuple[str | None, int | None]] = {}
    for study in root.iter("STUDY"):
        sid = study.get("ID")
        if sid:
            studies[sid] = (_text(study.get("NAME")), _year(study.get("YEAR")))

    attrs = {}
    title = _text(root.findtext("COVER_SHEET/TITLE"))
    if title:
        attrs["title"] = title

    records: list[dict] = []
    unknown: dict[str, str] = {}
    unsupported: list[str] = []
    analyses = root.find("ANALYSES_AND_DATA")
    comparisons = [] if analyses is None else analyses.findall("COMPARISON")
    for k, comparison in enumerate(comparisons, start=1):
        cno = _number(
            comparison.get("NO"), where=f"{name}: <COMPARISON> #{k}",
            field="attribute NO", integer=True,
        )
        cname = _text(comparison.findtext("NAME"))
        for outcome in comparison:
            if not outcome.tag.endswith("_OUTCOME"):
                continue
            kind = outcome.tag[: -len("_OUTCOME")]
            ono_text = outcome.get("NO", "?")
            if kind not in _XML_TYPES:
                unsupported.append(
                    f"{cno}.{ono_text} {_text(outcome.findtext('NAME'))!r} (<{outcome.tag}>)"
                )
                continue
            records.extend(
                _rm5_outcome(outcome, kind, cno, cname, name, studies, unknown, notes)
            )

    if unknown:
        listed = "; ".join(f"{sid!r} (imported as {label!r})" for sid, label in unknown.items())
        notes.append(
            f"{name}: {len(unknown)} STUDY_ID(s) used in analyses are not in the review's "
            f"list of studies; the rows were kept with labels decoded from the ID: {listed}"
        )
    if unsupported:
        notes.append(
            f"{name}: skipped outcome(s) of a type ketabayes does not import "
            f"(only continuous, dichotomous and generic inverse variance): "
            + "; ".join(unsupported)
        )
    return records, attrs, root


def _rob_columns(root, name: str, notes: list[str]) -> pd.DataFrame | None:
    from ketabayes.data.revman_rob import rob_from_root, rob_wide

    studies = {s.get("ID"): _text(s.get("NAME")) or _decode_study_id(s.get("ID") or "") for s in root.iter("STUDY")}
    rob = rob_from_root(root, name, studies)
    if rob.empty:
        notes.append(f"{name}: risk_of_bias=True, but the review has no risk-of-bias judgements "
                     "(<QUALITY_ITEM> entries); no rob_ columns added")
        return None
    return rob_wide(rob)


def _rm5_outcome(outcome, kind, cno, cname, name, studies, unknown, notes) -> list[dict]:
    data_type = _XML_TYPES[kind]
    oname = _text(outcome.findtext("NAME"))
    where = f"{name}: <{outcome.tag}> in comparison {cno}"
    ono = _number(outcome.get("NO"), where=where, field="attribute NO", integer=True)
    where = f"{name}: outcome {cno}.{ono} {oname!r} (<{outcome.tag}>)"

    measure = _text(outcome.get("EFFECT_MEASURE"))
    if measure is None:
        spelled = _text(outcome.findtext("EFFECT_MEASURE"))
        measure = _MEASURE_NAMES.get(spelled.lower(), spelled) if spelled else None
    random = {"YES": True, "NO": False}.get((outcome.get("RANDOM") or "").upper())
    common = {
        "comparison_no": cno,
        "comparison": cname,
        "outcome_no": ono,
        "outcome": oname,
        "data_type": data_type,
        "effect_measure": measure,
        "method": _text(outcome.get("METHOD")),
        "random": random,
        "group_label_1": _text(outcome.findtext("GROUP_LABEL_1")),
        "group_label_2": _text(outcome.findtext("GROUP_LABEL_2")),
    }
    if data_type == "generic" and measure in _RATIO_MEASURES:
        log_data = outcome.get("LOG_DATA")
        extra = f" (LOG_DATA={log_data!r})" if log_data is not None else ""
        notes.append(_ratio_note(where, measure, extra))

    # (subgroup number, subgroup name, where, data elements)
    blocks = [(None, None, where, outcome.findall(f"{kind}_DATA"))]
    for subgroup in outcome.findall(f"{kind}_SUBGROUP"):
        sname = _text(subgroup.findtext("NAME"))
        sno = _number(
            subgroup.get("NO"), where=f"{where}, <{subgroup.tag}> {sname!r}",
            field="attribute NO", integer=True,
        )
        blocks.append(
            (sno, sname, f"{where}, subgroup {cno}.{ono}.{sno} {sname!r}",
             subgroup.findall(f"{kind}_DATA"))
        )

    records = []
    for sno, sname, block_where, elements in blocks:
        for i, element in enumerate(elements, start=1):
            sid = element.get("STUDY_ID")
            if not sid:
                raise RevManError(
                    f"{block_where}, <{element.tag}> #{i}: required attribute STUDY_ID is missing"
                )
            if sid in studies:
                label, year = studies[sid]
                label = label or _decode_study_id(sid)
            else:
                label = _decode_study_id(sid)
                tail = _YEAR_AT_END.search(label)
                year = int(tail.group(1)) if tail else None
                unknown[sid] = label
            row_where = f"{block_where}, <{element.tag}> #{i} (study {label!r}, STUDY_ID {sid!r})"
            record = {**common, "subgroup_no": sno, "subgroup": sname,
                      STUDY_COL: label, TRIAL_COL: sid, "year": year}
            for col, attr, _csv, integer, required in _FIELDS[data_type]:
                record[col] = _number(
                    element.get(attr), where=row_where,
                    field=f"{'required ' if required else ''}attribute {attr}",
                    integer=integer, required=required,
                )
            records.append(record)
    return records


# ---------------------------------------------------------------------------
