"""Fitting one variant (runs in the worker: module-level functions, so process executors can pickle them).

:func:`run_batch` never raises for a failing analysis: the error is recorded in the
variant's rows (``error`` column) and the other variants are unaffected.
"""

from __future__ import annotations

import math
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ketabayes.errors import DataWarning, KetabayesError
from ketabayes.inference.bayes_factor import decision_probabilities_mixed
from ketabayes.marginals import Marginal, WeightedDrawsMarginal
from ketabayes.sensitivity.analyses import _estimable_rows, _n_studies
from ketabayes.sensitivity.power_scaling import PARETO_K_THRESHOLD, _power_scaling, _target_draws, _target_var
from ketabayes.sensitivity.spec import FACTORS, Variant

_PROB = ("p_benefit", "p_trivial", "p_harm", "p_any_benefit")



def _summary_row(m: Marginal, th_list, rule, prob=0.95) -> tuple[dict, list[dict]]:
    a = (1.0 - prob) / 2.0
    qs = np.array([a, 0.5, 1.0 - a])
    q = np.asarray(m.ppf(qs), dtype=float)
    hpd = m.hpd(prob)  # on the analysis scale, as every column of the grid table
    base = {"mean": float(m.mean), "sd": float(m.sd), "median": float(q[1]), "ci_low": float(q[0]),
            "ci_high": float(q[2]), "hpd_low": float(hpd[0]), "hpd_high": float(hpd[1]), "ci_prob": float(prob),
            "exact": bool(m.exact)}
    per_mcid = []
    for th in th_list:
        if th is None:
            d = dict.fromkeys(_PROB, math.nan)
        else:
            d = decision_probabilities_mixed(m, th)
        d["verdict"] = rule(d["p_benefit"], d["p_trivial"], d["p_harm"])
        per_mcid.append(d)
    return base, per_mcid


def run_batch(batch: list[dict], common: dict) -> list[dict]:
    """Fit a batch of variants; never raises (errors are recorded per variant)."""
    return [_run_one(task, common) for task in batch]


def _run_one(task: dict, common: dict) -> dict:
    variant: Variant = task["variant"]
    data: pd.DataFrame = task["data"]
    t0 = time.perf_counter()
    rows, result = [], None
    targets = common["targets"]
    th_list = common["thresholds"]
    rule = common["rule"]
    base = _base_row(variant, int(task["seed"]), len(data))
    caught: list = []
    try:
        factory = task["factory"]
        # warnings of one variant (e.g. NUTS diagnostics) are recorded in its rows, not raised or
        # printed once per variant; catch_warnings is process-global, so with a thread pool a warning
        # may be attributed to a concurrent variant (process executors are exact)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = factory(data, variant, seed=task["seed"], measure=common["measure"],
                          keep_result=common["keep_results"], thresholds=th_list[0], study=common["study"],
                          **common["fit_kwargs"])
        base["k"] = _n_studies(fit, data)
        result = getattr(fit, "result", fit) if common["keep_results"] else None
        bf = None
        if common["bayes_factor"] and variant.method == "exact" and variant.likelihood == "normal" \
                and variant.model in ("random", "fixed") and variant.bias is None \
                and not getattr(fit, "correlated", False):  # correlated estimates: no univariate BF
            from ketabayes.inference.bayes_factor import bayes_factor

            with warnings.catch_warnings():  # the fit above has already recorded the left-out studies
                warnings.simplefilter("ignore", DataWarning)
                used = _estimable_rows(data, common["study"])
            bf = bayes_factor(used["yi"].to_numpy(float), used["vi"].to_numpy(float), variant.prior_mu,
                              None if variant.fixed else variant.prior_tau, fixed=variant.fixed,
                              prior_prob_h1=common["prior_prob_h1"])
        ps = None
        if common["power_scaling"] and hasattr(fit, "tree") and variant.method != "exact":
            ps, sens, _ = _power_scaling(fit, variant, common["power_scaling"], targets)
        for t in targets:
            try:
                m = fit.marginal(t)
                summ, per = _summary_row(m, th_list, rule)
            except Exception as e:  # one bad target (e.g. a study not in this subset) spares the others
                rows.extend({**base, "target": t, "mcid": mval, "error": _err(e)}
                            for mval in common["mcid_values"])
                continue
            extra = {}
            if ps is not None and t in sens:
                extra = {"psense_prior": sens[t]["prior"], "psense_likelihood": sens[t]["likelihood"]}
            for mval, th, d in zip(common["mcid_values"], th_list, per):
                row = {**base, "target": t, "mcid": mval, **summ, **d, **extra, "error": ""}
                if bf is not None and th is not None and t in ("mean", "predictive"):
                    avg = bf.decision_probabilities(th, t)
                    row.update(bf10=bf.bf10, post_prob_h1=bf.post_prob_h1,
                               **{f"{k}_avg": v for k, v in avg.items()},
                               verdict_avg=rule(avg["p_benefit"], avg["p_trivial"], avg["p_harm"]))
                elif bf is not None:
                    row.update(bf10=bf.bf10, post_prob_h1=bf.post_prob_h1)
                rows.append(row)
            if ps is not None:
                var, _ = _target_var(t, fit)
                if var is None:
                    continue
                draws = _target_draws(fit, t)
                for (component, a), (w, ess, khat) in ps.items():
                    wm = WeightedDrawsMarginal(draws, w)
                    s2, per2 = _summary_row(wm, th_list, rule)
                    flag = ""
                    if khat > PARETO_K_THRESHOLD:
                        flag = (f"Pareto k-hat {khat:.2f} > {PARETO_K_THRESHOLD} for {component}^{a:g}: the "
                                "importance-weighted estimates are unreliable")
                    for mval, d in zip(common["mcid_values"], per2):
                        rows.append({**base, "power_scaling": f"{component}^{a:g}", "power_alpha": float(a),
                                     "target": t, "mcid": mval,
                                     **s2, **d, "is_ess": ess, "pareto_k": khat, "_flag": flag, "error": ""})
    except Exception as e:
        rows = [{**base, "target": t, "mcid": mval, "error": _err(e)}
                for t in targets for mval in common["mcid_values"]]
    secs = time.perf_counter() - t0
    warn = "; ".join(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    for r in rows:
        r["seconds"] = secs
        flag = r.pop("_flag", "")
        r["warning"] = "; ".join(x for x in (warn, flag) if x)
    return {"fit_id": variant.name, "rows": rows, "result": result,
            "ok": all(not r.get("error") for r in rows)}


def _base_row(variant: Variant, seed: int, k: int) -> dict:
    """Columns shared by every row of a variant: factor levels, the priors themselves, ``k``, seed."""
    return {"variant": variant.name, "fit_id": variant.name, **{f: variant.levels.get(f, "") for f in FACTORS},
            "prior_mu_spec": "-" if variant.prior_mu is None else str(variant.prior_mu),
            "prior_tau_spec": "-" if variant.prior_tau is None else str(variant.prior_tau),
            "k": int(k), "seed": int(seed)}


def _err(e: BaseException) -> str:
    msg = f"{type(e).__name__}: {e}"
    if not isinstance(e, KetabayesError):
        tb = traceback.extract_tb(e.__traceback__)
        if tb:
            msg += f" [at {Path(tb[-1].filename).name}:{tb[-1].lineno}]"
    return msg




def failed_output(variant: Variant, seed: int, k: int, common: dict, message: str) -> dict:
    """The rows of a variant that could not be fitted at all (its worker died, it timed out, ...)."""
    base = _base_row(variant, seed, k)
    rows = [{**base, "target": t, "mcid": m, "error": message, "seconds": math.nan, "warning": ""}
            for t in common["targets"] for m in common["mcid_values"]]
    return {"fit_id": variant.name, "rows": rows, "result": None, "ok": False}
