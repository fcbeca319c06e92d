"""Pieces shared by the two RevMan 5 readers (:mod:`ketabayes.data.revman`, :mod:`ketabayes.data._revman_csv`).

The data fields of each data type with their XML attribute and CSV column names, and the parsing of one
number, year or text cell with errors that name the file, the row and the field.
"""

from __future__ import annotations

import math
import re

from ketabayes.errors import RevManError

_RATIO_MEASURES = {"OR", "PETO_OR", "RR", "HR"}
_MAX_COUNT = 2**53  # the largest whole number a float64 holds exactly (2^63 would overflow Int64)
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d*)?")
_YEAR = re.compile(r"\s*(\d{4})")

# (metafor column, XML attribute, CSV column, integer?, required?) per data type
_FIELDS: dict[str, tuple[tuple[str, str, str, bool, bool], ...]] = {
    "continuous": (
        ("m1i", "MEAN_1", "Mean 1", False, True),
        ("sd1i", "SD_1", "SD 1", False, True),
        ("n1i", "TOTAL_1", "Total 1", True, True),
        ("m2i", "MEAN_2", "Mean 2", False, True),
        ("sd2i", "SD_2", "SD 2", False, True),
        ("n2i", "TOTAL_2", "Total 2", True, True),
    ),
    "dichotomous": (
        ("ai", "EVENTS_1", "Events 1", True, True),
        ("n1i", "TOTAL_1", "Total 1", True, True),
        ("ci", "EVENTS_2", "Events 2", True, True),
        ("n2i", "TOTAL_2", "Total 2", True, True),
    ),
    "generic": (
        ("yi", "EFFECT_SIZE", "Effect Estimate", False, True),
        ("sei", "SE", "SE", False, True),
        ("n1i", "TOTAL_1", "Total 1", True, False),
        ("n2i", "TOTAL_2", "Total 2", True, False),
    ),
}


def _number(text: str | None, *, where: str, field: str, integer: bool, required: bool = True):
    """Parse one number; raise RevManError naming ``where`` and ``field``."""
    if text is None or not text.strip():
        if required:
            raise RevManError(f"{where}: {field} is missing")
        return None
    s = text.strip()
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    try:
        value = float(s)
    except ValueError:
        raise RevManError(f"{where}: {field} = {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RevManError(f"{where}: {field} = {text!r} is not a finite number")
    if integer:
        if not value.is_integer():
            raise RevManError(f"{where}: {field} = {text!r} is not a whole number")
        if abs(value) >= _MAX_COUNT:
            raise RevManError(f"{where}: {field} = {text!r} is too large for a count (overflow; counts must be "
                              f"below 2^53 = {_MAX_COUNT:,})")
        return int(value)
    return value


def _year(text: str | None) -> int | None:
    match = _YEAR.match(text or "")
    return int(match.group(1)) if match else None


def _text(value: str | None) -> str | None:
    if value is None:
        return None
    value = " ".join(value.split())
    return value or None

def _ratio_note(where: str, measure: str, extra: str = "") -> str:
    return (
        f"{where}: generic inverse-variance outcome with ratio measure {measure}; "
        f"yi is taken as stored in the file{extra}. RevMan may store the ratio or its "
        f"logarithm depending on how the data were entered: check that yi is a log "
        f"{measure} before pooling"
    )
