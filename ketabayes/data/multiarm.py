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

__all__ = ["Contrasts", "multiarm_contrasts", "combine_groups", "combine_arms", "split_control"]

_MEASURES = ("MD", "OR", "RR", "RD")


@dataclass(frozen=True)
class Contrasts:
    """Contrasts of multi-arm trials against their shared control.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per contrast: ``study``, ``arm``, ``control``, ``yi``, ``vi``,
        ``sei``, ``measure``, ``note``.
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
        for r, j in enumerate(others):
            rows.append({STUDY_COL: t, "arm": arms[idx[j]], "control": control, "yi": yi[r],
                         "vi": sigma[r, r], "sei": float(np.sqrt(sigma[r, r])), "measure": m, "note": note})
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
