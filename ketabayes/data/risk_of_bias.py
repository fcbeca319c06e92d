"""Risk-of-bias judgements as data: RoB 1 and RoB 2 columns, checked and normalised.

A risk-of-bias column holds one judgement per trial, for one domain or overall:

* **RoB 2** (Sterne et al. 2019): ``"low"``, ``"some concerns"``, ``"high"``; five domains
  (:data:`ROB2_DOMAINS`) and an overall judgement;
* **RoB 1** (Higgins et al. 2011; the tool of RevMan 5): ``"low"``, ``"unclear"``, ``"high"``;
  seven domains (:data:`ROB1_DOMAINS`).

:func:`check_risk_of_bias` returns a copy of the table with the named columns normalised to
these spellings (``"Low risk"``, ``"LOW"``, ``"low risk of bias"`` -> ``"low"``; ``"Some
concerns"`` -> ``"some concerns"``; RevMan 5's stored codes ``YES`` / ``NO`` / ``UNKNOWN`` ->
``"low"`` / ``"high"`` / ``"unclear"``), and records the tool of every column in
``attrs["risk_of_bias"]``. Anything else -- a typo, a ROBINS-I level such as ``"serious"``, a mix of
RoB 1 and RoB 2 levels in one column -- is a :class:`~ketabayes.errors.DataError` naming the study
and the column. Missing judgements are errors unless ``missing="keep"``.

References:

* Higgins JPT, Altman DG, Gøtzsche PC, et al. (2011). The Cochrane Collaboration's tool for
  assessing risk of bias in randomised trials. BMJ 343:d5928. doi:10.1136/bmj.d5928
* Sterne JAC, Savović J, Page MJ, et al. (2019). RoB 2: a revised tool for assessing risk of bias
  in randomised trials. BMJ 366:l4898. doi:10.1136/bmj.l4898
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

from ketabayes.data.validation import _is_blank, _listing, _others, as_dataframe, require_column, study_labels
from ketabayes.dims import STUDY_COL
from ketabayes.errors import DataError

__all__ = ["ROB1_LEVELS", "ROB2_LEVELS", "ROB1_DOMAINS", "ROB2_DOMAINS", "normalise_judgements",
           "check_risk_of_bias"]

#: judgements of RoB 1 (Higgins et al. 2011), least to most concerning
ROB1_LEVELS = ("low", "unclear", "high")
#: judgements of RoB 2 (Sterne et al. 2019), least to most concerning
ROB2_LEVELS = ("low", "some concerns", "high")

#: the domains of RoB 1 (Higgins et al. 2011, Table 2) with RevMan 5's default item names
ROB1_DOMAINS = {
    "sequence_generation": "Random sequence generation (selection bias)",
    "allocation_concealment": "Allocation concealment (selection bias)",
    "blinding_participants_personnel": "Blinding of participants and personnel (performance bias)",
    "blinding_outcome_assessment": "Blinding of outcome assessment (detection bias)",
    "incomplete_outcome_data": "Incomplete outcome data (attrition bias)",
    "selective_reporting": "Selective reporting (reporting bias)",
    "other": "Other bias",
}
#: the domains of RoB 2 (Sterne et al. 2019) and the overall judgement
ROB2_DOMAINS = {
    "randomization": "Bias arising from the randomization process",
    "deviations": "Bias due to deviations from intended interventions",
    "missing_data": "Bias due to missing outcome data",
    "measurement": "Bias in measurement of the outcome",
    "selection_of_result": "Bias in selection of the reported result",
    "overall": "Overall risk of bias",
}

# accepted spellings (after lower-casing and collapsing spaces, '_' and '-') -> level
_SPELLINGS = {
    "low": "low", "low risk": "low", "low risk of bias": "low", "yes": "low",
    "high": "high", "high risk": "high", "high risk of bias": "high", "no": "high",
    "unclear": "unclear", "unclear risk": "unclear", "unclear risk of bias": "unclear", "unknown": "unclear",
    "some concerns": "some concerns", "some concern": "some concerns",
}
_TOOLS = {"RoB 1": ROB1_LEVELS, "RoB 2": ROB2_LEVELS}


def _key(x: object) -> str:
    return re.sub(r"[\s_\-]+", " ", str(x).strip().lower())


def _tool_name(tool: str | None) -> str | None:
    if tool is None:
        return None
    names = {"rob1": "RoB 1", "rob 1": "RoB 1", "rob2": "RoB 2", "rob 2": "RoB 2"}
    name = names.get(_key(tool))
    if name is None:
        raise DataError(f"tool must be 'RoB 1', 'RoB 2' or None (inferred), got {tool!r}")
    return name


def normalise_judgements(values: Sequence[object], labels: Sequence[str], column: Hashable, *,
                         tool: str | None = None, missing: str = "error") -> tuple[list, str | None]:
    """Normalised judgements of one column and the tool they belong to.

    Parameters
    ----------
    values : sequence
        One judgement per study (any accepted spelling; see the module docstring).
    labels : sequence of str
        Study labels in the same order (named in errors).
    column : hashable
        The column (named in errors).
    tool : {"RoB 1", "RoB 2", None}
        Expected tool; ``None``: inferred (``"unclear"`` means RoB 1, ``"some concerns"`` RoB 2;
        a column of only ``"low"`` / ``"high"`` fits both and its tool stays ``None``).
    missing : {"error", "keep"}
        A missing judgement is an error, or kept as ``None``.

    Returns
    -------
    (list, str or None)
        The normalised judgements (``None`` where missing and kept) and the tool.

    Raises
    ------
    DataError
        Naming the first study and the column: an unknown judgement (with the accepted ones), a level
        of the other tool, RoB 1 and RoB 2 levels mixed, or a missing judgement.

    Examples
    --------
    >>> normalise_judgements(["Low risk", "HIGH", "some-concerns"], ["A", "B", "C"], "overall")
    (['low', 'high', 'some concerns'], 'RoB 2')
    """
    if missing not in ("error", "keep"):
        raise DataError(f"missing must be 'error' or 'keep', got {missing!r}")
    tool = _tool_name(tool)
    out: list = []
    bad, blank = [], []
    for i, x in enumerate(values):
        if _is_blank(x):
            blank.append(i)
            out.append(None)
            continue
        level = _SPELLINGS.get(_key(x))
        if level is None:
            bad.append(i)
        out.append(level)
    col = str(column)
    if bad:
        allowed = "; ".join(f"{name}: {', '.join(repr(v) for v in levels)}" for name, levels in _TOOLS.items())
        raise DataError(f"unknown risk-of-bias judgement {values[bad[0]]!r}{_others(labels, np.array(bad))}; "
                        f"expected one of {allowed} (any case; 'low risk', 'high risk of bias' and RevMan 5's "
                        "YES/NO/UNKNOWN codes are accepted)", study=labels[bad[0]], column=col)
    if blank and missing == "error":
        raise DataError(f"missing risk-of-bias judgement{_others(labels, np.array(blank))}; give every trial a "
                        "judgement (or missing='keep')", study=labels[blank[0]], column=col)
    present = {v for v in out if v is not None}
    inferred = ("RoB 1" if "unclear" in present else None) or ("RoB 2" if "some concerns" in present else None)
    if "unclear" in present and "some concerns" in present:
        first = next(i for i, v in enumerate(out) if v == "some concerns")
        raise DataError("the column mixes RoB 1 ('unclear') and RoB 2 ('some concerns') judgements; one column "
                        "holds the judgements of one tool", study=labels[first], column=col)
    if tool is not None and inferred is not None and inferred != tool:
        wrong = "unclear" if tool == "RoB 2" else "some concerns"
        pos = np.array([i for i, v in enumerate(out) if v == wrong])
        raise DataError(f"judgement {values[pos[0]]!r} is not a {tool} level{_others(labels, pos)}; {tool} levels "
                        f"are {', '.join(repr(v) for v in _TOOLS[tool])}", study=labels[pos[0]], column=col)
    return out, tool or inferred


def check_risk_of_bias(data, columns: Hashable | Sequence[Hashable], *, tool: str | None = None,
                       study: Hashable = STUDY_COL, missing: str = "error") -> pd.DataFrame:
    """A copy of ``data`` with its risk-of-bias columns checked and normalised.

    Parameters
    ----------
    data : pandas.DataFrame or Mapping
        One row per trial (not modified).
    columns : column name or list of names
        The risk-of-bias columns (one domain, or the overall judgement, per column).
    tool : {"RoB 1", "RoB 2", None}
        The tool of every column; ``None``: inferred per column (see :func:`normalise_judgements`).
    study : hashable, default "study"
        Column of the study labels (named in errors).
    missing : {"error", "keep"}
        Whether a missing judgement is an error.

    Returns
    -------
    pandas.DataFrame
        A copy with the columns as normalised strings (``"low"``, ``"unclear"``, ``"some concerns"``,
        ``"high"``; ``None`` where missing and kept); ``attrs["risk_of_bias"]`` maps each column to
        its tool (``"RoB 1"``, ``"RoB 2"`` or ``None`` when only ``"low"``/``"high"`` occur).

    Raises
    ------
    DataError
        Naming the study and the column (see :func:`normalise_judgements`), or a column that is not
        in the table.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"study": ["A", "B"], "overall": ["Low", "Some concerns"]})
    >>> out = check_risk_of_bias(df, "overall")
    >>> out["overall"].tolist(), out.attrs["risk_of_bias"]
    (['low', 'some concerns'], {'overall': 'RoB 2'})
    """
    frame = as_dataframe(data)
    cols = [columns] if isinstance(columns, str) or not isinstance(columns, Sequence) else list(columns)
    labels = study_labels(frame, study)
    out = frame.copy(deep=True)
    tools = dict(out.attrs.get("risk_of_bias", {}))
    for c in cols:
        require_column(frame, c, purpose="a risk-of-bias judgement")
        values, found = normalise_judgements(frame[c].tolist(), labels, c, tool=tool, missing=missing)
        out[c] = pd.Series(values, index=out.index, dtype=object)
        tools[str(c)] = found
    out.attrs["risk_of_bias"] = tools
    return out


def high_risk_indicator(values: Sequence[object], labels: Sequence[str], column: Hashable, high) -> np.ndarray:
    """1.0 where the (normalised) judgement is one of ``high`` (also normalised), else 0.0.

    Used by the bias-adjusted models: an unknown or missing judgement, or an unknown level in
    ``high``, is a :class:`~ketabayes.errors.DataError` -- a typo never silently counts as "low".
    """
    levels, _ = normalise_judgements(list(values), labels, column)
    wanted = []
    for h in high:
        level = _SPELLINGS.get(_key(h))
        if level is None:
            raise DataError(f"rob_high holds {h!r}, which is not a risk-of-bias level; use levels of "
                            f"{_listing(list(ROB1_LEVELS) + ['some concerns'])}", column=str(column))
        wanted.append(level)
    return np.array([v in wanted for v in levels], dtype=float)
