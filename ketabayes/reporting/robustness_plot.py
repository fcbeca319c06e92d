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

__all__ = ["plot_robustness_heatmap", "plot_tornado", "VERDICT_CODES"]

#: short codes printed in heatmap cells
VERDICT_CODES = {"probable benefit": "B", "practically no effect": "0", "uncertain": "?", "probable harm": "H",
                 "": ""}


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    if "error" in table.columns:
        table = table[table["error"].fillna("") == ""]
    if table.empty:
        raise KetabayesError("nothing to plot: every variant failed or the table is empty")
    return table


def plot_robustness_heatmap(table: pd.DataFrame, *, value: str = "p_benefit", verdict: str = "verdict",
                            max_rows: int = 80, annotate: bool = True, ax=None, cmap: str = "RdYlGn"):
    """Heatmap of a decision probability across variants (rows) and targets (columns).

    Parameters
    ----------
    table : pandas.DataFrame
        ``SensitivityResult.table`` (rows with errors are skipped).
    value : str
        Probability column shown by colour (``p_benefit``, ``p_harm``, ``p_benefit_avg`` ...).
    verdict : str
        Verdict column used for the cell annotations (B = probable benefit,
        0 = practically no effect, ? = uncertain, H = probable harm).
    max_rows : int
        Refuse to draw more variants than this (filter the table first).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure

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
    import matplotlib.pyplot as plt

    t = _ok(table)
    variants = list(dict.fromkeys(t["variant"]))
    targets = list(dict.fromkeys(t["target"]))
    if len(variants) > max_rows:
        raise KetabayesError(f"{len(variants)} variants are too many rows for a readable heatmap (max_rows="
                             f"{max_rows}); filter the table, e.g. to one MCID or one factor")
    grid = t.pivot_table(index="variant", columns="target", values=value, aggfunc="first", sort=False)
    grid = grid.reindex(index=variants, columns=targets)
    if ax is None:
        longest = max(len(str(v)) for v in variants)  # room for the variant labels
        fig, ax = plt.subplots(figsize=(3.0 + 1.3 * len(targets) + 0.07 * longest, 2.0 + 0.28 * len(variants)),
                               layout="constrained")
    else:
        fig = ax.figure
    im = ax.imshow(grid.to_numpy(dtype=float), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto",
                   interpolation="nearest")
    ax.set_xticks(np.arange(len(targets)), labels=targets)
    ax.set_yticks(np.arange(len(variants)), labels=variants, fontsize=7 if len(variants) > 20 else 9)
    ax.set_xlabel("target")
    ax.set_ylabel("variant")
    nice = {"p_benefit": "P(benefit beyond the MCID)", "p_harm": "P(harm)", "p_trivial": "P(practically no effect)",
            "p_any_benefit": "P(any benefit)"}
    label = nice.get(value.removesuffix("_avg"), value) + (" (model-averaged)" if value.endswith("_avg") else "")
    fig.colorbar(im, ax=ax, label=label)
    if annotate and verdict in t.columns:
        codes = t.pivot_table(index="variant", columns="target", values=verdict, aggfunc="first", sort=False)
        codes = codes.reindex(index=variants, columns=targets)
        for i in range(len(variants)):
            for j in range(len(targets)):
                c = codes.iat[i, j]
                if isinstance(c, str) and c:
                    ax.text(j, i, VERDICT_CODES.get(c, c[:1]), ha="center", va="center", fontsize=8)
    robust = {tg: t.loc[t["target"] == tg, verdict].nunique() == 1 for tg in targets} if verdict in t.columns else {}
    flag = ", ".join(f"{tg}: {'robust' if r else 'changes'}" for tg, r in robust.items())
    ax.set_title(f"{label} across the sensitivity grid" + (f"\n({flag})" if flag else ""), fontsize=10)
    return fig


def plot_tornado(table: pd.DataFrame, *, target: str = "mean", value: str = "p_benefit",
                 factors=("prior_mu", "prior_tau", "model", "likelihood", "subset", "method", "mcid",
                          "power_scaling"), ax=None):
    """Tornado plot: range of ``value`` over the levels of each factor, base variant as a line.

    The base variant is the first row of the table for ``target``; for each factor,
    the bar spans the values of the variants that differ from the base in that
    factor only (a one-at-a-time design gives exactly these variants; a level
    ``"-"``, e.g. the tau prior of a fixed-effect model, counts as matching).

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

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
            col = t[g].astype(str)
            same &= ((col == str(base[g])) | (col == "-")).to_numpy()  # "-": not applicable (tau, fixed effect)
        vals = t.loc[same, value].to_numpy(dtype=float)
        if len(vals) > 1:
            bars.append((f, float(np.nanmin(vals)), float(np.nanmax(vals))))
    if not bars:
        raise KetabayesError("no factor varies around the base variant: use design='one-at-a-time' or filter")
    bars.sort(key=lambda b: b[2] - b[1])
    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 2.0 + 0.45 * len(bars)), layout="constrained")
    else:
        fig = ax.figure
    y = np.arange(len(bars))
    ax.barh(y, [b[2] - b[1] for b in bars], left=[b[1] for b in bars], color="tab:blue", alpha=0.7)
    ax.axvline(float(base[value]), color="k", lw=1)
    ax.set_yticks(y, labels=[b[0] for b in bars])
    ax.set_xlim(0, 1)
    ax.set_xlabel(f"{value} ({target})")
    ax.set_ylabel("factor")
    ax.set_title("Range over each factor's levels (line: base variant)", fontsize=10)
    return fig
