"""Trial designs and assumption grids of ``ketabayes analyse`` (the command line's second job).

* :func:`load_design`: a CSV of what crossover trials report (:func:`~ketabayes.crossover`),
  of the arms of multi-arm trials (:func:`~ketabayes.multiarm_contrasts`), or of estimates at
  several time windows -- the data layer's own functions, never a copy of them;
* :func:`provenance` / :func:`format_provenance`: the per-study record of routes, assumed
  correlations and conversions that every report prints and the JSON carries;
* :func:`assumption_grid`: the decision table over several values of an assumed correlation
  (``--r 0.2,0.5,0.8``, ``--rho-time 0.2,0.5,0.8``), by the sensitivity grid.
"""

from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np
import pandas as pd

from ketabayes.errors import KetabayesError
from ketabayes.reporting.text import sig

DESIGNS = ("parallel", "crossover", "multiarm", "time")
CROSSOVER_ROUTE_CHOICES = ("auto", "differences", "t", "p", "periods", "first_period")

#: per-study provenance columns, in the order they are shown
PROVENANCE = ("route", "assumed_r", "arm", "control", "time", "converted", "conversion", "note")


def parse_values(text: str | None, option: str, *, low: float = -1.0, high: float = 1.0,
                 high_open: bool = False) -> list[float]:
    """``"0.2,0.5,0.8"`` -> ``[0.2, 0.5, 0.8]``; a bad or out-of-range value is a usage error."""
    if text is None:
        return []
    try:
        vals = [float(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise click.BadParameter(f"takes numbers separated by commas, e.g. 0.2,0.5,0.8; got {text!r}",
                                 param_hint=option) from None
    if not vals:
        raise click.BadParameter("needs at least one value", param_hint=option)
    for v in vals:
        if not (math.isfinite(v) and low <= v and (v < high if high_open else v <= high)):
            raise click.BadParameter(f"{v:g} is not a correlation in [{low:g}, {high:g}{')' if high_open else ']'}",
                                     param_hint=option)
    if len(set(vals)) != len(vals):
        raise click.BadParameter(f"a value is given twice: {text!r}", param_hint=option)
    return vals


def load_design(path: Path, design: str, *, measure: str | None, study: str, columns: dict, r: float | None,
                route: str, control: str | None, multiarm: str, rho_time: float | None, rho_between: float):
    """Read DATA as ``design`` reports it: (effect sizes or model input, measure, label, multivariate model or None)."""
    from ketabayes.data.csv_table import read_csv_table

    data = read_csv_table(path)
    m = measure.upper() if measure else None
    if design == "crossover":
        from ketabayes.data.crossover import crossover

        if m not in (None, "MD"):
            raise click.BadParameter(f"crossover trials give a paired mean difference (MD), not {m}",
                                     param_hint="--measure")
        es = crossover(data, method=route, r=r, study=study, **columns)
        return es, "MD", path.name, None
    if design == "multiarm":
        from ketabayes.data.multiarm import handle_multiarm, multiarm_contrasts, multiarm_trials

        if control is None:
            raise click.UsageError("--design multiarm needs --control (the label of the shared control arm)")
        if m is None:
            raise click.UsageError("--design multiarm needs --measure (MD, OR, RR or RD)")
        if columns:
            unknown = set(columns) - {"mi", "sdi", "ni", "xi", "arm"}
            if unknown:
                raise click.BadParameter(f"arm-level tables map mi, sdi, ni, xi, arm; got {sorted(unknown)}",
                                         param_hint="--col")
        if m != "MD" and "xi" not in columns:
            columns = {**columns, "xi": "xi"}
        c = multiarm_contrasts(data, m, control=control, study=study, **columns)
        if multiarm != "correlated" and multiarm_trials(c.table):
            return handle_multiarm(c.table, multiarm), m, path.name, None
        from ketabayes.model.multivariate import MultivariateModel

        return c.table, m, path.name, lambda prior_mu, prior_tau: MultivariateModel.from_contrasts(
            c, prior_mu=prior_mu, prior_tau=prior_tau)
    if design == "time":
        from ketabayes.model.multivariate import MultivariateModel

        if rho_time is None:
            raise click.UsageError("--design time needs --rho-time: the within-trial correlation of the estimates "
                                   "across time windows is rarely reported, so it is an assumption you state "
                                   "(several values, e.g. 0.2,0.5,0.8, give a sensitivity grid)")
        if columns:
            raise click.UsageError("--col maps metafor's arm-level names; a time-window table has study, time, yi, "
                                   "vi (or sei)")
        return data, (m or "GEN"), path.name, lambda prior_mu, prior_tau: MultivariateModel.from_time_points(
            data, rho_time=rho_time, rho_between=rho_between, study=study, prior_mu=prior_mu, prior_tau=prior_tau,
            measure=m)
    raise click.BadParameter(f"unknown design {design!r}", param_hint="--design")  # pragma: no cover


def provenance(es: pd.DataFrame, study: str = "study") -> pd.DataFrame:
    """The per-study provenance columns present in an effect-size table (study first)."""
    cols = [c for c in PROVENANCE if c in es.columns]
    out = es[[study, *cols]].copy() if study in es.columns else es[cols].copy()
    if "assumed_r" in out.columns:
        out["assumed_r"] = pd.to_numeric(out["assumed_r"], errors="coerce")
    for c in ("route", "arm", "control", "time", "conversion", "note"):
        if c in out.columns:
            out[c] = out[c].map(lambda x: "" if pd.isna(x) else str(x))
    if "converted" in out.columns:
        out["converted"] = out["converted"].map(lambda x: bool(x) if not pd.isna(x) else False)
    return out.reset_index(drop=True)


def format_provenance(prov: pd.DataFrame) -> str | None:
    """The rows of the provenance table that record something (a route, an assumption, a conversion)."""
    informative = [c for c in prov.columns[1:] if c not in ("arm", "control", "time")]
    if not informative:
        return None
    keep = np.zeros(len(prov), dtype=bool)
    for c in informative:
        col = prov[c]
        if c == "assumed_r":
            keep |= np.isfinite(col.to_numpy(dtype=float))
        elif c == "converted":
            keep |= col.to_numpy(dtype=bool)
        else:
            keep |= (col.astype(str) != "").to_numpy()
    if not keep.any():
        return None
    shown = prov.loc[keep, [c for c in prov.columns if c != "converted"]].copy()
    if {"note", "conversion"} <= set(shown.columns):  # the same words twice: keep them once
        shown["note"] = shown["note"].where(shown["note"] != shown["conversion"], "")
    with pd.option_context("display.width", 200, "display.max_colwidth", 90):
        return shown.to_string(index=False, na_rep="-", float_format=lambda x: f"{x:g}")


def assumption_grid(es: pd.DataFrame, factor: str, values: list[float], *, measure: str, prior_mu, prior_tau,
                    fixed: bool, mcid, benefit: str, harm, seed: int, study: str, targets) -> tuple[str, dict]:
    """Decision table over the levels of one assumed correlation (``"r"`` or ``"rho_time"``).

    Runs :func:`~ketabayes.sensitivity.sensitivity_grid` (exact engine) with ``factor=values``;
    returns the text block and its JSON (the typed rows and the grid's settings).
    """
    from ketabayes.provenance import package_versions
    from ketabayes.sensitivity import sensitivity_grid

    res = sensitivity_grid(es, **{factor: values}, prior_mu=prior_mu, prior_tau=prior_tau,
                           model="fixed" if fixed else "random", mcid=mcid, benefit=benefit, harm=harm,
                           measure=measure, study=study, targets=targets, seed=seed, progress=False)
    t = res.table
    failed = t[t["error"] != ""]
    if len(failed):
        raise KetabayesError(f"the {factor} grid failed at {factor}={failed[factor].iloc[0]:g}: "
                             f"{failed['error'].iloc[0]}")
    cols = [factor, "target", "mean", "ci_low", "ci_high"]
    if mcid is not None:
        cols += ["p_benefit", "p_trivial", "p_harm", "verdict"]
    what = {"r": "assumed within-patient correlation r", "rho_time": "assumed correlation across time rho_time"}
    g = t.attrs["grid"]
    who = ""
    if factor == "r":
        trials = sorted({s for v in g["r"]["rederived"].values() for s in v})
        who = f" (re-derives {', '.join(trials)})"
    lines = [f"Sensitivity to the {what[factor]}{who}, exact engine:"]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        lines.append(t[cols].to_string(index=False, float_format=lambda x: sig(x, 4)))
    if mcid is not None:
        rob = res.robustness(by=("target",))
        lines.append("; ".join(f"{row.target}: {'verdict robust' if row.robust else 'verdict changes'} "
                               f"(P(benefit) {row.p_benefit_min:.3f} to {row.p_benefit_max:.3f})"
                               for row in rob.itertuples()))
    extra = ["sd", "median", "p_any_benefit", "k"] if mcid is not None else ["sd", "median", "k"]
    payload = {"factor": factor, "values": values, "rows": t[cols + extra].to_dict(orient="records"),
               "config_hash": t.attrs["config_hash"], "grid": g, "versions": package_versions()}
    return "\n".join(lines), payload
