r"""Multi-arm trials: several arms compared with one shared control.

A trial with arms ``A``, ``B`` and a control ``C`` gives two contrasts
(``A - C`` and ``B - C``) that share the control arm's data, so they are
correlated. Three ways to handle them:

* :func:`multiarm_contrasts`: every contrast with its sampling variance and the
  known within-trial covariance matrix (Gleser & Olkin 2009): with arm-level
  estimates :math:`g_j` that are independent across arms, the contrasts
  :math:`g_j - g_0` have :math:`\operatorname{Cov}(y_j, y_k) = \operatorname{Var}(g_0)`
  for :math:`j \ne k`, i.e. :math:`s_0^2/n_0` for a mean difference,
  :math:`1/a_0 + 1/b_0` for a log odds ratio, :math:`1/a_0 - 1/n_0` for a log
  risk ratio and :math:`p_0(1-p_0)/n_0` for a risk difference;
* :func:`combine_arms`: merge arms into one group (Cochrane Handbook 6.5.2.10,
  Table 6.5.a), e.g. two doses of the same drug;
* :func:`split_control`: divide the shared control group's size among the
  comparisons (Cochrane Handbook 23.3.4), which keeps each contrast's point
  estimate and makes the (approximately) independent contrasts usable by a
  univariate model.

The multivariate model that uses the covariance matrices is not part of the
data layer; :meth:`Contrasts.covariance_matrix` gives the block-diagonal
matrix in the row order of the table.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.linalg import block_diag

from ketabayes.data._cells import fail
from ketabayes.data.validation import (
    as_dataframe,
    check_counts,
    check_measure,
    check_not_empty,
    check_not_greater,
    check_positive,
    numeric_column,
    require_column,
    study_labels,
)
from ketabayes.dims import STUDY_COL
from ketabayes.errors import DataError

__all__ = ["Contrasts", "multiarm_contrasts", "combine_groups", "combine_arms", "split_control", "multiarm_trials",
           "handle_multiarm", "MULTIARM_HANDLING"]

#: the ways :func:`handle_multiarm` treats a multi-arm trial (Cochrane Handbook 23.3.4)
MULTIARM_HANDLING = ("correlated", "combine", "split")

_MEASURES = ("MD", "OR", "RR", "RD")


@dataclass(frozen=True)
class Contrasts:
    """Contrasts of multi-arm trials against their shared control.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per contrast: ``study``, ``arm``, ``control``, ``yi``, ``vi``,
        ``sei``, ``measure``, ``note``; the two arms' data under metafor's names
        (``m1i, sd1i, n1i`` treatment and ``m2i, sd2i, n2i`` control for MD;
        ``ai, n1i, ci, n2i`` for OR/RR/RD); ``vi_control``, the sampling variance
        of the shared control arm's estimate (the covariance of two contrasts of
        one trial); and the other columns of the treatment arm's row.
    covariance : dict of str to numpy.ndarray
        Per trial, the covariance matrix of its contrasts, in table order.
    """

    table: pd.DataFrame
    covariance: dict[str, np.ndarray] = field(repr=False)

    def covariance_matrix(self) -> np.ndarray:
        """Block-diagonal covariance matrix of all contrasts, in the row order of ``table``."""
        return block_diag(*[self.covariance[s] for s in dict.fromkeys(self.table[STUDY_COL])])


def _arm_table(data, study, arm, measure, cols):
    df = as_dataframe(data)
    check_not_empty(df)
    require_column(df, arm, purpose="the arm labels")
    trials = study_labels(df, study, generate=False)
    arms = [str(a) for a in df[arm].tolist()]
    labels = [f"{t} / {a}" for t, a in zip(trials, arms)]
    seen: dict[str, int] = {}
    for i, lab in enumerate(labels):
        if lab in seen:
            raise DataError(f"arm appears twice in the same trial (rows {seen[lab] + 1} and {i + 1})",
                            study=trials[i], column=str(arm))
        seen[lab] = i
    values = {k: numeric_column(df, c, labels, what=w) for k, (c, w) in cols.items()}
    if measure == "MD":
        check_positive(values["sd"], cols["sd"][0], labels, what="standard deviation")
        check_positive(values["n"], cols["n"][0], labels, what="arm size")
        fail("arm size must be at least 2", labels, values["n"] < 2, cols["n"][0])
    else:
        check_counts(values["x"], cols["x"][0], labels, what="events")
        check_counts(values["n"], cols["n"][0], labels, what="arm size")
        check_positive(values["n"], cols["n"][0], labels, what="arm size")
        check_not_greater(values["x"], values["n"], cols["x"][0], cols["n"][0], labels,
                          what="events exceed the arm size")
    return df, trials, arms, values


def multiarm_contrasts(
    data: pd.DataFrame | dict,
    measure: str,
    *,
    control: str,
    study: Hashable = STUDY_COL,
    arm: Hashable = "arm",
    mi: Hashable = "mi",
    sdi: Hashable = "sdi",
    ni: Hashable = "ni",
    xi: Hashable = "xi",
    add: float = 0.5,
) -> Contrasts:
    r"""Contrasts of every arm against the trial's shared control, with their covariances.

    Parameters
    ----------
    data : pandas.DataFrame or dict
        One row per arm: trial label (``study``), arm label (``arm``), and
        ``mi, sdi, ni`` (MD) or ``xi, ni`` (events and size; OR, RR, RD).
        Not modified.
    measure : {"MD", "OR", "RR", "RD"}
        OR and RR on the log scale, as :func:`ketabayes.effect_sizes`.
    control : str
        The arm label of the control arm; every trial needs exactly one such
        arm and at least one other arm. Two-arm trials give one contrast.
    add : float, default 0.5
        For OR and RR: added to the events and non-events of *every* arm of a
        trial in which any arm has a zero cell (so the shared control is
        corrected once, consistently for all its contrasts); recorded in
        ``note``.

    Returns
    -------
    Contrasts
        Its ``table`` carries every contrast's arm-level data and ``vi_control``, so the
        covariance can be rebuilt from the table alone and :func:`handle_multiarm` can
        combine the arms or split the control later (e.g. in a sensitivity grid).

    Raises
    ------
    DataError
        Naming the trial and column: no or several control arms, no
        treatment arm, duplicate arms, bad values.

    References
    ----------
    Gleser LJ, Olkin I (2009). Stochastically dependent effect sizes. In
    Cooper H, Hedges LV, Valentine JC (eds), *The Handbook of Research
    Synthesis and Meta-Analysis*, 2nd ed., 357-376. Russell Sage Foundation.

    Examples
    --------
    >>> import pandas as pd
    >>> arms = pd.DataFrame({"study": ["T1"] * 3, "arm": ["low", "high", "placebo"],
    ...                      "mi": [3.0, 4.0, 1.0], "sdi": [2.0, 2.0, 3.0], "ni": [20, 20, 30]})
    >>> res = multiarm_contrasts(arms, "MD", control="placebo")
    >>> res.table[["study", "arm", "yi", "vi"]]
      study   arm   yi    vi
    0    T1   low  2.0  0.5
    1    T1  high  3.0  0.5
    >>> res.covariance["T1"]
    array([[0.5, 0.3],
           [0.3, 0.5]])
    """
    m = check_measure(measure, _MEASURES)
    if m == "MD":
        cols = {"m": (mi, "the arm mean"), "sd": (sdi, "the arm SD"), "n": (ni, "the arm size")}
    else:
        cols = {"x": (xi, "the number of events in the arm"), "n": (ni, "the arm size")}
    df, trials, arms, v = _arm_table(data, study, arm, m, cols)
    used = {study, arm, *(c for c, _ in cols.values())}
    extra = [c for c in df.columns if c not in used]
    if not isinstance(control, str):
        raise DataError(f"control must be the label of the control arm (a string); got {control!r}")
    rows, cov = [], {}
    for t in dict.fromkeys(trials):
        idx = [i for i, tt in enumerate(trials) if tt == t]
        ctrl = [i for i in idx if arms[i] == control]
        if len(ctrl) != 1:
            raise DataError(
                f"trial has {len(ctrl)} arms labelled {control!r}; it needs exactly one control arm "
                f"(arms: {', '.join(repr(arms[i]) for i in idx)})",
                study=t,
                column=str(arm),
            )
        treat = [i for i in idx if i != ctrl[0]]
        if not treat:
            raise DataError(f"trial has only the control arm {control!r}; it needs at least one other arm",
                            study=t, column=str(arm))
        note = ""
        if m == "MD":
            g = v["m"][idx]
            var = (v["sd"] ** 2 / v["n"])[idx]
        else:
            x, n = v["x"][idx].astype(float), v["n"][idx].astype(float)
            nonx = n - x
            if m in ("OR", "RR") and ((x == 0) | (nonx == 0)).any() and add > 0:
                x, nonx, n = x + add, nonx + add, n + 2 * add
                note = f"{add:g} added to events and non-events of every arm (zero cell in the trial)"
            p = x / n
            with np.errstate(divide="ignore"):
                if m == "OR":
                    g, var = np.log(x / nonx), 1 / x + 1 / nonx
                elif m == "RR":
                    g, var = np.log(p), 1 / x - 1 / n
                else:
                    g, var = p, p * (1 - p) / n
        c = idx.index(ctrl[0])
        others = [j for j in range(len(idx)) if j != c]
        yi = np.array([g[j] - g[c] for j in others])
        k = len(others)
        sigma = np.full((k, k), var[c]) + np.diag([var[j] for j in others])
        cov[t] = sigma
        i0 = idx[c]
        for r, j in enumerate(others):
            i1 = idx[j]
            if m == "MD":
                arm_data = {"m1i": v["m"][i1], "sd1i": v["sd"][i1], "n1i": v["n"][i1],
                            "m2i": v["m"][i0], "sd2i": v["sd"][i0], "n2i": v["n"][i0]}
            else:
                arm_data = {"ai": v["x"][i1], "n1i": v["n"][i1], "ci": v["x"][i0], "n2i": v["n"][i0]}
            row = {STUDY_COL: t, "arm": arms[i1], "control": control, "yi": yi[r], "vi": sigma[r, r],
                   "sei": float(np.sqrt(sigma[r, r])), "measure": m, "note": note, **arm_data,
                   "vi_control": float(var[c])}
            row.update({col: df[col].iloc[i1] for col in extra if col not in row})
            rows.append(row)
    table = pd.DataFrame(rows)
    if not np.all(np.isfinite(table["yi"]) & np.isfinite(table["vi"])):
        bad = table[~(np.isfinite(table["yi"]) & np.isfinite(table["vi"]))].iloc[0]
        raise DataError(f"contrast {bad['arm']!r} vs {control!r} is not estimable on the {m} scale "
                        "(zero cell and add=0)", study=bad[STUDY_COL])
    table.attrs["measure"] = m
    return Contrasts(table=table, covariance=cov)


def combine_groups(n1, m1, sd1, n2, m2, sd2):
    r"""Size, mean and SD of two groups merged into one (Cochrane Handbook Table 6.5.a).

    .. math::

        N = N_1 + N_2,\quad M = \frac{N_1 M_1 + N_2 M_2}{N},\quad
        SD = \sqrt{\frac{(N_1-1) SD_1^2 + (N_2-1) SD_2^2
             + \frac{N_1 N_2}{N}(M_1^2 + M_2^2 - 2 M_1 M_2)}{N - 1}}

    This is exactly the SD of the pooled sample. Apply repeatedly for more
    than two groups.

    Examples
    --------
    >>> combine_groups(10, 5.0, 2.0, 15, 7.0, 3.0)
    (25.0, 6.2, 2.7838821814150108)
    """
    n1, m1, sd1, n2, m2, sd2 = (np.asarray(x, dtype=float) for x in (n1, m1, sd1, n2, m2, sd2))
    n = n1 + n2
    mean = (n1 * m1 + n2 * m2) / n
    sd = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2 + n1 * n2 / n * (m1**2 + m2**2 - 2 * m1 * m2)) / (n - 1))
    if n.ndim == 0:
        return float(n), float(mean), float(sd)
    return n, mean, sd


def combine_arms(
    data: pd.DataFrame | dict,
    arms: list[str],
    *,
    label: str,
    study: Hashable = STUDY_COL,
    arm: Hashable = "arm",
    mi: Hashable | None = "mi",
    sdi: Hashable | None = "sdi",
    ni: Hashable = "ni",
    xi: Hashable | None = None,
) -> pd.DataFrame:
    """Merge the listed arms of every trial into one arm called ``label``.

    Continuous arms (``mi, sdi, ni``) are merged with :func:`combine_groups`;
    dichotomous arms (``xi`` given, ``mi=sdi=None``) by adding events and
    sizes. Trials with fewer than two of the listed arms are left unchanged.
    Returns a new arm-level table (other columns of merged rows are dropped;
    a ``note`` column says which arms were merged).

    Examples
    --------
    >>> import pandas as pd
    >>> arms = pd.DataFrame({"study": ["T1"] * 3, "arm": ["low", "high", "placebo"],
    ...                      "mi": [5.0, 7.0, 1.0], "sdi": [2.0, 3.0, 3.0], "ni": [10, 15, 30]})
    >>> combine_arms(arms, ["low", "high"], label="drug").round(4)
      study      arm   mi     sdi    ni                       note
    0    T1  placebo  1.0  3.0000  30.0
    1    T1     drug  6.2  2.7839  25.0  merged arms 'low', 'high'
    """
    continuous = xi is None
    measure = "MD" if continuous else "RD"
    cols = ({"m": (mi, "the arm mean"), "sd": (sdi, "the arm SD"), "n": (ni, "the arm size")} if continuous
            else {"x": (xi, "the number of events in the arm"), "n": (ni, "the arm size")})
    df, trials, arm_labels, v = _arm_table(data, study, arm, measure, cols)
    keep, merged = [], []
    for t in dict.fromkeys(trials):
        idx = [i for i, tt in enumerate(trials) if tt == t]
        sel = [i for i in idx if arm_labels[i] in arms]
        if len(sel) < 2:
            keep.extend(idx)
            continue
        keep.extend(i for i in idx if i not in sel)
        row = {study: df[study].iloc[sel[0]], arm: label, ni: float(v["n"][sel].sum())}
        if continuous:
            n, mean, sd = v["n"][sel[0]], v["m"][sel[0]], v["sd"][sel[0]]
            for i in sel[1:]:
                n, mean, sd = combine_groups(n, mean, sd, v["n"][i], v["m"][i], v["sd"][i])
            row.update({mi: mean, sdi: sd})
        else:
            row[xi] = float(v["x"][sel].sum())
        row["note"] = "merged arms " + ", ".join(repr(arm_labels[i]) for i in sel)
        merged.append(row)
    out = df.iloc[keep].copy(deep=True)
    out["note"] = ""
    out = pd.concat([out, pd.DataFrame(merged)], ignore_index=True)
    return out[[c for c in df.columns if c in out.columns] + ["note"]]


def split_control(
    data: pd.DataFrame | dict,
    *,
    control: str,
    study: Hashable = STUDY_COL,
    arm: Hashable = "arm",
    mi: Hashable = "mi",
    sdi: Hashable = "sdi",
    ni: Hashable = "ni",
) -> pd.DataFrame:
    """One two-group row per comparison, the shared control's size divided among them.

    For continuous outcomes (Cochrane Handbook 23.3.4): a trial with ``k``
    treatment arms gives ``k`` rows with the control's mean and SD and size
    ``n0 / k``, so the control's participants are counted once in total. The
    result has metafor's columns (``m1i, sd1i, n1i`` treatment, ``m2i, sd2i,
    n2i`` control) for :func:`ketabayes.effect_sizes`, a ``study`` label
    ``"trial: arm"``, the ``trial`` and a ``note`` recording the split.

    Examples
    --------
    >>> import pandas as pd
    >>> arms = pd.DataFrame({"study": ["T1"] * 3, "arm": ["low", "high", "placebo"],
    ...                      "mi": [3.0, 4.0, 1.0], "sdi": [2.0, 2.0, 3.0], "ni": [20, 20, 30]})
    >>> split_control(arms, control="placebo")[["study", "n1i", "n2i"]]
           study   n1i   n2i
    0   T1: low  20.0  15.0
    1  T1: high  20.0  15.0
    """
    cols = {"m": (mi, "the arm mean"), "sd": (sdi, "the arm SD"), "n": (ni, "the arm size")}
    df, trials, arms, v = _arm_table(data, study, arm, "MD", cols)
    rows = []
    for t in dict.fromkeys(trials):
        idx = [i for i, tt in enumerate(trials) if tt == t]
        ctrl = [i for i in idx if arms[i] == control]
        if len(ctrl) != 1 or len(idx) < 2:
            raise DataError(f"trial needs exactly one control arm {control!r} and at least one other arm",
                            study=t, column=str(arm))
        c = ctrl[0]
        treat = [i for i in idx if i != c]
        k = len(treat)
        for i in treat:
            rows.append({
                STUDY_COL: f"{t}: {arms[i]}", "trial": t, "arm": arms[i],
                "m1i": v["m"][i], "sd1i": v["sd"][i], "n1i": v["n"][i],
                "m2i": v["m"][c], "sd2i": v["sd"][c], "n2i": v["n"][c] / k,
                "note": f"shared control {control!r} (n={v['n'][c]:g}) split among {k} comparisons" if k > 1 else "",
            })
    return pd.DataFrame(rows)


def multiarm_trials(table: pd.DataFrame, *, study: Hashable = STUDY_COL) -> list[str]:
    """Trials of an effect-size table with several contrasts against one shared control.

    They are the studies with more than one row carrying a ``control`` label and a
    ``vi_control`` (as :func:`multiarm_contrasts` writes them); two-arm trials, crossover
    trials and parallel trials from :func:`~ketabayes.effect_sizes` are not.

    Examples
    --------
    >>> import pandas as pd
    >>> arms = pd.DataFrame({"study": ["T1"] * 3 + ["T2"] * 2, "arm": ["low", "high", "pbo", "high", "pbo"],
    ...                      "mi": [3.0, 4.0, 1.0, 2.0, 1.0], "sdi": 2.0, "ni": 20})
    >>> multiarm_trials(multiarm_contrasts(arms, "MD", control="pbo").table)
    ['T1']
    """
    if not {"control", "vi_control"} <= set(table.columns) or study not in table.columns:
        return []
    has = table["control"].notna() & pd.to_numeric(table["vi_control"], errors="coerce").notna()
    counts = table.loc[has, study].astype(str).value_counts(sort=False)
    return [s for s, n in counts.items() if n > 1]


def handle_multiarm(table: pd.DataFrame, how: str, *, study: Hashable = STUDY_COL) -> pd.DataFrame:
    """Treat the multi-arm trials of an effect-size table one of the Cochrane Handbook's ways.

    ``table`` holds the contrasts of :func:`multiarm_contrasts` (``Contrasts.table``),
    possibly concatenated with other effect sizes; rows of other trials are returned unchanged.

    * ``"correlated"``: every contrast kept, with the covariance of contrasts sharing the
      control (``vi_control``): the exact handling, fitted by the multivariate model
      (:class:`~ketabayes.MultivariateModel`, or the sensitivity grid's normal analyses);
    * ``"combine"``: the treatment arms of each multi-arm trial merged into one arm
      (:func:`combine_arms`; for OR/RR/RD events and sizes added) and compared with the
      control: one row per trial, arm label ``"low + high"``. Columns other than the effect
      sizes that differ between the merged rows (e.g. a dose) become blank;
    * ``"split"`` (continuous outcomes, MD): the shared control's size divided among the
      comparisons (:func:`split_control`): one independent row per contrast, labelled
      ``"<trial>: <arm>"``, with the trial in column ``trial``.

    Parameters
    ----------
    table : pandas.DataFrame
        Not modified.
    how : {"correlated", "combine", "split"}
    study : str, default ``"study"``

    Returns
    -------
    pandas.DataFrame
        ``note`` says what was done to each changed trial.

    Raises
    ------
    DataError
        ``how`` unknown; no multi-arm trial in the table; ``"split"`` of a dichotomous
        outcome (dividing events would make fractional counts); missing arm-level columns.

    References
    ----------
    Higgins JPT, Eldridge S, Li T (eds) (2023). Chapter 23: Including variants on randomized
    trials, section 23.3.4. Cochrane Handbook for Systematic Reviews of Interventions 6.4.

    Examples
    --------
    >>> import pandas as pd
    >>> arms = pd.DataFrame({"study": ["T1"] * 3, "arm": ["low", "high", "placebo"],
    ...                      "mi": [3.0, 4.0, 1.0], "sdi": [2.0, 2.0, 3.0], "ni": [20, 20, 30]})
    >>> tab = multiarm_contrasts(arms, "MD", control="placebo").table
    >>> handle_multiarm(tab, "combine")[["study", "arm", "yi", "n1i", "n2i"]]
      study         arm   yi   n1i   n2i
    0    T1  low + high  2.5  40.0  30.0
    >>> handle_multiarm(tab, "split")[["study", "trial", "yi", "n2i"]]
          study trial   yi   n2i
    0   T1: low    T1  2.0  15.0
    1  T1: high    T1  3.0  15.0
    """
    from ketabayes.data.effect_sizes import effect_sizes

    if how not in MULTIARM_HANDLING:
        raise DataError(f"how={how!r} is not one of {', '.join(map(repr, MULTIARM_HANDLING))}")
    df = as_dataframe(table)
    multi = multiarm_trials(df, study=study)
    if not multi:
        raise DataError("no multi-arm trial in the table (a study with several contrasts against one shared "
                        "control: columns 'control' and 'vi_control', as multiarm_contrasts() writes them)",
                        column="vi_control")
    out = df.copy(deep=True)
    out.attrs = dict(df.attrs)
    if how == "correlated":
        return out
    labels = df[study].astype(str)
    pieces, done = [], set()
    for i in range(len(df)):
        s = labels.iloc[i]
        if s not in multi:
            pieces.append(out.iloc[[i]])
            continue
        if s in done:
            continue
        done.add(s)
        rows = df[labels == s]
        pieces.append(_combine_rows(rows, study, effect_sizes) if how == "combine"
                      else _split_rows(rows, study, effect_sizes))
    res = pd.concat(pieces, ignore_index=True)
    res.attrs = dict(df.attrs)
    return res


def _arm_rows(rows: pd.DataFrame, study, measure: str) -> tuple[pd.DataFrame, str]:
    """The arm-level table of one multi-arm trial's contrast rows (treatment arms, then the control)."""
    need = ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i") if measure == "MD" else ("ai", "n1i", "ci", "n2i")
    trial = str(rows[study].iloc[0])
    for c in need:
        if c not in rows.columns:
            raise DataError(f"the arm-level column {c!r} of the contrasts is missing (multiarm_contrasts() writes "
                            "it), so the arms cannot be combined or the control split", study=trial, column=c)
    controls = rows["control"].astype(str).unique()
    if len(controls) != 1:
        raise DataError(f"the contrasts name {len(controls)} different control arms", study=trial, column="control")
    control = controls[0]
    if measure == "MD":
        arms = [{study: trial, "arm": str(r["arm"]), "mi": r["m1i"], "sdi": r["sd1i"], "ni": r["n1i"]}
                for _, r in rows.iterrows()]
        first = rows.iloc[0]
        arms.append({study: trial, "arm": control, "mi": first["m2i"], "sdi": first["sd2i"], "ni": first["n2i"]})
    else:
        arms = [{study: trial, "arm": str(r["arm"]), "xi": r["ai"], "ni": r["n1i"]} for _, r in rows.iterrows()]
        first = rows.iloc[0]
        arms.append({study: trial, "arm": control, "xi": first["ci"], "ni": first["n2i"]})
    return pd.DataFrame(arms), control


def _shared_columns(rows: pd.DataFrame, skip) -> dict:
    """Columns (other than ``skip``) of a trial's rows: their common value, blank where the rows differ."""
    out = {}
    for c in rows.columns:
        if c in skip:
            continue
        vals = rows[c]
        same = vals.isna().all() or (vals.notna().all() and vals.astype(str).nunique() == 1)
        out[c] = vals.iloc[0] if same else np.nan
    return out


def _combine_rows(rows: pd.DataFrame, study, effect_sizes) -> pd.DataFrame:
    measure = str(rows["measure"].iloc[0]).upper() if "measure" in rows.columns else "MD"
    arms, control = _arm_rows(rows, study, measure)
    treat = [a for a in arms["arm"] if a != control]
    label = " + ".join(treat)
    if measure == "MD":
        merged = combine_arms(arms, treat, label=label, study=study)
        new = multiarm_contrasts(merged, "MD", control=control, study=study).table
    else:
        merged = combine_arms(arms, treat, label=label, study=study, xi="xi", mi=None, sdi=None)
        new = multiarm_contrasts(merged, measure, control=control, study=study, xi="xi").table
    keep = _shared_columns(rows, skip=set(new.columns))
    row = new.iloc[0].to_dict()
    row.update(keep)
    row["note"] = "; ".join(x for x in (f"multi-arm trial: arms {', '.join(map(repr, treat))} combined "
                                        f"(Cochrane Handbook 23.3.4)", row.get("note", "")) if x)
    return pd.DataFrame([row])


def _split_rows(rows: pd.DataFrame, study, effect_sizes) -> pd.DataFrame:
    measure = str(rows["measure"].iloc[0]).upper() if "measure" in rows.columns else "MD"
    trial = str(rows[study].iloc[0])
    if measure != "MD":
        raise DataError(f"splitting the shared control is implemented for continuous outcomes (MD), not "
                        f"{measure}: dividing the control's events would give fractional counts; use 'combine' or "
                        "'correlated'", study=trial, column="measure")
    arms, control = _arm_rows(rows, study, measure)
    split = split_control(arms, control=control, study=study)
    es = effect_sizes(split.drop(columns=["note"]), "MD")
    out = []
    for (_, orig), (_, new), note in zip(rows.iterrows(), es.iterrows(), split["note"]):
        row = orig.to_dict()
        for c in ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i", "yi", "vi", "sei"):
            row[c] = new[c]
        row[STUDY_COL if study == STUDY_COL else study] = new[STUDY_COL]
        row["trial"] = trial
        row["vi_control"] = np.nan
        row["note"] = "; ".join(x for x in (f"multi-arm trial: {note}" if note else "", str(orig.get("note", "") or ""))
                                if x)
        out.append(row)
    return pd.DataFrame(out)
