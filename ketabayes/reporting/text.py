"""Plain-text rendering of decision tables and plain-words explanations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ketabayes.result.decision import RATIO_MEASURES, Thresholds

__all__ = ["format_decision_table", "explain", "format_frequentist"]


def _effect(x: float, ratio: bool) -> str:
    return f"{math.exp(x):.3g}" if ratio else f"{x:.3g}"


def format_decision_table(table: pd.DataFrame, measure: str, *, label_cols=("prior", "target")) -> str:
    """Render a decision table for the terminal (ratios back-transformed for OR/RR).

    Columns: the label columns present, median and 95% interval on the reporting
    scale, P(benefit), P(~0) (practically no effect), P(harm), P(any benefit),
    and the verdict if present.
    """
    already = "scale" in table.columns and (table["scale"] == "ratio").all()
    ratio = measure.upper() in RATIO_MEASURES and not already
    out = pd.DataFrame()
    for c in label_cols:
        if c in table.columns:
            out[c] = table[c].astype(str)
    unit = measure.upper()
    level = f"{100 * float(table['ci_prob'].iloc[0]):g}%" if "ci_prob" in table.columns and len(table) else "95%"
    out[f"median {unit}"] = [_effect(v, ratio) for v in table["median"]]
    out[f"{level} CrI"] = [f"{_effect(a, ratio)} to {_effect(b, ratio)}"
                           for a, b in zip(table["ci_low"], table["ci_high"])]
    for col, name in (("p_benefit", "P(benefit)"), ("p_trivial", "P(~no effect)"), ("p_harm", "P(harm)"),
                      ("p_any_benefit", "P(any benefit)")):
        out[name] = [f"{v:.3f}" for v in table[col]]
    if "verdict" in table.columns:
        out["verdict"] = table["verdict"]
    return out.to_string(index=False)


def format_frequentist(freq: pd.DataFrame, measure: str) -> str:
    """FE / DL / REML table as metafor prints it, back-transformed for ratios."""
    ratio = measure.upper() in RATIO_MEASURES
    rows = []
    for name, r in freq.iterrows():
        pi = ("-" if r["pi_low"] is None or not np.isfinite(r["pi_low"])
              else f"{_effect(r['pi_low'], ratio)} to {_effect(r['pi_high'], ratio)}")
        rows.append({"method": name, f"estimate ({measure})": _effect(r["estimate"], ratio),
                     "95% CI": f"{_effect(r['ci_low'], ratio)} to {_effect(r['ci_high'], ratio)}",
                     "tau^2": f"{r['tau2']:.4g}", "I^2 (%)": f"{r['I2']:.1f}", "Q": f"{r['Q']:.2f}",
                     "95% PI": pi})
    return pd.DataFrame(rows).to_string(index=False)


def explain(row, thresholds: Thresholds, measure: str, subject: str = "the treatment") -> str:
    """One plain-words sentence for a row of a decision table."""
    th = thresholds
    ratio = th.ratio
    lo, hi = th.cuts()
    if th.benefit == "lower":
        b_txt = f"{measure} below {_effect(lo, ratio)}"
        h_txt = f"{measure} above {_effect(hi, ratio)}"
    else:
        b_txt = f"{measure} above {_effect(hi, ratio)}"
        h_txt = f"{measure} below {_effect(lo, ratio)}"
    who = getattr(row, "prior", None)
    prefix = f"Under the {who} prior, " if who else ""
    target = getattr(row, "target", "mean")
    what = "the average effect" if target == "mean" else (
        "the effect in a new trial" if target == "predictive" else f"the effect for {target}")
    lead = f"{prefix}the probability" if prefix else "The probability"
    return (f"{lead} that {what} of {subject} is a clinically meaningful benefit ({b_txt}) is "
            f"{row.p_benefit:.2f}; practically no effect {row.p_trivial:.2f}; harm ({h_txt}) {row.p_harm:.2f}; "
            f"any benefit at all {row.p_any_benefit:.2f}.")
