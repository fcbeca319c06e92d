r"""Crossover trials: the paired mean difference from what crossover reports give.

In a two-period crossover trial each patient receives both treatments, so the
treatment effect is a *within-patient* difference and its standard error
depends on the correlation between a patient's two measurements. Entering the
two treatment periods as if they were independent groups ignores that
correlation (Elbourne et al. 2002; only 1 of 33 meta-analyses with crossover
trials surveyed by Lathyris et al. 2007 analysed them as paired data).
:func:`crossover` builds the paired estimate ``yi`` (treatment minus control)
and its variance ``vi`` per trial by one of five routes (Elbourne et al. 2002;
Cochrane Handbook 5.1, section 16.4; version 6, section 23.2), and records
which one was used and any assumed correlation per trial. The result goes
straight into :class:`ketabayes.RandomEffectsModel` (measure ``"MD"``).
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd
from scipy import stats

from ketabayes.data._cells import ProvenanceTable, check_where, fail, optional_numeric
from ketabayes.data.paired import PAIRED_MEASURES, assumed_r_note, check_correlation, paired_effect
from ketabayes.data.validation import (
    as_dataframe,
    check_not_empty,
    check_unique_labels,
    closest,
    require_column,
    study_labels,
)
from ketabayes.dims import STUDY_COL
from ketabayes.errors import DataError

__all__ = ["crossover", "with_assumed_r", "CROSSOVER_ROUTES"]

#: The routes, in the order ``method="auto"`` tries them for each trial.
CROSSOVER_ROUTES: tuple[str, ...] = ("differences", "t", "p", "periods", "first_period")

_WHAT = {
    "mdi": "the mean within-patient difference, treatment minus control",
    "sddi": "the SD of the within-patient differences",
    "ti": "the paired t statistic",
    "pi": "the two-sided p-value of the paired test",
    "ni": "the number of patients with both measurements",
    "m1i": "the mean under treatment (both periods)",
    "sd1i": "the SD under treatment (both periods)",
    "m2i": "the mean under control (both periods)",
    "sd2i": "the SD under control (both periods)",
    "ri": "the within-patient correlation, in [-1, 1]",
    "m1i_p1": "the first-period mean of the patients given treatment first",
    "sd1i_p1": "the first-period SD of the patients given treatment first",
    "n1i_p1": "the number of patients given treatment first",
    "m2i_p1": "the first-period mean of the patients given control first",
    "sd2i_p1": "the first-period SD of the patients given control first",
    "n2i_p1": "the number of patients given control first",
}
_ARGS = tuple(_WHAT)
_NEEDS = {
    "differences": ("md", "sddi", "ni"),
    "t": ("md", "ti"),
    "p": ("md", "pi", "ni"),
    "periods": ("m1i", "sd1i", "m2i", "sd2i", "ni", "r"),
    "first_period": ("m1i_p1", "sd1i_p1", "n1i_p1", "m2i_p1", "sd2i_p1", "n2i_p1"),
}


def crossover(
    data: pd.DataFrame | dict,
    *,
    method: str = "auto",
    r: float | None = None,
    study: Hashable = STUDY_COL,
    **columns: Hashable,
) -> pd.DataFrame:
    r"""Paired mean differences ``yi`` and variances ``vi`` of crossover trials.

    Parameters
    ----------
    data : pandas.DataFrame or dict
        One row per trial; blank cells mean "not reported". Not modified.
    method : {"auto", "differences", "t", "p", "periods", "first_period"}
        Route for every trial, or ``"auto"`` (default): for each trial the
        first route in that order whose inputs the row reports.

        * ``"differences"``: mean ``mdi`` and SD ``sddi`` of the within-patient
          differences, ``ni`` patients: :math:`y = \bar d`,
          :math:`v = s_d^2/n`.
        * ``"t"``: mean difference and the paired *t* statistic ``ti``:
          :math:`v = (\bar d / t)^2`.
        * ``"p"``: mean difference and the two-sided p-value ``pi`` of the
          paired *t* test with ``ni - 1`` degrees of freedom:
          :math:`v = (\bar d / t_{n-1}^{-1}(1 - p/2))^2` (an exact p-value is
          needed; ``"<0.05"`` is not a number and is rejected).
        * ``"periods"`` (Elbourne et al. 2002): means and SDs under each
          treatment (``m1i, sd1i, m2i, sd2i``) over ``ni`` patients and a
          within-patient correlation, from column ``ri`` or the assumed
          ``r``: :math:`s_d^2 = s_1^2 + s_2^2 - 2 r s_1 s_2`,
          :math:`v = s_d^2/n`. ``r = 0`` reproduces the (conservative)
          analysis that treats the periods as independent groups.
        * ``"first_period"``: first-period data only, analysed as a parallel
          trial (``m1i_p1, sd1i_p1, n1i_p1, m2i_p1, sd2i_p1, n2i_p1``):
          :math:`v = s_1^2/n_1 + s_2^2/n_2`; free of carry-over, at the price
          of discarding half the data.

        The mean difference of ``"t"`` and ``"p"`` is ``mdi`` or, where that
        is blank, ``m1i - m2i``.
    r : float, optional
        Assumed within-patient correlation for ``"periods"`` where ``ri`` is
        blank or absent. No default: without ``ri`` and ``r`` the route is
        unavailable (an error when it is the one asked for). Vary it in a
        sensitivity analysis (call :func:`crossover` once per value).
    study : str, default ``"study"``
        Column of trial labels.
    **columns : str
        Map the argument names (``mdi, sddi, ti, pi, ni, m1i, sd1i, m2i,
        sd2i, ri, m1i_p1, sd1i_p1, n1i_p1, m2i_p1, sd2i_p1, n2i_p1``) to your
        column names; columns already so named need no mapping.

    Returns
    -------
    pandas.DataFrame
        The caller's columns plus ``study``, ``yi``, ``vi``, ``sei``,
        ``estimable``, ``note``, ``measure`` (``"MD"``, also in
        ``attrs["measure"]``) and the provenance columns

        * ``ni`` (float): the number of patients the estimate uses -- the
          reported ``ni``, or ``n1i_p1 + n2i_p1`` for ``"first_period"``
          where ``ni`` is blank (NaN when neither is reported); the default
          prior of tau (unit-information SD) needs it;
        * ``route`` (str): the route used for the trial;
        * ``assumed_r`` (float): the correlation assumed by ``"periods"`` (NaN
          for other routes or when ``ri`` was reported);
        * ``conversion`` (str) and ``converted`` (bool, True for routes
          ``"t"``, ``"p"`` and ``"periods"``), as in
          :mod:`ketabayes.data.conversions` (text appended to an existing
          ``conversion`` column).

    Raises
    ------
    DataError
        Naming the trial and the column: no route available (listing what is
        missing), SD <= 0, ``ni`` < 2, correlation outside [-1, 1], p outside
        (0, 1), ``t = 0``, a p-value with a zero mean difference, non-numeric
        cells, unknown argument names.

    References
    ----------
    Elbourne DR, Altman DG, Higgins JPT, Curtin F, Worthington HV, Vail A
    (2002). Meta-analyses involving cross-over trials: methodological issues.
    *Int J Epidemiol* 31(1):140-149. https://doi.org/10.1093/ije/31.1.140

    Lathyris DN, Trikalinos TA, Ioannidis JPA (2007). Evidence from crossover
    trials: empirical evaluation and comparison against parallel arm trials.
    *Int J Epidemiol* 36(2):422-430. https://doi.org/10.1093/ije/dym001

    Examples
    --------
    The worked example of the Cochrane Handbook 5.1 (section 16.4.6.4), with
    an imputed correlation of 0.68:

    >>> import pandas as pd
    >>> trial = pd.DataFrame({"study": ["Example"], "m1i": [7.0], "sd1i": [2.38],
    ...                       "m2i": [6.5], "sd2i": [2.21], "ni": [10]})
    >>> out = crossover(trial, r=0.68)
    >>> out[["study", "yi", "sei", "route", "assumed_r"]].round(3)
         study   yi    sei    route  assumed_r
    0  Example  0.5  0.583  periods       0.68
    """
    df = as_dataframe(data)
    check_not_empty(df)
    if not (isinstance(method, str) and (method == "auto" or method in CROSSOVER_ROUTES)):
        best = closest(method, ("auto",) + CROSSOVER_ROUTES) if isinstance(method, str) else None
        hint = f"; did you mean {best!r}?" if best is not None else ""
        raise DataError(f"method={method!r} is not 'auto' or one of {', '.join(CROSSOVER_ROUTES)}{hint}")
    for name, col in columns.items():
        if name not in _ARGS:
            best = closest(name, _ARGS)
            hint = f"; did you mean {best}=...?" if best is not None else "."
            raise DataError(f"unknown argument {name}={col!r}{hint} Column arguments: {', '.join(_ARGS)}")
    if r is not None:
        r = check_correlation(r)
    labels = study_labels(df, study)
    if "route" in df.columns:  # the output's 'route' is the crossover route: never overwrite another meaning
        other = [i for i, x in enumerate(df["route"].tolist())
                 if not (x is None or (isinstance(x, float) and np.isnan(x)) or str(x) in CROSSOVER_ROUTES)]
        if other:
            raise DataError(f"column 'route' holds {df['route'].iloc[other[0]]!r}, but crossover() writes the crossover "
                            "route (how the paired estimate was built) into 'route'; rename your column (e.g. "
                            "'administration' for the route of administration)", study=labels[other[0]],
                            column="route")
    check_unique_labels(labels, study)
    k = len(labels)

    cols: dict[str, Hashable | None] = {}
    vals: dict[str, np.ndarray] = {}
    for arg in _ARGS:
        if arg in columns:
            cols[arg] = require_column(df, columns[arg], purpose=f"{arg}: {_WHAT[arg]}")
        else:
            cols[arg] = arg if arg in df.columns else None
        vals[arg] = optional_numeric(df, cols[arg], labels, what=_WHAT[arg])

    def col(arg):
        return cols[arg] if cols[arg] is not None else arg

    for arg in ("sddi", "sd1i", "sd2i", "sd1i_p1", "sd2i_p1"):
        check_where(vals[arg], vals[arg] > 0, labels, col(arg), "standard deviation must be > 0")
    for arg in ("ni", "n1i_p1", "n2i_p1"):
        check_where(vals[arg], vals[arg] >= 2, labels, col(arg), "the number of patients must be at least 2")
    check_where(vals["ri"], np.abs(vals["ri"]) <= 1, labels, col("ri"), "correlation must be in [-1, 1]")
    check_where(vals["pi"], (vals["pi"] > 0) & (vals["pi"] < 1), labels, col("pi"),
                "p-value must be in (0, 1) (give the exact two-sided p-value)")

    md = np.where(np.isnan(vals["mdi"]), vals["m1i"] - vals["m2i"], vals["mdi"])
    corr = np.where(np.isnan(vals["ri"]), np.nan if r is None else r, vals["ri"])
    present = {"md": ~np.isnan(md), "r": ~np.isnan(corr)}
    for arg in _ARGS:
        present[arg] = ~np.isnan(vals[arg])
    complete = {route: np.logical_and.reduce([present[a] for a in need]) for route, need in _NEEDS.items()}

    routes = np.full(k, "", dtype=object)
    if method == "auto":
        for route in reversed(CROSSOVER_ROUTES):
            routes[complete[route]] = route
    else:
        routes[complete[method]] = method
    none = routes == ""
    if none.any():
        i = int(np.flatnonzero(none)[0])
        tried = CROSSOVER_ROUTES if method == "auto" else (method,)
        missing = "; ".join(
            f"{route}: no {', '.join(_label(a, col) for a in _NEEDS[route] if not present[a][i])}" for route in tried
        )
        fail(
            f"no way to compute the paired estimate ({missing}). A correlation for 'periods' comes from "
            "ri or r=... (CLI: --r; no silent default)",
            labels,
            none,
            col("mdi") if method in ("auto", "differences", "t", "p") else col(_NEEDS[method][0]),
        )

    is_ = {route: routes == route for route in CROSSOVER_ROUTES}
    fail("t statistic is 0, which gives no standard error", labels, is_["t"] & (vals["ti"] == 0), col("ti"))
    fail("a p-value gives no standard error for a mean difference of exactly 0", labels, is_["p"] & (md == 0),
         col("mdi") if cols["mdi"] is not None else "mdi")

    with np.errstate(invalid="ignore", divide="ignore"):
        n = vals["ni"]
        var_d = vals["sd1i"] ** 2 + vals["sd2i"] ** 2 - 2 * corr * vals["sd1i"] * vals["sd2i"]
        fp_y = vals["m1i_p1"] - vals["m2i_p1"]
        fp_v = vals["sd1i_p1"] ** 2 / vals["n1i_p1"] + vals["sd2i_p1"] ** 2 / vals["n2i_p1"]
        tq = stats.t.isf(vals["pi"] / 2, n - 1)
        yi = np.select([is_["differences"], is_["t"], is_["p"], is_["periods"], is_["first_period"]],
                       [md, md, md, md, fp_y], np.nan)
        vi = np.select(
            [is_["differences"], is_["t"], is_["p"], is_["periods"], is_["first_period"]],
            [vals["sddi"] ** 2 / n, (md / vals["ti"]) ** 2, (md / tq) ** 2, var_d / n, fp_v],
            np.nan,
        )
    assumed = is_["periods"] & np.isnan(vals["ri"])
    texts, notes = [], []
    for i in range(k):
        route = routes[i]
        if route == "differences":
            texts.append("")
            notes.append("paired: mean and SD of within-patient differences")
        elif route == "t":
            texts.append(f"SE of the paired mean difference from the paired t statistic {vals['ti'][i]:g}")
            notes.append(texts[-1])
        elif route == "p":
            texts.append(
                f"SE of the paired mean difference from the two-sided p-value {vals['pi'][i]:g} "
                f"(t quantile, df={n[i] - 1:g})"
            )
            notes.append(texts[-1])
        elif route == "periods":
            src = f"r={corr[i]:g} assumed (r= argument)" if assumed[i] else f"r={corr[i]:g} from column {col('ri')!r}"
            texts.append(f"SD of within-patient differences from the treatment and control SDs, {src}")
            notes.append(f"paired (Elbourne 2002): {src}")
        else:
            texts.append("")
            notes.append("first period only, analysed as a parallel trial")

    table = ProvenanceTable(df, study)
    table.record(np.array([bool(x) for x in texts]), texts)
    out = table.done()
    estimable = np.isfinite(yi) & np.isfinite(vi) & (vi > 0)
    out[STUDY_COL] = pd.Series(labels, index=df.index, dtype=str)
    out["yi"] = yi
    out["vi"] = vi
    out["sei"] = np.sqrt(vi)
    out["estimable"] = estimable
    out["note"] = pd.Series(notes, index=df.index, dtype=str)
    out["measure"] = pd.Series(["MD"] * k, index=df.index, dtype=str)
    out["ni"] = np.where(np.isnan(vals["ni"]) & is_["first_period"], vals["n1i_p1"] + vals["n2i_p1"], vals["ni"])
    out["route"] = pd.Series(list(routes), index=df.index, dtype=str)
    out["assumed_r"] = np.where(assumed, corr, np.nan)
    out.attrs["measure"] = "MD"
    fail(
        "the variance of the paired difference is 0 (r = 1 and equal SDs?); the trial is not estimable",
        labels,
        ~estimable,
        col("ri") if cols["ri"] is not None else "ri",
    )
    return out


def _label(arg: str, col) -> str:
    if arg == "md":
        return "mean difference (mdi, or m1i and m2i)"
    if arg == "r":
        return "correlation (ri or r=)"
    return repr(str(col(arg)))


#: columns :func:`with_assumed_r` reads, as :func:`crossover` and :func:`~ketabayes.effect_sizes` name them
_REDERIVE = {"periods": ("m1i", "sd1i", "m2i", "sd2i", "ni"), "MC": ("m1i", "m2i", "sd1i", "sd2i", "ni"),
             "SMCC": ("m1i", "m2i", "sd1i", "sd2i", "ni"), "SMCR": ("m1i", "m2i", "sd1i", "ni")}


def with_assumed_r(table: pd.DataFrame, r: float, *, study: Hashable = STUDY_COL) -> pd.DataFrame:
    """The same effect-size table with every *assumed* within-patient correlation replaced by ``r``.

    The rows whose correlation was assumed rather than reported are those with a finite
    ``assumed_r``: crossover trials analysed by route ``"periods"`` without ``ri``
    (:func:`crossover`) and paired measures ``MC``, ``SMCC``, ``SMCR`` without ``ri``
    (:func:`~ketabayes.effect_sizes` with ``r=``). Each is re-derived by the same code at the
    new ``r`` (``yi`` changes for ``SMCC``, ``vi``/``sei`` for all); ``assumed_r``,
    ``note`` and ``conversion`` say so. Every other row -- reported correlations, other
    routes, parallel trials -- is returned unchanged. This is what the ``r`` factor of
    :class:`~ketabayes.sensitivity.Sensitivity` does to each variant's data.

    Parameters
    ----------
    table : pandas.DataFrame
        Output of :func:`crossover` or of paired :func:`~ketabayes.effect_sizes`, possibly
        concatenated with other effect sizes. It must keep the inputs under the names these
        functions read (``m1i, sd1i, m2i, sd2i, ni``; ``SMCR`` without ``sd2i``). Not modified.
    r : float
        The correlation to assume, in [-1, 1].
    study : str, default ``"study"``

    Returns
    -------
    pandas.DataFrame

    Raises
    ------
    DataError
        When no row has an assumed correlation (column ``assumed_r``), or a row that has one
        lacks an input column (naming the study and the column).

    Examples
    --------
    >>> import pandas as pd
    >>> trial = pd.DataFrame({"study": ["Example"], "m1i": [7.0], "sd1i": [2.38],
    ...                       "m2i": [6.5], "sd2i": [2.21], "ni": [10]})
    >>> at68 = crossover(trial, r=0.68)
    >>> round(float(with_assumed_r(at68, 0.0)["sei"].iloc[0]), 4)  # r = 0: periods as independent groups
    1.0271
    """
    r = check_correlation(r)
    df = as_dataframe(table)
    if "assumed_r" not in df.columns:
        raise DataError("no study has an assumed correlation (there is no 'assumed_r' column: crossover() "
                        "and paired effect_sizes() record one per study when r= was used)", column="assumed_r")
    old = pd.to_numeric(df["assumed_r"], errors="coerce").to_numpy(dtype=float)
    rows = np.flatnonzero(np.isfinite(old))
    if rows.size == 0:
        raise DataError("no study has an assumed correlation (column 'assumed_r' is empty: every correlation "
                        "was reported, or no study needed one)", column="assumed_r")
    labels = [str(x) for x in df[study]] if study in df.columns else [f"row {i + 1}" for i in range(len(df))]
    out = df.copy(deep=True)
    out.attrs = dict(df.attrs)
    route = df["route"].astype(str).to_numpy() if "route" in df.columns else np.full(len(df), "")
    measure = df["measure"].astype(str).str.upper().to_numpy() if "measure" in df.columns else np.full(len(df), "")
    for i in rows:
        kind = "periods" if route[i] == "periods" else measure[i]
        if kind not in _REDERIVE:
            raise DataError(f"the correlation {old[i]:g} is recorded as assumed (column 'assumed_r') but the row "
                            f"is neither a crossover trial of route 'periods' nor a paired measure "
                            f"({', '.join(PAIRED_MEASURES)}), so it cannot be re-derived", study=labels[i],
                            column="assumed_r")
        got = {}
        for c in _REDERIVE[kind]:
            if c not in df.columns:
                raise DataError(f"the {kind} estimate is re-derived at another r from {', '.join(_REDERIVE[kind])} "
                                f"(the names crossover()/effect_sizes() read); column {c!r} is missing",
                                study=labels[i], column=c)
            got[c] = optional_numeric(df.iloc[[i]], c, [labels[i]], what=c)[0]
            if np.isnan(got[c]):
                fail("is blank, so the estimate cannot be re-derived at another r", [labels[i]], [True], c)
        if kind == "periods":
            one = {STUDY_COL: [labels[i]], **{c: [got[c]] for c in got}}
            if "mdi" in df.columns and not pd.isna(df["mdi"].iloc[i]):
                one["mdi"] = [df["mdi"].iloc[i]]
            new = crossover(pd.DataFrame(one), method="periods", r=r).iloc[0]
            was = crossover(pd.DataFrame(one), method="periods", r=float(old[i])).iloc[0]
            yi, vi, note_old, note_new = new["yi"], new["vi"], was["note"], new["note"]
            text_old, text_new = was["conversion"], new["conversion"]
        else:
            y, v = paired_effect([got["m1i"]], [got["m2i"]], [got["sd1i"]], [got.get("sd2i", np.nan)],
                                 [got["ni"]], [r], kind)
            yi, vi = float(y[0]), float(v[0])
            note_old, note_new = assumed_r_note(float(old[i])), assumed_r_note(r)
            text_old = text_new = None
        if not (np.isfinite(vi) and vi > 0):
            fail(f"at the assumed r = {r:g} the variance is {vi:g} (r = 1 and equal SDs?): not estimable",
                 [labels[i]], [True], "assumed_r")
        out.iloc[i, out.columns.get_loc("yi")] = yi
        out.iloc[i, out.columns.get_loc("vi")] = vi
        if "sei" in out.columns:
            out.iloc[i, out.columns.get_loc("sei")] = float(np.sqrt(vi))
        out.iloc[i, out.columns.get_loc("assumed_r")] = r
        for col, a, b in (("note", note_old, note_new), ("conversion", text_old, text_new)):
            if a is not None and col in out.columns:
                cell = "" if pd.isna(out[col].iloc[i]) else str(out[col].iloc[i])
                out.iloc[i, out.columns.get_loc(col)] = cell.replace(a, b) if a in cell else (
                    f"{cell}; {b}" if cell else b)
    return out
