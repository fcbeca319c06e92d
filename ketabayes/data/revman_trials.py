"""Trial identity in RevMan imports: one trial in several rows of one analysis.

RevMan 5 names every trial once (its ``STUDY_ID``) and lets a review enter the same trial in
several outcomes, comparisons and subgroups. Within one *analysis* -- what a model pools: one
outcome, over all its subgroups -- a trial that appears in more than one row counts the same
patients more than once, e.g. a trial of two doses against one placebo group entered as two rows
(one per dose subgroup) that repeat the placebo group. The Cochrane Handbook (section 23.3.4)
lists the alternatives: correlated contrasts against the shared control, combining the
experimental arms, or splitting the shared control group (:mod:`ketabayes.data.multiarm`).

:func:`find_repeated_trials` finds such trials (by ``trial_id``, the RevMan ``STUDY_ID``);
:func:`~ketabayes.data.revman.read_revman` and
:func:`~ketabayes.data.revman.split_analyses` warn about every one of them
(:func:`repeated_trials_message`). When the control group data of the repeated rows are identical,
the rows are recognised as arms sharing one control group, and :func:`revman_arms` /
:func:`revman_contrasts` turn them into an arm-level table / correlated contrasts with their
known within-trial covariance (Gleser & Olkin 2009), ready for
:meth:`ketabayes.MultivariateModel.from_contrasts`.

References:

* Higgins JPT, Eldridge S, Li T (2023). Chapter 23: Including variants on randomized trials. In
  Higgins JPT et al. (eds), *Cochrane Handbook for Systematic Reviews of Interventions* version 6.4,
  section 23.3.4 (multi-arm studies). Cochrane.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ketabayes.dims import STUDY_COL
from ketabayes.errors import DataError

__all__ = ["RepeatedTrial", "find_repeated_trials", "repeated_trials_message", "revman_arms", "revman_contrasts",
           "CONTROL_COLUMNS", "TRIAL_COL"]

#: the column holding a trial's identity (RevMan's STUDY_ID; the study name in a CSV export)
TRIAL_COL = "trial_id"

#: control-group (group 2) columns per data type: rows of one trial with equal values share one control group
CONTROL_COLUMNS: dict[str, tuple[str, ...]] = {"continuous": ("m2i", "sd2i", "n2i"), "dichotomous": ("ci", "n2i")}

_HANDBOOK = "Cochrane Handbook section 23.3.4"


@dataclass(frozen=True)
class RepeatedTrial:
    """One trial that appears in more than one row of one analysis.

    Attributes
    ----------
    trial_id, study : str
        The trial's identity (RevMan ``STUDY_ID``; the name in a CSV export) and its label.
    comparison_no, outcome_no : int or None
        The analysis (None when the table is one analysis without these columns).
    outcome : str or None
    rows : tuple
        Index labels of the trial's rows in the table that was checked.
    subgroups : tuple
        The subgroup of each of these rows (None without subgroups).
    shared_control : bool or None
        True if the control group (group 2) data are identical in every row (arms sharing one
        control group), False if they differ, None when it cannot be told (generic
        inverse-variance rows hold contrasts only).
    """

    trial_id: str
    study: str
    comparison_no: int | None
    outcome_no: int | None
    outcome: str | None
    rows: tuple
    subgroups: tuple
    shared_control: bool | None


def _value(x):
    return None if x is None or (not isinstance(x, str) and pd.isna(x)) else x


def _data_type(df: pd.DataFrame, rows: pd.DataFrame) -> str | None:
    if "data_type" in rows.columns:
        types = {str(t) for t in rows["data_type"].dropna()}
        return types.pop() if len(types) == 1 else None
    return df.attrs.get("data_type")


def _shared(rows: pd.DataFrame, data_type: str | None) -> bool | None:
    cols = CONTROL_COLUMNS.get(data_type or "")
    if cols is None or any(c not in rows.columns for c in cols):
        return None
    block = rows[list(cols)]
    if block.isna().any().any():
        return False
    return bool((block.nunique(dropna=False) == 1).all())


def find_repeated_trials(df: pd.DataFrame, *, by_subgroup: bool = False) -> list[RepeatedTrial]:
    """Trials that appear more than once in one analysis of a RevMan table.

    Parameters
    ----------
    df : pandas.DataFrame
        The table of :func:`~ketabayes.data.revman.read_revman` (checked per outcome: comparison
        and outcome number) or one analysis of :func:`~ketabayes.data.revman.split_analyses`
        (checked as a whole). Needs the ``trial_id`` column.
    by_subgroup : bool, default False
        Check each subgroup separately (a trial in two subgroups is then not repeated).

    Returns
    -------
    list of RepeatedTrial
        In table order; empty when every trial appears once per analysis.

    Raises
    ------
    DataError
        If ``df`` has no ``trial_id`` column.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"trial_id": ["STD-A", "STD-B", "STD-A"], "study": ["A", "B", "A"],
    ...                    "subgroup": ["low dose", "low dose", "high dose"], "data_type": "dichotomous",
    ...                    "ai": [3, 4, 6], "n1i": [20, 20, 20], "ci": [9, 8, 9], "n2i": [21, 19, 21]})
    >>> [(r.study, r.rows, r.subgroups, r.shared_control) for r in find_repeated_trials(df)]
    [('A', (0, 2), ('low dose', 'high dose'), True)]
    """
    if TRIAL_COL not in df.columns:
        raise DataError("the table has no 'trial_id' column: read it with read_revman, which records each "
                        "trial's RevMan STUDY_ID", column=TRIAL_COL)
    keys = [k for k in ("comparison_no", "outcome_no") if k in df.columns]
    if by_subgroup and "subgroup_no" in df.columns:
        keys.append("subgroup_no")
    groups = df.groupby(keys, sort=False, dropna=False) if keys else [((), df)]
    out = []
    for _, group in groups:
        counts = group[TRIAL_COL].value_counts(dropna=True)
        for trial in dict.fromkeys(group[TRIAL_COL].dropna()):
            if counts[trial] < 2:
                continue
            rows = group[group[TRIAL_COL] == trial]
            first = rows.iloc[0]
            cno = _value(first.get("comparison_no", df.attrs.get("comparison_no")))
            ono = _value(first.get("outcome_no", df.attrs.get("outcome_no")))
            out.append(RepeatedTrial(
                trial_id=str(trial), study=str(_value(first.get(STUDY_COL)) or trial),
                comparison_no=None if cno is None else int(cno), outcome_no=None if ono is None else int(ono),
                outcome=_value(first.get("outcome", df.attrs.get("outcome"))),
                rows=tuple(rows.index.tolist()),
                subgroups=tuple(_value(s) for s in rows["subgroup"]) if "subgroup" in rows.columns
                else (None,) * len(rows),
                shared_control=_shared(rows, _data_type(df, rows))))
    return out


#: longest list of rows (or subgroups) and of trials spelled out in a warning; the rest are counted
_MAX_LISTED = 10


def _listed(items) -> str:
    items = [str(x) for x in items]
    if len(items) <= _MAX_LISTED + 2:
        return ", ".join(items)
    return f"{', '.join(items[:_MAX_LISTED])}, ... ({len(items) - _MAX_LISTED - 1} more), {items[-1]}"


def repeated_trials_message(repeated: list[RepeatedTrial], where: str) -> str:
    """One warning text naming the repeated trials (the first :data:`_MAX_LISTED`; ``find_repeated_trials``
    lists them all), their rows and the Handbook's alternatives."""
    parts = []
    for r in repeated[:_MAX_LISTED]:
        analysis = (f"outcome {r.comparison_no}.{r.outcome_no} {r.outcome!r}" if r.outcome_no is not None
                    else "this analysis")
        subgroups = (f"; subgroups {_listed(repr(s) for s in r.subgroups)}"
                     if any(s is not None for s in r.subgroups) else "")
        control = {True: "its control-group data are identical in these rows (one control group shared by "
                         "several arms: revman_contrasts() turns them into correlated contrasts)",
                   False: "its control-group data differ between these rows (not recognised as one shared "
                          "control group: check whether they are the same patients)",
                   None: "generic inverse-variance rows: whether they share a control group cannot be told"}
        parts.append(f"trial {r.study!r} (trial_id {r.trial_id!r}) appears {len(r.rows)} times in {analysis} "
                     f"(rows {_listed(r.rows)}{subgroups}); {control[r.shared_control]}")
    if len(repeated) > _MAX_LISTED:
        parts.append(f"and {len(repeated) - _MAX_LISTED} more trials (find_repeated_trials() lists them all)")
    return (f"{where}: the same trial is in more than one row of one analysis, so pooling these rows counts its "
            f"patients more than once: " + "; ".join(parts) + f". Alternatives ({_HANDBOOK}, "
            "ketabayes.data.multiarm): correlated contrasts against the shared control (multiarm_contrasts, "
            "or ketabayes.data.revman_trials.revman_contrasts for RevMan rows), combining the experimental arms "
            "(combine_arms) or splitting the shared control group (split_control); or analyse the subgroups "
            "separately (split_analyses(..., by_subgroup=True))")


def _arm_labels(rows: pd.DataFrame) -> list[str]:
    subgroups = [_value(s) for s in rows["subgroup"]] if "subgroup" in rows.columns else [None] * len(rows)
    if all(s is not None for s in subgroups) and len(set(subgroups)) == len(subgroups):
        return [str(s) for s in subgroups]
    if len(rows) == 1:
        return ["experimental"]
    return [f"experimental (row {i})" for i in rows.index]


def revman_arms(data: pd.DataFrame, *, control: str = "control") -> pd.DataFrame:
    """Arm-level table of one RevMan analysis: each trial's control group once, every experimental arm.

    Rows of one trial (same ``trial_id``) must share one control group (identical group-2 data);
    each row then contributes its experimental group as an arm, labelled by its subgroup (e.g.
    ``"Low dose"``), or ``"experimental (row <index>)"`` when subgroups do not tell the rows apart.
    Trials with one row give a two-arm trial.

    Parameters
    ----------
    data : pandas.DataFrame
        One analysis from :func:`~ketabayes.data.revman.split_analyses` (continuous or dichotomous;
        ``trial_id`` column). Not modified.
    control : str, default "control"
        The arm label of the control groups.

    Returns
    -------
    pandas.DataFrame
        ``study``, ``trial_id``, ``arm`` and ``mi, sdi, ni`` (continuous) or ``xi, ni`` (dichotomous),
        one row per arm, for :func:`~ketabayes.data.multiarm.multiarm_contrasts`,
        :func:`~ketabayes.data.multiarm.combine_arms` or :func:`~ketabayes.data.multiarm.split_control`.

    Raises
    ------
    DataError
        Naming the trial, when its rows do not share one control group, or for a generic
        inverse-variance analysis (contrasts only, no arms).

    Examples
    --------
    >>> import pandas as pd
    >>> data = pd.DataFrame({"trial_id": ["STD-A", "STD-A"], "study": ["A", "A"],
    ...                      "subgroup": ["low dose", "high dose"], "ai": [3, 6], "n1i": [20, 20],
    ...                      "ci": [9, 9], "n2i": [21, 21]})
    >>> data.attrs["data_type"] = "dichotomous"
    >>> revman_arms(data)
      study trial_id        arm  xi  ni
    0     A    STD-A    control   9  21
    1     A    STD-A   low dose   3  20
    2     A    STD-A  high dose   6  20
    """
    if TRIAL_COL not in data.columns:
        raise DataError("revman_arms needs the 'trial_id' column of read_revman / split_analyses",
                        column=TRIAL_COL)
    data_type = _data_type(data, data)
    if data_type not in CONTROL_COLUMNS:
        raise DataError(f"revman_arms needs a continuous or dichotomous analysis (arm-level data); this one is "
                        f"{data_type!r}: generic inverse-variance rows hold contrasts, not arms")
    exp_cols = ("m1i", "sd1i", "n1i") if data_type == "continuous" else ("ai", "n1i")
    arm_cols = ("mi", "sdi", "ni") if data_type == "continuous" else ("xi", "ni")
    out = []
    for trial in dict.fromkeys(data[TRIAL_COL]):
        rows = data[data[TRIAL_COL] == trial]
        study = str(rows[STUDY_COL].iloc[0]) if STUDY_COL in rows.columns else str(trial)
        if len(rows) > 1 and not _shared(rows, data_type):
            raise DataError(
                f"the trial is in {len(rows)} rows (index {', '.join(map(str, rows.index))}) whose control-group "
                f"data ({', '.join(CONTROL_COLUMNS[data_type])}) differ, so they are not arms sharing one control "
                "group; check whether these rows are the same patients (e.g. two time points) and keep one",
                study=study, column=TRIAL_COL)
        first = rows.iloc[0]
        out.append({STUDY_COL: study, TRIAL_COL: trial, "arm": control,
                    **{a: first[c] for a, c in zip(arm_cols, CONTROL_COLUMNS[data_type])}})
        labels = _arm_labels(rows)
        if control in labels:
            raise DataError(f"an experimental arm is labelled {control!r}, the control label; pass another "
                            "control=", study=study, column="subgroup")
        for label, (_, row) in zip(labels, rows.iterrows()):
            out.append({STUDY_COL: study, TRIAL_COL: trial, "arm": label,
                        **{a: row[c] for a, c in zip(arm_cols, exp_cols)}})
    return pd.DataFrame(out)


def revman_contrasts(data: pd.DataFrame, measure: str | None = None, *, control: str = "control", add: float = 0.5):
    """Correlated contrasts against the shared control group for one RevMan analysis.

    :func:`revman_arms` followed by :func:`~ketabayes.data.multiarm.multiarm_contrasts`: a trial
    entered as several rows sharing one control group gives one contrast per experimental arm,
    with the known within-trial covariance (the control group's variance); trials with one row
    give one contrast. Fit them with :meth:`ketabayes.MultivariateModel.from_contrasts`.

    Parameters
    ----------
    data : pandas.DataFrame
        One continuous or dichotomous analysis from :func:`~ketabayes.data.revman.split_analyses`.
    measure : {"MD", "OR", "RR", "RD"}, optional
        Default: the analysis' ``measure`` (``data.attrs``). The standardised mean difference is not
        available (its contrasts' covariance needs more than the control group's data).
    control, add
        See :func:`revman_arms` and :func:`~ketabayes.data.multiarm.multiarm_contrasts`.

    Returns
    -------
    ketabayes.data.multiarm.Contrasts

    Raises
    ------
    DataError
        As :func:`revman_arms`; for an unsupported measure.

    References
    ----------
    Gleser LJ, Olkin I (2009). Stochastically dependent effect sizes. In Cooper H, Hedges LV,
    Valentine JC (eds), *The Handbook of Research Synthesis and Meta-Analysis*, 2nd ed., 357-376.

    Examples
    --------
    >>> import pandas as pd
    >>> data = pd.DataFrame({"trial_id": ["STD-A", "STD-A"], "study": ["A", "A"],
    ...                      "subgroup": ["low", "high"], "m1i": [3.0, 4.0], "sd1i": [2.0, 2.0],
    ...                      "n1i": [20, 20], "m2i": [1.0, 1.0], "sd2i": [3.0, 3.0], "n2i": [30, 30]})
    >>> data.attrs.update(data_type="continuous", measure="MD")
    >>> c = revman_contrasts(data)
    >>> c.table[["study", "arm", "yi", "vi"]]
      study   arm   yi   vi
    0     A   low  2.0  0.5
    1     A  high  3.0  0.5
    >>> c.covariance["A"].tolist()
    [[0.5, 0.3], [0.3, 0.5]]
    """
    from ketabayes.data.multiarm import multiarm_contrasts

    measure = measure or data.attrs.get("measure")
    if measure is None:
        raise DataError("pass measure= ('MD', 'OR', 'RR' or 'RD'): the table does not record one")
    if str(measure).upper() not in ("MD", "OR", "RR", "RD"):
        raise DataError(f"correlated contrasts are available for MD, OR, RR and RD, not {measure!r} (for the "
                        "SMD their covariance needs more than the control group's data); combine the arms "
                        "(combine_arms) or split the control group (split_control) instead")
    arms = revman_arms(data, control=control)
    if str(measure).upper() == "MD":
        return multiarm_contrasts(arms, "MD", control=control)
    return multiarm_contrasts(arms, measure, control=control, xi="xi", add=add)
