"""The grid's tidy table and its verdicts: :class:`SensitivityResult`, robustness summaries.

Columns are typed: factor levels are text except ``mcid`` (float, the MCID as
given, e.g. a ratio for OR/RR), the assumed correlations ``r``, ``rho_time``,
``rho_between`` (floats; NaN where the factor is not part of the grid) and
``power_alpha`` (float); ``label`` is a
readable description of each row's variant naming only the factors that vary in
the grid (in a one-at-a-time design: the factor in which it differs from the base
variant, ``"base"`` for the base itself); the thresholds travel as columns (``mcid``, ``harm_threshold``,
``benefit_direction``) with the scale of the summaries (``scale``: ``"log"``
for ratio measures, else ``"identity"``). No cell holds a list.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ketabayes.decision import RATIO_MEASURES
from ketabayes.errors import KetabayesError
from ketabayes.sensitivity.spec import FACTORS

if TYPE_CHECKING:
    from ketabayes.sensitivity.grid import Sensitivity

__all__ = ["SensitivityResult", "TABLE_COLUMNS"]

#: columns of :attr:`SensitivityResult.table`
TABLE_COLUMNS = ["variant", "fit_id", "label", *FACTORS, "power_alpha", "harm_threshold", "benefit_direction",
                 "scale", "prior_mu_spec", "prior_tau_spec", "k", "target", "mean", "sd", "median", "ci_low",
                 "ci_high", "hpd_low", "hpd_high", "ci_prob", "p_benefit", "p_trivial", "p_harm", "p_any_benefit", "verdict", "exact",
                 "seed", "is_ess", "pareto_k", "psense_prior", "psense_likelihood", "bf10", "post_prob_h1",
                 "p_benefit_avg", "p_trivial_avg", "p_harm_avg", "p_any_benefit_avg", "verdict_avg", "seconds",
                 "warning", "error"]

_TEXT = ("variant", "fit_id", "label", "prior_mu", "prior_tau", "model", "likelihood", "bias", "data", "multiarm",
         "conversions", "subset", "method", "power_scaling", "benefit_direction", "scale", "prior_mu_spec", "prior_tau_spec", "target", "verdict",
         "verdict_avg", "warning", "error")
_FLOAT = ("mcid", "r", "rho_time", "rho_between", "power_alpha", "harm_threshold", "mean", "sd", "median", "ci_low", "ci_high", "hpd_low",
          "hpd_high", "ci_prob", "p_benefit", "p_trivial", "p_harm", "p_any_benefit", "is_ess", "pareto_k", "psense_prior",
          "psense_likelihood", "bf10", "post_prob_h1", "p_benefit_avg", "p_trivial_avg", "p_harm_avg",
          "p_any_benefit_avg", "seconds")


def _fmt(factor: str, value) -> str:
    if isinstance(value, float):
        return f"{factor}={value:g}" if math.isfinite(value) else f"{factor}=-"
    return f"{factor}={value}"


def build_table(grid: Sensitivity, done_rows: dict[str, list[dict]]) -> pd.DataFrame:
    """Assemble the typed, sorted table of a grid from the rows of its finished variants."""
    order = {v.name: i for i, v in enumerate(grid.variants)}
    rows = [r for v in grid.variants for r in done_rows.get(v.name, [])]
    df = pd.DataFrame(rows)
    for c in TABLE_COLUMNS:
        if c not in df.columns:
            df[c] = "" if c in _TEXT else np.nan
    df = df[TABLE_COLUMNS + [c for c in df.columns if c not in TABLE_COLUMNS]].copy()
    for c in _FLOAT:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    for c in _TEXT:
        df[c] = df[c].fillna("").astype(str)
    df["power_scaling"] = df["power_scaling"].replace("", "none")
    for c in ("k", "seed"):
        df[c] = pd.to_numeric(df[c]).astype("int64")
    df["exact"] = df["exact"].astype("boolean")
    # the thresholds that give the probabilities their meaning, as columns
    harm = {float(t.mcid): float(t.mcid if t.harm is None else t.harm) for t in grid.thresholds if t is not None}
    df["harm_threshold"] = df["mcid"].map(harm).astype(float)
    df["benefit_direction"] = grid.benefit
    ratio = (grid.measure or "").upper() in RATIO_MEASURES
    df["scale"] = "log" if ratio else "identity"
    mcids = [float(t.mcid) for t in grid.thresholds if t is not None]
    if len(mcids) > 1:
        df["variant"] = df["fit_id"] + " | mcid=" + df["mcid"].map(lambda m: f"{m:g}")
    ps = df["power_scaling"] != "none"
    df.loc[ps, "variant"] = df.loc[ps, "variant"] + " | " + df.loc[ps, "power_scaling"]
    varying = [f for f in FACTORS if df[f].nunique(dropna=False) > 1]
    if varying and grid.design == "one-at-a-time" and len(df):
        # each variant differs from the base in one factor: name that factor only ("-": not applicable)
        base = dict(zip(varying, df[varying].iloc[0]))

        def differs(f, v):
            b = base[f]
            if isinstance(v, float) and isinstance(b, float):
                return not (v == b or (math.isnan(v) and math.isnan(b)))
            return v != b and v != "-"

        df["label"] = [", ".join(_fmt(f, v) for f, v in zip(varying, vals) if differs(f, v)) or "base"
                       for vals in df[varying].itertuples(index=False, name=None)]
    elif varying:
        df["label"] = [", ".join(_fmt(f, v) for f, v in zip(varying, vals))
                       for vals in df[varying].itertuples(index=False, name=None)]
    else:
        df["label"] = df["fit_id"]
    tpos = {t: i for i, t in enumerate(grid.targets)}
    mpos = {m: i for i, m in enumerate(mcids)}
    df["_o"] = df["fit_id"].map(order)
    df["_p"] = ps.astype(int)
    df["_t"] = df["target"].map(tpos)
    df["_m"] = df["mcid"].map(lambda m: mpos.get(m, -1))
    df = df.sort_values(["_o", "_m", "_p", "power_scaling", "_t"], kind="stable").drop(
        columns=["_o", "_p", "_t", "_m"]).reset_index(drop=True)
    df.attrs.update(measure=grid.measure, benefit=grid.benefit, harm=grid.harm, rule=grid.rule.describe(),
                    thresholds=[t.to_dict() if t else None for t in grid.thresholds], design=grid.design)
    return df


@dataclass
class SensitivityResult:
    """Result of :meth:`Sensitivity.run`.

    Attributes
    ----------
    table : pandas.DataFrame
        Tidy table, one row per variant x MCID x target (x power-scaling); columns
        :data:`TABLE_COLUMNS` (factor columns, the priors ``prior_mu_spec`` /
        ``prior_tau_spec``, ``k`` = studies the analysis used, posterior ``mean, sd,
        median, ci_low, ci_high`` (equal-tailed ci_prob interval), ``hpd_low, hpd_high`` (the shortest
        ci_prob interval), decision probabilities, ``verdict``, ``seed``, ``warning``,
        ``error``, ...). Probabilities are on the analysis scale (log scale for OR/RR).
        ``attrs``: thresholds, rule, design, ``seed``, ``config_hash``, ``data_hash``,
        ``versions`` and ``grid`` (:meth:`Sensitivity.grid_description`).
    results : dict
        Fitted results by variant name (only with ``keep_results=True``).
    grid : Sensitivity
    seed : int
    """

    table: pd.DataFrame
    results: dict
    grid: Sensitivity
    seed: int

    @property
    def failed(self) -> pd.DataFrame:
        """Rows of variants that failed, with their error messages."""
        return self.table[self.table["error"] != ""]

    def robustness(self, by=("target", "mcid"), column: str = "verdict") -> pd.DataFrame:
        """Does the conclusion change across the grid?

        Parameters
        ----------
        by : sequence of str
            Columns within which variants are compared (default: each target and MCID).
        column : {"verdict", "verdict_avg"}
            Verdict column (``verdict_avg``: model-averaged over H0/H1).

        Returns
        -------
        pandas.DataFrame
            One row per group: ``n_variants``, ``base_verdict`` (first variant of the grid),
            ``verdicts`` (counts), ``robust`` (one verdict everywhere), ``p_benefit_min``,
            ``p_benefit_max``, ``n_changed`` and ``changed_in`` (the variants whose verdict differs
            from the base, joined by ``"; "``: text, not a list).
        """
        ok = self.table[(self.table["error"] == "") & (self.table[column] != "")]
        out = []
        for key, g in ok.groupby(list(by), sort=False, dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            base = g[column].iloc[0]
            counts = g[column].value_counts()
            changed = g.loc[g[column] != base, "variant"].tolist()
            out.append({**dict(zip(by, key)), "n_variants": len(g), "base_verdict": base,
                        "verdicts": "; ".join(f"{k}: {v}" for k, v in counts.items()),
                        "robust": len(counts) == 1, "p_benefit_min": g["p_benefit"].min(),
                        "p_benefit_max": g["p_benefit"].max(), "n_changed": len(changed),
                        "changed_in": "; ".join(changed)})
        return pd.DataFrame(out)

    def plot(self, kind: str = "heatmap", **kwargs):
        """Robustness figure; see :mod:`ketabayes.reporting.robustness_plot`."""
        from ketabayes.reporting import robustness_plot

        if kind == "heatmap":
            return robustness_plot.plot_robustness_heatmap(self.table, **kwargs)
        if kind == "tornado":
            return robustness_plot.plot_tornado(self.table, **kwargs)
        raise KetabayesError(f"kind must be 'heatmap' or 'tornado', got {kind!r}")

    def settings_path(self, path) -> Path:
        """Where :meth:`to_csv` writes the settings of a table saved at ``path``: ``<stem>.settings.json``."""
        path = Path(path)
        return path.with_name(path.stem + ".settings.json")

    def to_csv(self, path) -> Path:
        """Write the table to ``path`` and its settings (``table.attrs``) next to it.

        CSV cannot hold the table's attributes, so they go to
        :meth:`settings_path` (``grid.csv`` -> ``grid.settings.json``) as strict
        JSON: package versions, ``data_hash``, base seed, ``config_hash``,
        thresholds, verdict rule and the grid with every prior written out.

        Returns
        -------
        pathlib.Path
            The CSV path.
        """
        from ketabayes.provenance import to_json

        path = Path(path)
        self.table.to_csv(path, index=False)
        self.settings_path(path).write_text(to_json(self.table.attrs, indent=2, sort_keys=True) + "\n",
                                            encoding="utf-8")
        return path

    def __repr__(self) -> str:
        n_err = self.failed["fit_id"].nunique()
        return (f"<SensitivityResult: {self.table['fit_id'].nunique()} fits, {len(self.table)} rows, "
                f"{n_err} failed>")
