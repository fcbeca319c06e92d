"""The RevMan 5 "Data and analyses" CSV export (File > Export > Data and analyses), parsed with :mod:`csv`.

Used by :func:`ketabayes.data.revman.read_revman`; returns the same records as the ``.rm5`` reader.
"""

from __future__ import annotations

import csv
import io

from ketabayes.data._revman_common import _FIELDS, _RATIO_MEASURES, _number, _ratio_note, _text, _year
from ketabayes.data.revman_trials import TRIAL_COL
from ketabayes.dims import STUDY_COL
from ketabayes.errors import RevManError

# CSV "Data Type" code -> data type
_CSV_TYPES = {"CON": "continuous", "DIC": "dichotomous", "IV": "generic", "GIV": "generic"}

_CSV_REQUIRED = ("Comparison Number", "Outcome Number", "Subgroup Number", "Name", "Data Type")


def _read_csv(raw: bytes, name: str, encoding: str | None, notes: list[str]):
    enc = encoding or "utf-8-sig"
    try:
        text = raw.decode(enc)
    except LookupError as exc:
        raise RevManError(f"{name}: {exc}") from None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise RevManError(
            f"{name}, line {line}: cannot be decoded as {enc} ({exc.reason}); "
            f"pass the file's encoding, e.g. encoding='cp1252'"
        ) from None
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))

    header: list[str] | None = None
    for row in reader:
        if any(cell.strip() for cell in row):
            header = [cell.strip().lstrip("\ufeff") for cell in row]
            break
    if header is None:  # pragma: no cover - an empty file is caught earlier
        raise RevManError(f"{name}: the file is empty")
    header_line = reader.line_num
    missing = [c for c in _CSV_REQUIRED if c not in header]
    if missing:
        hint = ""
        if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            hint = " The file seems to use ';' or tabs as separator; RevMan 5 writes commas."
        raise RevManError(
            f"{name}, line {header_line}: the header lacks the column(s) "
            f"{', '.join(map(repr, missing))} of a RevMan 5 'Data and analyses' export "
            f"(found {header[:8]}{'...' if len(header) > 8 else ''}). Export again "
            f"with these fields selected.{hint}"
        )
    index = {col: i for i, col in enumerate(header)}

    comparisons: dict[int, str | None] = {}
    outcomes: dict[tuple[int, int], dict] = {}
    subgroups: dict[tuple[int, int, int], str | None] = {}
    unsupported: list[str] = []
    records: list[dict] = []

    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        line = reader.line_num
        where = f"{name}, line {line}"
        raw_row = row
        misaligned = len(row) != len(header)
        if misaligned:
            row = (row + [""] * len(header))[: len(header)]

        def cell(col: str, row=row) -> str:
            return row[index[col]].strip() if col in index else ""

        nums = [
            _number(cell(col), where=where, field=f"column {col!r}", integer=True)
            for col in ("Comparison Number", "Outcome Number", "Subgroup Number")
        ]
        cno, ono, sno = nums
        label = _text(cell("Name"))
        code = cell("Data Type")

        if ono == 0:  # comparison header
            comparisons[cno] = label
            continue
        if code:  # outcome or subgroup header
            if misaligned and code.upper() not in _CSV_TYPES:
                raise RevManError(
                    f"{where}: row {label!r} has {len(raw_row)} fields but the header line "
                    f"has {len(header)}, and its Data Type field holds {code!r}: its values "
                    f"cannot be matched to columns"
                )
            if misaligned:
                # The leading fields (numbers, name, type, method, measure, model) come
                # first in RevMan's column order; the group labels near the end of the
                # row cannot be placed when a field is missing or extra.
                notes.append(
                    f"{where}: header row {label!r} has {len(raw_row)} fields but the "
                    f"header line has {len(header)}; its group labels cannot be placed "
                    f"reliably and are left missing"
                )
            if sno == 0:
                if cno not in comparisons:
                    raise RevManError(
                        f"{where}: outcome {cno}.{ono} {label!r} comes before the header row "
                        f"of comparison {cno} (Outcome Number 0)"
                    )
                if (cno, ono) in outcomes:
                    raise RevManError(
                        f"{where}: a second header row for outcome {cno}.{ono} ({label!r})"
                    )
                data_type = _CSV_TYPES.get(code.upper())
                measure = _text(cell("Effect Measure"))
                outcomes[(cno, ono)] = {
                    "comparison_no": cno,
                    "comparison": comparisons[cno],
                    "outcome_no": ono,
                    "outcome": label,
                    "data_type": data_type,
                    "effect_measure": measure,
                    "method": _text(cell("Statistical Method")),
                    "random": {"RANDOM": True, "FIXED": False}.get(cell("Analysis Model").upper()),
                    "group_label_1": None if misaligned else _text(cell("Group Label 1")),
                    "group_label_2": None if misaligned else _text(cell("Group Label 2")),
                }
                if data_type is None:
                    unsupported.append(f"{cno}.{ono} {label!r} (Data Type {code!r}, line {line})")
                elif data_type == "generic" and measure in _RATIO_MEASURES:
                    notes.append(_ratio_note(f"{where}: outcome {cno}.{ono} {label!r}", measure))
            else:
                if (cno, ono) not in outcomes:
                    raise RevManError(
                        f"{where}: subgroup {cno}.{ono}.{sno} {label!r} comes before the header "
                        f"row of outcome {cno}.{ono}"
                    )
                if (cno, ono, sno) in subgroups:
                    raise RevManError(
                        f"{where}: a second header row for subgroup {cno}.{ono}.{sno} ({label!r})"
                    )
                subgroups[(cno, ono, sno)] = label
            continue

        # study row
        if misaligned:
            raise RevManError(
                f"{where}: study row {label!r} has {len(raw_row)} fields but the header line "
                f"has {len(header)}, so its values cannot be matched to columns (a 'Risk of "
                f"bias tables' field in the export, or an unquoted comma in a name?)"
            )
        if (cno, ono) not in outcomes:
            raise RevManError(
                f"{where}: study row {label!r} comes before any header row of outcome "
                f"{cno}.{ono} (a row with its Name and Data Type)"
            )
        if sno != 0 and (cno, ono, sno) not in subgroups:
            raise RevManError(
                f"{where}: study row {label!r} comes before the header row of subgroup "
                f"{cno}.{ono}.{sno}"
            )
        outcome = outcomes[(cno, ono)]
        data_type = outcome["data_type"]
        if data_type is None:
            continue
        row_where = f"{where} (outcome {cno}.{ono}, study {label!r})"
        record = {
            **outcome,
            "subgroup_no": sno or None,
            "subgroup": subgroups.get((cno, ono, sno)),
            STUDY_COL: label,
            TRIAL_COL: label,
            "year": _year(cell("Year of study")),
        }
        for col, _attr, csv_col, integer, required in _FIELDS[data_type]:
            if csv_col not in index:
                if not required:
                    continue
                raise RevManError(
                    f"{row_where}: the header lacks column {csv_col!r}, needed for "
                    f"{data_type} outcomes"
                )
            record[col] = _number(
                cell(csv_col), where=row_where, field=f"value in column {csv_col!r}",
                integer=integer, required=required,
            )
        records.append(record)

    if unsupported:
        notes.append(
            f"{name}: skipped outcome(s) of a type ketabayes does not import "
            f"(only CON, DIC and IV data): " + "; ".join(unsupported)
        )
    return records, {}
