"""Risk-of-bias judgements from a RevMan 5 review file (RoB 1).

A RevMan 5 file (``.rm5``) stores the review's "Risk of bias" tables as ``<QUALITY_ITEM>``
elements under ``<QUALITY_ITEMS>``: one item per domain (its ``<NAME>``, e.g. "Allocation
concealment (selection bias)"), with one ``<QUALITY_ITEM_DATA_ENTRY STUDY_ID=... RESULT=...>`` per
judged trial. Items with ``LEVEL="GROUP"`` (e.g. blinding of outcome assessment) are judged per
outcome group: ``<QUALITY_ITEM_DATA_ENTRY_GROUP ID=...><NAME>`` lists the groups and each entry's
``GROUP_ID`` names its group. ``RESULT`` is ``YES`` (low risk), ``NO`` (high risk) or
``UNKNOWN`` (unclear risk): RevMan 5 keeps the codes of its earlier "adequate?" questions and shows
them as low / high / unclear. This is the RoB 1 tool (Higgins et al. 2011).

RoB 2 judgements are never in an ``.rm5`` file: RevMan 5 does not support RoB 2, and a RevMan Web
review switched to RoB 2 can no longer be checked out into RevMan 5 (Cochrane, "Risk of Bias 2 in
RevMan Web", RevMan knowledge base). ketabayes reads no RevMan Web format; RoB 2 judgements enter
as columns of a table, checked by :func:`~ketabayes.data.risk_of_bias.check_risk_of_bias`.

:func:`read_revman_rob` returns the judgements as a long table (one row per trial x domain
[x outcome group]) and :func:`rob_wide` as one row per trial with one column per domain
(``rob_<domain>``), ready to merge with an analysis on ``trial_id``;
``read_revman(path, risk_of_bias=True)`` does the merge.

References:

* Higgins JPT, Altman DG, Gøtzsche PC, et al. (2011). The Cochrane Collaboration's tool for
  assessing risk of bias in randomised trials. BMJ 343:d5928. doi:10.1136/bmj.d5928
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import pandas as pd

from ketabayes.data._xml_guard import parse_review
from ketabayes.data.risk_of_bias import ROB1_DOMAINS
from ketabayes.dims import STUDY_COL
from ketabayes.errors import DataWarning, RevManError

__all__ = ["read_revman_rob", "rob_wide", "ROB_COLUMNS"]

#: columns of the long table of :func:`read_revman_rob`
ROB_COLUMNS = ("trial_id", STUDY_COL, "tool", "domain_key", "domain", "group", "judgement", "support")

#: RevMan 5's stored RESULT codes -> RoB 1 judgement
_RESULTS = {"YES": "low", "NO": "high", "UNKNOWN": "unclear"}
_KEYS = {name.lower(): key for key, name in ROB1_DOMAINS.items()}


def _text(el) -> str | None:
    if el is None:
        return None
    text = " ".join(" ".join(el.itertext()).split())
    return text or None


def _domain_key(name: str) -> str:
    key = _KEYS.get(" ".join(name.lower().split()))
    return key or re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


def rob_from_root(root, name: str, studies: dict[str, str]) -> pd.DataFrame:
    """The long risk-of-bias table of a parsed review (see :func:`read_revman_rob`)."""
    rows = []
    for k, item in enumerate(root.findall(".//QUALITY_ITEMS/QUALITY_ITEM"), start=1):
        domain = _text(item.find("NAME")) or f"item {item.get('ID') or k}"
        groups = {g.get("ID"): _text(g.find("NAME")) for g in item.findall("QUALITY_ITEM_DATA_ENTRY_GROUP")}
        grouped = (item.get("LEVEL") or "").upper() == "GROUP"
        for entry in item.findall("QUALITY_ITEM_DATA/QUALITY_ITEM_DATA_ENTRY"):
            sid = entry.get("STUDY_ID")
            where = f"{name}: risk-of-bias item {domain!r}"
            if not sid:
                raise RevManError(f"{where}: an entry without STUDY_ID")
            study = studies.get(sid, sid)
            code = (entry.get("RESULT") or "").strip().upper()
            if code not in _RESULTS:
                raise RevManError(f"{where}, study {study!r} (STUDY_ID {sid!r}): RESULT={entry.get('RESULT')!r} "
                                  "is not a RevMan 5 judgement code (YES = low, NO = high, UNKNOWN = unclear risk)")
            group = None
            if grouped:
                gid = entry.get("GROUP_ID")
                if gid not in groups:
                    raise RevManError(f"{where}, study {study!r}: GROUP_ID={gid!r} is not one of the item's outcome "
                                      f"groups ({', '.join(map(repr, groups)) or 'none'})")
                group = groups[gid] or gid
            rows.append({"trial_id": sid, STUDY_COL: study, "tool": "RoB 1", "domain_key": _domain_key(domain),
                         "domain": domain, "group": group, "judgement": _RESULTS[code],
                         "support": _text(entry.find("DESCRIPTION"))})
    return pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=object) for c in ROB_COLUMNS})


def read_revman_rob(path: str | os.PathLike[str], *, encoding: str | None = None) -> pd.DataFrame:
    """Read the risk-of-bias (RoB 1) judgements of a RevMan 5 review file.

    Parameters
    ----------
    path : str or path-like
        A RevMan 5 review file (``.rm5``). A "Data and analyses" CSV export holds no judgements.
    encoding : str, optional
        As :func:`~ketabayes.data.revman.read_revman`.

    Returns
    -------
    pandas.DataFrame
        One row per trial x domain (x outcome group for group-level items), in file order:
        ``trial_id`` (RevMan's ``STUDY_ID``), ``study``, ``tool`` (``"RoB 1"``), ``domain_key``
        (``"allocation_concealment"``, ... for RevMan's default domain names, else the name in
        lower case with ``_``), ``domain`` (the item's name in the file), ``group`` (outcome group
        or None), ``judgement`` (``"low"``, ``"unclear"``, ``"high"``) and ``support`` (the
        review authors' text). Empty when the review has no risk-of-bias tables (with a warning).

    Raises
    ------
    RevManError
        Not a RevMan 5 XML file, an entry without ``STUDY_ID``, an unknown ``RESULT`` code, an
        unknown ``GROUP_ID``; naming the file, the item and the study.

    Examples
    --------
    >>> rob = read_revman_rob("review.rm5")                                  # doctest: +SKIP
    >>> rob_wide(rob)[["study", "rob_allocation_concealment"]]               # doctest: +SKIP
    """
    path = Path(path)
    raw = path.read_bytes()
    if not raw.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise RevManError(f"{path.name}: risk-of-bias judgements are read from RevMan 5 review files (.rm5, XML) "
                          "only; a 'Data and analyses' CSV export does not hold them")
    notes: list[str] = []
    root = parse_review(raw, path.name, encoding, notes)
    studies = {s.get("ID"): (" ".join((s.get("NAME") or "").split()) or s.get("ID")) for s in root.iter("STUDY")}
    out = rob_from_root(root, path.name, studies)
    if out.empty:
        notes.append(f"{path.name}: the review has no risk-of-bias judgements (<QUALITY_ITEM> entries)")
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=2)
    out.attrs.update({"source_file": path.name, "tool": "RoB 1"})
    return out


def rob_wide(rob: pd.DataFrame) -> pd.DataFrame:
    """One row per trial, one column per domain: ``rob_<domain_key>`` (``rob_<domain_key>[<group>]``).

    Parameters
    ----------
    rob : pandas.DataFrame
        The long table of :func:`read_revman_rob`.

    Returns
    -------
    pandas.DataFrame
        ``trial_id``, ``study`` and the judgement columns (missing where a trial was not judged);
        ``attrs["risk_of_bias"]`` maps every column to its tool (``"RoB 1"``) and
        ``attrs["rob_domains"]`` to its domain name and outcome group.
    """
    cols: dict[str, tuple[str, str | None]] = {}
    data: dict[str, dict[str, str]] = {}
    names: dict[str, str] = {}
    for r in rob.itertuples(index=False):
        group = r.group if isinstance(r.group, str) else None
        col = f"rob_{r.domain_key}" + (f"[{group}]" if group is not None else "")
        cols.setdefault(col, (r.domain, group))
        names.setdefault(r.trial_id, getattr(r, STUDY_COL))
        data.setdefault(r.trial_id, {})[col] = r.judgement
    out = pd.DataFrame([{"trial_id": t, STUDY_COL: names[t], **{c: data[t].get(c) for c in cols}} for t in data],
                       columns=["trial_id", STUDY_COL, *cols])
    out.attrs["risk_of_bias"] = {c: "RoB 1" for c in cols}
    out.attrs["rob_domains"] = {c: {"domain": d, "group": g} for c, (d, g) in cols.items()}
    return out
