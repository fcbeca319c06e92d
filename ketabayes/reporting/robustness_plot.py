"""Robustness figures of a sensitivity grid (matplotlib).

* :func:`plot_robustness_heatmap` -- P(benefit) (or another probability) for every
  variant (rows) and target (columns), each cell annotated with its verdict;
* :func:`plot_tornado` -- the range of P(benefit) over the levels of each factor,
  around the base variant (best with ``design="one-at-a-time"``).

Both take the tidy table of :class:`~ketabayes.sensitivity.SensitivityResult`
and return a :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ketabayes.errors import KetabayesError

__all__ = ["plot_robustness_heatmap", "plot_tornado", "VERDICT_CODES", "VERDICT_COLOURS", "TABLE_FACTORS"]

#: short codes printed in heatmap cells
VERDICT_CODES = {"probable benefit": "B", "practically no effect": "0", "uncertain": "?", "probable harm": "H",
                 "": ""}

#: cell colour of each verdict (Okabe-Ito, colour-blind safe): benefit and harm far apart, "no effect" a
#: neutral grey (not painted like harm), "uncertain" pale
VERDICT_COLOURS = {"probable benefit": "#009E73", "practically no effect": "#999999", "uncertain": "#F0E442",
                   "probable harm": "#D55E00", "failed": "#FFFFFF"}

_ORDER = ["probable benefit", "practically no effect", "uncertain", "probable harm"]


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    if "error" in table.columns:
        table = table[table["error"].fillna("") == ""]
    if table.empty:
        raise KetabayesError("nothing to plot: every variant failed or the table is empty")
    return table


def _row_labels(t: pd.DataFrame) -> pd.Series:
    """Readable row labels: the ``label`` column (only the factors that vary), else the variant name."""
    if "label" in t.columns and (t["label"].astype(str) != "").all():
        return t["label"].astype(str)
    return t["variant"].astype(str)


def plot_robustness_heatmap(table: pd.DataFrame, *, value: str = "p_benefit", verdict: str = "verdict",
                            max_rows: int = 60, annotate: bool = True, ax=None):
    """Verdict of every variant (rows) and target (columns), with ``value`` printed in each cell.

    Cells are coloured by verdict with a colour-blind-safe palette
    (:data:`VERDICT_COLOURS`) and a legend names every code. Rows are labelled by
    the table's ``label`` column (only the factors that vary). A grid with more
    than ``max_rows`` variants (e.g. 288 leave-one-out variants) is summarised
    instead: one bar per target showing the share of variants with each verdict.

    Parameters
    ----------
    table : pandas.DataFrame
        ``SensitivityResult.table`` (rows with errors are skipped).
    value : str
        Probability printed in each cell (``p_benefit``, ``p_harm``, ``p_benefit_avg`` ...).
    verdict : str
        Verdict column giving the colours (``verdict`` or ``verdict_avg``).
    max_rows : int
        Largest number of rows drawn one by one; larger grids are summarised.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
        Not left open in pyplot's figure manager (so Jupyter displays it once).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from ketabayes.reporting.robustness_plot import plot_robustness_heatmap
    >>> t = pd.DataFrame({"variant": ["a", "a", "b", "b"], "target": ["mean", "predictive"] * 2,
    ...                   "p_benefit": [0.9, 0.6, 0.7, 0.4],
    ...                   "verdict": ["probable benefit", "uncertain", "uncertain", "uncertain"]})
    >>> fig = plot_robustness_heatmap(t)
    >>> [tl.get_text() for tl in fig.axes[0].get_yticklabels()]
    ['a', 'b']
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from ketabayes.reporting.plots import new_figure

    t = _ok(table).copy()
    t["_row"] = _row_labels(t)
    rows = list(dict.fromkeys(t["_row"]))
    targets = list(dict.fromkeys(t["target"]))
    nice = {"p_benefit": "P(benefit beyond the MCID)", "p_harm": "P(harm)", "p_trivial": "P(practically no effect)",
            "p_any_benefit": "P(any benefit)"}
    label = nice.get(value.removesuffix("_avg"), value) + (" (model-averaged)" if value.endswith("_avg") else "")
    codes = {v: i for i, v in enumerate(_ORDER)}
    if ax is None:
        n = len(rows) if len(rows) <= max_rows else len(targets)
        longest = max(len(r) for r in rows) if len(rows) <= max_rows else 12
        fig, ax = new_figure((3.5 + 1.3 * len(targets) + 0.07 * min(longest, 80), 2.2 + 0.28 * n))
    else:
        fig = ax.figure
    legend = [Patch(facecolor=VERDICT_COLOURS[v], edgecolor="0.3", label=f"{VERDICT_CODES[v]} = {v}")
              for v in _ORDER]
    if len(rows) > max_rows:  # summarise: share of variants per verdict, one bar per target
        left = np.zeros(len(targets))
        for v in _ORDER:
            share = np.array([(t.loc[t["target"] == tg, verdict] == v).mean() for tg in targets])
            ax.barh(np.arange(len(targets)), share, left=left, color=VERDICT_COLOURS[v], edgecolor="0.3",
                    label=v)
            left += share
        ax.set_yticks(np.arange(len(targets)), labels=targets)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"share of the {len(rows)} variants")
        ax.set_ylabel("target")
        ax.legend(handles=legend, title="verdict", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
        ax.set_title(f"Verdicts across {len(rows)} variants\n(summarised; filter the table to see each one)",
                     fontsize=10)
        return fig
    verdicts = t.pivot_table(index="_row", columns="target", values=verdict, aggfunc="first", sort=False)
    verdicts = verdicts.reindex(index=rows, columns=targets)
    idx = verdicts.map(lambda v: codes.get(v, np.nan)).to_numpy(dtype=float)
    cmap = ListedColormap([VERDICT_COLOURS[v] for v in _ORDER]).with_extremes(bad=VERDICT_COLOURS["failed"])
    ax.imshow(np.ma.masked_invalid(idx), cmap=cmap, vmin=-0.5, vmax=len(_ORDER) - 0.5, aspect="auto",
              interpolation="nearest")
    long_names = max(len(str(tg)) for tg in targets) > 12
    ax.set_xticks(np.arange(len(targets)), labels=targets, rotation=25 if long_names else 0,
                  ha="right" if long_names else "center", rotation_mode="anchor")
    ax.set_yticks(np.arange(len(rows)), labels=rows, fontsize=7 if len(rows) > 20 else 9)
    ax.set_xlabel("target")
    ax.set_ylabel("variant")
    if annotate and value in t.columns:
        vals = t.pivot_table(index="_row", columns="target", values=value, aggfunc="first", sort=False)
        vals = vals.reindex(index=rows, columns=targets)
        for i in range(len(rows)):
            for j in range(len(targets)):
                c, p = verdicts.iat[i, j], vals.iat[i, j]
                if isinstance(c, str) and c:
                    ax.text(j, i, f"{VERDICT_CODES.get(c, c[:1])} {p:.2f}", ha="center", va="center", fontsize=8)
    ax.legend(handles=legend, title=f"verdict (cells: code {label})", loc="upper left", bbox_to_anchor=(1.01, 1),
              fontsize=8, title_fontsize=8)
    changed = [tg for tg in targets if t.loc[t["target"] == tg, verdict].nunique() > 1]
    kept = [tg for tg in targets if tg not in changed]
    if not changed:
        flag = "every verdict robust"
    else:
        flag = f"verdict changes for {', '.join(changed)}"
        if kept:
            flag += f"; robust for {', '.join(kept)}" if len(kept) <= 2 else f"; robust for the other {len(kept)}"
    ax.set_title(f"Verdicts across the sensitivity grid\n({flag})", fontsize=10, wrap=True)
    return fig


#: factor columns of a sensitivity table, in the order of :data:`ketabayes.sensitivity.FACTORS`
#: (reporting sits below the sensitivity package and cannot import it; a test keeps the two equal)
TABLE_FACTORS = ("prior_mu", "prior_tau", "model", "likelihood", "bias", "data", "r", "multiarm", "conversions",
                 "rho_time", "rho_between", "subset", "method", "mcid", "power_scaling")


def plot_tornado(table: pd.DataFrame, *, target: str = "mean", value: str = "p_benefit", factors=TABLE_FACTORS,
                 ax=None):
    """Tornado plot: range of ``value`` over the levels of each factor, base variant as a line.

    The base variant is the first row of the table for ``target``; for each factor,
    the bar spans the values of the variants that differ from the base in that
    factor only (a one-at-a-time design gives exactly these variants; a level
    ``"-"``, e.g. the tau prior of a fixed-effect model, counts as matching).
    Each end of a bar is labelled with the level that gives it (``0.2`` for the
    level ``r = 0.2`` of the bar ``r``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from ketabayes.reporting.plots import new_figure

    t = _ok(table)
    t = t[t["target"] == target]
    if t.empty:
        raise KetabayesError(f"no rows for target {target!r}")
    factors = [f for f in factors if f in t.columns]
    base = t.iloc[0]
    bars = []
    for f in factors:
        others = [g for g in factors if g != f]
        same = np.ones(len(t), dtype=bool)
        for g in others:
            if pd.api.types.is_numeric_dtype(t[g]):  # numbers (mcid, r, rho_time): NaN = not part of the grid
                col = t[g].to_numpy(dtype=float)
                b = float(base[g])
                same &= (col == b) | (np.isnan(col) & np.isnan(b))
                continue
            col = t[g].astype(str)
            same &= ((col == str(base[g])) | (col == "-")).to_numpy()  # "-": not applicable (tau, fixed effect)
        sub = t.loc[same]
        vals = sub[value].to_numpy(dtype=float)
        if len(vals) > 1:
            lo, hi = int(np.nanargmin(vals)), int(np.nanargmax(vals))
            level = sub[f].map(lambda x: f"{x:g}" if isinstance(x, float) else str(x)).to_numpy()
            bars.append((f, float(vals[lo]), float(vals[hi]), level[lo], level[hi]))
    if not bars:
        raise KetabayesError("no factor varies around the base variant: use design='one-at-a-time' or filter")
    bars.sort(key=lambda b: b[2] - b[1])
    if ax is None:
        fig, ax = new_figure((7.5, 2.0 + 0.5 * len(bars)))
    else:
        fig = ax.figure
    y = np.arange(len(bars))
    ax.barh(y, [b[2] - b[1] for b in bars], left=[b[1] for b in bars], color="#0072B2", alpha=0.75)
    for yi, (_, lo, hi, llo, lhi) in zip(y, bars):  # each end labelled with the level that gives it
        ax.text(lo, yi, f"{llo} ", ha="right", va="center", fontsize=7)
        ax.text(hi, yi, f" {lhi}", ha="left", va="center", fontsize=7)
    ax.axvline(float(base[value]), color="k", lw=1)
    ax.set_yticks(y, labels=[b[0] for b in bars])
    ax.set_xlim(-0.35, 1.35)
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel(f"{value} ({target})")
    ax.set_ylabel("factor")
    ax.set_title("Range over each factor's levels (ends: the level; line: base variant)", fontsize=10)
    return fig
