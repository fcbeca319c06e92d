"""Plain-text rendering of decision tables and plain-words explanations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ketabayes.decision import RATIO_MEASURES, Thresholds

__all__ = ["format_decision_table", "explain", "format_frequentist", "format_revman", "sig"]


def sig(x: float, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, keeping trailing zeros: -1.0047 -> ``-1.00``, not ``-1``.

    (``format(x, ".3g")`` drops them, so an estimate of -1.005 would read as the integer -1.)

    Examples
    --------
    >>> from ketabayes.reporting.text import sig
    >>> sig(-1.0047), sig(0.4866), sig(123.4), sig(15.79, 4), sig(2.5e-05)
    ('-1.00', '0.487', '123', '15.79', '2.50e-05')
    """
    x = float(x)
    if not math.isfinite(x):
        return str(x)
    return f"{x:#.{digits}g}".rstrip(".").replace(".e", "e")


def _effect(x: float, ratio: bool) -> str:
    return sig(math.exp(x)) if ratio else sig(x)


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
                     "tau^2": sig(r['tau2'], 4), "I^2 (%)": f"{r['I2']:.1f}", "Q": f"{r['Q']:.2f}",
                     "95% PI": pi})
    return pd.DataFrame(rows).to_string(index=False)


def _p(p: float) -> str:
    """P-values as RevMan prints them."""
    return "P < 0.00001" if p < 0.00001 else f"P = {p:.5f}".rstrip("0").rstrip(".") if p < 0.001 else f"P = {p:.3f}"


def format_revman(yi, vi, measure: str, *, level: float = 0.95) -> str:
    """The random-effects analysis as RevMan reports it since 2025, as plain text.

    REML estimate with the Hartung-Knapp-Sidik-Jonkman (HKSJ) confidence interval, the t-based prediction
    interval, tau^2 with its Q-profile interval, Cochran's Q (Chi^2) and I^2, and the t test for the
    overall effect -- the numbers a Cochrane reader compares a Bayesian re-analysis with -- followed by the
    DerSimonian-Laird / Wald analysis of RevMan 5 for reference. Ratios are back-transformed.

    Parameters
    ----------
    yi, vi : array-like of float
        Effect sizes (log scale for ratios) and sampling variances.
    measure : str
        ``"OR"``, ``"RR"``, ``"MD"``, ...: label and back-transformation.
    level : float, default 0.95

    Returns
    -------
    str

    Examples
    --------
    >>> from ketabayes.reporting.text import format_revman
    >>> print(format_revman([-0.9, -1.6, -0.2, 0.0], [0.33, 0.19, 0.05, 0.004], "MD").splitlines()[0])
    Random effects (REML, Hartung-Knapp-Sidik-Jonkman), as RevMan since 2025; k = 4 studies
    """
    from ketabayes.inference.frequentist import rma

    ratio = measure.upper() in RATIO_MEASURES
    pct = f"{100 * level:g}%"
    if len(yi) < 2:
        return "Random effects (REML, Hartung-Knapp-Sidik-Jonkman): needs at least 2 studies"
    hk = rma(yi, vi, preset="revman", level=level)
    dl = rma(yi, vi, method="DL", test="z", level=level)

    def est(r) -> str:
        return f"{measure} {_effect(r.estimate, ratio)} [{_effect(r.ci_low, ratio)}, {_effect(r.ci_high, ratio)}]"

    lines = [f"Random effects (REML, Hartung-Knapp-Sidik-Jonkman), as RevMan since 2025; k = {hk.k} studies",
             f"  Total ({pct} CI): {est(hk)}"]
    lines.append(f"  Prediction interval ({pct}, t with {hk.df:g} df): "
                 f"[{_effect(hk.pi_low, ratio)}, {_effect(hk.pi_high, ratio)}]")
    lines.append(f"  Heterogeneity: Tau^2 = {sig(hk.tau2, 4)} [{sig(hk.tau2_ci_low, 4)}, {sig(hk.tau2_ci_high, 4)}] "
                 f"(Q-profile); Chi^2 = {hk.Q:.2f}, df = {hk.Q_df} ({_p(hk.Q_pval)}); "
                 f"I^2 = {hk.I2:.0f}% [{hk.I2_ci_low:.0f}%, {hk.I2_ci_high:.0f}%]")
    lines.append(f"  Test for overall effect: t = {hk.zval:.2f}, df = {hk.df:g} ({_p(hk.pval)})")
    lines.append(f"RevMan 5 (DerSimonian-Laird, Wald): {est(dl)}; Tau^2 = {sig(dl.tau2, 4)}; "
                 f"Z = {dl.zval:.2f} ({_p(dl.pval)})")
    return "\n".join(lines)


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
